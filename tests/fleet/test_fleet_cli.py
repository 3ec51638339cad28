"""``depotctl token add``: the printed token authenticates; bad arguments exit 2 and write nothing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from controller.cli import main
from controller.fleet.tokens import Principal, load_tokens


def test_token_add_prints_a_token_that_authenticates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    assert (
        main(["token", "add", "acme-dispatch", "--role", "fleet", "--vehicles", "bus-1, bus-2", "--file", str(path)])
        == 0
    )
    out, err = capsys.readouterr()
    token = out.strip()
    assert out == token + "\n" and len(token) >= 43
    assert err == (
        f"depotctl: token 'acme-dispatch' (fleet, vehicles bus-1,bus-2) added to {path}; "
        "copy it now, it will not be shown again\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_tokens(path).authenticate(token) == Principal(
        "acme-dispatch", "fleet", vehicles=frozenset({"bus-1", "bus-2"})
    )

    assert main(["token", "add", "noc", "--role", "viewer", "--file", str(path)]) == 0
    viewer = capsys.readouterr().out.strip()
    tokens = load_tokens(path)
    assert tokens.authenticate(viewer) == Principal("noc", "viewer")
    assert tokens.authenticate(token) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["token"], "depotctl token: error: the following arguments are required: ACTION"),
        (["token", "add", "x", "--file", "F"], "the following arguments are required: --role"),
        (["token", "add", "x", "--role", "boss", "--file", "F"], "argument --role: invalid choice: 'boss'"),
        (
            ["token", "add", "x", "--role", "fleet", "--tenant", "a", "--vehicles", "b", "--file", "F"],
            "argument --vehicles: not allowed with argument --tenant",
        ),
        (["token", "add", "x", "--role", "fleet", "--vehicles", "a,,b", "--file", "F"], "expected vehicle ids"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    args = [str(tmp_path / "t.yaml") if a == "F" else a for a in args]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t.yaml").exists()


def test_a_scope_on_a_viewer_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    assert main(["token", "add", "x", "--role", "viewer", "--tenant", "acme", "--file", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "depotctl: error: a tenant or vehicles limit is only for role fleet; a viewer token sees every vehicle\n"
    )
    assert not path.exists()


def test_a_duplicate_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    assert main(["token", "add", "noc", "--role", "viewer", "--file", str(path)]) == 0
    capsys.readouterr()
    before = path.read_bytes()
    assert main(["token", "add", "noc", "--role", "admin", "--file", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and f"{path}: a token named 'noc' already exists" in err
    assert path.read_bytes() == before


def test_a_broken_tokens_file_is_reported_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("- name: x\n  role: boss\n  token_sha256: " + "0" * 64 + "\n", encoding="utf-8")
    assert main(["token", "add", "root", "--role", "admin", "--file", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{path}:2:9: [0].role: unknown role 'boss' (roles: viewer, fleet, admin)\n{path}: 1 error, nothing written\n"
    )


def test_an_unwritable_place_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "no-such-dir" / "tokens.yaml"
    assert main(["token", "add", "root", "--role", "admin", "--file", str(path)]) == 2
    assert capsys.readouterr().err == f"depotctl: cannot write {path}: No such file or directory\n"
