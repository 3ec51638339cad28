"""One charger's link to the operator's CSMS: depotctl's websockets client, connected as that charger.

:class:`UpstreamLink` connects to ``{url}/{charger id}`` with the charger's OCPP subprotocol
(``ocpp1.6`` / ``ocpp2.0.1``; a CSMS that picks none is a failed attempt), HTTP Basic auth for
security profiles 1 and 2 (user = the charger id, password from ``ocpp.upstream.passwords_file``),
TLS 1.2 or newer for profile 2 (the CA from ``ca_file``, else the system's). It reconnects while
it is open — the charger is connected to depotctl — with a capped exponential back-off and
jitter (:class:`Backoff`: a depot's thousand links do not come back in one instant), and is
closed when the charger goes.

Frames are handled raw (OCPP-J, nothing converted): :meth:`UpstreamLink.call` sends a CALL and
waits for its answer, one at a time (OCPP allows one call in flight per direction) and bounded by
its own timeout — never the ``ocpp`` package's 30 s; a CSMS that leaves ``dead_after_timeouts``
calls in a row unanswered is taken for hung, and the link is dropped and made again. A CALL from
the CSMS goes to ``on_call`` (each in a task of its own, so answers to our calls still come
through); the relay answers it with :meth:`UpstreamLink.send`. A frame that is not OCPP-J gets a
CALLERROR, as depotctl's own server does (:mod:`controller.chargers.rpc`).

Timing (the back-off, the sleeps) and the randomness of the jitter are injected, so tests shrink
them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.typing import Subprotocol

from controller.chargers.rpc import call_error_frame

LOG = logging.getLogger("depotctl.upstream.link")

LinkState = Literal["connecting", "up", "down", "closed"]
Version = Literal["1.6", "2.0.1"]


@dataclass(frozen=True)
class Backoff:
    """Delays between connection attempts [s]: ``first_s``, doubling up to ``max_s``; each drawn
    uniformly from ``[(1 - jitter) · d, d]``."""

    first_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.5

    def delay_s(self, attempt: int, rng: random.Random) -> float:
        d = min(self.max_s, self.first_s * 2.0 ** min(attempt, 30))
        return d * (1.0 - self.jitter * rng.random())


@dataclass(frozen=True)
class LinkOptions:
    connect_timeout_s: float = 10.0
    """One connection attempt, TCP + TLS + the upgrade [s]."""
    backoff: Backoff = field(default_factory=Backoff)
    dead_after_timeouts: int = 2
    """This many unanswered calls in a row: the CSMS is taken for hung, the link made again."""
    ping_interval_s: float | None = 30.0


@dataclass(frozen=True)
class Target:
    """Where and how one charger connects upstream."""

    url: str
    """``{ocpp.upstream.url}/{charger id}``."""
    version: Version
    password: bytes | None = None
    ssl_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Result:
    """A CALLRESULT from the CSMS."""

    payload: dict[str, Any]


@dataclass(frozen=True)
class Error:
    """A CALLERROR from the CSMS."""

    code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


Reply = Result | Error
CallHandler = Callable[[str, str, dict[str, Any]], Awaitable[None]]
"""A CALL from the CSMS: (unique id, action, payload)."""


def client_ssl_context(ca_file: str | None) -> ssl.SSLContext:
    """TLS to the CSMS (security profile 2): TLS 1.2 or newer, its certificate checked against
    ``ca_file`` (else the system's CAs)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def charger_url(base_url: str, charger_id: str) -> str:
    from urllib.parse import quote

    return f"{base_url.rstrip('/')}/{quote(charger_id, safe='')}"


class UpstreamLink:
    def __init__(
        self,
        charger_id: str,
        target: Target,
        on_call: CallHandler,
        *,
        on_state: Callable[[LinkState], None] | None = None,
        options: LinkOptions | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        frame_hook: Callable[[str, str | bytes], None] | None = None,
        connect_slots: asyncio.Semaphore | None = None,
    ) -> None:
        self.charger_id = charger_id
        self.connect_slots = connect_slots
        """Shared by the site's links: at most this many connection attempts at once, so a
        thousand chargers reconnecting after a power cut do not stall the event loop (and the
        control loop in it) with a thousand handshakes in one go."""
        self.target = target
        self.on_call = on_call
        self.on_state = on_state
        self.options = options or LinkOptions()
        self.rng = rng or random.Random()
        self._sleep = sleep
        self.frame_hook = frame_hook
        """Every frame received ("in") and sent ("out") on the link, for tests' schema checks."""
        self.state: LinkState = "connecting"
        self.failed_attempts = 0
        self._ws: ClientConnection | None = None
        self._up = asyncio.Event()
        self._call_lock = asyncio.Lock()
        self._pending: tuple[str, asyncio.Future[Reply]] | None = None
        self._timeouts = 0
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._closing = False
        self._down_logged = False

    # --- life ---------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"upstream {self.charger_id}")

    async def close(self) -> None:
        """Close the connection (the CSMS sees the charger go) and stop reconnecting."""
        self._closing = True
        task, self._task = self._task, None
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1000, "charger disconnected"), 2.0)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=2.0)
        for t in list(self._handlers):
            t.cancel()
        self._set_state("closed")

    @property
    def up(self) -> bool:
        return self.state == "up"

    async def wait_up(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) while a connection attempt is under way; ``True`` when up.
        A link that is down between attempts is not waited for."""
        if self.state == "up":
            return True
        if self.state != "connecting" or timeout_s <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._up.wait(), timeout_s)
        return self.up

    def _set_state(self, state: LinkState) -> None:
        if state == self.state:
            return
        self.state = state
        if state == "up":
            self._up.set()
        else:
            self._up.clear()
        if self.on_state is not None:
            try:
                self.on_state(state)
            except Exception:
                LOG.exception("%s: upstream state listener failed", self.charger_id)

    async def _run(self) -> None:
        attempt = 0
        while not self._closing:
            self._set_state("connecting")
            if self.connect_slots is None:
                ws = await self._connect()
            else:
                async with self.connect_slots:
                    ws = await self._connect()
            if ws is None:
                self.failed_attempts += 1
                self._set_state("down")
                await self._sleep(self.options.backoff.delay_s(attempt, self.rng))
                attempt += 1
                continue
            attempt = 0
            if self._down_logged:
                LOG.warning("%s: upstream link to the CSMS is up again", self.charger_id)
            self._down_logged = False
            self._ws, self._timeouts = ws, 0
            self._set_state("up")
            try:
                await self._receive(ws)
            finally:
                self._ws = None
                self._fail_pending()
                if not self._closing:
                    self._set_state("down")
            if not self._closing:
                self._log_down("connection closed by the CSMS or lost")
                await self._sleep(self.options.backoff.delay_s(0, self.rng))

    async def _connect(self) -> ClientConnection | None:
        t = self.target
        headers = {}
        if t.password is not None:
            token = base64.b64encode(self.charger_id.encode("utf-8") + b":" + t.password).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        proto = Subprotocol("ocpp2.0.1" if t.version == "2.0.1" else "ocpp1.6")
        try:
            ws = await connect(
                t.url,
                subprotocols=[proto],
                additional_headers=headers,
                ssl=t.ssl_context,
                open_timeout=self.options.connect_timeout_s,
                close_timeout=2,
                ping_interval=self.options.ping_interval_s,
                ping_timeout=self.options.ping_interval_s,
                max_size=1024 * 1024,
                compression=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI, ValueError) as exc:
            self._log_down(f"cannot connect to {t.url}: {_reason(exc)}")
            return None
        if ws.subprotocol != proto:
            self._log_down(f"{t.url} did not accept subprotocol {proto}")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(1002, "subprotocol required"), 2.0)
            return None
        return ws

    def _log_down(self, why: str) -> None:
        if not self._down_logged:
            LOG.warning("%s: upstream link down: %s (retrying with back-off)", self.charger_id, why)
            self._down_logged = True
        else:
            LOG.debug("%s: upstream still down: %s", self.charger_id, why)

    # --- frames -------------------------------------------------------------------------------
    async def _receive(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for raw in ws:
                if self.frame_hook is not None:
                    self.frame_hook("in", raw)
                await self._route(raw)

    async def _route(self, raw: str | bytes) -> None:
        version = self.target.version
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError):
            await self.send(call_error_frame(version, "-1", "FormatViolation", "Message is not valid JSON"))
            return
        if not isinstance(msg, list) or len(msg) < 3 or not isinstance(msg[1], str) or not msg[1]:
            await self.send(call_error_frame(version, "-1", "RpcFrameworkError", "Not an OCPP-J frame"))
            return
        kind, uid = msg[0], msg[1]
        if kind == 2:
            if len(msg) != 4 or not isinstance(msg[2], str) or not isinstance(msg[3], dict):
                await self.send(call_error_frame(version, uid, "FormatViolation", "Malformed CALL"))
                return
            task = asyncio.create_task(self._handle(uid, msg[2], msg[3]))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
            return
        if kind in (3, 4):
            pending = self._pending
            if pending is None or pending[0] != uid or pending[1].done():
                LOG.debug("%s: dropped an upstream answer nobody waits for: %.100s", self.charger_id, raw)
                return
            if kind == 3 and isinstance(msg[2], dict):
                pending[1].set_result(Result(msg[2]))
            elif kind == 4 and len(msg) >= 4:
                details = msg[4] if len(msg) > 4 and isinstance(msg[4], dict) else {}
                pending[1].set_result(Error(str(msg[2]), str(msg[3]), details))
            return
        await self.send(call_error_frame(version, uid, "MessageTypeNotSupported", f"Unknown message type {kind!r}"))

    async def _handle(self, uid: str, action: str, payload: dict[str, Any]) -> None:
        try:
            await self.on_call(uid, action, payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            LOG.exception("%s: relaying the CSMS's %s failed", self.charger_id, action)
            cause = type(exc).__name__
            await self.send(call_error_frame(self.target.version, uid, "InternalError", "Not relayed", cause))

    async def send(self, frame: str) -> bool:
        """Send one frame as it is; ``False`` when there is no connection (it is dropped)."""
        ws = self._ws
        if ws is None:
            return False
        try:
            if self.frame_hook is not None:
                self.frame_hook("out", frame)
            await ws.send(frame)
        except ConnectionClosed:
            return False
        return True

    async def call(self, unique_id: str, action: str, payload: dict[str, Any], timeout_s: float) -> Reply | None:
        """Send ``[2, unique_id, action, payload]`` and wait for the answer; ``None`` when there
        is no connection, it closes meanwhile, or no answer comes within ``timeout_s`` (counted
        from now, the wait for an earlier call included)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                async with self._call_lock:
                    if self._ws is None:
                        return None
                    future: asyncio.Future[Reply] = loop.create_future()
                    self._pending = (unique_id, future)
                    try:
                        frame = json.dumps([2, unique_id, action, payload], separators=(",", ":"))
                        if not await self.send(frame):
                            return None
                        reply = await future
                    finally:
                        self._pending = None
        except TimeoutError:
            self._timeouts += 1
            if self._timeouts >= self.options.dead_after_timeouts and self._ws is not None:
                LOG.warning("%s: the CSMS left %d calls unanswered: reconnecting", self.charger_id, self._timeouts)
                self._drop()
            return None
        except _LinkLost:
            return None
        self._timeouts = 0
        return reply

    def _drop(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.transport.abort()  # the receive loop ends, the run loop reconnects

    def _fail_pending(self) -> None:
        pending = self._pending
        if pending is not None and not pending[1].done():
            pending[1].set_exception(_LinkLost())


class _LinkLost(Exception):
    """The connection ended while a call waited for its answer."""


def _reason(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
