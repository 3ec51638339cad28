"""After a transaction ends, what its EV drew is not what the connector draws: a meter value of it
sent after the stop (firmware that flushes its queue late, a message sent again) is not taken as a
reading, and a 2.0.1 event naming the ended transaction does not start it again. Real websockets
on loopback, the sim charger with ``late_meter_values``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.chargers.control import Budget
from controller.chargers.planning import grid_currents
from controller.chargers.state import LATE_AFTER_END_S, ChargerState, Measured, Transaction, apply_meter_values
from controller.daemon.draws import ChargerBudgets
from controller.daemon.draws import Measured as DrawMeasured
from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site
from tests.chargers.scripted import LoopClock

EV = EvParams(max_a=16, phases=3, battery_kwh=60, reaction_s=0.2)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_late_meter_value_of_an_ended_transaction_is_no_reading(
    version: str, server_factory: Callable[..., Any]
) -> None:
    site = make_site()
    events: list[Any] = []
    clock = LoopClock(datetime(2026, 3, 29, 0, 59, 58, tzinfo=UTC))  # pinned: Europe's DST change at 01:00 UTC
    cs = await server_factory(site, emit=events.append, clock=clock)
    sim = SimCharger(SimOptions("CP1", version=version, tick_s=0.05, meter_interval_s=0.2, late_meter_values=True),
                     clock=clock)
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        st = cs.state("CP1")
        await eventually(lambda: st.failsafe is not None, what="fail-safe installed")
        await sim.plug_in(EV, soc_pct=30, id_tag="TAG-BUS1")
        tx = st.transaction(1)
        assert tx is not None
        assert (await cs.control.apply("CP1", 12.0, source="test")).status == "accepted"
        charger = site.charger("CP1")
        max_age = timedelta(seconds=30)

        def drawing() -> bool:
            now = cs.clock()
            g = grid_currents(charger, st.connectors[1], now, max_age)
            return g is not None and all(abs(a - 12.0) < 0.01 for a in g)

        await eventually(drawing, 3.0, "meter values report 12 A")
        late_before = sum(1 for e in events if e.kind == "meter_values")
        await sim.unplug()
        # the stop went first, then the meter value taken before it (the EV at 12 A)
        await eventually(lambda: sum(1 for e in events if e.kind == "meter_values") > late_before
                         or st.counters["after_end"] > 0, 2.0, "the late meter value")
        assert st.transaction(1) is None
        assert grid_currents(charger, st.connectors[1], cs.clock(), max_age) is None  # not the stopped EV's 12 A
        assert st.connectors[1].measured.current_a == [None, None, None]
        ended = [e for e in events if e.kind == "transaction_ended"]
        started = [e for e in events if e.kind == "transaction_started"]
        assert len(ended) == 1 and len(started) == 1  # 2.0.1: the late event did not start it again
        if version == "2.0.1":
            assert st.counters["after_end"] == 1

        # the next session's readings are taken as before
        await sim.plug_in(EV, soc_pct=30, id_tag="TAG-BUS1")
        assert (await cs.control.apply("CP1", 10.0, source="test")).status == "accepted"
        await eventually(lambda: (g := grid_currents(charger, st.connectors[1], cs.clock(), max_age)) is not None
                         and abs(g[0] - 10.0) < 0.01, 3.0, "the next session's 10 A")
    finally:
        await sim.close()


T0 = datetime(2026, 10, 25, 0, 59, 0, tzinfo=UTC)  # pinned: just before Europe's DST change back


def _sample(m: Measured, st: ChargerState, amps: float, stamp: datetime, received_at: datetime) -> None:
    apply_meter_values(m, [{"timestamp": stamp.isoformat().replace("+00:00", "Z"), "sampled_value": [
        {"value": str(amps), "measurand": "Current.Import", "phase": ph} for ph in ("L1", "L2", "L3")]}],
        received_at, st.clock_estimate)


def test_what_counts_as_before_the_end_by_the_chargers_clock_within_a_window_and_across_a_reboot() -> None:
    """The charger's clock 2 h behind ours: its stamps are compared with its own stamp of the stop.
    A sample of the stopped EV is no reading; one stamped after the stop is; long after the stop
    (LATE_AFTER_END_S) the freshness limit judges instead; a new transaction's samples are its own
    even when a reboot set the charger's clock back before the old stop."""
    st = ChargerState("CP1")
    behind = timedelta(hours=-2)
    c = st.connector(1)
    m = c.measured
    st.observe_time(T0 + behind, T0)  # the offset, measured
    _sample(m, st, 16.0, T0 + behind, T0)
    stop_stamp = T0 + behind + timedelta(seconds=5)
    st.observe_time(stop_stamp, T0 + timedelta(seconds=5))
    st.transaction_ended(1, "tx-1", st.to_ours(stop_stamp, T0 + timedelta(seconds=5)), stop_stamp)
    assert m.currents() == (None, None, None) and st.has_ended("tx-1") and not st.has_ended("tx-2")
    _sample(m, st, 16.0, T0 + behind + timedelta(seconds=4), T0 + timedelta(seconds=6))  # flushed late
    assert m.currents() == (None, None, None)
    _sample(m, st, 16.0, stop_stamp, T0 + timedelta(seconds=7))  # stamped at the stop: the EV's too
    assert m.currents() == (None, None, None)
    _sample(m, st, 0.2, stop_stamp + timedelta(seconds=3), T0 + timedelta(seconds=8))  # after: a reading
    assert m.currents() == (0.2, 0.2, 0.2)

    # long after the stop, an old stamp is no longer held back here (its own age makes it stale)
    st.transaction_ended(1, "tx-2", T0 + timedelta(seconds=10), stop_stamp + timedelta(seconds=5))
    _sample(m, st, 7.0, stop_stamp, T0 + timedelta(seconds=10 + LATE_AFTER_END_S + 1))
    assert m.currents() == (7.0, 7.0, 7.0)

    # the charger's clock set back after a stop (an NTP step of 2 h, no reboot): once the offset
    # estimate has followed the step, its samples are readings again, though stamped before the stop
    st.transaction_ended(1, "tx-2b", T0 + timedelta(seconds=620), stop_stamp + timedelta(seconds=10))
    stepped = T0 + behind - timedelta(hours=2)  # charger time at T0, after the step
    for k in range(4):
        st.observe_time(stepped + timedelta(seconds=630 + 2 * k), T0 + timedelta(seconds=630 + 2 * k))
    _sample(m, st, 9.0, stepped + timedelta(seconds=640), T0 + timedelta(seconds=640))
    assert m.currents() == (9.0, 9.0, 9.0)

    # a reboot sets the charger's clock back to 2000: the new transaction's samples count
    st.transaction_ended(1, "tx-3", T0 + timedelta(seconds=700), stop_stamp + timedelta(seconds=600))
    st.note_boot(T0 + timedelta(seconds=710))
    assert m.draw_ended_stamp is None
    reset = datetime(2000, 1, 1, tzinfo=UTC)
    st.observe_time(reset, T0 + timedelta(seconds=712))
    st.transaction_started(1, Transaction("tx-4", 1, None, None, T0 + timedelta(seconds=712)))
    _sample(m, st, 10.0, reset + timedelta(seconds=2), T0 + timedelta(seconds=714))
    assert m.currents() == (10.0, 10.0, 10.0)


def test_a_2_0_1_transaction_id_used_again_after_a_restart_of_the_chargers_counter() -> None:
    """Updated and Ended events of an ended transaction are ignored; a Started with its id is a new
    transaction (firmware whose counter restarts); a boot forgets the ended ids."""
    st = ChargerState("CP1")
    st.transaction_started(1, Transaction("1", 1, None, None, T0))
    st.transaction_ended(1, "1", T0 + timedelta(minutes=5), None)
    assert st.after_end("1", "Updated") and st.after_end("1", "Ended")
    assert not st.after_end("1", "Started") and not st.has_ended("1")  # a new transaction "1"
    st.transaction_ended(1, "2", T0 + timedelta(minutes=9), None)
    st.note_boot(T0 + timedelta(minutes=10))
    assert not st.after_end("2", "Updated")


class _Book:
    """What the charger's profiles allow (the budget book's face the fast loop asks): 16 A."""

    def budget(self, charger_id: str, now: datetime | None = None) -> Budget:
        return Budget(16.0, "A", "TxDefaultProfile", None)

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget:
        return self.budget(charger_id, now)


def test_a_connector_whose_transaction_just_ended_counts_at_its_profiles_not_at_0() -> None:
    """The stop forgot the EV's readings; a charger may go on drawing after it (a welded contactor)
    and report Available. Until a fresh reading, or the freshness limit, the fast loop counts the
    connector at what its profiles allow — not at 0 as an idle one."""
    site = make_site()
    charger = site.charger("CP1")
    st = ChargerState("CP1")
    conn = st.connector(1)
    conn.status = "Available"
    budgets = ChargerBudgets(lambda: site, {"CP1": st}, _Book())
    st.transaction_ended(1, "tx-1", T0, None)
    soon = T0 + timedelta(seconds=5)
    measured_a, budget_a = budgets.worst_parts_a(charger, st, soon, DrawMeasured(soon, 30.0, site))
    assert measured_a == (0.0, 0.0, 0.0) and budget_a == pytest.approx((16.0, 16.0, 16.0))
    later = T0 + timedelta(seconds=31)  # past the freshness limit: an idle connector again
    assert budgets.worst_parts_a(charger, st, later, DrawMeasured(later, 30.0, site))[1] == (0.0, 0.0, 0.0)
    _sample(conn.measured, st, 0.0, T0 + timedelta(seconds=6), T0 + timedelta(seconds=6))  # it reads 0 A
    assert budgets.worst_parts_a(charger, st, soon + timedelta(seconds=2),
                                 DrawMeasured(soon + timedelta(seconds=2), 30.0, site)) == ((0.0, 0.0, 0.0),
                                                                                          (0.0, 0.0, 0.0))
