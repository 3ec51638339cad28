"""A site file without an `ocpp:` section, as a new user writes one while commissioning meters.

`check-config` (and `run`) refuse it naming the missing section, the line where it goes and the two
ways to fill it; pasting either printed line at that line gives a file that passes. A present
`ocpp:` section without passwords keeps its error at that section (tests/config/invalid/).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import ConfigError, load_site, load_site_text
from controller.config.placement import insertion_line, preceding_section
from controller.config.yaml_source import parse_yaml

COMMISSIONING = """\
# yaml-language-server: $schema=site.schema.json
site: {name: Depot North, timezone: Europe/Amsterdam}
grid: {limit_a: 250, meter: grid-meter}
meters:
  - id: grid-meter
    preset: eastron-sdm630
    modbus: {host: 10.0.0.20, unit: 1}
circuits:
  - id: board-a
    limit_a: 125
# chargers: once they are wired
"""
"""Meters and circuits, no chargers and no `ocpp:` yet: the section goes after `circuits:`, at line 11."""

SNIPPET = re.compile(r"`(ocpp: \{[^`]*\})`")


def refused(path: Path, capsys: pytest.CaptureFixture[str], *command: str) -> tuple[int, str]:
    code = main([*command, str(path)])
    out, err = capsys.readouterr()
    assert out == "", "nothing printed on stdout for a refused file"
    return code, err


def paste(text: str, line: int, snippet: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join([*lines[: line - 1], snippet + "\n", *lines[line - 1 :]])


def test_check_config_names_the_missing_section_where_it_goes_and_both_choices(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(COMMISSIONING, encoding="utf-8")
    code, err = refused(site, capsys, "check-config")
    assert code == 2
    first, last = err.splitlines()
    assert first.startswith(f"{site}:11:1: ocpp: no `ocpp:` section (it goes here, after `circuits:`): ")
    assert "security profile 1, the default, needs a passwords_file" in first
    assert last == f"{site}: 1 error, nothing started"
    lab, depot = SNIPPET.findall(first)
    assert lab == "ocpp: {security_profile: 0}"
    assert depot == "ocpp: {passwords_file: ocpp-passwords.yaml}"

    # either line, pasted where the message points, makes a file the controller accepts
    site.write_text(paste(COMMISSIONING, 11, lab), encoding="utf-8")
    assert main(["check-config", str(site)]) == 0
    out, err = capsys.readouterr()
    assert out.rstrip().endswith(f"{site}: OK with 1 warning")
    assert f"{site}:11:26: ocpp.security_profile: warning: profile 0" in err
    site.write_text(paste(COMMISSIONING, 11, depot), encoding="utf-8")
    assert main(["check-config", str(site)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"{site}: OK")


def test_run_refuses_it_the_same_way_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(COMMISSIONING, encoding="utf-8")
    code, err = refused(site, capsys, "run", "--config")
    assert code == 2
    assert err.startswith(f"{site}:11:1: ocpp: no `ocpp:` section (it goes here, after `circuits:`)")
    assert err.rstrip().endswith("1 error, nothing started")


PLACEMENTS = [
    # (file, the section it follows, the line it goes at)
    ("site: {name: T, timezone: UTC}\ngrid: {limit_a: 100}\n", "grid", 3),
    (
        "grid:\n  limit_a: 100\nsite:\n  name: T\n  timezone: UTC\n\n\n# vehicles below\nvehicles: []\n",
        "grid",  # sections in any order: after the last one that precedes `ocpp:` in the schema
        3,
    ),
    (
        "site: {name: T, timezone: UTC}\ngrid: {limit_a: 100}\nfailsafe:\n  charger_a: 6\n"
        "control: {plan_every_s: 15}\n",
        "failsafe",
        5,
    ),
    (
        "site: {name: T, timezone: UTC}\ngrid: {limit_a: 100}\nchargers:\n"
        "  - {id: cp1, max_a: 32,\n     min_a: 8}\n  - id: cp2\n    max_a: 16\n# end\n",
        "chargers",  # a flow mapping over two lines, then a block one: after its last line
        8,
    ),
]


@pytest.mark.parametrize(("text", "after", "line"), PLACEMENTS)
def test_the_section_goes_after_the_last_one_before_it_and_pasting_it_there_works(
    text: str, after: str, line: int
) -> None:
    doc = parse_yaml(text)
    assert preceding_section("ocpp", doc.data.keys()) == after
    assert insertion_line(doc, "ocpp") == line
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "site.yaml")
    (problem,) = info.value.errors
    assert (problem.line, problem.col, problem.path) == (line, 1, ("ocpp",))
    assert f"(it goes here, after `{after}:`)" in problem.message
    fixed = load_site_text(paste(text, line, "ocpp: {security_profile: 0}"), "site.yaml")
    assert fixed.site.ocpp.security_profile == 0


def test_a_missing_required_section_points_where_it_goes_too() -> None:
    text = "# depot\nsite:\n  name: T\n  timezone: UTC\nmeters: []\n"
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "site.yaml")
    (problem,) = info.value.errors
    assert (problem.line, problem.col, problem.path, problem.message) == (5, 1, ("grid",), "required key is missing")


def test_only_the_sections_a_command_uses_are_checked(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    broken_charger = "chargers:\n  - {id: cp1, max_a: 32, min_a: 4}\n"
    site.write_text(COMMISSIONING + broken_charger, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_site(site)
    assert [p.path for p in info.value.errors] == [("chargers", 0, "min_a"), ("ocpp",)]
    loaded = load_site(site, only=("site", "grid", "meters", "circuits"))
    assert [m.id for m in loaded.site.meters] == ["grid-meter"] and loaded.site.chargers == ()
    with pytest.raises(ValueError, match="not site-file sections: meter"):
        load_site(site, only=("site", "meter"))
