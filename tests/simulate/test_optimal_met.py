"""The second bound of ``optimal``: the most departures any controller could meet (a MILP on HiGHS)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from controller.cli import main
from controller.simulate.cli import simulate
from controller.simulate.optimal import engine_time, solve_max_met, solve_optimal
from controller.simulate.result import MetBound
from controller.simulate.scenario import load_scenario, load_scenario_text

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "hil" / "scenarios"

# Room for one car at full rate (32 A per phase, no margin, no base load) for two hours: 2 × 22.08 =
# 44.16 kWh. Three cars want 16 kWh each (48 kWh: not all three, whatever the order); any two get
# theirs (32 kWh; the second fills what the first's taper leaves, the last 4 kWh of each taper).
THREE_FOR_TWO = """site: {name: T, timezone: UTC}
grid: {limit_a: 32, margin_a: 0}
chargers: [{id: CP1, phases: 3, max_a: 32}, {id: CP2, phases: 3, max_a: 32}, {id: CP3, phases: 3, max_a: 32}]
scenario:
  start: "2026-03-02T00:00"
  duration_h: 3
  step_s: 60
  sessions:
    - {charger: CP1, arrive: "2026-03-02T00:00", depart: "2026-03-02T02:00", energy_kwh: 16, battery_kwh: 20}
    - {charger: CP2, arrive: "2026-03-02T00:00", depart: "2026-03-02T02:00", energy_kwh: 16, battery_kwh: 20}
    - {charger: CP3, arrive: "2026-03-02T00:00", depart: "2026-03-02T02:00", energy_kwh: 16, battery_kwh: 20}
"""


def test_three_cars_with_room_for_two_bound_two_proven() -> None:
    sc = load_scenario_text(THREE_FOR_TWO, "three.yaml")
    met = solve_max_met(sc)
    assert (met.bound, met.incumbent, met.proven, met.departures_total) == (2, 2, True, 3)
    assert met.status == "Optimal"
    assert "at most 2 of 3 departures met (proven)" in met.describe()
    # the energy bound agrees: all the room, less nothing (no one tapers before the room is used)
    assert solve_optimal(sc).bound_kwh == pytest.approx(2 * 32 * 3 * 230 / 1000, rel=1e-6)


def test_one_car_more_room_all_three() -> None:
    roomy = THREE_FOR_TWO.replace("limit_a: 32,", "limit_a: 96,")
    assert solve_max_met(load_scenario_text(roomy, "roomy.yaml")).bound == 3


def test_a_session_past_the_end_has_no_binary() -> None:
    later = THREE_FOR_TWO.replace(
        'depart: "2026-03-02T02:00", energy_kwh: 16', 'depart: "2026-03-02T05:00", energy_kwh: 16', 1
    )
    met = solve_max_met(load_scenario_text(later, "later.yaml"))
    assert met.departures_total == 2
    assert met.bound == 2 and met.proven  # it may take the room after 02:00; the other two are met


def test_no_policy_meets_more_than_the_bound_and_the_json_says_it() -> None:
    sc = load_scenario_text(THREE_FOR_TWO, "three.yaml")
    optimum = simulate(sc, "optimal")
    assert optimum.max_met is not None and optimum.max_met.bound == 2
    for policy in ("lp", "equal-share", "edf", "llf"):
        assert simulate(sc, policy).departures_met <= 2, policy
    data = optimum.to_json()
    assert data["max_met"] == {
        "bound": 2,
        "proven": True,
        "incumbent": 2,
        "departures_total": 3,
        "status": "Optimal",
        "solve_s": data["max_met"]["solve_s"],
    }


@pytest.mark.parametrize(
    ("name", "policies"),
    [
        # lp on oversubscribed-night takes ~40 s (the MILP every cycle of 12 h): bench/quality.py's
        # within_bounds check covers it
        ("oversubscribed-night", ("equal-share", "edf", "llf")),
        ("staggered-evening", ("lp", "equal-share", "edf", "llf")),
    ],
)
def test_the_bound_holds_on_real_scenarios(name: str, policies: tuple[str, ...]) -> None:
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    met = solve_max_met(sc)
    assert met.proven and met.bound < met.departures_total  # both are short of room for everyone
    for policy in policies:
        r = simulate(sc, policy)
        if r.violations.count == 0:
            assert r.departures_met <= met.bound, policy


def test_the_added_scenarios_are_what_their_headers_say() -> None:
    mixed = load_scenario(SCENARIOS / "mixed-phases.yaml")
    assert {s.ev_phases for s in mixed.sessions} == {1, 3}
    assert {mixed.site.charger(s.charger_id).circuit for s in mixed.sessions} == {"carpark"}
    evening = load_scenario(SCENARIOS / "staggered-evening.yaml")
    asked = sum(s.energy_kwh for s in evening.sessions)
    assert 2.0 <= asked / solve_optimal(evening).bound_kwh <= 3.0  # heavily oversubscribed
    assert len({s.depart for s in evening.sessions}) == len(evening.sessions)  # staggered
    undeclared = load_scenario(SCENARIOS / "partly-undeclared.yaml")
    assert sum(s.declared_depart is None for s in undeclared.sessions) == 12
    assert sum(s.declared_depart not in (None, s.depart) for s in undeclared.sessions) >= 6  # estimates, wrong
    for sc in (mixed, evening, undeclared):
        met = solve_max_met(sc)
        assert met.proven and 0 < met.bound < met.departures_total == len(sc.sessions)


def test_an_unproven_bound_says_so() -> None:
    sc = load_scenario(SCENARIOS / "acn" / "acn-caltech-2020-02-12-g58.yaml")  # 30 proven, in about 0.6 s
    met = solve_max_met(sc, time_limit_s=0.01)
    assert met.incumbent is None or met.incumbent <= 30 <= met.bound <= met.departures_total
    if not met.proven:  # the usual case at 10 ms; a much faster machine may prove it
        assert met.status == "Time limit reached"
        assert "not proven" in met.describe()
    text = MetBound(33, 29, False, 41, "Time limit reached", 10.0).describe()
    assert text == (
        "at most 33 of 41 departures met (not proven: HiGHS stopped with 'Time limit reached' after 10.0 s; "
        "best found 29)"
    )


def test_engine_time_is_the_next_step() -> None:
    sc = load_scenario_text(THREE_FOR_TWO.replace("step_s: 60", "step_s: 300"), "t.yaml")
    assert engine_time(sc, sc.start + timedelta(minutes=7)) == sc.start + timedelta(minutes=10)
    assert engine_time(sc, sc.start + timedelta(minutes=10)) == sc.start + timedelta(minutes=10)
    assert engine_time(sc, sc.start - timedelta(minutes=1)) == sc.start


def test_cli_text_prints_both_bounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(THREE_FOR_TWO)
    assert main(["simulate", str(path), "--policy", "optimal", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "three (optimal): with perfect knowledge at most 44.2 kWh" in out
    assert "three (optimal): with perfect knowledge at most 2 of 3 departures met (proven)" in out


def test_quality_bench_has_the_max_met_column_and_the_bound_check(tmp_path: Path) -> None:
    path = tmp_path / "three.yaml"
    path.write_text(THREE_FOR_TWO)
    cmd = [sys.executable, str(ROOT / "bench" / "quality.py"), "--scenarios", str(path), "--policies", "edf,optimal"]
    rows = json.loads(subprocess.run([*cmd, "--json"], capture_output=True, text=True, check=True, timeout=120).stdout)
    (row,) = rows
    assert row["max_met"]["bound"] == 2 and row["max_met"]["proven"]
    assert row["checks"]["within_bounds"] is True
    text = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout
    head, _, first = text.splitlines()[:3]
    assert "max met" in head and " 2/3 " in first


def test_the_bound_check_flags_a_policy_beyond_a_bound_unless_it_broke_a_limit() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("quality", ROOT / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    sc = load_scenario_text(THREE_FOR_TWO, "three.yaml")
    honest = simulate(sc, "edf")
    cheat = simulate(sc, "edf")
    for s in cheat.sessions:
        s.delivered_kwh = s.requested_kwh  # all three met: more than any controller could
    assert quality.beyond_bounds({"edf": honest}, 44.16, 2) == []
    assert quality.beyond_bounds({"edf": honest, "cheat": cheat}, 100.0, 2) == ["cheat"]
    assert quality.beyond_bounds({"edf": honest}, 1.0, 2) == ["edf"]  # more energy than the optimum
    cheat.violations.count = 3  # it broke a limit: not bound by the limits' optimum
    assert quality.beyond_bounds({"cheat": cheat}, 44.16, 2) == []
