"""The simulated CSMS with the simulated chargers, directly (no depotctl): real websockets on
loopback, a pinned clock moved by hand, every frame either side receives checked against the
OCPP JSON schemas."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from hil.chargers import SimCharger, SimOptions
from hil.chargers.composite import format_time
from hil.csms import CallErrorAnswer, CsmsOptions, SimCsms, charging_profile
from hil.csms.tls import client_context, make_test_cert, openssl_available, server_context
from hil.ev import EvParams
from tests.hil.central import T0, ManualClock

EV = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.2)
VERSIONS = ["1.6", "2.0.1"]


@contextlib.asynccontextmanager
async def charger(
    csms: SimCsms, clock: ManualClock, version: str, cid: str = "CP1", **kw: Any
) -> AsyncIterator[SimCharger]:
    """A sim charger connected and booted, validating every frame it receives."""
    sim = SimCharger(SimOptions(cid, version=version, tick_s=0.05, **kw), clock=clock)
    sim.validate_frames()
    await sim.connect(csms.url)
    try:
        yield sim
    finally:
        await sim.close()


def assert_clean(csms: SimCsms, *sims: SimCharger) -> None:
    """Every frame either side received was valid, and the CSMS saw nothing odd."""
    assert csms.violations() == []
    assert csms.violations(direction="out") == []
    assert csms.anomalies == []
    for sim in sims:
        assert sim.validator is not None and sim.validator.violations == []


@contextlib.asynccontextmanager
async def raw_client(csms: SimCsms, cid: str = "RAW", version: str = "1.6") -> AsyncIterator[ClientConnection]:
    """A bare websocket client: sends exactly the frames a test writes."""
    proto = Subprotocol("ocpp2.0.1" if version == "2.0.1" else "ocpp1.6")
    async with connect(f"{csms.url}/{cid}", subprotocols=[proto], open_timeout=2, ping_interval=None) as ws:
        yield ws


async def raw_call(ws: ClientConnection, uid: str, action: str, payload: Any, timeout_s: float = 2.0) -> list[Any]:
    await ws.send(json.dumps([2, uid, action, payload]))
    frame = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
    assert frame[1] == uid
    return list(frame)


@pytest.mark.parametrize("version", VERSIONS)
async def test_boot_authorise_start_meter_values_stop(csms: SimCsms, clock: ManualClock, version: str) -> None:
    async with charger(csms, clock, version) as sim:
        await csms.wait_connected("CP1", booted=1)
        log = csms.log("CP1")
        assert log.version == version and log.connections == 1 and log.status == {1: "Available"}
        await sim.cp.authorize("BLOCKED")
        await sim.cp.authorize("STRANGER")
        await sim.plug_in(EV, soc_pct=30.0, id_tag="TAG")
        # Authorize, then the tag again in StartTransaction / TransactionEvent Started
        assert log.authorizations == [("BLOCKED", "Blocked"), ("STRANGER", "Invalid")] + [("TAG", "Accepted")] * 2
        tx = csms.transactions("CP1")[0]
        sent_ids = sim.connectors[1].tx
        assert sent_ids is not None
        if version == "1.6":
            assert tx.transaction_id == 100_001 and sent_ids.transaction_id == "100001"  # the CSMS's id
        else:
            assert tx.transaction_id == sent_ids.transaction_id  # the charger's id
        stamps = []
        for _ in range(3):
            clock.advance(60)
            stamps.append(format_time(sim.charger_now()))
            await sim.cp.meter_values(1, sim.sample(1))
        clock.advance(30)
        await sim.unplug()
        assert tx.ended and tx.started == format_time(T0)
        assert tx.timestamps() == stamps  # every value, in order, as the charger stamped it
        energies = [m.value() for m in tx.meter_values]
        assert energies == sorted(energies) and energies[0] is not None and energies[0] > 0
        assert {m.transaction_id for m in tx.meter_values} == {tx.key}
        assert tx.stopped == format_time(T0 + timedelta(seconds=210))
        if version == "2.0.1":
            assert [e.event_type for e in tx.events] == ["Started", "Updated", "Updated", "Updated", "Ended"]
            seq = [s for s in tx.seq_nos() if s is not None]
            assert seq == list(range(seq[0], seq[0] + 5))
        else:
            assert tx.meter_start_wh == 0.0 and tx.meter_stop_wh is not None and tx.stop_reason == "EVDisconnected"
        assert log.status[1] == "Available"
        assert [f.action for f in log.calls_in()][:2] == ["BootNotification", "StatusNotification"]
        assert all(f.at >= T0 for f in log.frames) and log.frames[-1].at == T0 + timedelta(seconds=210)
        assert_clean(csms, sim)


@pytest.mark.parametrize(("version", "plug_first"), [("1.6", True), ("2.0.1", True), ("1.6", False)])
async def test_remote_start_and_stop(csms: SimCsms, clock: ManualClock, version: str, plug_first: bool) -> None:
    async with charger(csms, clock, version) as sim:
        await csms.wait_connected("CP1", booted=1)
        if plug_first:
            await sim.plug_in(EV, start=False)
        assert await csms.remote_start("CP1", "TAG", 1) == {"status": "Accepted"}
        if not plug_first:
            await sim.plug_in(EV)  # the remote start's tag starts the transaction
        await csms.wait_until(lambda: len(csms.transactions("CP1")) == 1, 3.0, "a transaction")
        tx = csms.transactions("CP1")[0]
        assert tx.id_tag == "TAG"
        assert await csms.remote_start("CP1", "TAG", 1) == {"status": "Rejected"}  # busy
        if version == "2.0.1":
            assert tx.remote_start_id is not None and tx.events[0].trigger_reason == "RemoteStart"
        assert csms.log("CP1").calls_in("Authorize") == []  # a remote start is not authorised again
        await csms.wait_until(lambda: sim.connectors[1].tx is not None, 3.0, "the charger's transaction")
        assert await csms.remote_stop("CP1", tx.transaction_id) == {"status": "Accepted"}
        await csms.wait_until(lambda: tx.ended, 3.0, "the transaction ended")
        assert tx.stop_reason == "Remote"
        assert await csms.remote_stop("CP1", tx.transaction_id) == {"status": "Rejected"}
        await csms.wait_until(lambda: csms.log("CP1").status.get(1) in ("Finishing", "Occupied"), 3.0, "Finishing")
        assert_clean(csms, sim)


@pytest.mark.parametrize("version", VERSIONS)
async def test_caps_clear_and_composite(csms: SimCsms, clock: ManualClock, version: str) -> None:
    async with charger(csms, clock, version) as sim:
        await csms.wait_connected("CP1", booted=1)
        await sim.plug_in(EV)
        assert sim.composite_a(1) is None
        assert await csms.set_cap("CP1", 10.0) == {"status": "Accepted"}  # ChargePointMax / ChargingStationMax
        assert sim.composite_a(1) == pytest.approx(10.0)
        # a TxDefault in W on the connector, lower: 4140 W over 3 phases at 230 V = 6 A
        assert await csms.set_cap("CP1", 4140.0, unit="W", purpose="TxDefaultProfile", profile_id=901) == {
            "status": "Accepted"
        }
        assert sim.composite_a(1) == pytest.approx(6.0)
        answer = await csms.get_composite_schedule("CP1", 1, 300, unit="A")
        assert answer["status"] == "Accepted"
        sched = answer["chargingSchedule"] if version == "1.6" else answer["schedule"]
        assert sched["chargingSchedulePeriod"][0]["limit"] == pytest.approx(6.0)
        assert await csms.clear_charging_profile("CP1", profile_id=901) == {"status": "Accepted"}
        assert sim.composite_a(1) == pytest.approx(10.0)
        tx_id = sim.connectors[1].tx.transaction_id if sim.connectors[1].tx else None
        tx_profile = charging_profile(
            version, profile_id=902, purpose="TxProfile", limit=8.0, transaction_id=tx_id, start=clock(), stack_level=1
        )
        assert await csms.set_charging_profile("CP1", 1, tx_profile) == {"status": "Accepted"}
        assert sim.composite_a(1) == pytest.approx(8.0)
        assert [p for p, _ in sim.record.profiles_received] == [
            "ChargePointMaxProfile",
            "TxDefaultProfile",
            "TxProfile",
        ]
        if version == "1.6":
            assert await csms.change_configuration("CP1", "MeterValueSampleInterval", "15") == {"status": "Accepted"}
        else:
            answer = await csms.set_variables("CP1", [("SampledDataCtrlr", "TxUpdatedInterval", "15")])
            assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert sim.config["MeterValueSampleInterval"] == "15"
        assert await csms.data_transfer("CP1", "com.example", "ping") == {"status": "UnknownVendorId"}
        assert await csms.trigger_message("CP1", "StatusNotification", 1) == {"status": "Accepted"}
        await csms.wait_until(lambda: len(csms.log("CP1").calls_in("StatusNotification")) >= 4, 3.0, "triggered")
        with pytest.raises(CallErrorAnswer) as err:
            await csms.reset("CP1", "Soft")  # the sim implements no Reset: the charger's CALLERROR
        assert err.value.code == "NotImplemented"
        assert_clean(csms, sim)


async def test_go_away_and_come_back(clock: ManualClock) -> None:
    csms = SimCsms(clock, CsmsOptions(first_transaction_id=500))
    port = await csms.start()
    sim = SimCharger(SimOptions("CP1", version="1.6", tick_s=0.05), clock=clock)
    sim.validate_frames()
    keeper = asyncio.create_task(sim.keep_connected(csms.url, backoff_initial_s=0.05, backoff_max_s=0.2))
    try:
        await csms.wait_connected("CP1", booted=1)
        await csms.go_away()
        assert not csms.listening and csms.connected() == []
        with pytest.raises(OSError):
            async with raw_client(csms):
                pass  # connection refused
        await csms.wait_until(lambda: not sim.connected(), 2.0, "the charger noticed")
        clock.advance(60)
        assert await csms.come_back() == port
        await csms.wait_connected("CP1", booted=2, timeout_s=5.0)
        log = csms.log("CP1")
        assert log.connections == 2 and {f.connection for f in log.frames} == {1, 2}
        await csms.go_away(abrupt=True)  # a crashed host: no close handshake
        await csms.wait_until(lambda: not sim.connected(), 2.0, "the charger noticed the cut")
        await csms.come_back()
        await csms.wait_connected("CP1", booted=3, timeout_s=5.0)
        assert_clean(csms, sim)
    finally:
        keeper.cancel()
        await asyncio.wait([keeper], timeout=3)
        await sim.close()
        await csms.stop()


async def test_hang_accepts_but_never_answers(csms: SimCsms) -> None:
    csms.hang()
    async with raw_client(csms) as ws:
        await ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)
        assert [f.action for f in csms.log("RAW").calls_in()] == ["Heartbeat"]  # recorded all the same
        csms.hang(False)
        frame = await raw_call(ws, "h2", "Heartbeat", {})
        assert frame[0] == 3 and frame[2] == {"currentTime": format_time(T0)}
    assert csms.anomalies == []


async def test_worst_cases(csms: SimCsms, clock: ManualClock) -> None:
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": format_time(T0)}
    async with raw_client(csms) as ws:
        # a StartTransaction replayed: flagged; a second id (new_id, the default) or the same (same_id)
        first = await raw_call(ws, "s1", "StartTransaction", start)
        again = await raw_call(ws, "s2", "StartTransaction", start)
        assert first[2]["transactionId"] == 100_001 and again[2]["transactionId"] == 100_002
        csms.o.duplicate_start = "same_id"
        third = await raw_call(ws, "s3", "StartTransaction", start)
        assert third[2]["transactionId"] == 100_001
        assert [a.kind for a in csms.anomalies] == ["duplicate_start", "duplicate_start"]
        # a CALLERROR to a given action
        csms.o.call_errors["Heartbeat"] = "InternalError"
        frame = await raw_call(ws, "e1", "Heartbeat", {})
        assert frame[0] == 4 and frame[2] == "InternalError"
        del csms.o.call_errors["Heartbeat"]
        # a slow answer
        csms.o.answer_delays_s["Heartbeat"] = 0.3
        await ws.send(json.dumps([2, "d1", "Heartbeat", {}]))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.1)
        assert json.loads(await asyncio.wait_for(ws.recv(), 2.0))[1] == "d1"
        csms.o.answer_delays_s.clear()
        # a timestamp in the future: refused
        csms.o.future_tolerance_s = 5.0
        meter = {
            "connectorId": 1,
            "transactionId": 100_001,
            "meterValue": [{"timestamp": format_time(T0 + timedelta(minutes=1)), "sampledValue": [{"value": "20"}]}],
        }
        frame = await raw_call(ws, "f1", "MeterValues", meter)
        assert frame[0] == 4 and frame[2] == "PropertyConstraintViolation"
        clock.advance(60)
        assert (await raw_call(ws, "f2", "MeterValues", meter))[0] == 3  # now it is not ahead
        assert csms.transaction(100_001).timestamps() == [format_time(T0 + timedelta(minutes=1))]
        # meter values for a transaction this CSMS never started: answered, kept, flagged
        meter["transactionId"] = 7
        assert (await raw_call(ws, "u1", "MeterValues", meter))[0] == 3
        assert csms.transaction(7).unknown and len(csms.transaction(7).meter_values) == 1
        # a frame that fails its schema: a CALLERROR, and a violation on record
        frame = await raw_call(ws, "b1", "StartTransaction", {"connectorId": "1", "idTag": "TAG"})
        assert frame[0] == 4 and frame[2] == "FormationViolation"
    kinds = [a.kind for a in csms.anomalies]
    assert kinds == ["duplicate_start", "duplicate_start", "future_timestamp", "unknown_transaction"]
    reasons = [v.reason for v in csms.violations("RAW")]
    assert any("'meterStart' is a required property" in r for r in reasons)
    assert any("'1' is not of type 'integer'" in r for r in reasons)


async def test_the_chargers_validator_catches_a_broken_frame(csms: SimCsms, clock: ManualClock) -> None:
    async with charger(csms, clock, "2.0.1") as sim:
        await csms.wait_connected("CP1", booted=1)
        await csms.send_raw("CP1", json.dumps([2, "bad-1", "SetChargingProfile", {"evseId": "1"}]))
        await csms.send_raw("CP1", json.dumps([3, "nobody-asked", {}]))
        assert sim.validator is not None
        await csms.wait_until(lambda: len(sim.validator.violations) >= 3 if sim.validator else False, 3.0, "caught")
        reasons = [v.reason for v in sim.validator.violations]
        assert any("'chargingProfile' is a required property" in r for r in reasons)
        assert any("'1' is not of type 'integer'" in r for r in reasons)
        assert any("answers no pending CALL" in r for r in reasons)
        # the charger answered the broken CALL with a CALLERROR, itself valid
        await csms.wait_until(lambda: any(f.message_type == 4 for f in csms.log("CP1").frames), 3.0, "CALLERROR")
        assert csms.violations() == []


async def test_security_profile_1_basic_auth(clock: ManualClock) -> None:
    async with SimCsms(clock, CsmsOptions(security_profile=1, passwords={"CP1": "s3cret-pw"})) as csms:
        sim = SimCharger(SimOptions("CP1", password="s3cret-pw", tick_s=0.05), clock=clock)
        await sim.connect(csms.url)
        await csms.wait_connected("CP1", booted=1)
        await sim.close()
        wrong = SimCharger(SimOptions("CP1", password="guess", tick_s=0.05), clock=clock)
        with pytest.raises(InvalidStatus):
            await wrong.connect(csms.url)
        await wrong.close()
        with pytest.raises(InvalidStatus):
            async with raw_client(csms, "CP1"):
                pass
        assert csms.refusals == [("CP1", "wrong_password"), ("CP1", "no_password")]


@pytest.mark.skipif(not openssl_available(), reason="the openssl command makes the test certificate")
async def test_security_profile_2_tls(clock: ManualClock, tmp_path: Path) -> None:
    cert, key = make_test_cert(tmp_path)
    options = CsmsOptions(security_profile=2, passwords={"CP1": "pw-2"}, ssl_context=server_context(cert, key))
    async with SimCsms(clock, options) as csms:
        assert csms.url.startswith("wss://")
        sim = SimCharger(SimOptions("CP1", version="2.0.1", password="pw-2", tick_s=0.05), clock=clock)
        await sim.connect(csms.url, ssl_context=client_context(cert))
        await csms.wait_connected("CP1", booted=1)
        await sim.close()


async def test_transaction_events_replayed_lost_late_or_out_of_order(csms: SimCsms) -> None:
    def event(kind: str, seq_no: int, at_s: int, trigger: str = "MeterValuePeriodic") -> dict[str, Any]:
        stamp = format_time(T0 + timedelta(seconds=at_s))
        return {
            "eventType": kind,
            "timestamp": stamp,
            "triggerReason": trigger,
            "seqNo": seq_no,
            "transactionInfo": {"transactionId": "T-1"},
            "meterValue": [{"timestamp": stamp, "sampledValue": [{"value": float(at_s)}]}],
        }

    async with raw_client(csms, "RAW2", "2.0.1") as ws:
        sent = [
            event("Started", 0, 0, "Authorized"),
            event("Updated", 1, 60),
            event("Updated", 1, 60),  # replayed
            event("Updated", 3, 30),  # seqNo 2 lost; and older than the last value
            event("Ended", 4, 240, "StopAuthorized"),
            event("Updated", 5, 300),  # after the end
        ]
        for i, payload in enumerate(sent):
            assert (await raw_call(ws, f"t{i}", "TransactionEvent", payload))[0] == 3
    tx = csms.transaction("T-1", "RAW2")
    assert tx.seq_nos() == [0, 1, 1, 3, 4, 5] and tx.ended and tx.stop_reason == "Local"
    assert [m.value() for m in tx.meter_values] == [0.0, 60.0, 60.0, 30.0, 240.0, 300.0]
    assert [a.kind for a in csms.anomalies] == ["duplicate_seq_no", "seq_no_gap", "out_of_order", "after_end"]
    assert csms.violations() == []


async def test_malformed_calls_get_a_callerror_and_the_link_survives(csms: SimCsms) -> None:
    async with raw_client(csms) as ws:
        await ws.send(json.dumps([2, "m1", "Heartbeat"]))  # no payload
        assert json.loads(await asyncio.wait_for(ws.recv(), 2.0))[:3] == [4, "m1", "FormationViolation"]
        frame = await raw_call(ws, "m2", "FrobnicateNow", {})
        assert frame[:3] == [4, "m2", "NotImplemented"]
        await ws.send("not json at all")
        assert (await raw_call(ws, "m3", "Heartbeat", {}))[0] == 3
    assert [a.kind for a in csms.anomalies] == ["unknown_action"]
    assert len(csms.violations()) == 3


@pytest.mark.parametrize("version", VERSIONS)
async def test_no_meter_value_of_a_transaction_after_its_stop(csms: SimCsms, clock: ManualClock, version: str) -> None:
    """The sim charger's meter loop sending all the time while transactions end: each
    transaction's meter values and its stop reach the CSMS in the order the charger stamped them
    (the ``ocpp`` package validates a call in a thread before it takes the call slot, so a meter
    value begun just before the stop could otherwise leave after it)."""

    async def time_runs() -> None:
        while True:
            clock.advance(0.5)
            await asyncio.sleep(0.002)

    csms.o.answer_delays_s = {"StopTransaction": 0.05, "TransactionEvent": 0.02}  # the stop is in flight a while
    async with charger(csms, clock, version, meter_interval_s=0.01) as sim:
        await csms.wait_connected("CP1", booted=1)
        ticking = asyncio.create_task(time_runs())
        try:
            for _ in range(12):
                await sim.plug_in(EV, soc_pct=30.0, id_tag="TAG")
                tx = csms.transactions("CP1")[-1]
                for _ in range(200):  # a few meter values in, then the stop races the next one
                    if len(tx.meter_values) >= 2:
                        break
                    await asyncio.sleep(0.005)
                await sim.unplug()
        finally:
            ticking.cancel()
            await asyncio.wait([ticking], timeout=2.0)
        txs = csms.transactions("CP1")
        assert len(txs) == 12 and all(t.ended for t in txs)
        assert sum(len(t.meter_values) for t in txs) >= 12
        assert_clean(csms, sim)
