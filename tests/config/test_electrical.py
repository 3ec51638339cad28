"""Services, transformers and line-to-line chargers in the site file: the model they load into,
the warnings for what is legal but odd, the fail-safe check on phasor sums, and the US example."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from controller.cli import main
from controller.config import load_site, load_site_text
from controller.config.convert import to_dict
from controller.config.tree import connected_line_currents_a
from controller.model import phasor
from controller.model.site import Transformer

CONFIG = Path(__file__).resolve().parents[2] / "config"
US = CONFIG / "us-school-bus-depot.yaml"

NORTH_AMERICAN = """\
site: {name: T, timezone: America/Chicago, service: wye, voltage_v: 277}
grid: {limit_a: 400, limit_sum: arithmetic}
ocpp: {security_profile: 0}
circuits:
  - {id: xa, limit_a: 180, transformer: {connection: delta-wye, ratio: 2.31}}
  - {id: pa, parent: xa, limit_a: 400, limit_sum: arithmetic}
  - {id: xb, limit_a: 100, transformer: {connection: split-phase, ratio: 2, primary: L3-L1}}
  - {id: xc, limit_a: 100, transformer: {connection: wye-wye, ratio: 1}}
  - {id: xd, limit_a: 100, transformer: {connection: delta-wye, ratio: 2.31, vector_group: Dyn11}}
chargers:
  - {id: A1, circuit: pa, phases: 1, phase_rotation: L2-L3, max_a: 48}
  - {id: A2, circuit: pa, phases: 1, phase_rotation: L1, max_a: 16}
  - {id: B1, circuit: xb, phases: 1, phase_rotation: L1-L2, max_a: 40}
  - {id: B2, circuit: xb, phases: 1, phase_rotation: L2, max_a: 12}
  - {id: D1, kind: dc, max_kw: 60, efficiency: 1.0}
"""


def warnings_of(text: str) -> list[str]:
    return [w.format("f.yaml") for w in load_site_text(text, "f.yaml").warnings]


def test_services_transformers_and_connections_load_into_the_model() -> None:
    site = load_site_text(NORTH_AMERICAN).site
    assert (site.site.service, site.site.voltage_v) == ("wye", 277.0)
    assert site.grid.limit_sum == "arithmetic"
    assert site.circuit("xa").transformer == Transformer("delta-wye", 2.31, "L1-L2")
    assert site.circuit("xa").limit_sum == "phasor"  # the default
    assert site.circuit("pa").transformer is None and site.circuit("pa").limit_sum == "arithmetic"
    assert site.circuit("xb").transformer == Transformer("split-phase", 2.0, "L3-L1")
    assert site.circuit("xc").transformer == Transformer("wye-wye", 1.0)
    assert site.circuit("xd").transformer == Transformer("delta-wye", 2.31, vector_group="Dyn11")
    assert site.circuit("xa").transformer.vector_group == "Dyn1"  # ANSI, the default
    a1, a2, b1, b2, d1 = (site.charger(x) for x in ("A1", "A2", "B1", "B2", "D1"))
    assert a1.line_to_line and a1.grid_phases == (1, 2)
    assert not a2.line_to_line and a2.grid_phases == (0,)
    assert b1.line_to_line and not b2.line_to_line
    assert [phasor.node_service(site, n) for n in ("grid", "xa", "pa", "xb", "xc")] == [
        "wye",
        "wye",
        "wye",
        "split-phase",
        "wye",
    ]
    assert phasor.draw(site, a1).volts_v == pytest.approx(277 * math.sqrt(3) / 2.31, rel=1e-9)  # 208 V
    assert phasor.draw(site, b1).volts_v == pytest.approx(277 * math.sqrt(3) / 2)  # 240 V between L1 and L2
    assert phasor.draw(site, b2).volts_v == pytest.approx(277 * math.sqrt(3) / 4)  # 120 V to neutral
    assert phasor.draw(site, d1).volts_v == pytest.approx(3 * 277)


def test_a_delta_and_a_split_phase_service_load() -> None:
    delta = load_site_text(
        """\
site: {name: T, timezone: America/Toronto, service: delta, voltage_v: 600}
grid: {limit_a: 400}
ocpp: {security_profile: 0}
chargers:
  - {id: C1, phases: 1, phase_rotation: L3-L1, max_a: 32}
  - {id: C2, phases: 3, max_a: 32}
"""
    ).site
    assert delta.site.service == "delta"
    assert phasor.node_ln_voltage_v(delta, "grid") == pytest.approx(600 / math.sqrt(3))
    assert phasor.draw(delta, delta.charger("C2")).volts_v == pytest.approx(600 * math.sqrt(3))
    split = load_site_text(
        """\
site: {name: T, timezone: America/Denver, service: split-phase, voltage_v: 120}
grid: {limit_a: 200}
ocpp: {security_profile: 0}
chargers:
  - {id: C1, phases: 1, phase_rotation: L1-L2, max_a: 40}
  - {id: C2, phases: 1, phase_rotation: L2, max_a: 12}
"""
    ).site
    assert phasor.draw(split, split.charger("C1")).volts_v == pytest.approx(240)
    assert phasor.draw(split, split.charger("C2")).volts_v == pytest.approx(120)


def test_the_model_round_trips_through_yaml() -> None:
    for site in (load_site_text(NORTH_AMERICAN).site, load_site(US).site):
        text = yaml.safe_dump(to_dict(site), sort_keys=False, allow_unicode=True)
        assert load_site_text(text, "again.yaml").site == site
    # `primary` is written only for a split-phase transformer, `vector_group` only for a delta-wye
    # one (the others refuse them)
    dumped = to_dict(load_site_text(NORTH_AMERICAN).site)["circuits"]
    assert dumped[0]["transformer"] == {"connection": "delta-wye", "ratio": 2.31, "vector_group": "Dyn1"}
    assert dumped[2]["transformer"] == {"connection": "split-phase", "ratio": 2.0, "primary": "L3-L1"}
    assert dumped[3]["transformer"] == {"connection": "wye-wye", "ratio": 1.0}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "site: {name: T, timezone: Europe/Paris}\ngrid: {limit_a: 100}\n"
            "chargers: [{id: C, phases: 1, phase_rotation: L1-L2, max_a: 16}]\n",
            "f.yaml:3:47: chargers[0].phase_rotation: warning: C would get 398 V line-to-line: single-phase EV"
            " chargers are built for up to 240 V (a 230/400 V charger sits between a line and neutral: L1, L2 or L3)",
        ),
        (
            "site: {name: T, timezone: America/Chicago, service: split-phase, voltage_v: 240}\ngrid: {limit_a: 100}\n",
            "f.yaml:1:77: site.voltage_v: warning: on a split-phase service voltage_v is line-to-neutral"
            " (120/240 V: 120); 240 V puts 480 V between the lines",
        ),
        (
            "site: {name: T, timezone: America/Chicago, service: delta, voltage_v: 120}\ngrid: {limit_a: 100}\n",
            "f.yaml:1:71: site.voltage_v: warning: on a delta service voltage_v is line-to-line (240, 480); 120 V"
            " is unusually low (a line-to-neutral voltage belongs to a wye or split-phase service)",
        ),
        (
            "site: {name: T, timezone: America/Chicago, voltage_v: 120}\ngrid: {limit_a: 100}\n"
            "circuits: [{id: x, limit_a: 50, transformer: {connection: wye-wye, ratio: 0.5}}]\n",
            "f.yaml:3:75: circuits[0].transformer.ratio: warning: ratio 0.5 steps the voltage up; ratio is"
            " primary : secondary line-to-line voltage (480 V → 208 V: 2.31)",
        ),
        (
            "site: {name: T, timezone: America/Chicago, voltage_v: 277}\ngrid: {limit_a: 100}\n"
            "circuits: [{id: x, limit_a: 50, transformer: {connection: delta-wye, ratio: 4}}]\n",
            "f.yaml:3:77: circuits[0].transformer.ratio: warning: gives a secondary of 69 V line-to-neutral;"
            " ratio is primary : secondary line-to-line voltage (480 V → 208Y/120 V: 2.31, 480 V → 120/240 V: 2)",
        ),
        (
            "site: {name: T, timezone: America/Chicago, voltage_v: 277}\ngrid: {limit_a: 400}\n"
            "circuits:\n"
            "  - {id: x, limit_a: 100, transformer: {connection: split-phase, ratio: 2}}\n"
            "  - {id: p, parent: x, limit_a: 225}\n",
            "f.yaml:5:33: circuits[1].limit_a: warning: 225 A is above what its parent 'x' allows on its"
            " secondary (100 A × ratio 2 = 200 A); the parent still limits",
        ),
    ],
    ids=["line-to-line-at-400-v", "split-phase-240", "delta-120", "step-up", "secondary-69-v", "above-secondary"],
)
def test_legal_but_odd_is_a_warning_at_its_line(text: str, expected: str) -> None:
    assert expected in warnings_of(text + "ocpp: {security_profile: 0}\nmeters: []\n")


def test_a_panel_below_a_transformer_within_its_secondary_rating_is_not_warned() -> None:
    text = """\
site: {name: T, timezone: America/Chicago, voltage_v: 277}
grid: {limit_a: 400}
ocpp: {security_profile: 0}
circuits:
  - {id: x, limit_a: 180, transformer: {connection: delta-wye, ratio: 2.31}}
  - {id: p, parent: x, limit_a: 400}
"""
    assert not [w for w in warnings_of(text) if "limit_a" in w]


def test_failsafe_check_sums_phasors_on_a_transformer_primary() -> None:
    """Six 208 V chargers at 6 A each behind a delta-wye: 20.8 A per secondary line as phasors
    (24 A added arithmetically), 9.0 A on the primary; the primary's limit is what is checked."""
    text = """\
site: {name: T, timezone: America/Chicago, voltage_v: 277}
grid: {limit_a: 400, meter: m}
meters: [{id: m, preset: janitza-umg96rm, modbus: {host: 192.0.2.1}}]
ocpp: {security_profile: 0}
failsafe: {charger_a: 6}
circuits:
  - {id: x, limit_a: 11, margin_a: 1, transformer: {connection: delta-wye, ratio: 2.31}}
  - {id: p, parent: x, limit_a: 24, margin_a: 1, limit_sum: LIMIT_SUM}
chargers:
  - {id: C1, circuit: p, phases: 1, phase_rotation: L1-L2, max_a: 32}
  - {id: C2, circuit: p, phases: 1, phase_rotation: L2-L3, max_a: 32}
  - {id: C3, circuit: p, phases: 1, phase_rotation: L3-L1, max_a: 32}
  - {id: C4, circuit: p, phases: 1, phase_rotation: L1-L2, max_a: 32}
  - {id: C5, circuit: p, phases: 1, phase_rotation: L2-L3, max_a: 32}
  - {id: C6, circuit: p, phases: 1, phase_rotation: L3-L1, max_a: 32}
"""
    phasor_sum = warnings_of(text.replace("LIMIT_SUM", "phasor"))
    assert not [w for w in phasor_sum if "fail-safe" in w]  # 20.8 A ≤ 23 A, 9.0 A ≤ 10 A
    arithmetic = warnings_of(text.replace("LIMIT_SUM", "arithmetic"))
    assert [w for w in arithmetic if "fail-safe" in w] == [
        "f.yaml:5:23: failsafe.charger_a: warning: all chargers at their fail-safe limits would draw 24.0 A on"
        " 'p', above its usable 23 A"
    ]
    tight = warnings_of(text.replace("LIMIT_SUM", "phasor").replace("limit_a: 11,", "limit_a: 9,"))
    assert [w for w in tight if "fail-safe" in w] == [
        "f.yaml:5:23: failsafe.charger_a: warning: all chargers at their fail-safe limits would draw 9.0 A on"
        " 'x', above its usable 8 A"
    ]


# --- the US example -------------------------------------------------------------------------


def test_us_example_loads_into_the_model_it_describes() -> None:
    loaded = load_site(US)
    site = loaded.site
    assert loaded.warnings == ()
    assert (site.site.service, site.site.voltage_v, site.site.timezone) == ("wye", 277.0, "America/Chicago")
    assert site.circuit("lot-a-xfmr").transformer == Transformer("delta-wye", 2.31)
    assert site.circuit("lot-b-xfmr").transformer == Transformer("split-phase", 2.0, "L2-L3")
    assert phasor.node_service(site, "lot-a-panel") == "wye"
    assert phasor.node_service(site, "lot-b-panel") == "split-phase"
    lot_a = [ch for ch in site.chargers if ch.circuit == "lot-a-panel"]
    assert len(lot_a) == 15 and all(ch.line_to_line for ch in lot_a)
    assert sorted({ch.phase_rotation for ch in lot_a}) == ["L1-L2", "L2-L3", "L3-L1"]
    for ch in lot_a:
        assert phasor.draw(site, ch).volts_v == pytest.approx(208, abs=0.5)
    lot_b = [ch for ch in site.chargers if ch.circuit == "lot-b-panel" and ch.line_to_line]
    assert len(lot_b) == 6
    assert all(phasor.draw(site, ch).volts_v == pytest.approx(240, abs=0.5) for ch in lot_b)
    dc = [ch for ch in site.chargers if ch.kind == "dc"]
    assert len(dc) == 4 and all(phasor.draw(site, ch).volts_v == pytest.approx(3 * 277) for ch in dc)
    assert site.grid.meter and all(site.circuit(c).meter for c in ("lot-a-xfmr", "lot-b-xfmr", "dc-feeder"))


def test_us_example_phasor_sums_against_arithmetic() -> None:
    """Lot A's panel: five 48 A chargers on each pair of lines is 5 × 48 × √3 = 416 A a line as
    phasors, 480 A added up; its transformer's primary sees the same power at 480 V."""
    site = load_site(US).site
    connected = connected_line_currents_a(site)
    assert connected["lot-a-panel"] == pytest.approx((5 * 48 * math.sqrt(3),) * 3)
    loads = [(ch, None, 48.0) for ch in site.chargers if ch.circuit == "lot-a-panel"]
    assert phasor.arithmetic_line_currents_a(site, loads)["lot-a-panel"] == pytest.approx((480.0,) * 3)
    primary_a = 15 * 48 * phasor.draw(site, site.chargers[0]).volts_v / (3 * 277)
    assert connected["lot-a-xfmr"] == pytest.approx((primary_a,) * 3)
    # Lot B's single-phase transformer sits across L2-L3: nothing on the primary's L1
    assert connected["lot-b-xfmr"][0] == pytest.approx(0.0, abs=1e-9)
    assert connected["lot-b-xfmr"][1] == pytest.approx((6 * 40 * 2 + 12) / 4)


def test_us_example_check_config_shows_limits_and_connections(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(US)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert lines[0] == "Prairie Ridge ISD bus depot (America/Chicago, wye 277 V line-to-neutral), contract 450 kW"

    def row(name: str) -> tuple[str, str]:
        """A node's row and the line under it."""
        i = next(i for i, line in enumerate(lines) if line.split("── ")[-1].startswith(name + " "))
        return lines[i], lines[i + 1]

    grid = next(i for i, line in enumerate(lines) if line.startswith("grid "))
    assert lines[grid + 1].endswith("line currents, phasor sum; bus: wye 277 V to neutral")
    head, how = row("lot-a-xfmr")
    assert "limit   180 A/line" in head and "meter lot-a-meter" in head
    assert how.endswith(
        "primary line currents of a delta-wye transformer Dyn1 (ratio 2.31), phasor sum; "
        "bus: secondary wye 120 V to neutral"
    )
    head, how = row("lot-a-panel")
    assert "416/416/416 A  1.04× oversubscribed" in head
    assert how.endswith("line currents, phasor sum; bus: wye 120 V to neutral")
    _, how = row("lot-b-xfmr")
    assert how.endswith(
        "primary line currents of a split-phase transformer across L2-L3 (ratio 2), phasor sum; "
        "bus: secondary split-phase 120 V to neutral"
    )
    assert row("L2A-01")[0].endswith("AC 1-phase L1-L2 (208 V line-to-line)  6–48 A")
    assert row("L2A-02")[0].endswith("AC 1-phase L2-L3 (208 V line-to-line)  6–48 A")
    assert row("L2A-03")[0].endswith("AC 1-phase L3-L1 (208 V line-to-line)  6–48 A")
    assert row("L2B-01")[0].endswith("AC 1-phase L1-L2 (240 V line-to-line)  6–40 A")
    assert row("L1B-VAN")[0].endswith("AC 1-phase L1 (120 V line-to-neutral)  6–12 A")
    assert row("DC-01")[0].endswith("DC 60 kW on L1-L2-L3 (3 × 277 V line-to-neutral; η 0.94, pf 0.99)")
    assert lines[-1] == f"{US}: OK"


def test_readme_excerpt_is_what_check_config_prints(capsys: pytest.CaptureFixture[str]) -> None:
    readme = (CONFIG.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## A North American site", 1)[1].split("\n## ", 1)[0]
    excerpt = section.split("```\n├── ", 1)[1].split("```", 1)[0]
    assert main(["check-config", str(US)]) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = [line for line in ("├── " + excerpt).splitlines() if line.strip() and "⋮" not in line]
    assert len(shown) >= 8
    for line in shown:
        assert line in printed, line


def test_a_floating_wye_wye_primary_is_allowed_below_a_delta_service() -> None:
    """A wye-wye transformer whose primary star point floats (Yyn) needs no neutral on its parent."""
    from controller.config import load_site_text

    site = load_site_text(
        """site: {name: T, timezone: America/Chicago, service: delta, voltage_v: 480}
grid: {limit_a: 400}
ocpp: {security_profile: 0}
circuits:
  - {id: xfmr-a, limit_a: 180, transformer: {connection: wye-wye, ratio: 2.31, primary_neutral: false}}
"""
    ).site
    tr = site.transformer("xfmr-a")
    assert tr is not None and tr.connection == "wye-wye" and not tr.primary_neutral
