"""The simulated CSMS: a websockets server speaking OCPP 1.6J / 2.0.1 to chargers (or a proxy).

See :mod:`hil.csms` for the API. One :class:`_Link` per live connection: a receive loop that
records every frame (with the CSMS's clock) and validates it (:class:`hil.ocpp_schema.FrameValidator`),
hands CALLRESULT/CALLERROR frames to the CSMS's own pending calls at once, and queues the
charger's CALLs for one worker that answers them in order (delays, CALLERRORs, hang applied there).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import http
import itertools
import json
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hil.csms.commands import Commands
from hil.csms.handlers import HANDLERS, Refuse, answer
from hil.csms.records import Anomaly, ChargerLog, Frame, Transaction
from hil.ocpp_schema import FrameValidator, Violation

LOG = logging.getLogger("hil.csms")
Clock = Callable[[], datetime]
SUBPROTOCOLS = {Subprotocol("ocpp1.6"): "1.6", Subprotocol("ocpp2.0.1"): "2.0.1"}
_FORMAT_ERROR = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}


class CallErrorAnswer(Exception):
    """The charger answered a call of the CSMS with a CALLERROR."""

    def __init__(self, action: str, code: str, description: str, details: Any) -> None:
        super().__init__(f"{action}: CALLERROR {code}: {description}")
        self.action, self.code, self.description, self.details = action, code, description, details


class NotConnected(LookupError):
    """The charger has no live connection to the CSMS."""


@dataclass
class CsmsOptions:
    """How the simulated CSMS behaves; every field is read live (a test may change one while it runs)."""

    path: str = "/ocpp"
    """Chargers connect to ``{path}/{charger id}``."""
    host: str = "127.0.0.1"
    port: int = 0
    """0: a free port, chosen at the first :meth:`SimCsms.start` and kept across ``come_back``."""
    security_profile: int = 0
    """0: no authentication; 1: HTTP Basic over ws; 2: HTTP Basic over wss (``ssl_context``)."""
    passwords: Mapping[str, str] = field(default_factory=dict)
    """Charger id → the Basic-auth password the CSMS expects (profiles 1 and 2)."""
    ssl_context: ssl.SSLContext | None = None
    """Server TLS for profile 2 (:func:`hil.csms.tls.server_context`)."""
    known_ids: frozenset[str] | None = None
    """``None``: any charger id is accepted; else others get HTTP 404."""
    id_tags: Mapping[str, str] | None = None
    """Id tag → the status to answer (``Accepted``, ``Blocked``, ``Expired``, ``Invalid``, …);
    2.0.1 also looks up ``"{type}:{idToken}"`` first (e.g. ``"eMAID:NL-ABC-123"``). ``None``:
    every tag is Accepted."""
    unknown_tag_status: str = "Invalid"
    """The answer for a tag not in ``id_tags``."""
    boot_status: Literal["Accepted", "Pending", "Rejected"] = "Accepted"
    heartbeat_interval_s: int = 300
    first_transaction_id: int = 100_001
    """The first 1.6 transaction id the CSMS assigns (then +1): far from a charger's or a
    proxy's local ids, so a test can tell them apart."""
    data_transfer_status: str = "Accepted"
    call_timeout_s: float = 5.0
    """How long the CSMS waits for the answer to one of its own calls."""
    # --- the worst the field does ---------------------------------------------------------------
    answer_delay_s: float = 0.0
    """Every answer goes out this much later (the connection's later CALLs wait behind it)."""
    answer_delays_s: dict[str, float] = field(default_factory=dict)
    """Action → answer delay [s] for that action (instead of ``answer_delay_s``)."""
    call_errors: dict[str, str] = field(default_factory=dict)
    """Action → a CALLERROR code to answer that action with (e.g. ``{"MeterValues": "InternalError"}``)."""
    duplicate_start: Literal["new_id", "same_id"] = "new_id"
    """A 1.6 StartTransaction seen twice (same charger, connector, idTag, timestamp, meterStart) is
    always flagged (``duplicate_start``); ``new_id`` (the worst case: a second transaction is
    billed) or ``same_id`` (an idempotent back office) is what it answers."""
    future_tolerance_s: float | None = None
    """Refuse (CALLERROR PropertyConstraintViolation, flagged ``future_timestamp``) a message with
    a timestamp later than the CSMS's clock + this [s]; ``None``: accept any."""
    validate_frames: bool = True
    """Check every frame against the OCPP JSON schemas (off only for benchmarks: ~0.1 ms a frame)."""
    keep_frames: bool = True
    """Keep every frame in ``ChargerLog.frames`` (off for benchmarks with thousands of chargers;
    ``calls_in``/``wait_call`` then see nothing)."""
    reject_invalid_frames: bool = True
    """Answer a CALL that fails its schema with a CALLERROR (Formation/FormatViolation), as a
    strict back office does; False: process it anyway (it is still recorded as a violation)."""


class _Link:
    """One live connection of a charger."""

    def __init__(self, csms: SimCsms, log: ChargerLog, ws: ServerConnection, version: str, number: int) -> None:
        self.csms, self.log, self.ws, self.version, self.number = csms, log, ws, version, number
        self.validator = FrameValidator(version, check_sent=True)
        self.pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        """Our CALLs awaiting an answer: unique id → (action, future)."""
        self.unanswered: dict[str, str] = {}
        """The charger's CALLs not answered yet: unique id → action."""
        self.calls_in: asyncio.Queue[tuple[str, str, Any, list[Violation]]] = asyncio.Queue()
        self.call_lock = asyncio.Lock()
        self.worker: asyncio.Task[None] | None = None

    def record(self, direction: Literal["in", "out"], raw: str | bytes) -> tuple[Any, list[Violation]]:
        """Log and validate one frame; (the parsed frame or ``None``, its violations)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        found = self.validator.check(direction, raw) if self.csms.o.validate_frames else []
        for v in found:
            self.csms.schema_violations.append((self.log.charger_id, v))
        try:
            frame = json.loads(text)
        except ValueError:
            frame = None
        kind = uid = action = payload = None
        if isinstance(frame, list) and len(frame) >= 3 and frame[0] in (2, 3, 4) and isinstance(frame[1], str):
            kind, uid = int(frame[0]), frame[1]
            if kind == 2 and len(frame) == 4:
                action, payload = frame[2], frame[3]
                if direction == "in":
                    self.unanswered[uid] = str(action)
            elif kind == 3:
                action, payload = self._answered_action(direction, uid), frame[2]
            else:
                action, payload = self._answered_action(direction, uid), frame[2:]
        else:
            frame = None
        if self.csms.o.keep_frames:
            self.log.frames.append(Frame(self.csms.clock(), direction, text, kind, uid, action, payload, self.number))
        return frame, found

    def _answered_action(self, direction: str, uid: str) -> str | None:
        if direction == "in":
            entry = self.pending.get(uid)
            return entry[0] if entry is not None else None
        return self.unanswered.pop(uid, None)

    async def send(self, text: str) -> None:
        self.record("out", text)
        await self.ws.send(text)

    async def run(self) -> None:
        self.worker = asyncio.create_task(self._work())
        try:
            async for raw in self.ws:
                frame, found = self.record("in", raw)
                if self.csms.hanging:
                    continue  # the socket is open, nobody is home
                if frame is None:
                    continue
                if frame[0] == 2:
                    if self.unanswered.keys() - {frame[1]}:
                        self.csms.anomalies.append(
                            Anomaly(self.csms.clock(), self.log.charger_id, "call_while_pending", str(raw)[:200])
                        )
                    action, payload = (str(frame[2]), frame[3]) if len(frame) == 4 else ("", None)
                    self.calls_in.put_nowait((frame[1], action, payload, found))
                else:
                    entry = self.pending.get(frame[1])
                    if entry is not None and not entry[1].done():
                        entry[1].set_result(frame)
        except ConnectionClosed:
            pass
        finally:
            self.worker.cancel()
            for _action, fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(NotConnected(f"{self.log.charger_id}: the connection closed"))

    async def _work(self) -> None:
        while True:
            uid, action, payload, found = await self.calls_in.get()
            if self.csms.hanging:
                continue
            try:
                await self._answer(uid, action, payload, found)
            except ConnectionClosed:
                return
            except Exception:
                LOG.exception("%s: answering %s failed", self.log.charger_id, action)

    async def _answer(self, uid: str, action: str, payload: Any, found: list[Violation]) -> None:
        o = self.csms.o
        delay_s = o.answer_delays_s.get(action, o.answer_delay_s)
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        if self.csms.hanging:
            return
        try:
            if action in o.call_errors:
                raise Refuse(o.call_errors[action], f"{action} refused by the simulated CSMS")
            handled = action in HANDLERS[self.version]
            if not action or (handled and found and o.reject_invalid_frames):
                raise Refuse(_FORMAT_ERROR[self.version], found[0].reason[:200] if found else "not a CALL")
            if not isinstance(payload, dict):
                raise Refuse(_FORMAT_ERROR[self.version], "the payload is not a JSON object")
            result = answer(self.csms, self.log, self.version, action, payload)
        except Refuse as r:
            await self.send(json.dumps([4, uid, r.code, r.description, {}], separators=(",", ":")))
            return
        except (KeyError, ValueError, TypeError) as exc:  # valid per schema, still not usable
            await self.send(json.dumps([4, uid, "InternalError", repr(exc)[:200], {}], separators=(",", ":")))
            return
        await self.send(json.dumps([3, uid, result], separators=(",", ":")))

    async def call(self, action: str, payload: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        async with self.call_lock:  # one CALL of ours at a time on a connection (OCPP-J)
            uid = f"csms-{next(self.csms.call_ids)}"
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending[uid] = (action, fut)
            try:
                await self.send(json.dumps([2, uid, action, payload], separators=(",", ":")))
                frame = await asyncio.wait_for(fut, timeout_s)
            except TimeoutError:
                raise TimeoutError(f"{self.log.charger_id}: no answer to {action} within {timeout_s} s") from None
            except ConnectionClosed:
                raise NotConnected(f"{self.log.charger_id}: the connection closed during {action}") from None
            finally:
                self.pending.pop(uid, None)
        if frame[0] == 4:
            code, description, details = (*frame[2:], None, None)[:3]
            raise CallErrorAnswer(action, str(code), str(description), details)
        result = frame[2]
        if not isinstance(result, dict):
            raise CallErrorAnswer(action, "FormatViolation", "the CALLRESULT payload is not an object", None)
        return result


class SimCsms(Commands):
    """The simulated back office (see :mod:`hil.csms`)."""

    def __init__(self, clock: Clock, options: CsmsOptions | None = None) -> None:
        self.clock = clock
        self.o = options if options is not None else CsmsOptions()
        self.logs: dict[str, ChargerLog] = {}
        self.anomalies: list[Anomaly] = []
        self.schema_violations: list[tuple[str, Violation]] = []
        self.refusals: list[tuple[str, str]] = []
        """(charger id or path, reason) of every handshake refused."""
        self.hanging = False
        self.starts_seen: dict[tuple[Any, ...], int] = {}
        self.call_ids = itertools.count(1)
        self._tx_ids = itertools.count(self.o.first_transaction_id)
        self._remote_start_ids = itertools.count(1)
        self._links: dict[str, _Link] = {}
        self._server: Server | None = None
        self._port = self.o.port

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> int:
        """Listen (on ``options.port``, or a free port the first time); the port."""
        if self._server is not None:
            return self.port
        if self.o.security_profile == 2 and self.o.ssl_context is None:
            raise ValueError("security profile 2 needs options.ssl_context (hil.csms.tls.server_context)")
        self._server = await serve(
            self._handler,
            self.o.host,
            self._port,
            subprotocols=list(SUBPROTOCOLS),
            select_subprotocol=_select_subprotocol,
            process_request=self._process_request,
            ssl=self.o.ssl_context if self.o.security_profile == 2 else None,
            ping_interval=None,
            close_timeout=1,
            max_size=2**20,
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])
        return self._port

    async def stop(self) -> None:
        """Close every connection and stop listening (the end of a test)."""
        await self.go_away()

    async def go_away(self, *, abrupt: bool = False) -> None:
        """The back office goes away: every connection is closed (``abrupt``: cut without a close
        handshake, as a crashed host) and nothing listens on the port (connection refused)."""
        server, self._server = self._server, None
        if server is None:
            return
        if abrupt:
            for link in list(self._links.values()):
                link.ws.transport.abort()
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5.0)

    async def come_back(self) -> int:
        """Listen again on the same port; the port."""
        return await self.start()

    def hang(self, on: bool = True) -> None:
        """Hang (``on``) or recover: while hanging, sockets are accepted and frames recorded, but
        no CALL is answered and no answer to the CSMS's calls is taken."""
        self.hanging = on
        if not on:
            for link in self._links.values():  # the CALLs received while hanging stay unanswered
                link.validator.forget("in")
                link.unanswered.clear()

    async def __aenter__(self) -> SimCsms:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """The base URL a charger appends ``/{charger id}`` to."""
        scheme = "wss" if self.o.security_profile == 2 else "ws"
        return f"{scheme}://{self.o.host}:{self._port}{self.o.path.rstrip('/')}"

    def next_transaction_id(self) -> int:
        return next(self._tx_ids)

    def next_remote_start_id(self) -> int:
        return next(self._remote_start_ids)

    # --- what was recorded ------------------------------------------------------------------------
    def log(self, charger_id: str) -> ChargerLog:
        """Everything recorded for one charger (an empty log if it never connected)."""
        if charger_id not in self.logs:
            self.logs[charger_id] = ChargerLog(charger_id)
        return self.logs[charger_id]

    def connected(self) -> list[str]:
        return sorted(cid for cid, link in self._links.items() if link.ws.state.name == "OPEN")

    def transactions(self, charger_id: str | None = None) -> list[Transaction]:
        """Every transaction (of one charger), in the order they started."""
        logs = [self.log(charger_id)] if charger_id is not None else list(self.logs.values())
        return [tx for log in logs for tx in log.transactions.values()]

    def transaction(self, transaction_id: int | str, charger_id: str | None = None) -> Transaction:
        for tx in self.transactions(charger_id):
            if tx.key == str(transaction_id):
                return tx
        raise KeyError(f"no transaction {transaction_id!r}" + (f" of {charger_id}" if charger_id else ""))

    def violations(self, charger_id: str | None = None, direction: str = "in") -> list[Violation]:
        """Schema violations in frames received (``direction="in"``) or sent (``"out"``)."""
        return [v for cid, v in self.schema_violations if v.direction == direction and charger_id in (None, cid)]

    async def wait_until(self, predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
        """Poll ``predicate`` every 10 ms until true; ``TimeoutError`` (naming ``what``) after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError(f"simulated CSMS: not within {timeout_s} s: {what or predicate}")
            await asyncio.sleep(0.01)

    async def wait_connected(self, charger_id: str, timeout_s: float = 5.0, booted: int = 0) -> None:
        """Until the charger is connected (and has sent at least ``booted`` BootNotifications)."""
        await self.wait_until(
            lambda: charger_id in self.connected() and len(self.log(charger_id).boots) >= booted,
            timeout_s,
            f"{charger_id} connected with {booted} boots",
        )

    async def wait_call(self, charger_id: str, action: str, count: int = 1, timeout_s: float = 5.0) -> Frame:
        """Until ``count`` CALLs of ``action`` arrived from the charger; the last of them."""
        await self.wait_until(
            lambda: len(self.log(charger_id).calls_in(action)) >= count,
            timeout_s,
            f"{count} × {action} from {charger_id}",
        )
        return self.log(charger_id).calls_in(action)[count - 1]

    # --- calls to a charger ---------------------------------------------------------------------
    def _link(self, charger_id: str) -> _Link:
        link = self._links.get(charger_id)
        if link is None or link.ws.state.name != "OPEN":
            raise NotConnected(f"{charger_id} is not connected to the simulated CSMS")
        return link

    def version(self, charger_id: str) -> str:
        """The OCPP version of the charger's live connection."""
        return self._link(charger_id).version

    async def call(
        self, charger_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send one CALL (payload camelCase, as on the wire); the CALLRESULT's payload.
        Raises :class:`CallErrorAnswer`, ``TimeoutError`` or :class:`NotConnected`."""
        link = self._link(charger_id)
        return await link.call(action, payload, self.o.call_timeout_s if timeout_s is None else timeout_s)

    async def send_raw(self, charger_id: str, text: str) -> None:
        """Send any text frame as is (a deliberately broken one, for the other side's validator)."""
        await self._link(charger_id).send(text)

    # --- handshake and connections -------------------------------------------------------------
    def _charger_id(self, path: str) -> str | None:
        prefix = self.o.path.rstrip("/") + "/"
        path = path.split("?", 1)[0]
        if not path.startswith(prefix):
            return None
        cid = unquote(path[len(prefix) :])
        return cid if cid and "/" not in cid else None

    def _refuse(self, conn: ServerConnection, status: http.HTTPStatus, who: str, reason: str) -> Response:
        self.refusals.append((who, reason))
        response = conn.respond(status, f"{status.phrase}: {reason}\n")
        if status == http.HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="sim-csms"'
        return response

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        cid = self._charger_id(request.path)
        if cid is None:
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, request.path[:64], "bad_path")
        if self.o.known_ids is not None and cid not in self.o.known_ids:
            return self._refuse(conn, http.HTTPStatus.NOT_FOUND, cid, "unknown_id")
        header = request.headers.get("Authorization")
        if self.o.security_profile == 0:
            if header is not None:
                return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, cid, "wrong_security_profile")
            return None
        creds = _basic(header)
        if creds is None:
            return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, cid, "no_password")
        user, password = creds
        expected = self.o.passwords.get(cid)
        if user != cid.encode() or expected is None or not hmac.compare_digest(password, expected.encode()):
            return self._refuse(conn, http.HTTPStatus.UNAUTHORIZED, cid, "wrong_password")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cid = self._charger_id(ws.request.path)
        if cid is None or ws.subprotocol is None:
            await ws.close(1002, "bad request")
            return
        log = self.log(cid)
        log.connections += 1
        log.version, log.connected = SUBPROTOCOLS[ws.subprotocol], True
        link = _Link(self, log, ws, log.version, log.connections)
        old = self._links.get(cid)
        self._links[cid] = link
        if old is not None:
            await old.ws.close(1000, "replaced by a new connection")
        try:
            await link.run()
        finally:
            if self._links.get(cid) is link:
                del self._links[cid]
                log.connected = False


def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    for proto in offered:  # the client's order decides
        if proto in SUBPROTOCOLS:
            return proto
    raise NegotiationError("expected subprotocol ocpp1.6 or ocpp2.0.1")


def _basic(header: str | None) -> tuple[bytes, bytes] | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    return (user, password) if sep else None
