"""A minimal OCPP central system (1.6J and 2.0.1) for driving simulated chargers in tests.

It answers what a charger sends (everything accepted, transaction ids counted up), records every
call with its payload (snake_case, as the ``ocpp`` package hands it over), and sends exactly the
profiles a test gives it, so the charger's own judgement of them can be tested without the
controller's dispatcher in between. Real websockets on loopback, a free port chosen at start.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from hil.chargers.composite import format_time
from hil.chargers.protocol import on

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Received:
    charger_id: str
    action: str
    payload: dict[str, Any]


class _Link16(Cp16):  # type: ignore[misc]
    def __init__(self, central: MiniCentral, charger_id: str, ws: ServerConnection) -> None:
        super().__init__(charger_id, ws, response_timeout=central.response_timeout_s)
        self.central = central
        self.version = "1.6"

    def _got(self, action: str, payload: dict[str, Any]) -> None:
        self.central.received.append(Received(self.id, action, payload))

    @on("BootNotification")
    def on_boot(self, **kw: Any) -> result16.BootNotification:
        self._got("BootNotification", kw)
        return result16.BootNotification(
            current_time=format_time(self.central.clock()), interval=300, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self, **kw: Any) -> result16.Heartbeat:
        self._got("Heartbeat", kw)
        return result16.Heartbeat(current_time=format_time(self.central.clock()))

    @on("StatusNotification")
    def on_status(self, **kw: Any) -> result16.StatusNotification:
        self._got("StatusNotification", kw)
        return result16.StatusNotification()

    @on("Authorize")
    def on_authorize(self, **kw: Any) -> result16.Authorize:
        self._got("Authorize", kw)
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on("StartTransaction")
    def on_start(self, **kw: Any) -> result16.StartTransaction:
        self._got("StartTransaction", kw)
        return result16.StartTransaction(transaction_id=next(self.central.tx_ids), id_tag_info={"status": "Accepted"})

    @on("StopTransaction")
    def on_stop(self, **kw: Any) -> result16.StopTransaction:
        self._got("StopTransaction", kw)
        return result16.StopTransaction()

    @on("MeterValues")
    def on_meter_values(self, **kw: Any) -> result16.MeterValues:
        self._got("MeterValues", kw)
        return result16.MeterValues()


class _Link201(Cp201):  # type: ignore[misc]
    def __init__(self, central: MiniCentral, charger_id: str, ws: ServerConnection) -> None:
        super().__init__(charger_id, ws, response_timeout=central.response_timeout_s)
        self.central = central
        self.version = "2.0.1"

    def _got(self, action: str, payload: dict[str, Any]) -> None:
        self.central.received.append(Received(self.id, action, payload))

    @on("BootNotification")
    def on_boot(self, **kw: Any) -> result201.BootNotification:
        self._got("BootNotification", kw)
        return result201.BootNotification(
            current_time=format_time(self.central.clock()), interval=300, status="Accepted"
        )

    @on("Heartbeat")
    def on_heartbeat(self, **kw: Any) -> result201.Heartbeat:
        self._got("Heartbeat", kw)
        return result201.Heartbeat(current_time=format_time(self.central.clock()))

    @on("StatusNotification")
    def on_status(self, **kw: Any) -> result201.StatusNotification:
        self._got("StatusNotification", kw)
        return result201.StatusNotification()

    @on("Authorize")
    def on_authorize(self, **kw: Any) -> result201.Authorize:
        self._got("Authorize", kw)
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    def on_tx_event(self, **kw: Any) -> result201.TransactionEvent:
        self._got("TransactionEvent", kw)
        return result201.TransactionEvent()

    @on("MeterValues")
    def on_meter_values(self, **kw: Any) -> result201.MeterValues:
        self._got("MeterValues", kw)
        return result201.MeterValues()

    @on("NotifyEVChargingNeeds")
    def on_needs(self, **kw: Any) -> result201.NotifyEVChargingNeeds:
        self._got("NotifyEVChargingNeeds", kw)
        return result201.NotifyEVChargingNeeds(status="Accepted")


def profile(
    version: str,
    *,
    profile_id: int,
    stack_level: int,
    purpose: str,
    limit: float | None = None,
    unit: str = "A",
    kind: str = "Absolute",
    start: datetime | None = None,
    duration_s: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    transaction_id: str | None = None,
    periods: list[tuple[int, float]] | None = None,
    number_phases: int | None = None,
) -> dict[str, Any]:
    """A charging profile as it goes on the wire (camelCase) for ``version``: one period of
    ``limit`` from 0, or ``periods`` as (startPeriod [s], limit)."""
    items: list[dict[str, Any]] = []
    for offset, value in periods if periods is not None else [(0, float(limit or 0.0))]:
        item: dict[str, Any] = {"startPeriod": offset, "limit": value}
        if number_phases is not None:
            item["numberPhases"] = number_phases
        items.append(item)
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": items}
    if duration_s is not None:
        schedule["duration"] = duration_s
    if start is not None:
        schedule["startSchedule"] = format_time(start)
    out: dict[str, Any] = {"stackLevel": stack_level, "chargingProfileKind": kind}
    if valid_from is not None:
        out["validFrom"] = format_time(valid_from)
    if valid_to is not None:
        out["validTo"] = format_time(valid_to)
    if version == "1.6":
        out.update(chargingProfileId=profile_id, chargingProfilePurpose=purpose, chargingSchedule=schedule)
        if transaction_id is not None:
            out["transactionId"] = int(transaction_id)
    else:
        name = "ChargingStationMaxProfile" if purpose == "ChargePointMaxProfile" else purpose
        out.update(id=profile_id, chargingProfilePurpose=name, chargingSchedule=[{"id": profile_id, **schedule}])
        if transaction_id is not None:
            out["transactionId"] = transaction_id
    return out


class MiniCentral:
    def __init__(self, clock: Clock, response_timeout_s: float = 2.0) -> None:
        self.clock = clock
        self.response_timeout_s = response_timeout_s
        self.received: list[Received] = []
        self.links: dict[str, _Link16 | _Link201] = {}
        self.tx_ids = itertools.count(1)
        self._server: Server | None = None
        self.port = 0

    async def start(self) -> int:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1")],
            ping_interval=None,
        )
        self.port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        charger_id = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        link: _Link16 | _Link201 = (
            _Link201(self, charger_id, ws) if ws.subprotocol == "ocpp2.0.1" else _Link16(self, charger_id, ws)
        )
        self.links[charger_id] = link
        with contextlib.suppress(ConnectionClosed):
            await link.start()

    def calls(self, action: str, charger_id: str | None = None) -> list[dict[str, Any]]:
        """Payloads of every ``action`` received (from ``charger_id``), in order."""
        return [r.payload for r in self.received if r.action == action and charger_id in (None, r.charger_id)]

    async def set_profile(self, charger_id: str, connector_id: int, wire_profile: dict[str, Any]) -> str:
        """SetChargingProfile; the status answered. Raises ``TimeoutError`` when no answer comes."""
        link = self.links[charger_id]
        if link.version == "1.6":
            r = await link.call(
                call16.SetChargingProfile(connector_id=connector_id, cs_charging_profiles=wire_profile),
                suppress=False,
            )
        else:
            r = await link.call(
                call201.SetChargingProfile(evse_id=connector_id, charging_profile=wire_profile), suppress=False
            )
        return str(r.status)

    async def composite(
        self, charger_id: str, connector_id: int, duration_s: int, unit: str | None = None
    ) -> tuple[str, list[tuple[int, float]]]:
        """GetCompositeSchedule: (its start as sent, [(startPeriod, limit)])."""
        link = self.links[charger_id]
        if link.version == "1.6":
            r = await link.call(
                call16.GetCompositeSchedule(connector_id=connector_id, duration=duration_s, charging_rate_unit=unit),
                suppress=False,
            )
            sched = r.charging_schedule
            return str(r.schedule_start), [
                (int(p["start_period"]), float(p["limit"])) for p in sched["charging_schedule_period"]
            ]
        r = await link.call(
            call201.GetCompositeSchedule(duration=duration_s, evse_id=connector_id, charging_rate_unit=unit),
            suppress=False,
        )
        sched = r.schedule
        return str(sched["schedule_start"]), [
            (int(p["start_period"]), float(p["limit"])) for p in sched["charging_schedule_period"]
        ]


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday morning


class ManualClock:
    """The injected clock: pinned, moved only by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
