from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main
from controller.simulate.cli import simulate
from controller.simulate.engine import run
from controller.simulate.policies import Uncontrolled
from controller.simulate.scenario import load_scenario, load_scenario_text
from controller.simulate.whatif import scale_sessions, with_grid_limit

SCENARIOS = Path(__file__).resolve().parents[2] / "hil" / "scenarios"
WORKPLACE = SCENARIOS / "workplace-small.yaml"

ONE_CAR = """site: {name: T, timezone: UTC}
grid: {limit_a: 200}
chargers: [{id: CP1, phases: 3, max_a: 32}]
scenario:
  start: "2026-03-02T00:00"
  duration_h: 2
  step_s: 60
  sessions:
    - {charger: CP1, arrive: "2026-03-02T00:00", depart: "2026-03-02T01:00", energy_kwh: 200, battery_kwh: 250}
"""


def test_energy_follows_current_voltage_and_time() -> None:
    sc = load_scenario_text(ONE_CAR, "one.yaml")
    result = run(sc, Uncontrolled())
    (session,) = result.sessions
    assert session.delivered_kwh == pytest.approx(32 * 230 * 3 / 1000, rel=1e-9)  # one hour at 32 A, no taper yet
    assert result.peak_a["grid"] == (32.0, 32.0, 32.0)
    assert not session.met


def test_uncontrolled_overloads_and_the_planner_does_not() -> None:
    sc = load_scenario(WORKPLACE)
    wild = run(sc, Uncontrolled())
    assert wild.violations.count > 0 and wild.violations.worst_a > 10
    planned = simulate(sc, "lp")
    assert planned.violations.count == 0
    assert planned.delivered_kwh > 0.9 * planned.requested_kwh


def test_the_fast_loop_sheds_what_a_careless_policy_would_overload() -> None:
    sc = load_scenario(SCENARIOS / "base-load-spike.yaml")
    careless = dataclasses.replace(Uncontrolled(), sheds=True)  # everyone at max, but the fast loop runs
    result = run(sc, careless)
    assert result.violations.count == 0
    assert result.delivered_kwh > 0


def test_the_optimum_bounds_every_policy() -> None:
    sc = load_scenario(WORKPLACE)
    optimum = simulate(sc, "optimal")
    assert optimum.optimal_bound_kwh is not None
    for policy in ("lp", "equal-share", "edf", "llf"):
        assert simulate(sc, policy).delivered_kwh <= optimum.optimal_bound_kwh + 1e-3, policy
    assert optimum.violations.count == 0


def test_what_if_more_vehicles_and_a_smaller_connection() -> None:
    sc = load_scenario(WORKPLACE)
    bigger = scale_sessions(sc, 1.5)
    assert len(bigger.sessions) == 6 and len(bigger.site.chargers) == 6
    assert {c.id for c in bigger.site.chargers} >= {"WB-1+1", "WB-2+1"}
    smaller = with_grid_limit(sc, 60)
    assert smaller.site.grid.limit_a == 60
    assert simulate(smaller, "equal-share").delivered_kwh < simulate(sc, "equal-share").delivered_kwh


def test_cli_json_is_one_object_with_the_contract_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(WORKPLACE), "--policy", "equal-share", "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "sessions",
        "requested_kwh",
        "delivered_kwh",
        "delivered_ratio",
        "departures_met",
        "departures_total",
        "violations",
        "peak_a",
        "planner_ms",
        "policy",
    ):
        assert key in data, key
    assert set(data["violations"]) == {"count", "worst_a", "ampere_seconds"}
    assert set(data["planner_ms"]) == {"p50", "p95", "max"}
    assert set(data["peak_a"]) == {"grid", "carpark-board"}
    assert set(data["sessions"][0]) >= {"charger", "requested_kwh", "delivered_kwh", "met"}
    assert data["policy"] == "equal-share" and data["departures_total"] == 4


def test_cli_json_stdout_holds_nothing_but_the_object() -> None:
    """HiGHS writes a banner straight to fd 1 unless kept quiet: check the real process output."""
    exe = Path(sys.executable).parent / "depotctl"
    done = subprocess.run(
        [str(exe), "simulate", str(WORKPLACE), "--policy", "lp", "--json", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert json.loads(done.stdout)["policy"] == "lp"


def test_cli_many_files_give_one_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(WORKPLACE), str(SCENARIOS / "feeder-limited.yaml")]
    assert main(["simulate", *files, "--policy", "edf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()]
    assert [row[0] for row in rows if len(row) > 1 and row[1] == "edf"] == ["workplace-small", "feeder-limited"]


def test_cli_bad_scenario_names_the_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(ONE_CAR.replace("charger: CP1, arrive", "charger: CP7, arrive"))
    assert main(["simulate", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:9:17: scenario.sessions[0].charger: unknown charger 'CP7'" in err


def test_cli_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="install the plot extra: pip install 'depotctl[plot]'")
    out = tmp_path / "day.png"
    assert main(["simulate", str(WORKPLACE), "--policy", "equal-share", "--plot", str(out), "--no-progress"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 20_000


def test_cli_plot_refuses_several_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", str(WORKPLACE), str(WORKPLACE), "--plot", "x.png"]) == 2
    assert "one scenario file" in capsys.readouterr().err
