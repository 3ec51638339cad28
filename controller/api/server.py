"""Serve an ASGI app with uvicorn inside the daemon's running asyncio loop.

Not ``uvicorn.run``: that owns the loop and the process signals. Here the daemon owns both:

- the socket is bound by :meth:`ApiServer.start` itself, so a busy or foreign address is a plain
  :class:`ApiBindError` naming it (uvicorn would call ``sys.exit`` inside a task, which tears
  down the whole event loop);
- uvicorn's signal capture is switched off (:class:`_QuietServer`), so the daemon's own
  ``loop.add_signal_handler`` handlers for SIGTERM/SIGHUP/SIGINT keep working, and stopping the
  server never re-raises a signal it swallowed;
- uvicorn's logging config is left alone (its loggers propagate to the daemon's handlers), and
  there is no access log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Generator
from typing import Any

import uvicorn

from controller.config.listen import local_url, parse_listen

log = logging.getLogger(__name__)

_STARTUP_TIMEOUT_S = 10.0


class ApiBindError(OSError):
    """The API address cannot be bound (in use, not an address of this host, no permission).

    ``str()`` is one line naming the address; ``errno`` is the system's (e.g. ``EADDRINUSE``).
    """

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def _bind(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket for ``host:port``; ``::`` also accepts IPv4 where it can."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ApiBindError(f"cannot listen on {_show(host, port)}: {exc.strerror}", exc.errno) from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":  # on Windows SO_REUSEADDR would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6 and host in ("", "::"):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise ApiBindError(f"cannot listen on {_show(host, port)}: {reason}", exc.errno) from None
    return sock


def _show(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _QuietServer(uvicorn.Server):
    """uvicorn without signal handling: the embedding daemon owns SIGINT/SIGTERM/SIGHUP.

    uvicorn ≥ 0.29 wraps ``serve()`` in ``capture_signals()`` (``signal.signal`` for SIGINT and
    SIGTERM, restored and re-raised on exit); older versions called ``install_signal_handlers()``.
    Both are disabled here.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass


class ApiServer:
    """An HTTP server for ``app`` on ``listen`` (``HOST:PORT``, ``[::1]:PORT``; port 0 = a free port).

    Use from inside the running event loop::

        server = ApiServer(create_app(status), site.api.listen)
        await server.start()        # bound and accepting, or ApiBindError
        ...
        await server.stop()         # bounded; idempotent

    Requests are served by tasks of the same loop, so route handlers may read the daemon's state
    directly, and must not block.
    """

    def __init__(self, app: Any, listen: str) -> None:
        self.listen = listen
        self.host, self._requested_port = parse_listen(listen, "api.listen")
        self._config = uvicorn.Config(
            app,
            host=self.host or "0.0.0.0",
            port=self._requested_port,
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
        )
        self._server = _QuietServer(self._config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port actually bound (the free port picked for port 0); the requested one before start."""
        return self._port if self._port is not None else self._requested_port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` to reach the server from this machine (a wildcard host as loopback)."""
        return local_url(self.host, self.port)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Bind, start serving in a task of the running loop, and return once it accepts connections.

        Raises :class:`ApiBindError` (an ``OSError``) naming the address when it cannot be bound,
        ``RuntimeError`` when uvicorn does not come up within a few seconds.
        """
        if self._task is not None:
            raise RuntimeError("ApiServer.start() called twice")
        sock = _bind(self.host, self._requested_port)
        self._socket = sock
        self._port = int(sock.getsockname()[1])
        try:
            if not self._config.loaded:
                self._config.load()
            self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=f"api-{self._port}")
            self._task.add_done_callback(self._ended)
            await self._wait_started()
        except BaseException:
            await self._abort()
            raise
        log.info("API listening on %s", self.url)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._server.should_exit:
            return
        exc = None if task.cancelled() else task.exception()
        log.error("API server on %s stopped unexpectedly: %r", self.listen, exc)

    async def _wait_started(self) -> None:
        assert self._task is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _STARTUP_TIMEOUT_S
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise RuntimeError(f"API server on {self.listen} stopped while starting: {exc!r}") from exc
            if loop.time() > deadline:
                raise RuntimeError(f"API server on {self.listen} did not start within {_STARTUP_TIMEOUT_S:g} s")
            await asyncio.sleep(0.005)

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, let running requests finish, and return within about ``timeout_s``.

        Requests still running near the deadline are cancelled and their connections closed.
        Idempotent; a no-op before :meth:`start`.
        """
        task = self._task
        if task is None or task.done():
            self._close_socket()
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        self._server.should_exit = True
        graceful_s = max(0.0, timeout_s - min(0.5, timeout_s / 4))
        await asyncio.wait({task}, timeout=graceful_s)
        if not task.done():
            log.warning("API server: requests still running after %.1f s, cancelling them", graceful_s)
            await self._abort(max(0.0, deadline - loop.time()))
        self._close_socket()

    async def _abort(self, timeout_s: float = 0.5) -> None:
        """Force the server down: cancel its request tasks, close connections, cancel the serve task."""
        server = self._server
        server.should_exit = server.force_exit = True
        for request in list(server.server_state.tasks):
            request.cancel()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()
        for listener in getattr(server, "servers", []):
            listener.close()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=timeout_s)
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            log.debug("API server task ended with %r", task.exception())
        self._close_socket()

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
