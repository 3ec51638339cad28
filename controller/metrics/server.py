"""Serve ``/metrics`` on ``metrics.listen`` (``HOST:PORT``) from a thread inside the daemon.

prometheus-client's own WSGI app under the standard library's ``wsgiref`` server, one thread per
scrape, so a slow scraper never blocks the asyncio control loop. Port 0 picks a free port (tests).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from controller.config.listen import parse_listen

METRICS_PATH = "/metrics"

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape (the daemon logs to journald)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


def _server_class(host: str) -> type[_ThreadingServer]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(_ThreadingServer):
        address_family = family

    return Server


def metrics_app(registry: CollectorRegistry) -> WsgiApp:
    """``GET /metrics`` → the exposition of ``registry``; anything else → 404."""
    exposition: WsgiApp = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "") == METRICS_PATH:
            return exposition(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [f"depotctl: metrics are at {METRICS_PATH}\n".encode()]

    return app


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint. ``stop()`` closes it (blocking briefly; idempotent)."""

    host: str
    port: int
    _httpd: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else (self.host or "127.0.0.1")
        return f"http://{host}:{self.port}{METRICS_PATH}"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout_s)
        self._httpd.server_close()


def start_metrics_server(registry: CollectorRegistry, listen: str) -> MetricsServer:
    """Bind ``listen`` (``HOST:PORT``, port 0 = any free port) and serve ``registry`` from a daemon thread.

    Raises ``OSError`` when the address cannot be bound (in use, not local), ``ValueError`` on a
    malformed ``listen``. From asyncio, stop it with ``await asyncio.to_thread(server.stop)``.
    """
    host, port = parse_listen(listen, "metrics.listen")
    httpd = make_server(host, port, metrics_app(registry), _server_class(host), handler_class=_QuietHandler)
    bound_port = int(httpd.server_address[1])
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name=f"metrics-{bound_port}", daemon=True
    )
    thread.start()
    return MetricsServer(host=host, port=bound_port, _httpd=httpd, _thread=thread)
