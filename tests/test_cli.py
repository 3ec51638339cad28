"""The command line: bad arguments and unreadable files give one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import main
from controller.config.schema import SiteFile


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits on bad arguments
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["check-config"], "the following arguments are required: FILE"),
        (["check-config", "a.yaml", "b.yaml"], "unrecognized arguments: b.yaml"),
        (["schema", "--pretty"], "unrecognized arguments: --pretty"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(argv, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert needle in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check-config", str(tmp_path / "nope.yaml")], capsys)
    assert (code, out) == (2, "")
    assert err == f"depotctl: cannot read {tmp_path / 'nope.yaml'}: No such file or directory\n"


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["check-config", str(tmp_path)], capsys)
    assert code == 2
    assert err.startswith(f"depotctl: cannot read {tmp_path}: ") and "Traceback" not in err


def test_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    code, _, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "cannot read" in err


def test_check_config_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("site: {name: T, timezone: UTC}\ngrid: {limit_a: -1}\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, _ = run(["check-config", str(path)], capsys)
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_warnings_do_not_fail_the_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(
        "site: {name: T, timezone: UTC}\ngrid: {limit_a: 100}\nocpp: {security_profile: 0}\n"
        "circuits: [{id: f, limit_a: 160}]\n"
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0
    expected = "circuits[0].limit_a: warning: 160 A is above its parent 'grid' (100 A); the parent still limits"
    assert f"{path}:4:29: {expected}" in err
    assert out.rstrip().endswith("OK with 3 warnings")


def test_schema_is_json_schema_of_the_site_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"].endswith("2020-12/schema")
    assert set(schema["properties"]) == set(SiteFile.model_fields)
    assert schema["required"] == ["site", "grid"]
    assert schema["additionalProperties"] is False
    charger = schema["$defs"]["ChargerSection"]
    assert charger["additionalProperties"] is False
    assert charger["properties"]["phases"]["enum"] == [1, 3]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("depotctl ")
