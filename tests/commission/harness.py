"""A :class:`~controller.commission.port.CommissionPort` over a real ``CentralSystem`` and its
``Control`` on loopback (what the daemon's part does, without the daemon): the site's chargers,
their OCPP sessions and states, the controller's targets and book. The headroom is set per
charger by the test (default: the charger's maximum); every profile sent is recorded with the
headroom at that moment, so a test can check none offered more. ``before_send`` lets a test change
a rig charger's behaviour for one particular profile (answer it late, say) just before it goes out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from controller.chargers.clock import Clock
from controller.chargers.control import ApplyResult
from controller.chargers.profiles import ProfileSpec, Target
from controller.chargers.server import CentralSystem
from controller.chargers.session import OcppSession
from controller.chargers.state import ChargerState
from controller.model.site import Charger, Site


@dataclass(frozen=True)
class SentRecord:
    charger_id: str
    spec: ProfileSpec
    headroom: float
    status: str


@dataclass
class LoopbackPort:
    cs: CentralSystem
    clock_fn: Clock
    headroom: dict[str, float] = field(default_factory=dict)
    """Per charger [A per phase; DC: kW]; a charger not in it: its maximum."""
    sent: list[SentRecord] = field(default_factory=list)
    before_send: dict[str, Callable[[ProfileSpec], None]] = field(default_factory=dict)
    """Per charger: called with each profile just before it is sent."""

    @property
    def site(self) -> Site:
        return self.cs.site

    def charger(self, charger_id: str) -> Charger | None:
        return next((c for c in self.site.chargers if c.id == charger_id), None)

    def state(self, charger_id: str) -> ChargerState:
        return self.cs.state(charger_id)

    def session(self, charger_id: str) -> OcppSession | None:
        return self.cs.session(charger_id)

    def target(self, charger_id: str, connector: int | None = None) -> Target:
        return self.cs.control.target(charger_id, connector)

    def failsafe_spec(self, charger_id: str) -> ProfileSpec:
        return self.cs.control.failsafe_spec(charger_id)

    async def send_spec(self, charger_id: str, spec: ProfileSpec) -> ApplyResult:
        headroom = self.headroom_a(charger_id, spec.connector_id or 1)
        hook = self.before_send.get(charger_id)
        if hook is not None:
            hook(spec)
        result = await self.cs.control.send_spec(charger_id, spec)
        self.sent.append(SentRecord(charger_id, spec, headroom, result.status))
        return result

    def headroom_a(self, charger_id: str, connector: int) -> float:
        del connector
        if charger_id in self.headroom:
            return self.headroom[charger_id]
        ch = self.charger(charger_id)
        if ch is None:
            return 0.0
        return (ch.max_kw or 0.0) if ch.kind == "dc" else (ch.max_a or 0.0)

    def clock(self) -> datetime:
        return self.clock_fn()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
