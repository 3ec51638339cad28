from __future__ import annotations

import pytest

from controller.config import ConfigError, load_site_text
from controller.config.yaml_source import Mark, YamlSyntaxError, dotted, parse_yaml


def test_plain_scalars_stay_text_so_the_schema_decides() -> None:
    doc = parse_yaml("at: 05:30\ntags: [0012, 04A2, 1e3]\nparity: N\nflag: yes\nnothing: ~\nempty:\n")
    assert doc.data == {
        "at": "05:30",
        "tags": ["0012", "04A2", "1e3"],
        "parity": "N",
        "flag": "yes",
        "nothing": None,
        "empty": None,
    }


def test_positions_are_one_based_and_per_path() -> None:
    doc = parse_yaml("a:\n  - {x: 1}\n  - y: 2\n")
    assert doc.value_marks[("a", 0, "x")] == Mark(2, 9)
    assert doc.key_marks[("a", 1, "y")] == Mark(3, 5)
    assert doc.mark_for(("a", 1, "missing")) == Mark(3, 5)


def test_duplicate_key_is_an_error_naming_both_lines() -> None:
    with pytest.raises(YamlSyntaxError) as info:
        parse_yaml("grid:\n  limit_a: 1\n  limit_a: 2\n")
    assert info.value.mark == Mark(3, 3)
    assert info.value.path == ("grid", "limit_a")
    assert "first given at line 2" in info.value.message


def test_merge_keys_work_and_explicit_keys_override() -> None:
    doc = parse_yaml("t: &t {a: 1, b: 2}\nu: {<<: *t, b: 3}\n")
    assert doc.data["u"] == {"a": "1", "b": "3"}


def test_dotted_paths() -> None:
    assert dotted(("chargers", 3, "min_a")) == "chargers[3].min_a"
    assert dotted(("a", 0, 1)) == "a[0][1]"
    assert dotted(()) == "(top level)"


@pytest.mark.parametrize(
    "text",
    ["", "- a\n- b\n", "just text\n"],
    ids=["empty", "list", "scalar"],
)
def test_a_file_that_is_not_a_mapping_is_refused(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "x.yaml")
    assert "must be a mapping" in str(info.value)


def test_sexagesimal_looking_time_loads_as_a_time() -> None:
    site = load_site_text(
        "site: {name: T, timezone: UTC}\ngrid: {limit_a: 10}\nocpp: {security_profile: 0}\n"
        "vehicles: [{id: V, id_tags: [0012]}]\n"
        "schedules: [{vehicle: V, departs: {days: [mon], at: 05:30}, energy_kwh: 10}]\n"
    ).site
    assert site.schedules[0].at.hour == 5 and site.schedules[0].at.minute == 30
    assert site.vehicles[0].id_tags == ("0012",)


def test_all_errors_are_reported_at_once_in_line_order() -> None:
    text = (
        "site: {name: T, timezone: Nowhere/City}\n"
        "grid: {limit_a: 100}\n"
        "ocpp: {security_profile: 0}\n"
        "chargers:\n"
        "  - {id: A, min_a: 40, max_a: 32}\n"
        "  - {id: A, phases: 1, max_a: 16}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_site_text(text, "s.yaml")
    lines = [p.format("s.yaml") for p in info.value.errors]
    assert [line.split(": ")[0] for line in lines] == ["s.yaml:1:27", "s.yaml:5:20", "s.yaml:6:5", "s.yaml:6:10"]


def test_each_node_knows_its_last_line_without_the_comments_after_it() -> None:
    text = "a:\n  - x: 1\n    y: |\n      two\n      lines\n  # note\nb: {c: 1,\n    d: 2}\n\n# end\nc: plain\n"
    doc = parse_yaml(text)
    assert doc.last_lines[("a", 0, "y")] == 5
    assert doc.last_lines[("a",)] == 5
    assert doc.last_lines[("b",)] == 8
    assert doc.last_lines[("c",)] == 11
    assert doc.last_lines[()] == 11
