from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.rules.failsafe import CycleHealth, starting, step

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
GOOD = CycleHealth()


def run(cycles: list[CycleHealth], recover: int = 3) -> list[str]:
    state = starting(T0)
    seen = []
    for i, health in enumerate(cycles):
        state, change = step(state, health, T0 + timedelta(seconds=i), recover)
        seen.append(f"{state.mode}:{state.reason}" + (f" -> {change.to}" if change else ""))
    return seen


def test_starts_in_failsafe_and_needs_n_good_cycles() -> None:
    assert run([GOOD, GOOD, GOOD]) == ["failsafe:starting", "failsafe:starting", "normal: -> normal"]


def test_any_fault_trips_at_once_and_names_every_cause() -> None:
    bad = CycleHealth(grid_meter_stale=True, storage_broken=True)
    seen = run([GOOD, GOOD, GOOD, bad])
    assert seen[-1] == "failsafe:grid meter stale, storage broken -> failsafe"


def test_a_fault_during_recovery_restarts_the_count() -> None:
    flap = CycleHealth(grid_meter_implausible=True)
    seen = run([GOOD, GOOD, GOOD, flap, GOOD, GOOD, flap, GOOD, GOOD, GOOD])
    assert seen[3].startswith("failsafe:grid meter implausible")
    assert seen[4:6] == ["failsafe:grid meter implausible"] * 2
    assert seen[6] == "failsafe:grid meter implausible"
    assert seen[7:9] == ["failsafe:grid meter implausible"] * 2
    assert seen[9] == "normal: -> normal"


def test_planner_failure_is_a_fault_and_recovery_reports_what_it_was() -> None:
    state = starting(T0)
    for _ in range(3):
        state, _change = step(state, GOOD, T0, 3)
    state, change = step(state, CycleHealth(planner_failed=True), T0, 1)
    assert change is not None and change.reason == "planner and fallback failed"
    state, change = step(state, GOOD, T0 + timedelta(seconds=5), 1)
    assert change is not None and change.to == "normal"
    assert change.reason == "1 good cycles after: planner and fallback failed"
    assert state.since == T0 + timedelta(seconds=5)
