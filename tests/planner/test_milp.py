"""The max-met MILP (controller/planner/milp.py) against departures first's stage 1 (the knapsack LP)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from controller.model import Charger, Circuit, Control, Grid, SessionState, Site, SiteInfo, Snapshot
from controller.planner.instance import Instance, build_instance
from controller.planner.lp import LpData, layout_for, lp_data, solve
from controller.planner.milp import FloatArray, MetAnswer, max_met, met_of
from controller.planner.rows import build_rows

NOW = datetime(2026, 11, 26, 17, 0, 0, tzinfo=UTC)
ROTATIONS = ("L1-L2-L3", "L2-L3-L1", "L3-L1-L2")
TIME_LIMIT_S = 10.0  # generous: every instance here proves in well under a second


def ac(cid: str, rotation: str = "L1-L2-L3", circuit: str = "grid") -> Charger:
    return Charger(id=cid, circuit=circuit, kind="ac", phases=3, phase_rotation=rotation, max_a=32.0)


def site(grid_a: float, chargers: tuple[Charger, ...], circuits: tuple[Circuit, ...] = ()) -> Site:
    return Site(site=SiteInfo(name="t", timezone="Europe/Amsterdam"), grid=Grid(limit_a=grid_a, margin_a=0.0),
                circuits=circuits, chargers=chargers, control=Control(when_short="complete"))


def sess(sid: str, charger: str, need: float, dep_h: float = 2.0, phases: int = 3, priority: int = 5) -> SessionState:
    return SessionState(session_id=sid, charger_id=charger, energy_need_kwh=need, priority=priority,
                        departure_at=NOW + timedelta(hours=dep_h), arrived_at=NOW, phases_used=phases)


def snap(s: Site, *sessions: SessionState) -> Snapshot:
    return Snapshot(site=s, now=NOW, base_load_a={"grid": (0.0, 0.0, 0.0)}, sessions=sessions)


def knapsack(inst: Instance) -> tuple[LpData, FloatArray, FloatArray]:
    """Stage 1's arrays and answer (the kept first-stage model) and the planner's LP plan (stage 2)."""
    res, model, _ = solve(inst, {}, None, 2.0)
    assert res.ok and model is not None
    data = lp_data(inst, layout_for(inst), {})
    lay = data.layout
    x1 = np.asarray(model.highs.getSolution().col_value, dtype=np.float64)[: lay.n_x].reshape(lay.n, lay.t)
    return data, x1, res.x


def assert_feasible(inst: Instance, data: LpData, ans: MetAnswer) -> None:
    """The MILP's schedule against the planner's independent rows, bounds and needs."""
    assert ans.x is not None
    x = ans.x
    lay = data.layout
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    assert not build_rows(inst).violations(x, tol=1e-4).any()
    assert (x >= -1e-6).all() and (x <= data.col_upper[: lay.n_x].reshape(x.shape) + 1e-6).all()
    assert ((data.kwh * x).sum(axis=1) <= need + 1e-4).all()
    assert (met_of(data, x) == ans.met).all()


def phases_snapshot() -> Snapshot:
    """A 20 A board for 2 h. A 3-phase car needing 6.67 kWh draws on every phase; two 1-phase cars
    needing 8 kWh each draw on L1 and on L2. The knapsack completes the smallest need per kWh —
    the 3-phase car — and the current it takes on L1 and L2 leaves both 1-phase cars short: one
    departure met. Leaving the 3-phase car short meets both 1-phase cars: two."""
    s = site(20.0, (ac("c1"), ac("c2"), ac("c3", "L2-L3-L1")))
    return snap(s, sess("three", "c1", 6.67), sess("one-l1", "c2", 8.0, phases=1), sess("one-l2", "c3", 8.0, phases=1))


def test_the_knapsack_meets_fewer_and_the_milp_finds_the_optimum() -> None:
    inst = build_instance(phases_snapshot())
    data, x1, x_plan = knapsack(inst)
    assert met_of(data, x1).tolist() == [True, False, False]
    assert met_of(data, x_plan).tolist() == [True, False, False]  # stage 2 holds stage 1's set
    for hint in ((met_of(data, x1), x1), (met_of(data, x1), None), (None, None)):
        ans = max_met(inst, data, TIME_LIMIT_S, hint[0], hint[1])
        assert ans.met.tolist() == [False, True, True]
        assert ans.count == 2 and ans.proven and ans.bound == 2 and ans.mip_gap == 0.0
        assert_feasible(inst, data, ans)
    assert max_met(inst, data, TIME_LIMIT_S, met_of(data, x1), x1).hint_count == 1


def test_both_agree_where_smallest_first_is_right() -> None:
    """One shared limit, one departure for all: completing the smallest needs first is optimal."""
    s = site(20.0, (ac("c1"), ac("c2"), ac("c3")))
    inst = build_instance(snap(s, sess("a", "c1", 10.0), sess("b", "c2", 14.0), sess("c", "c3", 20.0)))
    data, x1, _ = knapsack(inst)
    met1 = met_of(data, x1)
    assert met1.tolist() == [True, True, False]  # 24 of 27.6 kWh: 10 + 14
    ans = max_met(inst, data, TIME_LIMIT_S, met1, x1)
    assert ans.count == 2 and ans.proven
    assert_feasible(inst, data, ans)


def test_a_departure_that_cannot_be_met_does_not_take_the_room_of_one_that_can() -> None:
    """A 20 A board gives 13.8 kWh an hour. A car leaving in 1 h needs 15 kWh — unreachable even
    alone; one leaving in 2 h needs 17 kWh. Per kWh the first is the cheaper to complete, so the
    knapsack gives it the first hour and the second falls short too: none met. Giving the second
    car both hours meets it."""
    s = site(20.0, (ac("c1"), ac("c2")))
    inst = build_instance(snap(s, sess("early", "c1", 15.0, dep_h=1.0), sess("late", "c2", 17.0)))
    data, x1, x_plan = knapsack(inst)
    assert not met_of(data, x1).any() and not met_of(data, x_plan).any()
    ans = max_met(inst, data, TIME_LIMIT_S, met_of(data, x1), x1)
    assert ans.met.tolist() == [False, True] and ans.proven and ans.hint_count == 0
    assert_feasible(inst, data, ans)


def test_priority_classes_are_lexicographic() -> None:
    """A priority-1 car needing the whole 40 kWh against 40 priority-5 cars needing 1 kWh each:
    the better class's one departure wins — though 40 exceeds any fixed weight ratio such as
    priority_weights' 30 per rank."""
    chargers = (ac("big"), *(ac(f"c{i}") for i in range(40)))
    s = site(29.0, chargers)  # 2 h x 29 A x 0.69 kWh/Ah = 40.02 kWh
    sessions = [sess("big", "big", 40.0, priority=1), *(sess(f"s{i}", f"c{i}", 1.0) for i in range(40))]
    inst = build_instance(snap(s, *sessions))
    data, x1, _ = knapsack(inst)
    ans = max_met(inst, data, TIME_LIMIT_S, met_of(data, x1), x1)
    assert ans.per_class == (1, 0) and ans.count == 1 and ans.proven
    assert bool(ans.met[0])
    assert_feasible(inst, data, ans)
    # without the better class the 40 small ones are all met
    inst2 = build_instance(snap(s, *sessions[1:]))
    data2, x2, _ = knapsack(inst2)
    ans2 = max_met(inst2, data2, TIME_LIMIT_S, met_of(data2, x2), x2)
    assert ans2.count == 40 and ans2.per_class == (40,) and ans2.proven


def random_snapshot(n: int, seed: int) -> Snapshot:
    """``n`` AC sessions on four 50 A boards under a 150 A grid, 1- and 3-phase cars, two classes."""
    rng = random.Random(seed)
    chargers = tuple(ac(f"c{i}", ROTATIONS[i % 3], f"b{i % 4}") for i in range(n))
    boards = tuple(Circuit(id=f"b{j}", limit_a=50.0) for j in range(4))
    sessions = tuple(
        sess(f"s{i}", f"c{i}", rng.uniform(5, 40), dep_h=rng.uniform(1, 10), phases=rng.choice([1, 3]),
             priority=rng.choice([1, 5]))
        for i in range(n)
    )
    return snap(site(150.0, chargers, boards), *sessions)


def test_time_limit_is_honoured_and_the_hint_is_never_lost() -> None:
    inst = build_instance(random_snapshot(60, seed=3))
    data, x1, _ = knapsack(inst)
    met1 = met_of(data, x1)
    limit_s = 0.05
    ans = max_met(inst, data, limit_s, met1, x1)
    # HiGHS stops at the limit; model building and the hint's completion add a little
    assert ans.solve_ms <= 1e3 * limit_s + 1000.0
    assert ans.count >= int(met1.sum())
    classes = np.array(data.layout.classes)
    assert ans.per_class >= tuple(int(met1[classes == c].sum()) for c in (0, 1))
    assert ans.bound is not None and ans.bound >= ans.count
    if not ans.proven:
        assert ans.mip_gap > 0.0
    assert_feasible(inst, data, ans)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_proven_answer_is_at_least_the_knapsacks_on_random_sites(seed: int) -> None:
    inst = build_instance(random_snapshot(16, seed))
    data, x1, _ = knapsack(inst)
    ans = max_met(inst, data, TIME_LIMIT_S, met_of(data, x1), x1)
    assert ans.proven
    assert ans.count >= int(met_of(data, x1).sum())
    assert_feasible(inst, data, ans)


def test_no_need_no_departures() -> None:
    s = site(20.0, (ac("c1"),))
    inst = build_instance(snap(s, sess("full", "c1", 0.0)))
    data = lp_data(inst, layout_for(inst), {})
    ans = max_met(inst, data, TIME_LIMIT_S, None)
    assert ans.count == 0 and ans.proven and not ans.met.any()


def test_the_met_gap_bench_hooks_the_planner_and_finds_the_gap() -> None:
    """bench/met_gap.py on staggered-evening (a smoke test, not a timing test): its hook still sees
    the planner's cycles, the MILP is never below the knapsack and its schedules pass the check.
    (Whether it finds more is what the bench measures — 13 of 23 sampled cycles on 2026-12-07 — not
    asserted: a better stage 1 must not fail this test.)"""
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(root / "bench" / "met_gap.py"), "--json", "--every", "40", "--time-limit-s", "2",
         "--scenarios", str(root / "hil" / "scenarios" / "staggered-evening.yaml")],
        capture_output=True, text=True, check=True, timeout=120,
    )
    (row,) = json.loads(out.stdout)
    assert row["cycles"] > 100 and row["solved"] > 0
    assert row["milp_fewer"] == 0 and row["bad_schedules"] == 0
    assert row["equal"] + row["milp_more"] == row["solved"]
    assert row["extra_departures"] >= row["milp_more"]
