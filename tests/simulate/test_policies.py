"""The heuristics as policies: what they are told (the View) and the order they serve in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from controller.cli import main
from controller.simulate.policies import LiveView, View, edf_policy, llf_policy
from controller.simulate.scenario import Scenario, load_scenario_text

# room for one 3-phase vehicle at full rate (32 A); "A" leaves first with little to take, "B" an
# hour later with a lot: least laxity is B's (3 h − 45 kWh / 22 kW ≈ 0.96 h against A's ≈ 1.8 h)
TWO = """site: {name: T, timezone: UTC}
grid: {limit_a: 32, margin_a: 0}
chargers: [{id: A, phases: 3, max_a: 32}, {id: B, phases: 3, max_a: 32}]
scenario:
  start: "2026-03-02T00:00"
  duration_h: 4
  sessions:
    - {charger: A, arrive: "2026-03-02T00:00", depart: "2026-03-02T02:00", energy_kwh: 4}
    - {charger: B, arrive: "2026-03-02T00:00", depart: "2026-03-02T03:00", energy_kwh: 45}
"""


def view(sc: Scenario, delivered_kwh: dict[str, float], minutes: float = 0) -> View:
    now = sc.start + timedelta(minutes=minutes)
    lives = tuple(
        LiveView(s, sc.site.charger(s.charger_id), delivered_kwh.get(s.charger_id, 0.0), None) for s in sc.sessions
    )
    return View(now=now, site=sc.site, base_a={}, sessions=lives, next_decision_at=now + timedelta(seconds=15))


def by_charger(sc: Scenario, limits: dict[str, float]) -> dict[str, float]:
    return {s.charger_id: limits[s.key] for s in sc.sessions}


def test_llf_serves_the_least_laxity_where_edf_serves_the_earliest_departure() -> None:
    sc = load_scenario_text(TWO, "two.yaml")
    assert by_charger(sc, edf_policy().decide(view(sc, {}))) == {"A": pytest.approx(32.0), "B": 0.0}
    assert by_charger(sc, llf_policy().decide(view(sc, {}))) == {"A": 0.0, "B": pytest.approx(32.0)}


def test_llf_laxity_counts_the_energy_still_wanted_and_the_time_left() -> None:
    sc = load_scenario_text(TWO, "two.yaml")
    # B has 40 of its 45 kWh: 5 kWh left is 14 min at full rate, laxity ≈ 2.8 h > A's ≈ 1.8 h
    assert by_charger(sc, llf_policy().decide(view(sc, {"B": 40.0}))) == {"A": pytest.approx(32.0), "B": 0.0}
    # an hour on with nothing delivered both laxities fell by the hour: B's (≈ −0.04 h) is still the least
    assert by_charger(sc, llf_policy().decide(view(sc, {}, minutes=60))) == {"A": 0.0, "B": pytest.approx(32.0)}


def test_llf_is_selectable_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(TWO)
    assert main(["simulate", str(path), "--policy", "llf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["two", "llf"] for line in out.splitlines())
