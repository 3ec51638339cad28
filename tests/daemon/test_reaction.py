"""Per-charger reaction times (the site file's, else commissioning's, else 5 s) where the one
REACTION_S was used, and the dispatcher's rules for a charger a commissioning run holds.

The dispatcher against the scripted charger port of tests/daemon/test_dispatch.py; the shed,
the learnt vehicle maximum and the "ignores its limit" judgement on charger states with readings.
Demo site: CP01 and CP02 (3-phase) on board-a1 → feeder-a → grid; CP07 (3-phase) on feeder-b.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from controller.chargers.state import ChargerState, Reading
from controller.commission.report import Check, Report
from controller.daemon.commission import changes
from controller.daemon.dispatch import Dispatcher
from controller.daemon.draws import Measured, ev_estimate
from controller.daemon.overload import shed_order
from controller.daemon.sessions import REACTION_S, Sent, fresh_s, plan_sessions
from controller.daemon.uncontrolled import IGNORE_CONFIRM_S
from controller.model.site import GRID_ID
from tests.daemon.test_dispatch import SITE, T0, Clock, Port, _dispatcher, _plan, _settle, _states

SLOW = {"CP07": 9.0, "CP01": 2.0}


def _reaction(cid: str) -> float:
    return SLOW.get(cid, REACTION_S)


def _drawing(states: dict[str, ChargerState], cid: str, amps: float, at: datetime) -> None:
    conn = states[cid].connectors[1]
    conn.status = "Charging"
    conn.measured.current_a = [Reading(amps, at) for _ in range(3)]


# --- the dispatcher --------------------------------------------------------------------------------


async def test_raises_wait_for_the_slowest_of_the_lowered_chargers() -> None:
    port = Port(Clock())
    slept: list[float] = []
    d = _dispatcher(port, _states("CP01", "CP02", "CP07"), slept)
    d.reaction_of = _reaction
    await _settle(d, {"CP01": 32.0, "CP02": 6.0, "CP07": 32.0})
    port.calls.clear()
    await _settle(d, {"CP01": 19.0, "CP02": 19.0, "CP07": 20.0})  # two lowered (2 s and 9 s), one raised
    assert slept == [9.0]
    assert [(c[0], c[2]) for c in port.calls][-1] == ("CP02", 19.0)
    # a decrease is done once its own EV had its own time
    assert d.settling["CP01:TCP01"] == T0 + timedelta(seconds=2.0)
    assert d.settling["CP07:TCP07"] == T0 + timedelta(seconds=9.0)


async def test_without_per_charger_times_every_charger_gets_the_one_default() -> None:
    port = Port(Clock())
    slept: list[float] = []
    d = _dispatcher(port, _states("CP01", "CP02", "CP07"), slept)
    await _settle(d, {"CP01": 32.0, "CP02": 6.0, "CP07": 32.0})
    await _settle(d, {"CP01": 19.0, "CP02": 19.0, "CP07": 20.0})
    assert slept == [REACTION_S]


async def test_ignoring_its_limit_is_judged_after_its_own_reaction_time() -> None:
    """Drawing 20 A on a 10 A limit 3 s after the limit: CP01 (2 s) ignores it; CP07 (9 s) may still be reacting."""
    port = Port(Clock())
    states = _states("CP01", "CP07")
    d = _dispatcher(port, states)
    d.reaction_of = _reaction
    for cid in ("CP01", "CP07"):
        d.sent[f"{cid}:T{cid}"] = Sent(10.0, T0)
    port.clock.now = T0 + timedelta(seconds=3)
    for cid in ("CP01", "CP07"):
        _drawing(states, cid, 20.0, port.clock.now)
    d.observe_draws(port.clock.now, fresh_s(SITE))
    port.clock.now += timedelta(seconds=IGNORE_CONFIRM_S)
    for cid in ("CP01", "CP07"):
        _drawing(states, cid, 20.0, port.clock.now)
    d.observe_draws(port.clock.now, fresh_s(SITE))
    assert set(d.uncontrolled) == {"CP01"}
    assert d.uncontrolled["CP01"].reason.startswith("draws 20.0 A on a 10.0 A limit")


def test_a_learnt_vehicle_maximum_waits_for_the_chargers_own_reaction_time() -> None:
    """A vehicle drawing 10 A on a 16 A limit, 6 s after the limit went out: past the 5 s default
    (a 11 A cap is learnt), not past CP07's 9 s (nothing learnt yet)."""
    states = _states("CP07")
    _drawing(states, "CP07", 10.0, T0)
    sent = {"CP07:TCP07": Sent(16.0, T0 - timedelta(seconds=6))}

    def cap(reaction_of: dict[str, float] | None) -> float | None:
        (s,) = plan_sessions(
            SITE,
            states,
            T0,
            departure_of=lambda v, t: None,
            sent=sent,
            learned={},
            reaction_of=None if reaction_of is None else lambda cid: reaction_of.get(cid, REACTION_S),
        )
        return s.ev_max_a

    assert cap(None) == 11.0
    assert cap(SLOW) is None


def test_the_shed_resends_a_limit_drawn_above_only_after_the_chargers_reaction_time() -> None:
    """Feeder-b over its limit; CP07 runs under 10 A but draws 20 A, 3 s after the limit: with its
    own 2 s it has had time to follow (its profile lapsed): the limit goes out again; with 9 s not yet."""
    port = Port(Clock())
    states = _states("CP07")
    d = _dispatcher(port, states)
    d.sent["CP07:TCP07"] = Sent(10.0, T0 - timedelta(seconds=3))
    _drawing(states, "CP07", 20.0, T0)
    loads = {"feeder-b": (100.0, 100.0, 100.0), GRID_ID: (120.0, 120.0, 120.0)}
    measure = Measured(T0, fresh_s(SITE), SITE)
    fast = shed_order(SITE, states, d, loads, measure, (None, None), None, lambda cid: 2.0)
    slow = shed_order(SITE, states, d, loads, measure, (None, None), None, lambda cid: 9.0)
    default = shed_order(SITE, states, d, loads, measure, (None, None))
    assert fast is not None and fast.lowered == {"CP07:TCP07": 10.0}
    assert slow is None and default is None


# --- a charger a commissioning run holds -----------------------------------------------------------------


def _holding(d: Dispatcher, held: set[str], overridden: list[tuple[str, str]]) -> None:
    d.held = lambda cid: cid in held
    d.overridden = lambda cid, why: overridden.append((cid, why))


async def test_a_held_charger_gets_nothing_of_the_plan_and_no_probe() -> None:
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP07"))
    overridden: list[tuple[str, str]] = []
    _holding(d, {"CP07"}, overridden)
    await _settle(d, {"CP01": 16.0, "CP07": 16.0})
    assert {c[0] for c in port.calls} == {"CP01"}
    d.mark_uncontrolled("CP07", "rejected a profile: Rejected")
    await _settle(d, {"CP01": 16.0})  # uncontrolled chargers are offered their fail-safe … but not this one
    assert all(c[0] != "CP07" for c in port.calls) and overridden == []


async def test_the_shed_and_the_failsafe_still_lower_a_held_charger_ending_its_run_first() -> None:
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP07"))
    overridden: list[tuple[str, str]] = []
    _holding(d, {"CP07"}, overridden)
    port.budgets[("CP07", 1)] = port.budgets[("CP01", 1)] = 32.0  # CP07: what the run's own profiles allow it
    assert await d.lower("CP07", 1, 12.0, "overload shed: feeder-b L1") == "accepted"
    assert overridden == [("CP07", "overload shed: feeder-b L1")]
    assert port.calls[-1][:3] == ("CP07", 1, 12.0)
    await d.failsafe("grid meter stale")
    assert ("CP07", "fail-safe: grid meter stale") in overridden
    assert {c[0] for c in port.calls} == {"CP01", "CP07"}


async def test_a_plan_older_than_a_run_raises_nothing() -> None:
    """The plan counted CP07 at its old limit, not at its maximum: its raises wait for the next plan."""
    port = Port(Clock())
    states = _states("CP01", "CP02", "CP07")
    d = _dispatcher(port, states)
    await _settle(d, {"CP01": 20.0, "CP02": 6.0, "CP07": 10.0})
    snapshot_at = port.clock.now
    port.clock.now += timedelta(seconds=1)
    d.forget_charger("CP07")  # a run takes CP07 over
    assert not any(k.startswith("CP07:") for k in d.sent)
    port.calls.clear()
    replans = len(d.replans)  # type: ignore[attr-defined]
    plan, sessions = _plan({"CP01": 16.0, "CP02": 16.0})
    await d.dispatch_plan(plan, sessions, snapshot_at, lambda: False)
    assert [(c[0], c[2]) for c in port.calls] == [("CP01", 16.0)]  # the decrease only
    assert len(d.replans) > replans  # type: ignore[attr-defined]
    port.clock.now += timedelta(seconds=REACTION_S)
    await d.dispatch_plan(plan, sessions, port.clock.now, lambda: False)  # a newer plan may
    assert ("CP02", 16.0) in [(c[0], c[2]) for c in port.calls]


def test_a_held_charger_is_not_judged_for_ignoring_its_limit() -> None:
    port = Port(Clock())
    states = _states("CP07")
    d = _dispatcher(port, states)
    d.held = lambda cid: True
    d.sent["CP07:TCP07"] = Sent(10.0, T0 - timedelta(seconds=30))
    for step in range(4):
        port.clock.now = T0 + timedelta(seconds=step)
        _drawing(states, "CP07", 25.0, port.clock.now)
        d.observe_draws(port.clock.now, fresh_s(SITE))
    assert d.uncontrolled == {}


# --- what changed since the last commissioning ----------------------------------------------------------


def test_changes_name_every_difference_from_the_previous_finished_report() -> None:
    before = Report(
        "CP07",
        T0,
        T0 + timedelta(minutes=5),
        "finished",
        (Check("clock", True, 0.2), Check("follows_limit", True, 1.2), Check("profile_expiry", True, 1.0)),
        quirks=("power_only",),
        reaction_s=1.2,
        clock_offset_s=0.2,
        phases_in_use=3,
        units=("W",),
        firmware="1.4.2",
    )
    after = Report(
        "CP07",
        T0 + timedelta(days=30),
        T0 + timedelta(days=30, minutes=5),
        "finished",
        (
            Check("clock", True, 0.1),
            Check("follows_limit", True, 4.0),
            Check("profile_expiry", False, 16.0, "still 16 A after its end"),
        ),
        quirks=("holds_last_limit",),
        reaction_s=4.0,
        clock_offset_s=95.0,
        phases_in_use=1,
        units=("A", "W"),
        firmware="1.5.0",
    )
    assert changes(before, after) == [
        "firmware: 1.4.2 → 1.5.0",
        "profile_expiry: passed before, failed now (still 16 A after its end)",
        "new quirk holds_last_limit (add it to the site file: ocpp_quirks: [holds_last_limit])",
        "quirk power_only no longer needed",
        "phases in use: 3 → 1",
        "units accepted: W → A, W",
        "EV reaction: 1.2 s → 4.0 s",
        "clock offset: +0 s → +95 s",
    ]
    assert changes(None, after) == []
    assert changes(before, before) == []
    running = Report("CP07", T0 + timedelta(days=31), checks=(Check("clock", False, 300.0, "5 min ahead"),))
    assert changes(before, running) == ["clock: passed before, failed now (5 min ahead)"]


async def test_a_run_that_begins_while_a_plan_waits_for_the_reaction_time_stops_its_raises() -> None:
    """The plan lowered CP01 and raises CP02 after CP01's reaction time; during that wait a run takes
    CP07 over. The plan counted CP07 at its old limit, not its maximum: CP02's raise must not go out."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02", "CP07"))
    await _settle(d, {"CP01": 20.0, "CP02": 6.0, "CP07": 10.0})
    port.clock.now += timedelta(seconds=REACTION_S)
    port.calls.clear()

    async def sleep(s: float) -> None:  # the plan's wait for the lowered EV
        port.clock.now += timedelta(seconds=s / 2)
        d.forget_charger("CP07")  # a commissioning run takes CP07 over
        port.clock.now += timedelta(seconds=s / 2)

    d.sleep = sleep
    replans = len(d.replans)  # type: ignore[attr-defined]
    plan, sessions = _plan({"CP01": 16.0, "CP02": 16.0})
    await d.dispatch_plan(plan, sessions, port.clock.now, lambda: False)
    assert [(c[0], c[2]) for c in port.calls] == [("CP01", 16.0)]  # the decrease only
    assert len(d.replans) > replans  # type: ignore[attr-defined]


async def test_a_plan_push_that_lands_after_a_run_took_the_charger_over_writes_no_book() -> None:
    """A plan's limit for CP07 waits for the charger while a run takes it over: whatever the answer,
    the dispatcher's book must not say CP07 runs under it (the run's profiles are what it runs
    under; after the run, a stale lower entry would make its next decrease look like a raise)."""
    port = Port(Clock())
    states = _states("CP07")
    d = _dispatcher(port, states)
    held: set[str] = set()
    _holding(d, held, [])
    port.gates["CP07"] = asyncio.Event()
    plan, sessions = _plan({"CP07": 10.0})
    pushing = asyncio.create_task(d.dispatch_plan(plan, sessions, port.clock.now, lambda: False))
    await asyncio.sleep(0.01)
    assert port.calls and port.calls[-1][0] == "CP07"  # on its way
    held.add("CP07")
    d.forget_charger("CP07")  # the run begins
    port.gates["CP07"].set()  # … and the plan's answer arrives
    await asyncio.wait_for(pushing, 5)
    assert "CP07:TCP07" not in d.sent and "CP07:TCP07" not in d.settling
    port.budgets[("CP07", 1)] = 32.0  # what the run's profiles allow it
    assert d.current_limit("CP07", 1) == 32.0


def test_the_base_load_estimate_waits_for_the_chargers_own_reaction_time_never_less_than_5_s() -> None:
    """CP07 was raised from 10 to 20 A 6 s ago and still reads 10 A: past the 5 s default the reading
    is its answer (10 A); with its own 9 s it may still be on its way up (counted at 20 A). A charger
    whose allowance is 2 s is never judged before 5 s."""
    states = _states("CP07")
    now = T0 + timedelta(seconds=6)
    _drawing(states, "CP07", 10.0, now)
    ch = SITE.charger("CP07")
    book = {"CP07:TCP07": Sent(20.0, T0, 10.0)}

    def high(reaction_s: float) -> float:
        est = ev_estimate(SITE, book, ch, states["CP07"], now, Measured(now, fresh_s(SITE), SITE), reaction_s)
        assert est is not None
        return est.high[0]

    assert high(REACTION_S) == 10.0
    assert high(9.0) == 20.0
    book["CP07:TCP07"] = Sent(20.0, T0 + timedelta(seconds=2), 10.0)  # raised 4 s ago
    assert high(2.0) == 20.0  # not before 5 s, whatever the charger's own allowance
