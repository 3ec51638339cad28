"""API tokens: the file's checks with file:line, authentication, scope rules, adding a token."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from controller.config.problems import ConfigError
from controller.fleet.tokens import (
    Principal,
    TokenFile,
    add_token,
    load_tokens,
    new_token,
    parse_tokens,
    token_sha256,
)
from controller.model import Grid, Site, SiteInfo, Vehicle

SITE = Site(
    site=SiteInfo("test depot", "Europe/Amsterdam"),
    grid=Grid(limit_a=400.0),
    vehicles=(
        Vehicle("bus-1", tenant="acme"),
        Vehicle("bus-2", tenant="beta"),
        Vehicle("van-1", tenant="acme"),
        Vehicle("spare"),
    ),
)
BUS1, BUS2, VAN1, SPARE = SITE.vehicles
H1, H2, H3 = (token_sha256(t) for t in ("one", "two", "three"))


def test_authenticate() -> None:
    text = f"""
# the depot's tokens
- name: noc
  role: viewer
  token_sha256: {H1.upper()}
- name: acme
  role: fleet
  tenant: acme
  token_sha256: {H2}
- name: ops
  role: fleet
  vehicles: [bus-1, "0012"]
  token_sha256: {H3}
"""
    tokens = parse_tokens(text, "tokens.yaml")
    assert tokens.authenticate("one") == Principal("noc", "viewer")
    assert tokens.authenticate("two") == Principal("acme", "fleet", tenant="acme")
    assert tokens.authenticate("three") == Principal("ops", "fleet", vehicles=frozenset({"bus-1", "0012"}))
    assert tokens.authenticate("four") is None
    assert tokens.authenticate("") is None
    assert tokens.authenticate(H1) is None  # the hash itself is not a token
    assert [e.line for e in tokens.entries] == [3, 6, 10]
    assert tokens.unknown_scope(SITE) == ["tokens.yaml:10: token 'ops': vehicle '0012' is not in the site file"]


def test_an_empty_file_has_no_tokens() -> None:
    assert parse_tokens("# nothing yet\n").entries == ()
    assert TokenFile("x").authenticate("one") is None


def formatted(text: str) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_tokens(text, "tokens.yaml")
    return [p.format(exc.value.filename) for p in exc.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: x\n",
            [
                "tokens.yaml:1:1: (top level): the tokens file must be a list of entries "
                "(- name: …, role: …, token_sha256: …)"
            ],
        ),
        ("- just-a-token\n", ["tokens.yaml:1:3: [0]: each entry must be a mapping with name, role and token_sha256"]),
        (
            "- name: x\n  role: [viewer\n",
            [
                "tokens.yaml:3:1: (top level): YAML syntax: while parsing a flow sequence: "
                "expected ',' or ']', but got '<stream end>'"
            ],
        ),
        (
            f"- name: x\n  role: boss\n  token_sha256: {H1}\n",
            ["tokens.yaml:2:9: [0].role: unknown role 'boss' (roles: viewer, fleet, admin)"],
        ),
        (
            "- role: viewer\n",
            ["tokens.yaml:1:3: [0]: name is required", "tokens.yaml:1:3: [0]: token_sha256 is required"],
        ),
        (f"- name: ''\n  role: viewer\n  token_sha256: {H1}\n", ["tokens.yaml:1:9: [0].name: name is required"]),
        (
            "- name: x\n  role: viewer\n  token_sha256: s3cr3t\n",
            [
                "tokens.yaml:3:17: [0].token_sha256: must be the token's SHA-256 as 64 hex digits "
                "(depotctl token add writes it), never the token itself"
            ],
        ),
        (
            f"- name: x\n  role: viewer\n  token: abc\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:3: [0].token: unknown field 'token' (fields: name, role, token_sha256, vehicles, tenant)"],
        ),
        (
            f"- name: x\n  role: viewer\n  tenant: acme\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:3: [0].tenant: tenant limits a fleet token; a viewer token sees every vehicle"],
        ),
        (
            f"- name: x\n  role: admin\n  vehicles: [bus-1]\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:3: [0].vehicles: vehicles limits a fleet token; an admin token sees every vehicle"],
        ),
        (
            f"- name: x\n  role: fleet\n  tenant: acme\n  vehicles: [bus-1]\n  token_sha256: {H1}\n",
            ["tokens.yaml:4:3: [0].vehicles: give tenant or vehicles, not both"],
        ),
        (
            f"- name: x\n  role: fleet\n  vehicles: bus-1\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:13: [0].vehicles: must be a non-empty list of vehicle ids, e.g. [bus-12, bus-14]"],
        ),
        (
            f"- name: x\n  role: fleet\n  vehicles: [bus-1, '']\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:21: [0].vehicles[1]: must be a vehicle id"],
        ),
        (
            f"- name: x\n  role: fleet\n  tenant:\n  token_sha256: {H1}\n",
            ["tokens.yaml:3:10: [0].tenant: tenant is empty"],
        ),
        (
            f"- name: x\n  role: [fleet]\n  token_sha256: {H1}\n",
            ["tokens.yaml:2:9: [0].role: role must be text"],
        ),
        (
            f"- {{name: a, role: viewer, token_sha256: {H1}}}\n- {{name: a, role: admin, token_sha256: {H2}}}\n"
            f"- {{name: b, role: admin, token_sha256: {H1}}}\n",
            [
                "tokens.yaml:2:10: [1].name: name 'a' is already used by the entry at line 1",
                "tokens.yaml:3:40: [2].token_sha256: the same token as the entry at line 1",
            ],
        ),
    ],
)
def test_load_errors_name_file_line_and_field(text: str, expected: list[str]) -> None:
    assert formatted(text) == expected


def test_load_tokens_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"- name: x\n  role: admin\n  token_sha256: {H1}\n", encoding="utf-8")
    assert load_tokens(path).authenticate("one") == Principal("x", "admin")
    with pytest.raises(FileNotFoundError):
        load_tokens(tmp_path / "missing.yaml")


# --- scope ----------------------------------------------------------------------------------------

VIEWER = Principal("v", "viewer")
ADMIN = Principal("a", "admin")
FLEET_ALL = Principal("f", "fleet")
FLEET_ACME = Principal("f", "fleet", tenant="acme")
FLEET_LIST = Principal("f", "fleet", vehicles=frozenset({"bus-2", "spare"}))


@pytest.mark.parametrize(
    ("who", "read", "write"),
    [
        (VIEWER, ["bus-1", "bus-2", "van-1", "spare"], []),
        (ADMIN, ["bus-1", "bus-2", "van-1", "spare"], ["bus-1", "bus-2", "van-1", "spare"]),
        (FLEET_ALL, ["bus-1", "bus-2", "van-1", "spare"], ["bus-1", "bus-2", "van-1", "spare"]),
        (FLEET_ACME, ["bus-1", "van-1"], ["bus-1", "van-1"]),
        (FLEET_LIST, ["bus-2", "spare"], ["bus-2", "spare"]),
    ],
)
def test_scope_rules(who: Principal, read: list[str], write: list[str]) -> None:
    assert [v.id for v in SITE.vehicles if who.can_read(v)] == read
    assert [v.id for v in who.visible_vehicles(SITE)] == read
    assert [v.id for v in SITE.vehicles if who.can_write_vehicle(v)] == write
    assert who.is_admin == (who.role == "admin")
    assert who.can_write == (who.role != "viewer")


# --- adding -----------------------------------------------------------------------------------------


def test_new_tokens_are_long_and_distinct() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100 and all(len(t) >= 43 for t in tokens)


def test_add_token_creates_the_file_private(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    old_umask = os.umask(0)
    try:
        token = add_token(path, "acme", "fleet", tenant="acme")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token not in path.read_text(encoding="utf-8")
    assert load_tokens(path).authenticate(token) == Principal("acme", "fleet", tenant="acme")
    second = add_token(path, "ops", "fleet", vehicles=["bus-2", "0012"])
    tokens = load_tokens(path)
    assert tokens.authenticate(token) == Principal("acme", "fleet", tenant="acme")
    assert tokens.authenticate(second) == Principal("ops", "fleet", vehicles=frozenset({"bus-2", "0012"}))


def test_add_token_keeps_an_existing_files_mode_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(
        f"# managed by hand\n- name: noc  # the wall display\n  role: viewer\n  token_sha256: {H1}", "utf-8"
    )
    path.chmod(0o640)
    token = add_token(path, "root", "admin")
    text = path.read_text(encoding="utf-8")
    assert text.startswith(
        f"# managed by hand\n- name: noc  # the wall display\n  role: viewer\n  token_sha256: {H1}\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load_tokens(path).authenticate(token) == Principal("root", "admin")


def test_add_token_rewrites_a_flow_style_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text(f"[{{name: noc, role: viewer, token_sha256: {H1}}}]\n", encoding="utf-8")
    token = add_token(path, "root", "admin")
    tokens = load_tokens(path)
    assert tokens.names() == ["noc", "root"] and tokens.authenticate(token) == Principal("root", "admin")
    assert tokens.authenticate("one") == Principal("noc", "viewer")


def test_add_token_refuses_a_duplicate_name_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    add_token(path, "noc", "viewer")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="a token named 'noc' already exists"):
        add_token(path, "noc", "admin")
    assert path.read_bytes() == before


def test_add_token_refuses_a_broken_file_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    path.write_text("- name: x\n  role: boss\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        add_token(path, "root", "admin")
    assert path.read_text(encoding="utf-8") == "- name: x\n  role: boss\n"


@pytest.mark.parametrize(
    ("name", "role", "tenant", "vehicles", "reason"),
    [
        ("", "admin", None, None, "the name must be printable text without surrounding spaces, got ''"),
        (" x", "admin", None, None, "the name must be printable text without surrounding spaces, got ' x'"),
        ("x", "boss", None, None, "unknown role 'boss' (roles: viewer, fleet, admin)"),
        (
            "x",
            "viewer",
            "acme",
            None,
            "a tenant or vehicles limit is only for role fleet; a viewer token sees every vehicle",
        ),
        ("x", "fleet", "acme", ["bus-1"], "give a tenant or vehicles, not both"),
        ("x", "fleet", " ", None, "the tenant is empty"),
        ("x", "fleet", None, [], "the vehicles list must name at least one vehicle and no empty ones"),
        ("x", "fleet", None, ["bus-1", ""], "the vehicles list must name at least one vehicle and no empty ones"),
    ],
)
def test_add_token_refuses_bad_arguments(
    tmp_path: Path, name: str, role: str, tenant: str | None, vehicles: list[str] | None, reason: str
) -> None:
    path = tmp_path / "tokens.yaml"
    with pytest.raises(ValueError) as exc:
        add_token(path, name, role, tenant=tenant, vehicles=vehicles)
    assert str(exc.value) == reason
    assert not path.exists()
