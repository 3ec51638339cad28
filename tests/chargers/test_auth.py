"""Security profiles 0/1/2 at the handshake: unknown id, wrong/missing/raw-byte passwords, TLS."""

from __future__ import annotations

import base64
import ssl
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from controller.chargers.auth import Passwords, PasswordsError, parse_basic, parse_passwords
from hil.chargers import SimCharger, SimOptions
from hil.csms.tls import make_test_cert, openssl_available
from tests.chargers.conftest import eventually, make_site

HEX_KEY = "00112233445566778899aabbccddeeff0a1b2c3d"  # 20 bytes, some not valid UTF-8


def test_parse_basic_handles_raw_bytes() -> None:
    raw = b"CP1:" + bytes.fromhex(HEX_KEY)
    assert parse_basic("Basic " + base64.b64encode(raw).decode()) == (b"CP1", bytes.fromhex(HEX_KEY))
    assert parse_basic("Bearer abc") is None
    assert parse_basic("Basic !!!") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None
    assert parse_basic(None) is None


def test_passwords_accept_hex_as_text_or_bytes(tmp_path: Path) -> None:
    f = tmp_path / "pw.yaml"
    f.write_text(f"CP1: {HEX_KEY}\nCP2: short-secret\n")
    pw = Passwords.load(f)
    assert pw.check("CP1", HEX_KEY.encode()) and pw.check("CP1", bytes.fromhex(HEX_KEY))
    assert pw.check("CP2", b"short-secret") and not pw.check("CP2", b"short-secre")
    assert not pw.check("CP9", b"anything")
    f.write_text("CP1: [not, a, string]\n")
    assert pw.reload() is False and pw.check("CP2", b"short-secret")  # keeps the old table
    f.write_text("CP2: new-secret\n")
    assert pw.reload() is True and pw.check("CP2", b"new-secret") and not pw.check("CP1", HEX_KEY.encode())
    with pytest.raises(PasswordsError):
        parse_passwords("- a list\n")


async def _status_of(
    url: str, headers: dict[str, str] | None = None, proto: str = "ocpp1.6", tls: ssl.SSLContext | None = None
) -> int:
    try:
        async with connect(
            url, subprotocols=[Subprotocol(proto)], additional_headers=headers or {}, open_timeout=3, ssl=tls
        ):
            return 101
    except InvalidStatus as exc:
        return exc.response.status_code


def _basic(user: bytes, password: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(user + b":" + password).decode()}


async def test_security_profile_1(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    pwfile = tmp_path / "pw.yaml"
    pwfile.write_text(f"CP1: correct-horse-battery\nCP2: '{HEX_KEY}'\n")
    site = make_site([{"id": "CP1"}, {"id": "CP2"}], security_profile=1, passwords_file=str(pwfile))
    cs = await server_factory(site)
    base = f"ws://127.0.0.1:{cs.port}/ocpp"
    assert await _status_of(f"{base}/CP9", _basic(b"CP9", b"x")) == 404
    assert await _status_of(f"{base}/CP1") == 401
    assert await _status_of(f"{base}/CP1", _basic(b"CP1", b"wrong")) == 401
    assert await _status_of(f"{base}/CP1", _basic(b"CP2", b"correct-horse-battery")) == 401
    assert await _status_of(f"{base}/CP1", _basic(b"CP1", b"\xff\xfe\x00garbage")) == 401  # raw, not 500
    assert await _status_of(f"{base}/CP1", {"Authorization": "Basic %%%"}) == 401
    assert await _status_of(f"{base}/CP1", _basic(b"CP1", b"correct-horse-battery")) == 101
    assert await _status_of(f"{base}/CP2", _basic(b"CP2", bytes.fromhex(HEX_KEY))) == 101
    assert await _status_of(f"{base}/CP2", _basic(b"CP2", HEX_KEY.encode())) == 101
    assert await _status_of(f"{base}/CP1", _basic(b"CP1", b"correct-horse-battery"), proto="ocpp1.5") == 400
    c = cs.counters
    assert (
        c["refused_unknown_id"],
        c["refused_no_password"],
        c["refused_wrong_password"],
        c["refused_wrong_user"],
    ) == (1, 2, 2, 1)
    sim = SimCharger(SimOptions("CP2", password=bytes.fromhex(HEX_KEY)))
    await sim.connect(base)
    try:
        await eventually(lambda: cs.state("CP2").failsafe is not None, what="raw-key charger set up")
    finally:
        await sim.close()


async def test_security_profile_0_and_unknown_chargers(server_factory: Callable[..., Any]) -> None:
    cs = await server_factory(make_site(accept_unknown=True))
    base = f"ws://127.0.0.1:{cs.port}/ocpp"
    assert await _status_of(f"{base}/NEW-1") == 101
    assert await _status_of(f"{base}/CP1", _basic(b"CP1", b"pw")) == 401  # presents profile 1
    assert await _status_of(f"ws://127.0.0.1:{cs.port}/other/CP1") == 404
    assert cs.counters["refused_wrong_security_profile"] == 1


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    if not openssl_available():
        pytest.skip("openssl not installed")
    return make_test_cert(tmp_path)


async def test_security_profile_2_tls(
    server_factory: Callable[..., Any], tls_files: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = tls_files
    pwfile = tmp_path / "pw.yaml"
    pwfile.write_text("CP1: correct-horse-battery\n")
    site = make_site(security_profile=2, tls_cert_file=str(cert), tls_key_file=str(key), passwords_file=str(pwfile))
    cs = await server_factory(site)
    client = ssl.create_default_context(cafile=str(cert))
    sim = SimCharger(SimOptions("CP1", password="correct-horse-battery"))
    await sim.connect(f"wss://127.0.0.1:{cs.port}/ocpp", ssl_context=client)
    try:
        await eventually(lambda: cs.state("CP1").failsafe is not None, what="TLS charger set up")
    finally:
        await sim.close()
    with pytest.raises((InvalidHandshake, OSError, TimeoutError)):  # plain ws to a TLS port
        await _status_of(f"ws://127.0.0.1:{cs.port}/ocpp/CP1", _basic(b"CP1", b"correct-horse-battery"))
    old = ssl.create_default_context(cafile=str(cert))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, OSError)):
        async with connect(
            f"wss://127.0.0.1:{cs.port}/ocpp/CP1",
            ssl=old,
            subprotocols=[Subprotocol("ocpp1.6")],
            additional_headers=_basic(b"CP1", b"correct-horse-battery"),
            open_timeout=3,
        ):
            pass
    assert await _status_of(f"wss://127.0.0.1:{cs.port}/ocpp/CP1", tls=client) == 401
    assert await _status_of(f"wss://127.0.0.1:{cs.port}/ocpp/CP1", _basic(b"CP1", b"nope"), tls=client) == 401


async def test_passwords_reload_on_the_server(server_factory: Callable[..., Any], tmp_path: Path) -> None:
    pwfile = tmp_path / "pw.yaml"
    pwfile.write_text("CP1: old-password-123\n")
    cs = await server_factory(make_site(security_profile=1, passwords_file=str(pwfile)))
    url = f"ws://127.0.0.1:{cs.port}/ocpp/CP1"
    assert await _status_of(url, _basic(b"CP1", b"old-password-123")) == 101
    pwfile.write_text("CP1: new-password-456\n")
    assert await _status_of(url, _basic(b"CP1", b"new-password-456")) == 401  # not re-read yet
    assert cs.reload() is True
    assert await _status_of(url, _basic(b"CP1", b"new-password-456")) == 101
    assert await _status_of(url, _basic(b"CP1", b"old-password-123")) == 401
    pwfile.write_text(": : not yaml [")
    assert cs.reload() is False
    assert await _status_of(url, _basic(b"CP1", b"new-password-456")) == 101  # kept


def test_tls_context_refuses_old_protocols(tls_files: tuple[Path, Path]) -> None:
    from controller.chargers.server import server_ssl_context

    ctx = server_ssl_context(*tls_files)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2


async def test_the_chargers_subprotocol_choice_decides(server_factory: Callable[..., Any]) -> None:
    cs = await server_factory(make_site())
    url = f"ws://127.0.0.1:{cs.port}/ocpp/CP1"
    for offered, chosen in (
        (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1"),
        (["ocpp1.6", "ocpp2.0.1"], "ocpp1.6"),
        (["ocpp1.5", "ocpp1.6"], "ocpp1.6"),
    ):
        async with connect(url, subprotocols=[Subprotocol(p) for p in offered], open_timeout=3) as ws:
            assert ws.subprotocol == chosen
    try:
        async with connect(url, open_timeout=3):
            pytest.fail("connected without a subprotocol")
    except InvalidStatus as exc:
        assert exc.response.status_code == 400
