"""The hostile simulated charger, over real websockets against a minimal central system, on a
pinned clock advanced by hand: its own clock (ahead, behind, drifting) judges every profile and
stamps every message; W → A by the phases in use; fall back vs hold the last period; rejecting,
ignoring, late and missing answers; a reboot that loses every profile; the EV's reaction time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hil.chargers import SimCharger, SimOptions
from hil.chargers.composite import parse_time
from hil.ev import EvParams
from tests.chargers.conftest import eventually
from tests.hil.central import T0, ManualClock, MiniCentral, profile

EV3 = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.5)
EV1 = EvParams(max_a=63, phases=1, battery_kwh=60, reaction_s=0.5)
VERSIONS = ["1.6", "2.0.1"]
LONG_AGO = T0 - timedelta(days=1)


@contextlib.asynccontextmanager
async def charger(
    central: MiniCentral, clock: ManualClock, version: str = "1.6", ev: EvParams | None = EV3, **options: Any
) -> AsyncIterator[SimCharger]:
    """A connected charger (id CP1) with ``ev`` plugged in on connector 1 (a transaction runs)."""
    options.setdefault("max_a", 32.0)
    sim = SimCharger(SimOptions("CP1", version=version, tick_s=0.05, **options), clock=clock)
    await sim.connect(central.url)
    try:
        if ev is not None:
            await sim.plug_in(ev, soc_pct=30.0)
        yield sim
    finally:
        await sim.close()


def settle(sim: SimCharger, clock: ManualClock, seconds: float) -> None:
    """Let ``seconds`` pass on the injected clock and bring the EV up to date."""
    clock.advance(seconds)
    sim.update()


def failsafe(version: str, limit: float = 6.0) -> dict[str, Any]:
    """A permanent stack-0 TxDefault on connector 0 that started long ago on every clock."""
    return profile(version, profile_id=1, stack_level=0, purpose="TxDefaultProfile", limit=limit, start=LONG_AGO)


def control(version: str, limit: float, start: datetime, duration_s: int | None = None, **kw: Any) -> dict[str, Any]:
    """A stack-1 TxDefault on connector 1 (no transaction id needed)."""
    return profile(
        version,
        profile_id=101,
        stack_level=1,
        purpose="TxDefaultProfile",
        limit=limit,
        start=start,
        duration_s=duration_s,
        **kw,
    )


# --- the charger's own clock ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_charger_behind_applies_a_profile_only_when_its_own_clock_reaches_the_start(
    version: str, central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, version, clock_offset_s=-120.0) as sim:
        assert sim.charger_now() == T0 - timedelta(seconds=120)
        ours = clock()
        status = await central.set_profile("CP1", 1, control(version, 10.0, ours - timedelta(seconds=5), 60))
        assert status == "Accepted"
        assert sim.composite_a() is None and sim.allowed_a() == (32.0, 32.0, 32.0)  # not in force: unconstrained
        start, periods = await central.composite("CP1", 1, 200)
        assert parse_time(start) == T0 - timedelta(seconds=120)  # reported on its own clock
        assert periods == [(0, 32.0), (115, 10.0), (175, 32.0)]
        settle(sim, clock, 114.0)
        assert sim.allowed_a() == (32.0, 32.0, 32.0)
        settle(sim, clock, 1.0)  # its clock reaches our now − 5 s
        assert sim.allowed_a() == (10.0, 10.0, 10.0) and sim.composite_a() == 10.0
        settle(sim, clock, EV3.reaction_s)
        assert sim.draw_a() == (10.0, 10.0, 10.0)
        settle(sim, clock, 59.0)  # our now + 174.5 s: its 60 s from our now − 5 s still run …
        assert sim.allowed_a() == (10.0, 10.0, 10.0)
        settle(sim, clock, 1.0)  # … and end 2 min after ours did
        assert sim.allowed_a() == (32.0, 32.0, 32.0)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("offset_s", "expected_a"), [(0.0, 16.0), (120.0, 6.0)])
async def test_charger_ahead_sees_a_short_profile_as_expired_on_arrival(
    version: str, offset_s: float, expected_a: float, central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, version, clock_offset_s=offset_s) as sim:
        assert await central.set_profile("CP1", 0, failsafe(version)) == "Accepted"
        ours = clock()
        assert await central.set_profile("CP1", 1, control(version, 16.0, ours - timedelta(seconds=5), 12)) == (
            "Accepted"
        )
        assert sim.allowed_a() == (expected_a,) * 3  # 120 s ahead: start + 12 s lies in its past → fail-safe
        settle(sim, clock, EV3.reaction_s)
        assert sim.draw_a() == (expected_a,) * 3


async def test_drifting_clock_and_every_timestamp_on_the_chargers_clock(
    central: MiniCentral, clock: ManualClock
) -> None:
    for version in VERSIONS:
        central.received.clear()
        clock.now = T0
        options = SimOptions(
            "CP1", version=version, tick_s=0.05, clock_offset_s=-120.0, clock_drift_ppm=1000.0, meter_interval_s=1e6
        )
        sim = SimCharger(options, clock=clock)
        sim.config["MeterValuesSampledData"] = "Current.Import"
        await sim.connect(central.url)
        try:
            expected = [T0 - timedelta(seconds=120)]
            clock.advance(100.0)  # + 1000 ppm: 100 s later it runs 0.1 s ahead of where it started
            assert sim.charger_now() == T0 + timedelta(seconds=100 - 120 + 0.1)
            await sim.plug_in(EV3)
            expected.append(sim.charger_now())
            clock.advance(1.0)
            meter_at = sim.charger_now()
            sim.o.meter_interval_s = 0.1  # one meter value now (the clock stands still)

            def meter_sent(version: str = version) -> bool:
                if version == "1.6":
                    return bool(central.calls("MeterValues"))
                return any(p["event_type"] == "Updated" for p in central.calls("TransactionEvent"))

            await eventually(meter_sent, 3.0, "meter values")
            sim.o.meter_interval_s = 1e6
            clock.advance(1.0)
            stop_at = sim.charger_now()
            await sim.unplug()
        finally:
            await sim.close()

        statuses = [parse_time(p["timestamp"]) for p in central.calls("StatusNotification")]
        assert statuses[0] == expected[0] and statuses[-1] == stop_at
        if version == "1.6":
            (start,) = central.calls("StartTransaction")
            (stop,) = central.calls("StopTransaction")
            meters = [parse_time(mv["timestamp"]) for p in central.calls("MeterValues") for mv in p["meter_value"]]
            assert parse_time(start["timestamp"]) == expected[1]
            assert parse_time(stop["timestamp"]) == stop_at
        else:
            events = central.calls("TransactionEvent")
            (started,) = [p for p in events if p["event_type"] == "Started"]
            (ended,) = [p for p in events if p["event_type"] == "Ended"]
            assert parse_time(started["timestamp"]) == expected[1]
            assert parse_time(ended["timestamp"]) == stop_at
            meters = [parse_time(mv["timestamp"]) for p in events for mv in p.get("meter_value") or []]
        assert meters and all(m == meter_at for m in meters)


# --- W → A by the phases in use ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("max_a", "conversion", "ev", "expected"),
    [
        (63.0, "phases_in_use", EV1, (48.0, 0.0, 0.0)),  # 11040 W / 230 V on one phase
        (32.0, "phases_in_use", EV1, (32.0, 0.0, 0.0)),  # capped by the charger's max
        (63.0, "number_phases", EV1, (16.0, 0.0, 0.0)),  # the friendly firmware
        (63.0, "phases_in_use", EvParams(max_a=32, phases=3, reaction_s=0.5), (16.0, 16.0, 16.0)),
    ],
)
async def test_w_profile_is_divided_by_the_phases_the_ev_uses(
    version: str,
    max_a: float,
    conversion: str,
    ev: EvParams,
    expected: tuple[float, float, float],
    central: MiniCentral,
    clock: ManualClock,
) -> None:
    async with charger(
        central, clock, version, ev=ev, max_a=max_a, w_conversion=conversion, quirks=frozenset({"power_only"})
    ) as sim:
        sim.config["MeterValuesSampledData"] = "Current.Import,Power.Active.Import"
        sim.o.meter_interval_s = 0.1
        assert await central.set_profile("CP1", 1, control(version, 16.0, LONG_AGO)) == "Rejected"  # W only
        w = control(version, 11040.0, LONG_AGO, unit="W", number_phases=3)
        assert await central.set_profile("CP1", 1, w) == "Accepted"
        assert sim.allowed_a() == expected
        settle(sim, clock, ev.reaction_s)
        assert sim.draw_a() == expected  # the 1-phase EV takes it all on L1
        if conversion == "phases_in_use":
            _, in_w = await central.composite("CP1", 1, 60, "W")
            _, in_a = await central.composite("CP1", 1, 60, "A")
            assert in_a == [(0, expected[0])] and in_w[0][1] == pytest.approx(expected[0] * 230 * sim.phases_in_use())

        clock.advance(1.0)
        action = "MeterValues" if version == "1.6" else "TransactionEvent"
        key = "sampled_value"

        def phase_currents() -> dict[str, float] | None:
            for p in reversed(central.calls(action)):
                for mv in p.get("meter_value") or []:
                    cur = {s["phase"]: float(s["value"]) for s in mv[key] if s.get("measurand") == "Current.Import"}
                    if cur:
                        return cur
            return None

        await eventually(lambda: phase_currents() is not None, 3.0, "meter values with currents")
        assert phase_currents() == dict(zip(("L1", "L2", "L3"), expected, strict=True))


# --- the end of a schedule --------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("schedule_end", ["fall_back", "hold_last"])
async def test_end_of_schedule_falls_back_or_holds_the_last_period_until_valid_to(
    version: str, schedule_end: str, central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, version, schedule_end=schedule_end) as sim:
        tx = sim.connectors[1].tx
        assert tx is not None
        ours = clock()
        assert await central.set_profile("CP1", 0, failsafe(version)) == "Accepted"
        tx_profile = profile(
            version,
            profile_id=201,
            stack_level=1,
            purpose="TxProfile",
            start=ours,
            duration_s=10,
            periods=[(0, 20.0), (5, 16.0)],
            valid_to=ours + timedelta(seconds=30),
            transaction_id=tx.transaction_id,
        )
        assert await central.set_profile("CP1", 1, tx_profile) == "Accepted"
        assert sim.allowed_a() == (20.0,) * 3
        settle(sim, clock, 9.0)
        assert sim.allowed_a() == (16.0,) * 3
        settle(sim, clock, 2.0)  # the duration is over
        assert sim.allowed_a() == ((6.0,) * 3 if schedule_end == "fall_back" else (16.0,) * 3)
        settle(sim, clock, 19.0)  # validTo: over for both
        assert sim.allowed_a() == (6.0,) * 3


# --- rejecting, ignoring, answering late or never ---------------------------------------------------


async def test_rejecting_charger_stays_unconstrained(central: MiniCentral, clock: ManualClock) -> None:
    async with charger(central, clock, reject_profiles=True) as sim:
        assert await central.set_profile("CP1", 0, failsafe("1.6")) == "Rejected"
        assert sim.composite_a() is None and sim.allowed_a() == (32.0, 32.0, 32.0)


@pytest.mark.parametrize("version", VERSIONS)
async def test_ignoring_charger_reports_the_profile_and_draws_its_max(
    version: str, central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, version, ignore_limits=True) as sim:
        assert await central.set_profile("CP1", 1, control(version, 10.0, LONG_AGO)) == "Accepted"
        _, periods = await central.composite("CP1", 1, 60)
        assert periods == [(0, 10.0)] and sim.composite_a() == 10.0  # what it says …
        assert sim.allowed_a() == (32.0, 32.0, 32.0)  # … and what it does
        settle(sim, clock, EV3.reaction_s)
        assert sim.draw_a() == (32.0, 32.0, 32.0)


@pytest.mark.parametrize("version", VERSIONS)
async def test_never_answering_charger_applies_the_profile_and_the_call_times_out(
    version: str, clock: ManualClock
) -> None:
    central = MiniCentral(clock, response_timeout_s=0.5)
    await central.start()
    try:
        async with charger(central, clock, version, never_answer_profiles=True) as sim:
            with pytest.raises(TimeoutError):
                await central.set_profile("CP1", 1, control(version, 10.0, LONG_AGO))
            assert sim.allowed_a() == (10.0, 10.0, 10.0)
            assert len(sim.record.answers_withheld) == 1 and sim.record.profile_answers == ["Accepted"]
            _, periods = await central.composite("CP1", 1, 60)  # the link still answers other calls
            assert periods == [(0, 10.0)]
    finally:
        await central.stop()


async def test_late_answer_comes_after_the_profile_is_in_force(central: MiniCentral, clock: ManualClock) -> None:
    async with charger(central, clock, late_answer_s=0.4) as sim:
        call = asyncio.create_task(central.set_profile("CP1", 1, control("1.6", 10.0, LONG_AGO)))
        await eventually(lambda: sim.composite_a() == 10.0, 2.0, "profile applied")
        assert not call.done()  # applied, not yet answered
        assert await asyncio.wait_for(call, 2.0) == "Accepted"
        assert len(sim.record.answers_delayed) == 1


# --- reboot and reconnect ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_reboot_loses_every_profile_including_the_failsafe(
    version: str, central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, version) as sim:
        assert await central.set_profile("CP1", 0, failsafe(version)) == "Accepted"
        settle(sim, clock, EV3.reaction_s)
        assert sim.draw_a() == (6.0, 6.0, 6.0)
        old_tx = sim.connectors[1].tx
        assert old_tx is not None
        clock.advance(1.0)
        went_at = sim.charger_now()
        await sim.reboot(down_s=0.05)

        assert sim.store.profiles == [] and sim.record.reboots == 1
        assert sim.draw_a() == (0.0, 0.0, 0.0)  # the power went: no reaction time
        new_tx = sim.connectors[1].tx
        assert new_tx is not None and new_tx.transaction_id != old_tx.transaction_id
        assert sim.allowed_a() == (32.0, 32.0, 32.0)  # charging again, nothing limits it
        settle(sim, clock, EV3.reaction_s)
        assert sim.draw_a() == (32.0, 32.0, 32.0)
        assert len(central.calls("BootNotification")) == 2
        actions = [r.action for r in central.received]
        second_boot = len(actions) - 1 - actions[::-1].index("BootNotification")
        after = actions[second_boot:]
        if version == "1.6":
            (stop,) = central.calls("StopTransaction")
            assert stop["reason"] == "Reboot" and str(stop["transaction_id"]) == old_tx.transaction_id
            assert parse_time(stop["timestamp"]) == went_at
            assert after.index("StopTransaction") < after.index("StartTransaction")
        else:
            ended = [p for p in central.calls("TransactionEvent") if p["event_type"] == "Ended"]
            assert len(ended) == 1 and ended[0]["transaction_info"]["stopped_reason"] == "Reboot"
            assert ended[0]["transaction_info"]["transaction_id"] == old_tx.transaction_id
            assert parse_time(ended[0]["timestamp"]) == went_at and ended[0]["offline"] is True
            started = [p for p in central.calls("TransactionEvent") if p["event_type"] == "Started"]
            assert started[-1]["transaction_info"]["transaction_id"] == new_tx.transaction_id


async def test_reboot_under_keep_connected_with_a_reset_clock(central: MiniCentral, clock: ManualClock) -> None:
    sim = SimCharger(SimOptions("CP1", tick_s=0.05), clock=clock)
    keeper = asyncio.create_task(sim.keep_connected(central.url, backoff_initial_s=0.05, timeout_s=2.0))
    try:
        await eventually(lambda: sim.connected() and sim.booted.is_set(), 3.0, "connected")
        await sim.plug_in(EV3)
        assert await central.set_profile("CP1", 0, failsafe("1.6")) == "Accepted"
        reset = datetime(2000, 1, 1, tzinfo=UTC)
        await sim.reboot(down_s=0.1, reason="PowerLoss", clock_offset_s=(reset - clock()).total_seconds())
        await eventually(lambda: len(central.calls("StartTransaction")) == 2, 3.0, "new transaction")
        assert central.calls("StopTransaction")[0]["reason"] == "PowerLoss"
        assert parse_time(central.calls("StartTransaction")[1]["timestamp"]) == reset
        assert sim.store.profiles == [] and sim.allowed_a() == (32.0, 32.0, 32.0)
    finally:
        keeper.cancel()
        await asyncio.wait([keeper], timeout=3.0)
        await sim.close()


@pytest.mark.parametrize("lose", [False, True])
async def test_profiles_lost_on_reconnect_only_when_asked(lose: bool, central: MiniCentral, clock: ManualClock) -> None:
    async with charger(central, clock, lose_profiles_on_reconnect=lose) as sim:
        assert await central.set_profile("CP1", 0, failsafe("1.6")) == "Accepted"
        await sim.drop_link()
        await sim.connect(central.url)
        assert sim.allowed_a() == ((32.0,) * 3 if lose else (6.0,) * 3)


# --- precedence on the charger ----------------------------------------------------------------------


async def test_txprofile_beats_a_higher_txdefault_and_charge_point_max_is_shared(
    central: MiniCentral, clock: ManualClock
) -> None:
    async with charger(central, clock, connectors=2) as sim:
        await sim.plug_in(EV3, connector_id=2)
        tx = sim.connectors[1].tx
        assert tx is not None
        high_default = profile("1.6", profile_id=5, stack_level=5, purpose="TxDefaultProfile", limit=25, start=LONG_AGO)
        assert await central.set_profile("CP1", 0, high_default) == "Accepted"
        tx_profile = profile(
            "1.6",
            profile_id=6,
            stack_level=0,
            purpose="TxProfile",
            limit=12,
            start=LONG_AGO,
            transaction_id=tx.transaction_id,
        )
        assert await central.set_profile("CP1", 1, tx_profile) == "Accepted"
        assert sim.allowed_a(1) == (12.0,) * 3 and sim.allowed_a(2) == (25.0,) * 3
        cp_max = profile("1.6", profile_id=7, stack_level=0, purpose="ChargePointMaxProfile", limit=20, start=LONG_AGO)
        assert await central.set_profile("CP1", 0, cp_max) == "Accepted"
        assert sim.allowed_a(1) == (10.0,) * 3 and sim.allowed_a(2) == (10.0,) * 3  # 20 A shared by two
        await sim.unplug(2)
        assert sim.allowed_a(1) == (12.0,) * 3 and sim.allowed_a(2) == (0.0,) * 3


async def test_absolute_without_start_runs_from_the_start_of_charging(central: MiniCentral, clock: ManualClock) -> None:
    async with charger(central, clock, ev=None) as sim:
        no_start = profile("1.6", profile_id=1, stack_level=0, purpose="TxDefaultProfile", limit=6)
        assert await central.set_profile("CP1", 0, no_start) == "Accepted"
        assert sim.composite_a() == 6.0  # without a transaction: from its installation
        settle(sim, clock, 50.0)
        await sim.plug_in(EV3)
        settle(sim, clock, 50.0)
        short = profile("1.6", profile_id=2, stack_level=1, purpose="TxDefaultProfile", limit=16, duration_s=60)
        assert await central.set_profile("CP1", 1, short) == "Accepted"
        assert sim.allowed_a() == (16.0,) * 3  # 50 s into charging: 10 s left
        settle(sim, clock, 10.0)
        assert sim.allowed_a() == (6.0,) * 3


# --- the EV's reaction time -------------------------------------------------------------------------


async def test_ev_follows_a_decrease_and_an_increase_only_after_its_reaction_time(
    central: MiniCentral, clock: ManualClock
) -> None:
    ev = EvParams(max_a=32, phases=3, reaction_s=2.0)
    async with charger(central, clock, ev=ev) as sim:
        settle(sim, clock, 2.0)
        assert sim.draw_a() == (32.0,) * 3
        assert await central.set_profile("CP1", 1, control("1.6", 10.0, LONG_AGO)) == "Accepted"
        settle(sim, clock, 1.99)
        assert sim.draw_a() == (32.0,) * 3  # the decrease is not yet followed
        settle(sim, clock, 0.01)
        assert sim.draw_a() == (10.0,) * 3
        assert await central.set_profile("CP1", 1, control("1.6", 20.0, LONG_AGO)) == "Accepted"
        settle(sim, clock, 1.99)
        assert sim.draw_a() == (10.0,) * 3  # nor the increase
        settle(sim, clock, 0.01)
        assert sim.draw_a() == (20.0,) * 3
        # a change inside the schedule between two updates counts from when it happened
        stepped = control("1.6", 0.0, clock(), periods=[(0, 20.0), (10, 8.0)])
        assert await central.set_profile("CP1", 1, stepped) == "Accepted"
        settle(sim, clock, 11.9)
        assert sim.draw_a() == (20.0,) * 3 and sim.allowed_a() == (8.0,) * 3
        settle(sim, clock, 0.1)
        assert sim.draw_a() == (8.0,) * 3
