"""Handlers without a network (transport-free sessions), meter-value parsing, measurand fallback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.chargers.clock_offset import ClockOffset
from controller.chargers.events import ChargerEvent
from controller.chargers.session import SessionContext
from controller.chargers.state import ChargerState, Measured, apply_meter_values
from controller.chargers.v16 import V16Session, parse_capabilities
from controller.chargers.v201 import V201Session, parse_smart_variables
from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site
from tests.chargers.schemas import validate

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class FakeTransport:
    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[Any] = []

    async def recv(self) -> str:
        return await self.inbox.get()

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


def _ctx(cid: str = "CP1") -> tuple[SessionContext, list[ChargerEvent]]:
    events: list[ChargerEvent] = []
    ctx = SessionContext(make_site(), ChargerState(cid), lambda: T0, events.append, lambda: 77)
    return ctx, events


async def test_v201_transaction_and_ev_charging_needs() -> None:
    ctx, events = _ctx()
    t = FakeTransport()
    s = V201Session("CP1", t, ctx)
    started = {
        "eventType": "Started",
        "timestamp": "2026-06-01T08:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "abc"},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "TAG-BUS1", "type": "ISO14443"},
    }
    await s.route_message(json.dumps([2, "1", "TransactionEvent", started]))
    assert t.sent[-1] == [3, "1", {"idTokenInfo": {"status": "Accepted"}}]
    tx = ctx.state.transaction(1)
    assert tx is not None and tx.vehicle_id == "BUS-1" and tx.transaction_id == "abc"
    departure = (T0 + timedelta(hours=6)).isoformat().replace("+00:00", "Z")
    needs = {
        "evseId": 1,
        "chargingNeeds": {
            "requestedEnergyTransfer": "AC_three_phase",
            "departureTime": departure,
            "acChargingParameters": {"energyAmount": 42000, "evMinCurrent": 6, "evMaxCurrent": 32, "evMaxVoltage": 400},
        },
    }
    await s.route_message(json.dumps([2, "2", "NotifyEVChargingNeeds", needs]))
    validate("2.0.1", "NotifyEVChargingNeeds", "response", t.sent[-1][2])
    assert tx.departure_at == T0 + timedelta(hours=6) and tx.energy_need_kwh == 42.0
    updated = {
        **started,
        "eventType": "Updated",
        "seqNo": 1,
        "triggerReason": "MeterValuePeriodic",
        "meterValue": [
            {
                "timestamp": "2026-06-01T08:00:00Z",
                "sampledValue": [
                    {"value": 16.0, "measurand": "Current.Import", "phase": "L1"},
                    {"value": 7.36, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
                ],
            }
        ],
    }
    del updated["idToken"], updated["evse"]
    await s.route_message(json.dumps([2, "3", "TransactionEvent", updated]))
    m = ctx.state.connector(1).measured
    assert m.current_a[0] is not None and m.current_a[0].value == 16.0
    assert m.power_w is not None and m.power_w.value == 7360.0
    ended = {
        **updated,
        "eventType": "Ended",
        "seqNo": 2,
        "triggerReason": "EVCommunicationLost",
        "transactionInfo": {"transactionId": "abc", "stoppedReason": "EVDisconnected"},
    }
    await s.route_message(json.dumps([2, "4", "TransactionEvent", ended]))
    assert ctx.state.transaction(1) is None and tx.stop_reason == "EVDisconnected"
    assert [e.kind for e in events].count("transaction_ended") == 1


async def test_v16_unknown_tag_is_accepted_without_vehicle_and_stop_with_data() -> None:
    ctx, _ = _ctx()
    t = FakeTransport()
    s = V16Session("CP1", t, ctx)
    await s.route_message(
        json.dumps(
            [
                2,
                "1",
                "StartTransaction",
                {"connectorId": 1, "idTag": "STRANGER", "meterStart": 100, "timestamp": "2030-01-01T00:00:00Z"},
            ]
        )
    )
    assert t.sent[-1] == [3, "1", {"transactionId": 77, "idTagInfo": {"status": "Accepted"}}]
    tx = ctx.state.transaction(1)
    assert tx is not None and tx.vehicle_id is None and tx.started_at == T0  # future timestamp clamped
    await s.route_message(
        json.dumps(
            [
                2,
                "2",
                "StopTransaction",
                {
                    "meterStop": 900,
                    "timestamp": "2026-06-01T08:00:00Z",
                    "transactionId": 77,
                    "transactionData": [
                        {
                            "timestamp": "2026-06-01T08:00:00Z",
                            "sampledValue": [
                                {"value": "0.9", "unit": "kWh", "measurand": "Energy.Active.Import.Register"}
                            ],
                        }
                    ],
                },
            ]
        )
    )
    assert t.sent[-1] == [3, "2", {}]
    assert ctx.state.transaction(1) is None
    e = ctx.state.connector(1).measured.energy_wh
    assert e is not None and e.value == 900.0


def test_meter_values_parsing_is_defensive() -> None:
    m = Measured()
    clock = ClockOffset()
    used = apply_meter_values(
        m,
        [
            {
                "timestamp": "2026-06-01T08:00:10Z",
                "sampled_value": [
                    {"value": "10.5", "measurand": "Current.Import", "phase": "L1-N"},
                    {"value": "nan", "measurand": "Current.Import", "phase": "L2"},
                    {"value": "x", "measurand": "Current.Import", "phase": "L3"},
                    {"value": "1", "measurand": "Current.Import"},  # no phase: kept apart from the phases
                    {"value": "3", "measurand": "Voltage", "phase": "L1"},
                    {"value": "55", "measurand": "SoC"},
                    {"value": "12", "unit": "Wh"},  # default measurand: energy
                ],
            },
            {
                "timestamp": "not a time",
                "sampled_value": [{"value": "2", "measurand": "Current.Import", "phase": "L2"}],
            },
        ],
        T0 + timedelta(seconds=20),
        clock,
    )
    assert used == 5
    assert m.currents() == (10.5, 2.0, None)
    assert m.current_unphased_a is not None and m.current_unphased_a.value == 1.0
    assert m.soc_pct is not None and m.soc_pct.value == 55 and m.energy_wh is not None and m.energy_wh.value == 12
    apply_meter_values(
        m,
        [
            {
                "timestamp": "2026-06-01T08:00:00Z",
                "sampled_value": [{"value": "99", "measurand": "Current.Import", "phase": "L1"}],
            }
        ],
        T0 + timedelta(seconds=30),
        clock,
    )
    assert m.currents()[0] == 10.5  # an older sample never overwrites a newer one


def test_phases_in_use() -> None:
    m = Measured()
    apply_meter_values(
        m,
        [
            {
                "timestamp": "2026-06-01T08:00:00Z",
                "sampled_value": [
                    {"value": v, "measurand": "Current.Import", "phase": p}
                    for v, p in (("16", "L1"), ("0.2", "L2"), ("0", "L3"))
                ],
            }
        ],
        T0,
    )
    assert m.phases_in_use() == 1
    m2 = Measured()
    assert m2.phases_in_use() is None


def test_capability_parsers() -> None:
    c = parse_capabilities(
        [
            {"key": "ChargeProfileMaxStackLevel", "value": "3"},
            {"key": "ChargingScheduleAllowedChargingRateUnit", "value": "Power"},
            {"key": "ChargingScheduleMaxPeriods", "value": "junk"},
        ]
    )
    assert (c.max_stack_level, c.rate_units, c.max_periods) == (3, ("W",), None)
    d = parse_smart_variables(
        [
            {"attribute_status": "Accepted", "attribute_value": "A,W", "variable": {"name": "RateUnit"}},
            {"attribute_status": "Rejected", "variable": {"name": "ProfileStackLevel"}},
        ]
    )
    assert d.rate_units == ("A", "W") and d.max_stack_level is None


async def test_measurands_fall_back_one_by_one(server_factory: Callable[..., Any]) -> None:
    cs = await server_factory(make_site([{"id": "CP1"}, {"id": "CP2"}]))
    for cid, version in (("CP1", "1.6"), ("CP2", "2.0.1")):
        sim = SimCharger(SimOptions(cid, version=version, unsupported_measurands=frozenset({"SoC"}), tick_s=0.05))
        await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
        st = cs.state(cid)
        try:
            await eventually(lambda st=st: st.failsafe is not None, what="set up")  # type: ignore[misc]
            # sampling is configured after the fail-safe is installed: wait for that step too
            await eventually(lambda st=st: st.capabilities.measurands != (), what="sampling")  # type: ignore[misc]
            assert st.ocpp_version == version
            assert st.capabilities.measurands == (
                "Current.Import",
                "Power.Active.Import",
                "Energy.Active.Import.Register",
            )
            assert sim.measurands() == list(st.capabilities.measurands)
            await sim.plug_in(EvParams(reaction_s=0.1))
            await eventually(
                lambda st=st: st.connectors[1].measured.energy_wh is not None,  # type: ignore[misc]
                3.0,
                "meter values",
            )
            assert st.connectors[1].measured.soc_pct is None
        finally:
            await sim.close()


async def test_notifications_are_acknowledged() -> None:
    for version, cls, frames in (
        (
            "1.6",
            V16Session,
            [
                ("DiagnosticsStatusNotification", {"status": "Idle"}),
                ("FirmwareStatusNotification", {"status": "Idle"}),
                ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "2026-06-01T08:00:00Z"}),
            ],
        ),
        (
            "2.0.1",
            V201Session,
            [
                ("FirmwareStatusNotification", {"status": "Idle"}),
                ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "2026-06-01T08:00:00Z"}),
                (
                    "NotifyEvent",
                    {
                        "generatedAt": "2026-06-01T08:00:00Z",
                        "seqNo": 0,
                        "eventData": [
                            {
                                "eventId": 1,
                                "timestamp": "2026-06-01T08:00:00Z",
                                "trigger": "Alerting",
                                "actualValue": "x",
                                "eventNotificationType": "HardWiredNotification",
                                "component": {"name": "EVSE"},
                                "variable": {"name": "Problem"},
                            }
                        ],
                    },
                ),
            ],
        ),
    ):
        ctx, events = _ctx()
        t = FakeTransport()
        s = cls("CP1", t, ctx)  # type: ignore[abstract]
        for i, (action, payload) in enumerate(frames):
            validate(version, action, "request", payload)
            await s.route_message(json.dumps([2, str(i), action, payload]))
            assert t.sent[-1][0] == 3, (version, action, t.sent[-1])
            validate(version, action, "response", t.sent[-1][2])
        assert any(e.kind == "security_event" for e in events)
