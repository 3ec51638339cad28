"""`meters[].signed_currents`: unset (the preset decides), true or false; round trip; the warning
for a custom map whose current registers cannot hold a sign, at FILE:LINE:COL."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_site
from controller.config.loader import load_site_text
from controller.config.problems import ConfigError

SITE = """\
site: {{name: T, timezone: Europe/Paris}}
grid: {{limit_a: 100, meter: m}}
ocpp: {{security_profile: 0}}
meters:
  - id: m
    preset: carlo-gavazzi-em24
    modbus: {{host: 10.0.0.5}}
{extra}"""


@pytest.mark.parametrize(
    ("extra", "want"),
    [("", None), ("    signed_currents: true\n", True), ("    signed_currents: false\n", False)],
)
def test_the_flag_reaches_the_model(extra: str, want: bool | None) -> None:
    site = load_site_text(SITE.format(extra=extra)).site
    assert site.meters[0].signed_currents is want


CUSTOM = """\
site: {name: T, timezone: Europe/Paris}
grid: {limit_a: 100, meter: m}
ocpp: {security_profile: 0}
meters:
  - id: m
    modbus: {host: 10.0.0.5}
    signed_currents: true
    registers:
      current_l1_a: {address: 12, type: uint32, scale: 0.001}
      current_l2_a: {address: 14, type: int32, scale: 0.001}
      current_l3_a: {address: 16, type: int32, scale: 0.001}
"""


def test_unsigned_current_register_on_a_signed_meter_is_a_warning_with_its_position() -> None:
    loaded = load_site_text(CUSTOM, "site.yaml")
    warnings = [(p.line, p.col, p.message) for p in loaded.warnings if "signed_currents" in p.message]
    message = (
        "uint32 cannot hold a negative current although `signed_currents` is true (use int32 if the meter signs it)"
    )
    assert warnings == [(9, 41, message)]
    assert loaded.site.meters[0].signed_currents is True


def test_unsigned_register_without_the_flag_is_fine() -> None:
    loaded = load_site_text(CUSTOM.replace("    signed_currents: true\n", ""), "site.yaml")
    assert not any("signed_currents" in p.message for p in loaded.warnings)


def test_check_config_prints_the_warning_with_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(CUSTOM, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"{path}:9:41: meters[0].registers.current_l1_a.type: warning: uint32 cannot hold" in err


def test_a_non_boolean_is_refused_with_its_position() -> None:
    with pytest.raises(ConfigError) as caught:
        load_site_text(SITE.format(extra="    signed_currents: 2\n"), "site.yaml")
    (problem,) = caught.value.problems
    assert (problem.line, problem.col) == (8, 22)
    assert problem.message.startswith("Input should be a valid boolean")


def test_load_site_reads_the_flag_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.format(extra="    signed_currents: true\n"), encoding="utf-8")
    assert load_site(path).site.meters[0].signed_currents is True
