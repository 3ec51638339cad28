"""The dispatcher's rules, one test per hazard of issue 12 it closes (a scripted charger port:
the OCPP side is tested in tests/chargers, the closed loop in tests/daemon/test_hostile_loop.py).

Demo site: CP01 and CP02 (3-phase) on board-a1 → feeder-a → grid; CP07 (3-phase) on feeder-b.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controller.chargers.control import ApplyResult, ApplyStatus, Budget
from controller.chargers.state import ChargerState, ConnectorState, Reading, Transaction
from controller.config.loader import load_site
from controller.daemon.dispatch import Dispatcher
from controller.model.snapshot import Limit, Plan, SessionPlan, SessionState, SolveStats

SITE = load_site("config/demo-site.yaml").site
T0 = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)  # a Wednesday
FAILSAFE_A = 6.0


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Port:
    """A charger side that answers as told: ``answers[charger]`` is the status of every call."""

    clock: Clock
    answers: dict[str, ApplyStatus] = field(default_factory=dict)
    budgets: dict[tuple[str, int], float] = field(default_factory=dict)
    calls: list[tuple[str, int, float, str]] = field(default_factory=list)
    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    stuck: set[str] = field(default_factory=set)
    """Chargers with a profile call stuck (a decrease would wait behind it)."""

    async def apply(
        self,
        charger_id: str,
        limit: float,
        schedule: Sequence[tuple[datetime, float]] = (),
        *,
        connector: int = 1,
        source: str = "",
        go: Callable[[], bool] | None = None,
    ) -> ApplyResult:
        if go is not None and not go():
            return ApplyResult(charger_id, connector, "superseded")
        self.calls.append((charger_id, connector, limit, source))
        await asyncio.sleep(0)
        if charger_id in self.gates:
            await self.gates[charger_id].wait()  # a slow charger: the answer comes when the test says
        return ApplyResult(charger_id, connector, self.answers.get(charger_id, "accepted"), detail="Rejected")

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget:
        """The fail-safe; or a profile told by the test, in force for another minute."""
        value = self.budgets.get((charger_id, connector))
        if value is None:
            return Budget(FAILSAFE_A, "A", "fail-safe", None)
        return Budget(value, "A", "accepted profile", self.clock() + timedelta(seconds=60))

    def failsafe_limit(self, charger_id: str) -> float:
        return FAILSAFE_A

    def unanswered_calls(self, charger_id: str) -> int:
        """Timed-out calls in a row, as the charger side counts them (from the answers it gave)."""
        n = 0
        for cid, _conn, _limit, _src in reversed(self.calls):
            if cid != charger_id:
                continue
            if self.answers.get(charger_id, "accepted") != "timeout":
                break
            n += 1
        return n


    def lowerable_now(self, charger_id: str, now: datetime | None = None) -> bool:
        return charger_id not in self.stuck and self.unanswered_calls(charger_id) == 0


def _states(*chargers: str) -> dict[str, ChargerState]:
    out = {}
    for cid in chargers:
        st = ChargerState(cid, connected=True)
        conn = st.connectors.setdefault(1, ConnectorState())
        conn.transaction = Transaction(f"T{cid}", 1, None, None, T0 - timedelta(hours=1))
        out[cid] = st
    return out


def _dispatcher(port: Port, states: dict[str, ChargerState], slept: list[float] | None = None) -> Dispatcher:
    replans: list[int] = []

    async def sleep(s: float) -> None:
        if slept is not None:
            slept.append(s)
        port.clock.now += timedelta(seconds=s)

    wakes: list[tuple[float, Callable[[], None]]] = []
    d = Dispatcher(
        control=port, states=states, site=lambda: SITE, clock=port.clock,
        observe=lambda *a: None, request_replan=lambda: replans.append(1), sleep=sleep,
        call_later=lambda delay_s, fn: wakes.append((delay_s, fn)),
    )
    d.replans = replans  # type: ignore[attr-defined]
    d.wakes = wakes  # type: ignore[attr-defined]
    return d


def _plan(limits: dict[str, float]) -> tuple[Plan, tuple[SessionState, ...]]:
    sps = tuple(
        SessionPlan(f"{cid}:T{cid}", cid, "ac", Limit(v, "test"), (), 0.0, 0.0, T0 + timedelta(hours=5),
                    (0, 1, 2), (v, v, v))
        for cid, v in limits.items()
    )
    stats = SolveStats("ok", "highs", 0.0, 0.0, 0.0, 0, 0, 1)
    plan = Plan(T0, (T0,), T0 + timedelta(hours=5), sps, (), stats)
    sessions = tuple(SessionState(f"{cid}:T{cid}", cid, 1) for cid in limits)
    return plan, sessions


async def _settle(d: Dispatcher, limits: dict[str, float]) -> None:
    plan, sessions = _plan(limits)
    await d.dispatch_plan(plan, sessions, d.clock(), lambda: False)


async def test_a_plan_never_raises_a_session_lowered_after_its_snapshot() -> None:
    """Hazard 2: 32 A → shed 19 A → the plan computed before the shed must not send 32 A again."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01"))
    await _settle(d, {"CP01": 32.0})
    snapshot_at = port.clock.now
    port.clock.now += timedelta(seconds=1)
    assert await d.lower("CP01", 1, 19.0, "overload shed: grid L1") == "accepted"
    port.calls.clear()
    plan, sessions = _plan({"CP01": 32.0})
    await d.dispatch_plan(plan, sessions, snapshot_at, lambda: False)
    assert port.calls == []  # not raised …
    assert d.replans  # type: ignore[attr-defined]  # … planned again on newer data
    assert d.sent["CP01:TCP01"].limit == 19.0
    await d.dispatch_plan(plan, sessions, port.clock.now, lambda: False)  # a plan after the shed …
    assert port.calls == []  # … waits until the shed's EV had its reaction time
    port.clock.now += timedelta(seconds=d.reaction_s)
    await d.dispatch_plan(plan, sessions, port.clock.now, lambda: False)
    assert [c[2] for c in port.calls] == [32.0]


async def test_increases_wait_for_their_decreases_and_skip_when_one_failed() -> None:
    """Hazard 3: A's decrease timed out; B, on the same board and phases, must not be raised."""
    port = Port(Clock())
    slept: list[float] = []
    d = _dispatcher(port, _states("CP01", "CP02", "CP07"), slept)
    await _settle(d, {"CP01": 32.0, "CP02": 6.0, "CP07": 6.0})
    port.calls.clear()
    port.answers["CP01"] = "timeout"
    await _settle(d, {"CP01": 19.0, "CP02": 19.0, "CP07": 10.0})
    sent = [(c[0], c[2]) for c in port.calls]
    assert sent[0] == ("CP01", 19.0)  # the decrease first
    assert ("CP02", 19.0) not in sent  # its increase depends on CP01 (board-a1 and the grid, same phases)
    assert ("CP07", 10.0) not in sent  # the grid node is shared too: every phase of CP07 is CP01's
    assert slept == [d.reaction_s]
    # the timed-out decrease counts as the session's limit for "only lower" (it may have applied)
    assert d.sent["CP01:TCP01"].limit == 19.0


async def test_increases_go_after_the_reaction_time_once_the_decreases_were_accepted() -> None:
    port = Port(Clock())
    slept: list[float] = []
    d = _dispatcher(port, _states("CP01", "CP02"), slept)
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})
    port.calls.clear()
    await _settle(d, {"CP01": 19.0, "CP02": 19.0})
    assert [(c[0], c[2]) for c in port.calls] == [("CP01", 19.0), ("CP02", 19.0)]
    assert slept == [d.reaction_s]


async def test_a_raise_held_back_for_a_settling_decrease_asks_for_a_plan_when_it_has_settled() -> None:
    """A plan lowers CP01 (its departure is met); the fleet manager moves the departure up a
    moment later: the raise waits for the decrease's reaction time, and a plan is asked for when
    that has passed — not at the next plan cycle, which may be minutes away."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02"))
    wakes = d.wakes  # type: ignore[attr-defined]
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})
    await _settle(d, {"CP01": 0.0, "CP02": 6.0})  # CP01's departure met: down to nothing
    lowered_at = port.clock.now
    port.clock.now += timedelta(seconds=0.3)
    port.calls.clear()
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})  # the new departure: the most it can take
    assert [c for c in port.calls if c[0] == "CP01"] == []  # its EV is still reacting to the decrease
    assert [round(delay_s, 2) for delay_s, _ in wakes] == [round(d.reaction_s - 0.3 + 0.05, 2)]
    await _settle(d, {"CP01": 32.0, "CP02": 16.0})  # held back again: the same wake, not a second
    assert [c[0] for c in port.calls if c[2] > 6.0] == [] and len(wakes) == 1
    replans = len(d.replans)  # type: ignore[attr-defined]
    port.clock.now = lowered_at + timedelta(seconds=d.reaction_s + 0.05)
    wakes[0][1]()  # the event loop runs it then …
    assert len(d.replans) == replans + 1  # type: ignore[attr-defined]
    port.calls.clear()
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})  # … and the plan it asked for raises
    assert ("CP01", 32.0) in [(c[0], c[2]) for c in port.calls]


async def test_failsafe_only_lowers_and_a_paused_session_stays_paused() -> None:
    """Hazard 4: four sessions shed to 0 A must not go back to 6 A when the fail-safe starts."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02", "CP07"))
    await _settle(d, {"CP01": 0.0, "CP02": 20.0, "CP07": 4.0})
    port.calls.clear()
    await d.failsafe("grid meter stale")
    sent = {c[0]: c[2] for c in port.calls}
    assert sent == {"CP01": 0.0, "CP02": FAILSAFE_A, "CP07": 4.0}  # refreshes at min(last, fail-safe)
    assert all(d.sent[f"{cid}:T{cid}"].limit <= FAILSAFE_A for cid in ("CP01", "CP02", "CP07"))


async def test_the_shed_never_raises_a_session_nothing_was_sent_to() -> None:
    """Hazard 6: a session with no entry in the book counts at what its connector may draw by the
    charger's own profiles (its 6 A fail-safe), not the charger-wide worst case."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01"))
    assert d.current_limit("CP01", 1) == FAILSAFE_A
    assert await d.lower("CP01", 1, 55.8, "overload shed") == "unchanged"
    assert port.calls == []


async def test_a_charger_that_rejects_is_uncontrolled_not_planned_until_it_accepts_again() -> None:
    """Hazard 7: a rejecting charger is not planned as if it obeyed."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02"))
    port.answers["CP01"] = "rejected"
    await _settle(d, {"CP01": 16.0, "CP02": 16.0})
    assert "CP01" in d.uncontrolled and "rejected" in d.uncontrolled["CP01"].reason
    port.calls.clear()
    await _settle(d, {"CP01": 19.0, "CP02": 19.0})
    await asyncio.sleep(0.01)  # the probe runs in the background: a mute charger holds up nothing
    assert sorted((c[0], c[2], c[3].split(":")[0]) for c in port.calls) == [
        ("CP01", FAILSAFE_A, "uncontrolled"), ("CP02", 19.0, "test")]
    port.answers["CP01"] = "accepted"
    await _settle(d, {"CP02": 19.0})
    await asyncio.sleep(0.01)
    assert "CP01" not in d.uncontrolled


async def test_a_charger_that_ignores_its_limit_is_uncontrolled_after_the_reaction_time() -> None:
    port = Port(Clock())
    states = _states("CP07")
    d = _dispatcher(port, states)
    await _settle(d, {"CP07": 10.0})
    conn = states["CP07"].connectors[1]

    def draw(a: float) -> None:
        conn.measured.current_a = [Reading(a, port.clock.now) for _ in range(3)]

    for _ in range(int(d.reaction_s) + 3):
        port.clock.now += timedelta(seconds=1)
        draw(32.0)
        d.observe_draws(port.clock.now, 3.0)
    # readings count from the reaction time after the limit; two seconds over them is enough
    assert "CP07" in d.uncontrolled and "ignores" in d.uncontrolled["CP07"].reason
    for _ in range(int(d.reaction_s)):
        port.clock.now += timedelta(seconds=1)
        draw(9.0)
        d.observe_draws(port.clock.now, 3.0)
        assert "CP07" in d.uncontrolled  # one good reading is not obedience
    port.clock.now += timedelta(seconds=1)
    draw(9.0)
    d.observe_draws(port.clock.now, 3.0)
    assert "CP07" not in d.uncontrolled  # it has followed its limit for the reaction time


async def test_a_timed_out_decrease_holds_raises_until_it_is_confirmed_and_reacted_to() -> None:
    """Review: the re-plan after a timed-out decrease must not raise a neighbour in the same breath."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02"))
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})
    port.answers["CP01"] = "timeout"
    port.budgets[("CP01", 1)] = 32.0  # the 32 A profile may still be in force for a minute
    await _settle(d, {"CP01": 10.0, "CP02": 28.0})
    port.answers["CP01"] = "accepted"
    port.calls.clear()
    await _settle(d, {"CP01": 10.0, "CP02": 28.0})  # the decrease again (now confirmed) …
    assert [(c[0], c[2]) for c in port.calls] == [("CP01", 10.0)]  # … but CP02 still waits
    port.clock.now += timedelta(seconds=d.reaction_s)
    port.calls.clear()
    await _settle(d, {"CP01": 10.0, "CP02": 28.0})
    assert ("CP02", 28.0) in [(c[0], c[2]) for c in port.calls]


async def test_a_plan_sends_nothing_for_a_session_whose_shed_is_still_in_flight() -> None:
    """Review: a shed waiting for a slow charger's answer; the plan (snapshot before it) must
    neither refresh the old value nor send its own 'decrease' above the shed."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01"))
    await _settle(d, {"CP01": 32.0})
    snapshot_at = port.clock.now
    port.clock.now += timedelta(seconds=1)
    port.gates["CP01"] = asyncio.Event()
    shed = asyncio.create_task(d.lower("CP01", 1, 19.0, "overload shed"))
    await asyncio.sleep(0.01)
    assert d.current_limit("CP01", 1) == 19.0  # counted before its answer
    for value in (32.0, 25.0):
        plan, sessions = _plan({"CP01": value})
        await asyncio.wait_for(d.dispatch_plan(plan, sessions, snapshot_at, lambda: False), 1.0)
    port.gates["CP01"].set()
    assert await shed == "accepted"
    assert [c[2] for c in port.calls if c[0] == "CP01"][-1:] == [19.0]
    assert [c[2] for c in port.calls].count(25.0) == 0


async def test_a_plan_raises_nothing_beside_a_decrease_still_in_flight() -> None:
    """The invariant review: a shed's decrease waiting for a slow charger's answer; a plan made
    before the shed must not raise another session on the same node and phase meanwhile (the shed
    counted on the lowered one, whose EV has not even been told yet)."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02"))
    await _settle(d, {"CP01": 32.0, "CP02": 10.0})
    snapshot_at = port.clock.now
    port.clock.now += timedelta(seconds=1)
    port.gates["CP01"] = asyncio.Event()
    shed = asyncio.create_task(d.lower("CP01", 1, 19.0, "overload shed"))
    await asyncio.sleep(0.01)
    plan, sessions = _plan({"CP01": 32.0, "CP02": 20.0})
    await asyncio.wait_for(d.dispatch_plan(plan, sessions, snapshot_at, lambda: False), 1.0)
    assert 20.0 not in [c[2] for c in port.calls if c[0] == "CP02"]
    port.gates["CP01"].set()
    assert await shed == "accepted"


async def test_an_uncontrolled_charger_is_budgeted_at_its_peak_and_at_least_its_profiles() -> None:
    port = Port(Clock())
    d = _dispatcher(port, _states("CP07"))
    d.mark_uncontrolled("CP07", "rejected a profile: Rejected")
    top = (32.0, 32.0, 32.0)
    assert d.uncontrolled_budget_a("CP07", port.clock.now, None, (6.0, 6.0, 6.0), top) == top  # unknown: max
    t = port.clock.now
    assert d.uncontrolled_budget_a("CP07", t, (10.0, 10.0, 10.0), (32.0, 32.0, 32.0), top) == top
    assert d.uncontrolled_budget_a("CP07", t, (20.0, 0.0, 0.0), (6.0, 6.0, 6.0), top) == (20.0, 10.0, 10.0)
    later = t + timedelta(seconds=61)  # the peak is held a minute, then follows the draw
    assert d.uncontrolled_budget_a("CP07", later, (8.0, 8.0, 8.0), (6.0, 6.0, 6.0), top) == (8.0, 8.0, 8.0)


async def test_a_charger_that_never_answers_is_uncontrolled_and_holds_nothing_back_for_ever() -> None:
    """Closed loop found it: a mute charger's timed-out decrease held back every raise on the
    site for as long as it stayed mute. Now the hold ends when what it may still hold has ended
    by its own rules, and three calls without an answer make it uncontrolled (budgeted at its worst)."""
    port = Port(Clock())
    d = _dispatcher(port, _states("CP01", "CP02"))
    await _settle(d, {"CP01": 32.0, "CP02": 6.0})
    port.answers["CP01"] = "timeout"
    port.budgets[("CP01", 1)] = 32.0
    await _settle(d, {"CP01": 10.0, "CP02": 28.0})
    # CP01 may hold its 32 A profile for another minute: raises sharing it wait that long at most
    assert d.settling["CP01:TCP01"] <= port.clock.now + timedelta(seconds=60 + d.reaction_s)
    for _ in range(2):
        await _settle(d, {"CP01": 10.0, "CP02": 28.0})
    assert "answer" in d.uncontrolled["CP01"].reason
    port.clock.now += timedelta(seconds=d.reaction_s + 1)
    port.calls.clear()
    await _settle(d, {"CP02": 28.0})  # planned around CP01's worst case: CP02 is raised
    assert ("CP02", 28.0) in [(c[0], c[2]) for c in port.calls]
