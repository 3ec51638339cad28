"""`pv: {meter: ...}`: a meter of `meters:` that measures power and nothing but the PV output.
The refused files and their exact messages are in invalid/ (pv-*.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.config import ConfigError, load_site_text
from controller.config.pv import PHASE_POWERS, POWER_PRESETS
from controller.meter.registers import preset_data
from controller.model.presets import PRESET_NAMES
from controller.model.site import Pv

SITE = """\
site: {name: T, timezone: Europe/Paris}
grid: {limit_a: 100, meter: grid-meter}
ocpp: {security_profile: 0}
meters:
  - {id: grid-meter, preset: eastron-sdm630, modbus: {host: 10.0.0.1}}
  - id: pv-meter
    modbus: {host: 10.0.0.3}
PV_METER
pv: {meter: pv-meter}
"""
CURRENTS = """\
      current_l1_a: {address: 0}
      current_l2_a: {address: 2}
      current_l3_a: {address: 4}
"""

PHASE_POWER_REGISTERS = "".join(f"      {p}: {{address: {8 + 2 * i}}}\n" for i, p in enumerate(PHASE_POWERS))


def site(pv_meter: str) -> str:
    return SITE.replace("PV_METER\n", pv_meter)


@pytest.mark.parametrize(
    "pv_meter",
    [
        "    preset: sunspec\n",
        "    preset: abb-b23\n",
        "    registers:\n" + CURRENTS + "      power_w: {address: 6, type: int32}\n",
        "    registers:\n" + CURRENTS + PHASE_POWER_REGISTERS,
    ],
    ids=["sunspec", "abb-b23", "power_w", "phase-powers"],
)
def test_a_power_meter_becomes_the_sites_pv(pv_meter: str) -> None:
    loaded = load_site_text(site(pv_meter), "pv.yaml")
    assert loaded.site.pv == Pv(meter="pv-meter")
    assert not [w for w in loaded.warnings if "pv-meter" in w.message], "the PV meter is attached: to `pv`"


def test_without_pv_the_site_has_none_and_the_meter_is_unattached() -> None:
    text = site("    preset: sunspec\n").replace("pv: {meter: pv-meter}\n", "")
    loaded = load_site_text(text, "nopv.yaml")
    assert loaded.site.pv is None
    assert [w.message for w in loaded.warnings if w.path[0] == "meters"] == [
        "meter 'pv-meter' is not attached to the grid, any circuit or `pv`"
    ]


def test_a_custom_map_with_only_some_phase_powers_is_refused_at_the_pv_meter() -> None:
    text = site("    registers:\n" + CURRENTS + "      power_l1_w: {address: 8}\n      power_l2_w: {address: 10}\n")
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "pv.yaml")
    (problem,) = caught.value.errors
    line = text.splitlines().index("pv: {meter: pv-meter}") + 1
    assert problem.format("pv.yaml") == (
        f"pv.yaml:{line}:13: pv.meter: meter 'pv-meter' measures no power: a PV meter needs `power_w` "
        "(or power_l1_w, power_l2_w and power_l3_w) in its registers"
    )


def test_pv_needs_its_meter() -> None:
    text = site("    preset: sunspec\n").replace("pv: {meter: pv-meter}", "pv: {}")
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "pv.yaml")
    (problem,) = caught.value.errors
    assert (problem.path, problem.message) == (("pv", "meter"), "required key is missing")


def _measures_power(values: Any) -> bool:
    return "power_w" in values or all(p in values for p in PHASE_POWERS)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_power_presets_are_the_preset_files_that_measure_power(name: str) -> None:
    """`POWER_PRESETS` (the config may not read the meter package) against the files themselves;
    a SunSpec meter measures power whichever of its models the meter turns out to have."""
    data = preset_data(name)
    maps = [model["values"] for model in data["models"].values()] if "models" in data else [data["values"]]
    assert (name in POWER_PRESETS) == all(_measures_power(values) for values in maps)


def test_check_config_names_the_pv_meter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(site("    preset: sunspec\n"), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert "pv: output measured by meter pv-meter" in capsys.readouterr().out.splitlines()
