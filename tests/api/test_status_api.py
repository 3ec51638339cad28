"""The status API served by real uvicorn inside the test's event loop, fetched over loopback."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import socket
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from controller import __version__
from controller.api.app import STATUS_PATH, StatusUnavailable, create_app
from controller.api.models import StatusResponse, UncontrolledInfo
from controller.api.server import ApiBindError, ApiServer
from controller.config.listen import local_url, parse_listen
from tests.api.samples import NOW, aget, full_status, serving, sparse_status

Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]

REJECTED = "rejected a profile: Rejected"


def safety_status(*, failsafe: bool = True) -> StatusResponse:
    """:func:`full_status` with the chargers' control state: CP-01 uncontrolled (it rejects its profiles)
    and 2 min behind, DC-150 controlled and in time, CP-09 (offline) without a confirmed fail-safe
    profile and last measured 75 s ahead."""
    status = full_status(failsafe=failsafe)
    cp01, dc150, cp09 = status.chargers
    chargers = [
        cp01.model_copy(update={
            "uncontrolled": UncontrolledInfo(reason=REJECTED, since=NOW - timedelta(minutes=5)),
            "clock_offset_s": -120.0, "failsafe_installed": True}),
        dc150.model_copy(update={"clock_offset_s": 0.4, "failsafe_installed": True}),
        cp09.model_copy(update={"clock_offset_s": 75.0, "failsafe_installed": False}),
    ]
    return status.model_copy(update={"chargers": chargers})


async def test_status_round_trips() -> None:
    samples = [full_status(), sparse_status(), safety_status()]
    current = iter(samples)
    async with serving(create_app(lambda: next(current))) as server:
        answers = [await aget(server.url + STATUS_PATH) for _ in samples]
    for sample, (code, headers, body) in zip(samples, answers, strict=True):
        assert code == 200
        assert headers["content-type"] == "application/json"
        assert "server" not in {k.lower() for k in headers}
        assert StatusResponse.model_validate_json(body) == sample
        assert json.loads(body)["now"] == "2024-03-12T14:30:05+01:00"  # offsets kept on the wire


async def test_the_provider_is_asked_on_every_request() -> None:
    calls: list[int] = []

    def provider() -> StatusResponse:
        calls.append(1)
        return full_status(failsafe=len(calls) == 1)

    async with serving(create_app(provider)) as server:
        first = json.loads((await aget(server.url + STATUS_PATH))[2])
        second = json.loads((await aget(server.url + STATUS_PATH))[2])
    assert (first["failsafe"]["active"], second["failsafe"]["active"]) == (True, False)


async def test_503_when_the_provider_raises() -> None:
    cases: list[tuple[Exception, str]] = [
        (StatusUnavailable("depotctl is starting: waiting for the first meter reading"),
         "depotctl is starting: waiting for the first meter reading"),
        (StatusUnavailable(), "depotctl is starting"),
        (KeyError("grid"), "status not available: KeyError: 'grid'"),
    ]
    errors = iter(error for error, _ in cases)

    def provider() -> StatusResponse:
        raise next(errors)

    async with serving(create_app(provider)) as server:
        answers = [await aget(server.url + STATUS_PATH) for _ in cases]
    for (_, detail), (code, headers, body) in zip(cases, answers, strict=True):
        assert code == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body) == {"detail": detail}


async def test_openapi_document_no_docs_ui_and_json_404() -> None:
    async with serving(create_app(full_status)) as server:
        code, _, body = await aget(server.url + "/openapi.json")
        docs = [(await aget(server.url + path))[0] for path in ("/docs", "/redoc")]
        missing = await aget(server.url + "/api/v1/nope")
    assert code == 200
    doc = json.loads(body)
    assert doc["info"]["title"] == "depotctl"
    assert doc["info"]["version"] == __version__
    assert "/api/v1/status" in doc["paths"]
    responses = doc["paths"]["/api/v1/status"]["get"]["responses"]
    assert {"200", "503"} <= set(responses)
    limit = doc["components"]["schemas"]["GridInfo"]["properties"]["limit_a"]
    assert "[A]" in limit["description"]  # units reach the OpenAPI document
    assert docs == [404, 404]
    assert missing[0] == 404 and json.loads(missing[2]) == {"detail": "Not Found"}


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
async def test_daemon_signal_handlers_survive_the_server(signum: int) -> None:
    """uvicorn must not capture signals: the daemon's loop handlers fire while it serves, the
    server keeps serving, and stopping it re-raises nothing."""
    loop = asyncio.get_running_loop()
    fired = asyncio.Event()
    loop.add_signal_handler(signum, fired.set)
    try:
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        server = ApiServer(create_app(full_status), "127.0.0.1:0")
        await server.start()
        try:
            assert {s: signal.getsignal(s) for s in before} == before
            os.kill(os.getpid(), signum)
            await asyncio.wait_for(fired.wait(), timeout=2)
            assert (await aget(server.url + STATUS_PATH))[0] == 200  # still serving
        finally:
            await server.stop(timeout_s=2)
        fired.clear()
        await asyncio.sleep(0.05)
        assert not fired.is_set()  # no signal re-raised on stop
        assert {s: signal.getsignal(s) for s in before} == before
    finally:
        loop.remove_signal_handler(signum)


async def test_occupied_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(create_app(full_status), f"127.0.0.1:{port}")
        with pytest.raises(ApiBindError, match=rf"cannot listen on 127\.0\.0\.1:{port}: ") as err:
            await server.start()
    assert err.value.errno == errno.EADDRINUSE
    assert not server.running
    await server.stop()  # harmless after a failed start


async def test_an_address_not_on_this_host_is_a_clear_error() -> None:
    server = ApiServer(create_app(full_status), "192.0.2.1:0")  # TEST-NET-1, never local
    with pytest.raises(ApiBindError, match=r"cannot listen on 192\.0\.2\.1:0: "):
        await server.start()


async def test_stop_is_bounded_with_a_request_in_flight() -> None:
    entered = asyncio.Event()

    async def hanging_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        entered.set()
        await asyncio.sleep(30)

    server = ApiServer(hanging_app, "127.0.0.1:0")
    await server.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
    await writer.drain()
    await asyncio.wait_for(entered.wait(), timeout=2)

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(server.stop(timeout_s=0.6), timeout=3)
    assert loop.time() - started < 0.9
    assert not server.running
    assert await asyncio.wait_for(reader.read(), timeout=1) == b""  # connection closed
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.port)
    await server.stop()  # idempotent


async def test_stop_is_quick_when_idle_and_a_noop_before_start() -> None:
    server = ApiServer(create_app(full_status), "127.0.0.1:0")
    await server.stop()
    await server.start()
    assert server.running and server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"
    loop = asyncio.get_running_loop()
    started = loop.time()
    await server.stop()
    assert loop.time() - started < 1.0
    with pytest.raises(RuntimeError, match="twice"):
        await server.start()


async def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    async with serving(create_app(full_status), "[::1]:0") as server:
        assert server.url == f"http://[::1]:{server.port}"
        assert (await aget(server.url + STATUS_PATH))[0] == 200


@pytest.mark.parametrize(
    ("listen", "expected", "url"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080), "http://127.0.0.1:8080"),
        ("0.0.0.0:0", ("0.0.0.0", 0), "http://127.0.0.1:0"),
        ("[::1]:8080", ("::1", 8080), "http://[::1]:8080"),
        ("[::]:8080", ("::", 8080), "http://[::1]:8080"),
        (":8080", ("", 8080), "http://127.0.0.1:8080"),
        ("depot-pc.local:80", ("depot-pc.local", 80), "http://depot-pc.local:80"),
    ],
)
def test_parse_listen_and_local_url(listen: str, expected: tuple[str, int], url: str) -> None:
    assert parse_listen(listen, "api.listen") == expected
    assert local_url(*expected) == url


@pytest.mark.parametrize("listen", ["8080", "host:port", "127.0.0.1:70000", "::1:8080"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match=r"api\.listen"):
        parse_listen(listen, "api.listen")


async def test_the_real_daemon_says_which_chargers_are_under_control(tmp_path: Path) -> None:
    """The daemon against the hil rig: a charger that rejects every profile and then reboots (so its
    fail-safe profile is gone and cannot be re-installed) shows as uncontrolled, with the reason, and
    without a confirmed fail-safe profile; a charger whose clock runs 2 min ahead shows that offset."""
    from tests.daemon.rigged import rigged, steady, wait_async

    async with rigged(tmp_path) as r:
        await steady(r)
        before = {c["id"]: c for c in (await r.status())["chargers"]}
        assert before["CP07"]["uncontrolled"] is None and before["CP07"]["failsafe_installed"] is True
        assert abs(before["CP08"]["clock_offset_s"]) < 5.0

        r.rig.sim("CP07").o.reject_profiles = True
        r.rig.sim("CP08").o.clock_offset_s = 120.0
        await asyncio.wait_for(r.rig.sim("CP07").reboot(), 20)

        async def shown() -> bool:
            chargers = {c["id"]: c for c in (await r.status())["chargers"]}
            cp07, cp08 = chargers["CP07"], chargers["CP08"]
            return (cp07["uncontrolled"] is not None and cp07["failsafe_installed"] is False
                    and cp08["clock_offset_s"] is not None and cp08["clock_offset_s"] > 100.0)

        await wait_async(shown, 30, "CP07 uncontrolled without a fail-safe profile, CP08's clock 2 min ahead")
        status = StatusResponse.model_validate(await r.status())
    chargers = {c.id: c for c in status.chargers}
    cp07, cp08 = chargers["CP07"], chargers["CP08"]
    assert cp07.uncontrolled is not None and "reject" in cp07.uncontrolled.reason.lower()
    assert cp07.uncontrolled.since <= status.now
    assert cp08.clock_offset_s == pytest.approx(120.0, abs=5.0)
    assert cp08.uncontrolled is None and cp08.failsafe_installed is True
