"""``depotctl status`` against a real API server in the test's loop (the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.app import create_app
from controller.cli import main
from controller.client.api import url_for_listen
from tests.api.samples import FAILSAFE_REASON, full_status, serving
from tests.api.test_status_api import REJECTED, safety_status

Scope = dict[str, Any]


async def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``depotctl …`` in a thread (the server answers from this loop), bounded."""

    def call() -> int:
        try:
            return main(argv)
        except SystemExit as exc:  # argparse
            return int(exc.code or 0)

    code = await asyncio.wait_for(asyncio.to_thread(call), timeout=8)
    out, err = capsys.readouterr()
    return code, out, err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def json_app(
    body: bytes | list[bytes], *, status: int = 200, seen: list[Scope] | None = None, delay_s: float = 0.0
) -> Any:
    """A bare ASGI app answering every request with ``body`` (or ``body[0]`` at the time of the
    request); records scopes in ``seen``."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        answer = body[0] if isinstance(body, list) else body
        if seen is not None:
            seen.append(scope)
        await asyncio.sleep(delay_s)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    return app


def site_file(tmp_path: Path, listen: str) -> Path:
    doc = {
        "version": 1,
        "site": {"name": "test depot", "timezone": "UTC"},
        "grid": {"limit_a": 400},
        "chargers": [{"id": "CP1", "max_a": 32}],
        "failsafe": {"charger_a": 6, "dc_kw": 10},
        "ocpp": {"listen": "127.0.0.1:9000", "security_profile": 0},
        "api": {"listen": listen},
    }
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


async def test_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(create_app(full_status)) as server:
        code, out, err = await run(["status", "--url", server.url], capsys)
    assert (code, err) == (0, "")
    assert "FAIL-SAFE" in out and FAILSAFE_REASON in out
    for charger in ("CP-01", "DC-150", "CP-09"):
        assert charger in out
    assert max(len(line) for line in out.splitlines()) <= 120


async def test_human_output_says_which_chargers_are_under_control(capsys: pytest.CaptureFixture[str]) -> None:
    """Uncontrolled (and why, since when), fail-safe profile confirmed or not, the measured clock offset."""
    async with serving(create_app(safety_status)) as server:
        code, out, err = await run(["status", "--url", server.url], capsys)
    assert (code, err) == (0, "")
    assert max(len(line) for line in out.splitlines()) <= 120
    rows = chargers_rows(out)
    assert "UNCONTROLLED" in rows["CP-01"] and "fail-safe ✓" in rows["CP-01"] and "clock -120 s" in rows["CP-01"]
    assert "UNCONTROLLED" not in rows["DC-150"] and "fail-safe ✓" in rows["DC-150"] and "clock +0.4 s" in rows["DC-150"]
    assert "fail-safe ✗" in rows["CP-09"] and "clock +75 s" in rows["CP-09"]
    notes = [line.strip() for line in out.splitlines() if line.startswith("⚠")]
    assert notes == [
        f"⚠ CP-01 UNCONTROLLED since 14:25:05 (5 min ago): {REJECTED} · budgeted at its draw, up to its maximum",
        "⚠ CP-01 clock 120 s behind ours · covered in its profiles; set its time source (NTP)",
        "⚠ CP-09 has no confirmed fail-safe profile · budgeted at its maximum; unlimited should depotctl stop",
        "⚠ CP-09 clock 75 s ahead of ours · covered in its profiles; set its time source (NTP)",
    ]


async def test_human_output_without_control_state(capsys: pytest.CaptureFixture[str]) -> None:
    """A daemon that reports no control state (an older one): no marks, no notes, nothing invented."""
    async with serving(create_app(full_status)) as server:
        code, out, _ = await run(["status", "--url", server.url], capsys)
    assert code == 0
    assert "UNCONTROLLED" not in out and "fail-safe ✓" not in out and "fail-safe ✗" not in out
    assert "clock —" in chargers_rows(out)["CP-01"]
    assert not [line for line in out.splitlines() if line.startswith("⚠")]


def chargers_rows(out: str) -> dict[str, str]:
    """The chargers table of the human output: charger id → the text of its lines."""
    table = out[out.index("Chargers"):out.index("Meters")]
    rows: dict[str, str] = {}
    current = ""
    for line in table.splitlines():
        first = line[:10].strip()
        if first in ("CP-01", "DC-150", "CP-09"):
            current = first
        if current and not line.startswith("⚠"):
            rows[current] = rows.get(current, "") + "\n" + line
    return rows


async def test_json_output_is_the_body_once(capsys: pytest.CaptureFixture[str]) -> None:
    sample = full_status()
    async with serving(create_app(lambda: sample)) as server:
        code, out, err = await run(["status", "--url", server.url + "/", "--json"], capsys)
    assert (code, err) == (0, "")
    assert json.loads(out) == sample.model_dump(mode="json")  # one document: two would not parse
    assert out.endswith("}\n")


async def test_address_from_the_site_file_wildcard_to_loopback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with serving(create_app(full_status)) as server:
        path = site_file(tmp_path, f"0.0.0.0:{server.port}")
        code, out, _ = await run(["status", "--config", str(path), "--json"], capsys)
    assert code == 0
    assert json.loads(out)["site"] == "Bus Depot Nord"


async def test_token_is_sent_when_set(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[Scope] = []
    body = full_status().model_dump_json().encode()
    monkeypatch.setenv("DEPOTCTL_TOKEN", "s3cret")
    async with serving(json_app(body, seen=seen)) as server:
        code, _, _ = await run(["status", "--url", server.url, "--json"], capsys)
        monkeypatch.delenv("DEPOTCTL_TOKEN")
        await run(["status", "--url", server.url, "--json"], capsys)
    assert code == 0
    assert [s["path"] for s in seen] == ["/api/v1/status", "/api/v1/status"]
    headers = [dict(s["headers"]) for s in seen]
    assert headers[0][b"authorization"] == b"Bearer s3cret"
    assert b"authorization" not in headers[1]


async def test_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run(["status", "--url", url], capsys)
    assert (code, out) == (1, "")
    assert err == f"depotctl is not running: nothing answers on {url} (connection refused)\n"


async def test_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(json_app(b"{}", delay_s=0.6)) as server:
        code, _, err = await run(["status", "--url", server.url, "--timeout", "0.2"], capsys)
    assert code == 1
    assert err == f"depotctl status: no answer from {server.url} within 0.2 s\n"


async def test_http_error_with_detail(capsys: pytest.CaptureFixture[str]) -> None:
    def starting() -> Any:
        raise RuntimeError("no meter reading yet")

    async with serving(create_app(starting)) as server:
        code, _, err = await run(["status", "--url", server.url], capsys)
    assert code == 1
    assert err == (
        f"depotctl status: {server.url}/api/v1/status answered HTTP 503 Service Unavailable: "
        "status not available: RuntimeError: no meter reading yet\n"
    )


async def test_unauthorised_hints_at_the_token(capsys: pytest.CaptureFixture[str]) -> None:
    async with serving(json_app(b'{"detail": "missing token"}', status=401)) as server:
        code, _, err = await run(["status", "--url", server.url], capsys)
    assert code == 1
    assert "HTTP 401 Unauthorized: missing token (set DEPOTCTL_TOKEN to an API token)" in err


def _set_kind(d: dict[str, Any]) -> None:
    d["chargers"][0]["kind"] = "ev"


def _drop_failsafe(d: dict[str, Any]) -> None:
    del d["failsafe"]


def _two_phases(d: dict[str, Any]) -> None:
    d["grid"]["current_a"] = [1.0, 2.0]


async def test_body_that_is_not_a_status(capsys: pytest.CaptureFixture[str]) -> None:
    cases: list[tuple[Callable[[dict[str, Any]], None] | None, str]] = [
        (_set_kind, "sent an invalid status: chargers.0.kind: Input should be 'ac' or 'dc'"),
        (_drop_failsafe, "sent an invalid status: failsafe: Field required"),
        (_two_phases, "sent an invalid status: grid.current_a: List should have at least 3 items"),
        (None, "did not answer with JSON"),
    ]
    body = [b""]
    async with serving(json_app(body)) as server:
        for mutate, needle in cases:
            data = full_status().model_dump(mode="json")
            if mutate is not None:
                mutate(data)
            body[0] = json.dumps(data).encode() if mutate is not None else b"<html>proxy error</html>"
            code, out, err = await run(["status", "--url", server.url, "--json"], capsys)
            assert (code, out) == (1, ""), needle
            assert needle in err and len(err.splitlines()) == 1, err


async def test_something_that_does_not_speak_http(capsys: pytest.CaptureFixture[str]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\x01 modbus?\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        code, _, err = await run(["status", "--url", f"http://127.0.0.1:{port}"], capsys)
    assert code == 1
    assert err.startswith(f"depotctl status: http://127.0.0.1:{port} did not answer in HTTP")


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["status", "--url", "http://[::1"], "argument --url: 'http://[::1': Invalid IPv6 URL"),
        (["status", "--url", "http://127.0.0.1:99999"], "argument --url: 'http://127.0.0.1:99999': Port out of range"),
        (["status", "--config", "/nonexistent/site.yaml"], "depotctl: cannot read /nonexistent/site.yaml"),
        (["status", "--url", "localhost:8080"], "argument --url: expected http://HOST:PORT"),
        (["status", "--timeout", "0"], "argument --timeout: must be more than 0"),
        (["status", "--config", "a.yaml", "--url", "http://x"], "not allowed with argument --config"),
    ],
)
async def test_bad_arguments_exit_2(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run(argv, capsys)
    assert (code, out) == (2, "")
    assert needle in err


async def test_invalid_site_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = site_file(tmp_path, "no-port")
    code, out, err = await run(["status", "--config", str(path)], capsys)
    assert (code, out) == (2, "")
    assert "api.listen: expected HOST:PORT, got 'no-port'" in err
    assert "status not asked" in err


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("0.0.0.0:8080", "http://127.0.0.1:8080"),
        ("[::]:18080", "http://[::1]:18080"),
        ("[::1]:8080", "http://[::1]:8080"),
        ("10.1.2.3:80", "http://10.1.2.3:80"),
    ],
)
def test_url_for_listen(listen: str, url: str) -> None:
    assert url_for_listen(listen) == url
