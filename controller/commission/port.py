"""What a commissioning run needs of the daemon: one narrow face (:class:`CommissionPort`).

The daemon's part (:mod:`controller.daemon.commission`) implements it on its charger server,
its :class:`~controller.chargers.control.Control` and the fast loop's last observation; tests may
implement it on a bare :class:`~controller.chargers.server.CentralSystem` and ``Control``.

While a run goes on, the daemon leaves the charger out of the plan, budgets it at its maximum
and sends it nothing of its own: every profile it gets comes from the run, through
:meth:`CommissionPort.send_spec` (so the book of what the charger may hold — the safety budget —
stays whole). The run never offers more than :meth:`CommissionPort.headroom_a`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol

from controller.chargers.control import ApplyResult
from controller.chargers.profiles import ProfileSpec, Target
from controller.chargers.session import OcppSession
from controller.chargers.state import ChargerState
from controller.model.site import Charger, Site

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]


class CommissionPort(Protocol):
    """The daemon as a commissioning run sees it."""

    @property
    def site(self) -> Site: ...

    def charger(self, charger_id: str) -> Charger | None:
        """The site file's charger (None: not in the site file)."""
        ...

    def state(self, charger_id: str) -> ChargerState:
        """What the charger server knows of it: boot info, clock offset, readings, transactions."""
        ...

    def session(self, charger_id: str) -> OcppSession | None:
        """Its OCPP session while connected (GetCompositeSchedule, sampling), else None."""
        ...

    def target(self, charger_id: str, connector: int | None = None) -> Target:
        """What the profile builders need to know of it (quirks, phases in use, W per A)."""
        ...

    def failsafe_spec(self, charger_id: str) -> ProfileSpec:
        """The fail-safe profile the daemon installs on it."""
        ...

    async def send_spec(self, charger_id: str, spec: ProfileSpec) -> ApplyResult:
        """Send one profile as built (no quirk fall-backs), one call at a time per charger, kept in
        the book of what the charger may hold until it can have ended."""
        ...

    def headroom_a(self, charger_id: str, connector: int) -> float:
        """The most this connector may be offered now [A per phase; DC: kW] without any node on
        its path above its usable limit, everything else as last measured (≥ 0; capped at the
        charger's maximum)."""
        ...

    def clock(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...
