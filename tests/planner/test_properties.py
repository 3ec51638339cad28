"""Property tests: over random trees, rotations, sessions and base loads the plan is always safe."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from controller.model import SessionPlan, Snapshot
from controller.planner.instance import Instance, build_instance
from controller.planner.plan import plan
from controller.planner.reference import needs_feasible
from controller.planner.state import PlannerState
from tests.planner.checks import bound_violations, cap_violations, limit_violations
from tests.planner.strategies import snapshots

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.one_of(snapshots(), snapshots(max_chargers=12)))
def test_no_limit_exceeded_in_any_slot(snap: Snapshot) -> None:
    p, _ = plan(snap, PlannerState())
    assert limit_violations(snap, p) == []
    assert cap_violations(snap, p) == []


@SETTINGS
@given(snapshots())
def test_limits_zero_or_within_min_max(snap: Snapshot) -> None:
    p, _ = plan(snap, PlannerState())
    assert bound_violations(snap, p) == []
    assert cap_violations(snap, p) == []


@SETTINGS
@given(snapshots())
def test_delivered_never_above_need(snap: Snapshot) -> None:
    p, _ = plan(snap, PlannerState())
    for sp in p.sessions:
        assert sp.expected_energy_kwh <= sp.energy_need_kwh + 1e-6
        assert sp.expected_energy_kwh >= 0.0


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(snapshots(overload=False), snapshots(overload=False, need_max_kwh=12.0)))
def test_feasible_needs_are_met(snap: Snapshot) -> None:
    """When an independent LP (PuLP + CBC, written from the site model) can meet every need, we do."""
    inst = build_instance(snap)
    feasible = needs_feasible(inst)
    event(f"needs feasible: {feasible}")
    p, _ = plan(snap, PlannerState())
    if feasible:
        tails = tail_kwh(inst)
        short = {
            sp.session_id: round(sp.shortfall_kwh, 3)
            for sp in p.sessions
            if sp.shortfall_kwh
            > resolution_kwh(snap, sp) + tails.get(sp.session_id, 0.0) + 1e-3 * max(1.0, sp.energy_need_kwh)
        }
        assert short == {}


TAIL_MAX_KWH = 0.01  # plus 0.1 % of the need: a sliver, not a share of the slot


def tail_kwh(inst: Instance) -> dict[str, float]:
    """Energy at full rate in the part of a slot a session is present for, when it leaves inside
    a slot, capped at a sliver (``TAIL_MAX_KWH`` + 0.1 % of its need): the plan holds that slot's
    current for the whole slot but gets energy only for the part, and departures first may leave
    such a sliver to a neighbour that needs the whole slot (measured: 7 s of a 15-min slot,
    0.007 kWh)."""
    starts, ends = inst.grid.starts_s, inst.grid.ends_s
    out: dict[str, float] = {}
    for p in inst.sessions:
        dep = p.departure.timestamp()
        inside = (starts < dep) & (dep < ends)
        if inside.any():
            k = int(inside.argmax())
            part = p.max_unit * p.kwh_per_unit_h * (dep - float(starts[k])) / 3600.0
            out[p.session_id] = min(part, TAIL_MAX_KWH + 1e-3 * p.need_kwh)
    return out


def resolution_kwh(snap: Snapshot, sp: SessionPlan) -> float:
    """Energy a limit one resolution step (0.1 A AC, 1 W DC) lower costs until departure: the
    independent check is continuous, limits are not."""
    hours = max(0.0, (sp.departure_at - snap.now).total_seconds() / 3600.0)
    if sp.kind == "dc":
        return 0.001 * hours
    return 0.1 * snap.site.site.voltage_v * len(sp.grid_phases) / 1000.0 * hours


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots(), st.integers(2, 6))
def test_safe_over_consecutive_cycles(snap: Snapshot, cycles: int) -> None:
    """Carried state (deadband, hysteresis, kept model) never leads over a limit."""
    state = PlannerState()
    for k in range(cycles):
        cur = replace(snap, now=snap.now + timedelta(seconds=15 * k))
        p, state = plan(cur, state)
        assert limit_violations(cur, p) == []
        assert bound_violations(cur, p) == []
        assert cap_violations(cur, p) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_every_solver_path_is_safe(snap: Snapshot) -> None:
    """The heuristic (no solver) and CBC paths respect the same limits as HiGHS."""
    for solvers in ((), ("cbc",)):
        p, _ = plan(snap, PlannerState(), solvers=solvers)
        assert p.stats.solver == ("heuristic" if not solvers else p.stats.solver)
        assert limit_violations(snap, p) == []
        assert bound_violations(snap, p) == []
        assert cap_violations(snap, p) == []
        for sp in p.sessions:
            assert sp.expected_energy_kwh <= sp.energy_need_kwh + 1e-6
