"""A session still plugged in when the scenario ends: simulated up to the end, neither met nor missed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import ConfigError
from controller.simulate.engine import run
from controller.simulate.policies import Uncontrolled
from controller.simulate.result import table
from controller.simulate.scenario import load_scenario_text

# 2 h at 3 × 32 A; batteries sized so that no one tapers (above 80 % state of charge) but CP2, which is met
DAY = """site: {name: T, timezone: UTC}
grid: {limit_a: 400}
chargers: [{id: CP1, phases: 3, max_a: 32}, {id: CP2, phases: 3, max_a: 32}, {id: CP3, phases: 3, max_a: 32},
           {id: CP4, phases: 3, max_a: 32}]
scenario:
  start: "2026-03-02T00:00"
  duration_h: 2
  step_s: 60
  sessions:
    - {charger: CP1, arrive: "2026-03-02T00:00", depart: "2026-03-02T07:00", energy_kwh: 100, battery_kwh: 250}
    - {charger: CP2, arrive: "2026-03-02T00:00", depart: "2026-03-02T01:00", energy_kwh: 5}
    - {charger: CP3, arrive: "2026-03-02T00:00", depart: "2026-03-02T01:00", energy_kwh: 50, battery_kwh: 100}
    - {charger: CP4, arrive: "2026-03-02T01:00", depart: "2026-03-02T02:00", energy_kwh: 50, battery_kwh: 100}
"""
HOUR_KWH = 32 * 230 * 3 / 1000  # 22.08 kWh in an hour at full rate


def test_a_session_past_the_end_counts_its_energy_and_is_neither_met_nor_missed() -> None:
    sc = load_scenario_text(DAY, "day.yaml")
    result = run(sc, Uncontrolled())
    past, met, missed, at_end = result.sessions
    assert past.past_end and not past.met and not past.missed
    assert past.delivered_kwh == pytest.approx(2 * HOUR_KWH, rel=1e-9)  # up to the end, not beyond
    assert met.met and not met.past_end
    assert missed.missed and missed.delivered_kwh == pytest.approx(HOUR_KWH, rel=1e-9)
    assert at_end.missed and not at_end.past_end  # departing right at the end is a departure
    assert (result.departures_met, result.departures_missed, result.departures_total) == (1, 2, 3)
    assert result.past_end == 1
    assert result.delivered_kwh == pytest.approx(2 * HOUR_KWH + 5 + 2 * HOUR_KWH, rel=1e-6)
    assert result.first_missed() is missed


def test_the_summary_and_the_json_say_how_many_were_past_the_end() -> None:
    sc = load_scenario_text(DAY, "day.yaml")
    result = run(sc, Uncontrolled())
    lines = table([result]).splitlines()
    row = dict(zip(re.split(r"\s{2,}", lines[0].strip()), re.split(r"\s{2,}", lines[2].strip()), strict=True))
    assert (row["met"], row["past end"]) == ("1/3", "1")
    data = result.to_json()
    assert (data["departures_met"], data["departures_total"], data["past_end"]) == (1, 3, 1)
    assert [s["met"] for s in data["sessions"]] == [None, True, False, False]  # null: neither met nor missed
    assert [s["past_end"] for s in data["sessions"]] == [True, False, False, False]


def test_the_cli_names_the_sessions_past_the_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "day.yaml"
    path.write_text(DAY)
    assert main(["simulate", str(path), "--policy", "edf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "past end" in out  # the session table's verdict and the summary's column
    assert "day (edf): 1 session(s) still plugged in at the scenario's end" in out
    assert main(["simulate", str(path), "--policy", "edf", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["past_end"] == 1


def test_other_bad_times_are_still_refused_with_their_line() -> None:
    late = 'arrive: "2026-03-02T02:00", depart: "2026-03-02T03:00"'
    bad = DAY.replace('arrive: "2026-03-02T01:00", depart: "2026-03-02T02:00"', late)
    with pytest.raises(ConfigError) as info:
        load_scenario_text(bad, "bad.yaml")
    (problem,) = info.value.errors
    assert problem.format("bad.yaml") == (
        "bad.yaml:13:30: scenario.sessions[3].arrive: arrives (2026-03-02T02:00) at or after the scenario's end"
    )
    backwards = DAY.replace('depart: "2026-03-02T07:00"', 'depart: "2026-03-01T23:00"')
    with pytest.raises(ConfigError) as info:
        load_scenario_text(backwards, "bad.yaml")
    assert "departs (2026-03-01T23:00) before it arrives" in info.value.errors[0].format("bad.yaml")
