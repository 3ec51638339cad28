"""The /metrics endpoint: binding, paths, stopping."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

import pytest

from controller.config.listen import parse_listen
from controller.metrics import DepotMetrics, observe_failsafe, start_metrics_server
from controller.model import Metrics
from tests.metrics.scrape import scrape


@pytest.mark.parametrize(("listen", "expected"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("[::1]:9464", ("::1", 9464)),
    (":9464", ("", 9464)),
    (Metrics().listen, ("127.0.0.1", 9464)),
])
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen, "metrics.listen") == expected


@pytest.mark.parametrize("listen", ["9464", "host:port", "127.0.0.1:70000"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match=r"metrics\.listen"):
        parse_listen(listen, "metrics.listen")


def test_serves_metrics_only_at_its_path_and_stops() -> None:
    m = DepotMetrics()
    server = start_metrics_server(m.registry, "127.0.0.1:0")
    try:
        assert server.port > 0 and server.url.endswith(f":{server.port}/metrics")
        observe_failsafe(m, True, "starting")
        assert scrape(server.url).value("depot_failsafe_active") == 1.0
        observe_failsafe(m, False)
        assert scrape(server.url).value("depot_failsafe_active") == 0.0  # live, not a copy
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=5)
        assert err.value.code == 404
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_port_in_use_is_an_error() -> None:
    m = DepotMetrics()
    server = start_metrics_server(m.registry, "127.0.0.1:0")
    try:
        with pytest.raises(OSError):
            start_metrics_server(DepotMetrics().registry, f"127.0.0.1:{server.port}")
    finally:
        server.stop()


async def test_scrape_while_the_event_loop_runs() -> None:
    """Served from a thread: a scrape is answered while the asyncio loop does its own work."""
    m = DepotMetrics()
    server = start_metrics_server(m.registry, "127.0.0.1:0")
    try:
        got = await asyncio.wait_for(asyncio.to_thread(scrape, server.url), timeout=10)
        assert "depot_failsafe_active" in got.names()
    finally:
        await asyncio.wait_for(asyncio.to_thread(server.stop), timeout=10)
