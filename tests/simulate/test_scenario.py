from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from controller.config import ConfigError
from controller.simulate.scenario import LoadProfile, load_scenario, load_scenario_text

SITE = """site: {name: T, timezone: Europe/Amsterdam}
grid: {limit_a: 100}
chargers:
  - {id: CP1, phases: 3, max_a: 32}
  - {id: DC1, kind: dc, max_kw: 50}
"""


def scenario(body: str, hours: int = 24) -> str:
    return SITE + f'scenario:\n  start: "2026-03-02T00:00"\n  duration_h: {hours}\n' + body


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario_text(text, "s.yaml")
    return [p.format("s.yaml") for p in info.value.errors]


def test_declared_departure_defaults_to_the_real_one_and_null_means_unknown() -> None:
    sc = load_scenario_text(
        scenario(
            "  sessions:\n"
            '    - {charger: CP1, arrive: "2026-03-02T17:00", depart: "2026-03-03T06:00", energy_kwh: 20}\n'
            '    - {charger: DC1, arrive: "2026-03-02T18:00", depart: "2026-03-03T04:00", energy_kwh: 90,'
            " ev_max_kw: 50, declared_depart: null}\n",
            hours=36,
        ),
        "s.yaml",
    )
    first, second = sc.sessions
    assert first.declared_depart == first.depart
    assert first.depart.isoformat() == "2026-03-03T05:00:00+00:00"  # 06:00 CET
    assert second.declared_depart is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '  sessions:\n    - {charger: CP9, arrive: "2026-03-02T17:00", depart: "2026-03-02T20:00",'
            " energy_kwh: 5}\n",
            "s.yaml:10:17: scenario.sessions[0].charger: unknown charger 'CP9'",
        ),
        (
            '  sessions:\n    - {charger: CP1, arrive: "2026-03-02T17:00", depart: "2026-03-02T16:00",'
            " energy_kwh: 5}\n",
            "s.yaml:10:58: scenario.sessions[0].depart: departs (2026-03-02T16:00) before it arrives "
            "(2026-03-02T17:00)",
        ),
        (
            "  sessions:\n"
            '    - {charger: CP1, arrive: "2026-03-02T17:00", depart: "2026-03-02T20:00", energy_kwh: 5}\n'
            '    - {charger: CP1, arrive: "2026-03-02T19:00", depart: "2026-03-02T22:00", energy_kwh: 5}\n',
            "s.yaml:11:30: scenario.sessions[1].arrive: CP1 connector 1 is still taken by sessions[0] until "
            "2026-03-02T20:00",
        ),
        (
            '  sessions:\n    - {charger: CP1, arrive: "2026-03-03T00:00", depart: "2026-03-04T20:00",'
            " energy_kwh: 5}\n",
            "s.yaml:10:30: scenario.sessions[0].arrive: arrives (2026-03-03T00:00) at or after the scenario's end",
        ),
        (
            '  base_load: [{at: "25:00", a: [1, 2, 3]}]\n',
            "s.yaml:9:20: scenario.base_load[0].at: expected HH:MM or an ISO local date-time, got '25:00'",
        ),
        (
            '  base_load: [{at: "00:00", a: [1, 2]}]\n',
            "s.yaml:9:32: scenario.base_load[0].a: List should have at least 3 items after validation, not 2",
        ),
        (
            '  circuit_base_load: {feeder-x: [{at: "00:00", a: [1, 2, 3]}]}\n',
            "s.yaml:9:23: scenario.circuit_base_load.feeder-x: unknown circuit 'feeder-x'",
        ),
        (
            "  step_s: fast\n",
            "s.yaml:9:11: scenario.step_s: Input should be a valid number, unable to parse string as a number "
            "(got 'fast')",
        ),
        ("  stepsize: 60\n", "s.yaml:9:3: scenario.stepsize: unknown key 'stepsize' (did you mean 'step_s'?)"),
    ],
    ids=[
        "unknown-charger",
        "depart-before-arrive",
        "overlap",
        "arrives-after-end",
        "bad-time",
        "short-list",
        "bad-circuit",
        "bad-number",
        "unknown-key",
    ],
)
def test_bad_scenarios_name_line_and_field(body: str, expected: str) -> None:
    assert expected in errors_of(scenario(body))


def test_a_departure_after_the_end_is_accepted() -> None:
    """Real session data always has cars that stay past the window: simulated up to the end."""
    sc = load_scenario_text(
        scenario(
            '  sessions:\n    - {charger: CP1, arrive: "2026-03-02T17:00", depart: "2026-03-04T20:00", energy_kwh: 5}\n'
        ),
        "s.yaml",
    )
    (session,) = sc.sessions
    assert session.past_end(sc.end) and not session.past_end(session.depart)


def test_a_site_error_and_a_scenario_error_are_reported_together() -> None:
    text = SITE.replace("limit_a: 100", "limit_a: -1") + 'scenario: {start: "2026-03-02T00:00", step_s: -5}\n'
    found = errors_of(text)
    assert any(line.startswith("s.yaml:2:17: grid.limit_a:") for line in found)
    assert any(line.startswith("s.yaml:6:47: scenario.step_s:") for line in found)


def test_missing_scenario_section() -> None:
    assert any("needs a `scenario:` section" in e for e in errors_of(SITE))


def test_daily_profile_wraps_and_dated_steps_override() -> None:
    profile = LoadProfile(
        daily=((6 * 60, (10.0, 10.0, 10.0)), (22 * 60, (5.0, 5.0, 5.0))),
        dated=((datetime(2026, 3, 2, 19, 0), (90.0, 90.0, 90.0)), (datetime(2026, 3, 2, 20, 0), (7.0, 7.0, 7.0))),
    )
    assert profile.at(datetime(2026, 3, 2, 3, 0)) == (5.0, 5.0, 5.0)  # wraps from yesterday 22:00
    assert profile.at(datetime(2026, 3, 2, 12, 0)) == (10.0, 10.0, 10.0)
    assert profile.at(datetime(2026, 3, 2, 19, 30)) == (90.0, 90.0, 90.0)
    assert profile.at(datetime(2026, 3, 2, 23, 0)) == (7.0, 7.0, 7.0)  # a dated step stays until the next one


def test_library_scenarios_all_load() -> None:
    files = sorted((Path(__file__).resolve().parents[2] / "hil" / "scenarios").glob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        sc = load_scenario(path)
        assert sc.sessions, path.name
