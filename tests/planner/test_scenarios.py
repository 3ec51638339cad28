"""Scenario tests from data files (tests/planner/scenarios/*.yaml): a base plus small variants."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import pairwise

import pytest

from controller.model import Plan, Snapshot
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from tests.planner.checks import bound_violations, limit_violations
from tests.planner.scenario import DIR, check, load, snapshot_from

SCENARIOS = sorted(p.name for p in DIR.glob("*.yaml") if p.name != "base.yaml")


def _run(data: dict[str, object]) -> tuple[list[Plan], list[Snapshot]]:
    snap = snapshot_from(data)  # type: ignore[arg-type]
    cycles = int(data.get("cycles", 1))  # type: ignore[call-overload]
    state = PlannerState()
    plans, snaps = [], []
    for k in range(cycles):
        cur = replace(snap, now=snap.now + timedelta(seconds=snap.site.control.plan_every_s * k))
        p, state = plan(cur, state)
        plans.append(p)
        snaps.append(cur)
    return plans, snaps


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario(name: str) -> None:
    data = load(name)
    plans, snaps = _run(data)
    for k, (p, s) in enumerate(zip(plans, snaps, strict=True)):
        assert limit_violations(s, p) == [], f"cycle {k}"
        assert bound_violations(s, p) == [], f"cycle {k}"
    expect = data.get("expect", {})
    problem = check(plans[-1], expect)
    assert problem is None, f"{name}: {data.get('description', '')}\n{problem}"
    rot = expect.get("rotation")
    if rot:
        on = {sp.session_id: [pl.session(sp.session_id).limit.value > 0 for pl in plans] for sp in plans[0].sessions}
        report = {
            sid: {"on_cycles": sum(v), "toggles": sum(a != b for a, b in pairwise(v))}
            for sid, v in on.items()
        }
        paused_at_once = max(sum(not v[k] for v in on.values()) for k in range(len(plans)))
        timeline = "\n".join(f"  {sid}: " + "".join("#" if x else "." for x in v) for sid, v in on.items())
        msg = f"{name}: per-cycle on/off\n{timeline}\n{report}"
        assert all(r["on_cycles"] >= rot["min_on_cycles"] for r in report.values()), msg
        assert all(r["toggles"] <= rot["max_toggles"] for r in report.values()), msg
        assert paused_at_once <= rot["max_paused_at_once"], msg


def test_variant_differs_from_its_base() -> None:
    """The diff printer names what differs (so a failing scenario says why)."""
    data = load("single_phase_same_phase.yaml")
    plans, _ = _run(data)
    problem = check(plans[-1], load("single_phase_spread.yaml")["expect"])
    assert problem is not None
    assert "-    s2:" in problem or "s2" in problem
    assert "limit: 20.0" in problem
