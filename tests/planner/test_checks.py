"""The independent checks used by the property tests do catch what they are meant to catch."""

from __future__ import annotations

from dataclasses import replace

from controller.model import Charger, Circuit, Control, Grid, SessionState, Site, SiteInfo, Snapshot
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from tests.planner.checks import bound_violations, limit_violations
from tests.planner.strategies import NOW


def _snap() -> Snapshot:
    site = Site(
        site=SiteInfo(name="t", timezone="UTC"),
        grid=Grid(limit_a=40.0, margin_a=2.0),
        circuits=(Circuit(id="feeder-a", limit_a=20.0, margin_a=0.0),),
        chargers=(Charger(id="c1", circuit="feeder-a", kind="ac", phases=3, phase_rotation="L2-L3-L1", max_a=32.0),),
        control=Control(horizon_h=4.0),
    )
    s = SessionState(session_id="s1", charger_id="c1", vehicle_id="v1", energy_need_kwh=200.0, priority=1,
                     departure_at=NOW.replace(hour=19))
    return Snapshot(site=site, now=NOW, base_load_a={"feeder-a": (0.0, 5.0, 0.0)}, sessions=(s,))


def test_checks_accept_the_plan_and_catch_a_raised_limit() -> None:
    snap = _snap()
    p, _ = plan(snap, PlannerState())
    assert limit_violations(snap, p) == []
    sp = p.sessions[0]
    assert sp.limit.value == 15.0  # feeder-a L2: 20 - 5 base
    assert sp.limit.source == "circuit feeder-a L2"
    raised = replace(sp, schedule=tuple((t, v + 1.0) for t, v in sp.schedule))
    bad = replace(p, sessions=(raised,))
    assert any("feeder-a L2" in v for v in limit_violations(snap, bad))


def test_checks_catch_a_value_below_min() -> None:
    snap = _snap()
    p, _ = plan(snap, PlannerState())
    sp = p.sessions[0]
    bad = replace(p, sessions=(replace(sp, schedule=((sp.schedule[0][0], 3.0),)),))
    assert bound_violations(snap, bad) != []
