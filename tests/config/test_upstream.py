"""`ocpp.upstream`: the operator's CSMS. The url follows the OCPP security profile, the passwords
file is read as `ocpp.passwords_file` is, a charger without an upstream password is a warning.
The refused files that need no file of their own are in invalid/ (upstream-*.yaml); the ones that
do are here, with files written for the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.chargers.auth import PasswordsError as ChargersPasswordsError
from controller.chargers.auth import parse_passwords
from controller.cli import main
from controller.config import ConfigError, load_site_text
from controller.config.passwords import PasswordsError, parse_password_file
from controller.model.site import Ocpp, Upstream

CA_FILE = Path(__file__).parent / "data" / "csms-ca.pem"
"""A self-signed certificate (no key): a CA file as an operator would give one."""

SITE = """\
site: {name: T, timezone: Europe/Paris}
grid: {limit_a: 100}
chargers:
  - {id: CP01, max_a: 32}
  - {id: CP02, max_a: 32}
  - {id: CP03, max_a: 32}
ocpp:
  security_profile: 0
  upstream:
UPSTREAM"""


def site(upstream: str) -> str:
    return SITE.replace("UPSTREAM", upstream)


def where(text: str, needle: str, after: str = "") -> tuple[int, int]:
    """1-based line and column where ``needle`` starts (its first occurrence after ``after``)."""
    at = text.index(needle, text.index(after) if after else 0)
    return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1


def upstream_problems(text: str, filename: str = "s.yaml") -> list[str]:
    try:
        loaded = load_site_text(text, filename)
    except ConfigError as exc:
        problems = exc.problems
    else:
        problems = list(loaded.warnings)
    return [p.format(filename) for p in problems if p.path[:2] == ("ocpp", "upstream")]


@pytest.fixture
def passwords(tmp_path: Path) -> Path:
    path = tmp_path / "upstream-passwords.yaml"
    path.write_text("CP01: 7c1f0e2a9b3d4c5e6f708192a3b4c5d6\nCP02: '0012345678901234'\nCP03: s3cret-s3cret-s3cret\n")
    return path


def test_a_full_section_reaches_the_model(passwords: Path) -> None:
    text = site(
        "    url: wss://csms.example.com/ocpp\n"
        f"    passwords_file: {passwords}\n"
        f"    ca_file: {CA_FILE}\n"
        "    offline_authorize: reject\n"
    )
    loaded = load_site_text(text, "s.yaml")
    assert loaded.site.ocpp.upstream == Upstream(
        url="wss://csms.example.com/ocpp",
        security_profile=2,
        passwords_file=str(passwords),
        ca_file=str(CA_FILE),
        offline_authorize="reject",
    )
    assert upstream_problems(text) == []


def test_defaults_are_profile_2_and_the_cache(passwords: Path) -> None:
    text = site(f"    url: wss://csms.example.com:8443/ocpp/v16\n    passwords_file: {passwords}\n")
    up = load_site_text(text).site.ocpp.upstream
    assert up is not None
    assert (up.security_profile, up.ca_file, up.offline_authorize) == (2, None, "cache")


def test_without_upstream_nothing_changes() -> None:
    text = SITE.replace("  upstream:\nUPSTREAM", "")
    assert load_site_text(text).site.ocpp == Ocpp(security_profile=0)
    assert load_site_text(text).site.ocpp.upstream is None


def test_profile_1_over_ws_with_passwords(passwords: Path) -> None:
    text = site(
        "    url: ws://10.1.2.3:9000/steve/websocket/CentralSystemService\n"
        f"    security_profile: 1\n    passwords_file: {passwords}\n"
    )
    up = load_site_text(text).site.ocpp.upstream
    assert up is not None and up.security_profile == 1
    assert upstream_problems(text) == []


def test_profile_0_is_a_lab_warning() -> None:
    text = site("    url: ws://localhost:9100/ocpp\n    security_profile: 0\n")
    assert load_site_text(text).site.ocpp.upstream == Upstream("ws://localhost:9100/ocpp", security_profile=0)
    line, col = where(text, "0\n", after="upstream:")
    assert upstream_problems(text) == [
        f"s.yaml:{line}:{col}: ocpp.upstream.security_profile: warning: profile 0: "
        "depotctl connects to the CSMS without a password (lab use only)"
    ]


def test_a_charger_without_an_upstream_password_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "pw.yaml"
    path.write_text("CP02: only-this-one-0001\nCP99: not-in-the-site-0001\n")
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {path}\n")
    line, col = where(text, str(path))
    assert upstream_problems(text) == [
        f"s.yaml:{line}:{col}: ocpp.upstream.passwords_file: warning: no upstream password for 2 chargers "
        f"(CP01, CP03) in {path}: the CSMS will refuse them"
    ]
    loaded = load_site_text(text)
    assert loaded.site.ocpp.upstream is not None


def test_an_empty_passwords_file_warns_about_every_charger(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {path}\n")
    (warning,) = upstream_problems(text)
    assert "no upstream password for 3 chargers (CP01, CP02, CP03)" in warning


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("CP01: [a, b]\n", ": entry 'CP01': the password must be a string"),
        ("- CP01\n- CP02\n", ": must be a mapping of charger id → password"),
        ("CP01: pass-word-0001\nCP02: 'unterminated\n", ":3: not valid YAML: found unexpected end of stream"),
        ("CP01: true\n", ": entry 'CP01': the password must be a string"),
    ],
)
def test_a_passwords_file_that_does_not_parse_is_an_error_at_its_line(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "pw.yaml"
    path.write_text(content)
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {path}\n")
    line, col = where(text, str(path))
    with pytest.raises(ConfigError) as caught:
        load_site_text(text, "s.yaml")
    (error,) = caught.value.errors
    assert error.format("s.yaml") == f"s.yaml:{line}:{col}: ocpp.upstream.passwords_file: {path}{problem}"
    assert "pass-word" not in error.message and "unterminated" not in error.message, "no password is echoed"


def test_the_ocpp_servers_passwords_are_read_the_same_way() -> None:
    """One format for both files: the server's parser is the config's, plus the hex forms."""
    text = "CP01: 7c1f0e2a9b3d4c5e6f708192a3b4c5d6\nCP02: plain-password-0001\n"
    plain = parse_password_file(text)
    assert plain == {"CP01": "7c1f0e2a9b3d4c5e6f708192a3b4c5d6", "CP02": "plain-password-0001"}
    forms = parse_passwords(text)
    assert {k: v[0] for k, v in forms.items()} == {k: v.encode() for k, v in plain.items()}
    assert forms["CP01"][1] == bytes.fromhex(plain["CP01"])
    assert ChargersPasswordsError is PasswordsError
    with pytest.raises(ChargersPasswordsError, match="must be a mapping"):
        parse_passwords("- a list\n")


def test_a_ca_file_that_is_not_a_certificate_is_an_error(tmp_path: Path, passwords: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {passwords}\n    ca_file: {bad}\n")
    line, col = where(text, str(bad))
    (error,) = upstream_problems(text)
    assert error.startswith(
        f"s.yaml:{line}:{col}: ocpp.upstream.ca_file: {bad} holds no usable CA certificate (PEM): "
    )
    missing = tmp_path / "absent.pem"
    (error,) = upstream_problems(text.replace(str(bad), str(missing)))
    assert error.endswith(f"ocpp.upstream.ca_file: cannot read {missing}: No such file or directory")


def test_a_simulation_reads_no_upstream_file(tmp_path: Path) -> None:
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {tmp_path / 'absent.yaml'}\n")
    with pytest.raises(ConfigError):
        load_site_text(text, "s.yaml")
    loaded = load_site_text(text, "s.yaml", offline=True)
    assert loaded.site.ocpp.upstream is not None


def test_every_error_of_one_section_is_reported_at_once(tmp_path: Path) -> None:
    text = site(f"    url: ws://csms.example.com/ocpp\n    ca_file: {tmp_path / 'ca.pem'}\n")
    messages = [m.split(": ", 2)[1:] for m in upstream_problems(text)]
    assert [path for path, _ in messages] == [
        "ocpp.upstream.passwords_file",
        "ocpp.upstream.url",
        "ocpp.upstream.ca_file",
    ]


def test_check_config_names_the_upstream(
    passwords: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.yaml"
    text = site(f"    url: wss://csms.example.com/ocpp\n    passwords_file: {passwords}\n")
    path.write_text(text, encoding="utf-8")
    assert main(["check-config", str(path)]) == 0
    assert (
        "upstream CSMS: wss://csms.example.com/ocpp/{charger id}, security profile 2 (TLS and HTTP Basic auth);"
        " id tags while it is unreachable: as the CSMS answered before"
    ) in capsys.readouterr().out.splitlines()
