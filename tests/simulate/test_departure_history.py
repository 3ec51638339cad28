"""The simulation's departure history: the scenario's `history:` and its own finished sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.config.problems import ConfigError
from controller.simulate.engine import run
from controller.simulate.policies import PlannerPolicy, View, edf_policy
from controller.simulate.scenario import PastSession, load_scenario, load_scenario_text

SCENARIOS = Path(__file__).resolve().parents[2] / "hil" / "scenarios"

# one van, a session a day: declared 16:00, it leaves at 15:00 every day
DAYS = 7
SESSIONS = "\n".join(
    f'    - {{charger: CP1, vehicle: van-1, arrive: "2026-03-{d:02d}T08:00", declared_depart: "2026-03-{d:02d}T16:00",'
    f' depart: "2026-03-{d:02d}T15:00", energy_kwh: 5}}'
    for d in range(2, 2 + DAYS)
)
WEEK = f"""site: {{name: T, timezone: UTC}}
grid: {{limit_a: 200}}
chargers: [{{id: CP1, phases: 3, max_a: 16}}]
vehicles: [{{id: van-1, battery_kwh: 75}}, {{id: van-2, battery_kwh: 75}}]
control: {{plan_every_s: 900}}
scenario:
  start: "2026-03-02T00:00"
  duration_h: {24 * DAYS}
  step_s: 900
  sessions:
{SESSIONS}
"""


@dataclass
class Seen:
    """A policy that records the departure it is shown for each session (and gives nothing)."""

    name: str = "seen"
    sheds: bool = False
    shown: dict[str, set[datetime | None]] = field(default_factory=dict)

    def decide(self, view: View) -> dict[str, float]:
        for lv in view.sessions:
            self.shown.setdefault(lv.session.arrive.strftime("%d"), set()).add(lv.session.declared_depart)
        return {lv.key: 16.0 for lv in view.sessions}


def _at(day: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, day, hh, mm, tzinfo=UTC)


def test_a_vehicle_with_five_finished_early_sessions_is_shown_an_earlier_departure() -> None:
    sc = load_scenario_text(WEEK, "week.yaml")
    seen = Seen()
    run(sc, seen, departure_history=True)
    for day in range(2, 7):  # fewer than five sessions behind it: the declared departure
        assert seen.shown[f"{day:02d}"] == {_at(day, 16)}
    for day in (7, 8):  # five and six sessions that left an hour early
        assert seen.shown[f"{day:02d}"] == {_at(day, 15)}


def test_policies_other_than_the_planner_see_the_declared_departure_by_default() -> None:
    sc = load_scenario_text(WEEK, "week.yaml")
    seen = Seen()
    run(sc, seen)
    assert seen.shown["08"] == {_at(8, 16)}


def test_a_history_block_gives_a_one_day_scenario_its_past() -> None:
    history = "\n".join(
        f'    - {{vehicle: van-1, declared: "2026-02-{d:02d}T16:00", actual: "2026-02-{d:02d}T15:10"}}'
        for d in range(20, 26)
    )
    text = WEEK.replace(f"duration_h: {24 * DAYS}", "duration_h: 24") + "  history:\n" + history + "\n"
    text = text.replace(SESSIONS, SESSIONS.splitlines()[0])
    sc = load_scenario_text(text, "day.yaml")
    assert sc.history[0] == PastSession("van-1", _at(2, 16).replace(month=2, day=20), datetime(2026, 2, 20, 15, 10,
                                                                                                 tzinfo=UTC))
    seen = Seen()
    run(sc, seen, departure_history=True)
    assert seen.shown["02"] == {_at(2, 15, 10)}
    seen = Seen()
    run(sc, seen, departure_history=False)
    assert seen.shown["02"] == {_at(2, 16)}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ('{vehicle: van-9, declared: "2026-02-20T16:00", actual: "2026-02-20T15:00"}', "unknown vehicle 'van-9'"),
        ('{vehicle: van-1, declared: "2026-02-20T16:00", actual: "2026-03-02T15:00"}', "after its start"),
        ('{vehicle: van-1, declared: "soon", actual: "2026-02-20T15:00"}', "expected an ISO local date-time"),
        ('{vehicle: van-1, declared: "2026-02-20T16:00"}', "actual"),
    ],
)
def test_bad_history_entries_are_reported(entry: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario_text(WEEK + f"  history:\n    - {entry}\n", "bad.yaml")
    assert expected in str(err.value)


def test_early_leavers_lp_meets_more_departures_with_history() -> None:
    sc = load_scenario(SCENARIOS / "early-leavers.yaml")
    with_history = run(sc, PlannerPolicy())
    without = run(sc, PlannerPolicy(), departure_history=False)
    edf = run(sc, edf_policy())
    assert with_history.violations.count == without.violations.count == 0
    assert with_history.departures_met > without.departures_met  # 8 vs 6 on 2026-12 main
    assert with_history.departures_met >= edf.departures_met
    assert with_history.delivered_kwh >= 0.99 * without.delivered_kwh
