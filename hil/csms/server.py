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
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from hil.csms.handlers import Refuse, answer
from hil.csms.profiles import charging_profile
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
    reject_invalid_frames: bool = True
    """Answer a CALL that fails its schema with a CALLERROR (Formation/FormatViolation), as a
    strict back office does; False: process it anyway (it is still recorded as a violation)."""


class _Link:
    """One live connection of a charger."""

    def __init__(self, csms: SimCsms, log: ChargerLog, ws: ServerConnection, version: str, number: int) -> None:
        self.csms, self.log, self.ws, self.version, self.number = csms, log, ws, version, number
        self.validator = FrameValidator(version, check_sent=True)
        self.pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self.calls_in: asyncio.Queue[tuple[str, str, Any, list[Violation]]] = asyncio.Queue()
        self.call_lock = asyncio.Lock()
        self.worker: asyncio.Task[None] | None = None

    def record(self, direction: Literal["in", "out"], raw: str | bytes) -> tuple[Any, list[Violation]]:
        """Log and validate one frame; (the parsed frame or ``None``, its violations)."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        found = self.validator.check(direction, raw)
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
            elif kind == 3:
                action, payload = self._answered_action(direction, uid), frame[2]
            else:
                action, payload = self._answered_action(direction, uid), frame[2:]
        else:
            frame = None
        self.log.frames.append(Frame(self.csms.clock(), direction, text, kind, uid, action, payload, self.number))
        return frame, found

    def _answered_action(self, direction: str, uid: str) -> str | None:
        if direction == "in":
            entry = self.pending.get(uid)
            return entry[0] if entry is not None else None
        for f in reversed(self.log.frames):
            if f.direction == "in" and f.message_type == 2 and f.unique_id == uid:
                return f.action
        return None

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
                    if self.validator.pending("in").keys() - {frame[1]}:
                        self.csms.anomalies.append(
                            Anomaly(self.csms.clock(), self.log.charger_id, "call_while_pending", str(raw)[:200])
                        )
                    self.calls_in.put_nowait((frame[1], str(frame[2]), frame[3], found))
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
            if found and o.reject_invalid_frames:
                raise Refuse(_FORMAT_ERROR[self.version], found[0].reason[:200])
            if action in o.call_errors:
                raise Refuse(o.call_errors[action], f"{action} refused by the simulated CSMS")
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
            raise CallErrorAnswer(action, str(frame[2]), str(frame[3]), frame[4] if len(frame) > 4 else None)
        result = frame[2]
        if not isinstance(result, dict):
            raise CallErrorAnswer(action, "FormatViolation", "the CALLRESULT payload is not an object", None)
        return result


class SimCsms:
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

    async def remote_start(
        self,
        charger_id: str,
        id_tag: str,
        connector_id: int | None = 1,
        *,
        charging_profile: dict[str, Any] | None = None,
        remote_start_id: int | None = None,
        token_type: str = "ISO14443",
    ) -> dict[str, Any]:
        """1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction (``remote_start_id``:
        default the next call number)."""
        if self.version(charger_id) == "1.6":
            p: dict[str, Any] = {"idTag": id_tag}
            if connector_id is not None:
                p["connectorId"] = connector_id
            if charging_profile is not None:
                p["chargingProfile"] = charging_profile
            return await self.call(charger_id, "RemoteStartTransaction", p)
        rid = remote_start_id if remote_start_id is not None else next(self.call_ids)
        p = {"idToken": {"idToken": id_tag, "type": token_type}, "remoteStartId": rid}
        if connector_id is not None:
            p["evseId"] = connector_id
        if charging_profile is not None:
            p["chargingProfile"] = charging_profile
        return await self.call(charger_id, "RequestStartTransaction", p)

    async def remote_stop(self, charger_id: str, transaction_id: int | str) -> dict[str, Any]:
        """1.6 RemoteStopTransaction / 2.0.1 RequestStopTransaction."""
        if self.version(charger_id) == "1.6":
            return await self.call(charger_id, "RemoteStopTransaction", {"transactionId": int(transaction_id)})
        return await self.call(charger_id, "RequestStopTransaction", {"transactionId": str(transaction_id)})

    async def set_charging_profile(self, charger_id: str, connector_id: int, profile: dict[str, Any]) -> dict[str, Any]:
        """SetChargingProfile with a wire profile (:func:`hil.csms.profiles.charging_profile`)."""
        if self.version(charger_id) == "1.6":
            payload = {"connectorId": connector_id, "csChargingProfiles": profile}
        else:
            payload = {"evseId": connector_id, "chargingProfile": profile}
        return await self.call(charger_id, "SetChargingProfile", payload)

    async def set_cap(
        self,
        charger_id: str,
        limit: float,
        *,
        unit: str = "A",
        purpose: str = "ChargePointMaxProfile",
        connector_id: int | None = None,
        profile_id: int = 900,
        stack_level: int = 0,
        transaction_id: int | str | None = None,
        duration_s: int | None = None,
    ) -> dict[str, Any]:
        """A cap of ``limit`` (A per phase or W) from now on (an Absolute schedule starting at the
        CSMS's clock): ChargePointMax/ChargingStationMax on connector 0, else ``purpose`` on
        ``connector_id`` (default 1)."""
        version = self.version(charger_id)
        is_max = purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile")
        target = 0 if is_max else (connector_id if connector_id is not None else 1)
        profile = charging_profile(
            version,
            profile_id=profile_id,
            purpose=purpose,
            limit=limit,
            unit=unit,
            stack_level=stack_level,
            start=self.clock().astimezone(UTC).replace(microsecond=0),
            transaction_id=transaction_id,
            duration_s=duration_s,
        )
        return await self.set_charging_profile(charger_id, target, profile)

    async def clear_charging_profile(
        self,
        charger_id: str,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> dict[str, Any]:
        if self.version(charger_id) == "1.6":
            p: dict[str, Any] = {}
            for k, v in (
                ("id", profile_id),
                ("connectorId", connector_id),
                ("chargingProfilePurpose", purpose),
                ("stackLevel", stack_level),
            ):
                if v is not None:
                    p[k] = v
            return await self.call(charger_id, "ClearChargingProfile", p)
        p = {} if profile_id is None else {"chargingProfileId": profile_id}
        criteria: dict[str, Any] = {}
        if connector_id is not None:
            criteria["evseId"] = connector_id
        if purpose is not None:
            criteria["chargingProfilePurpose"] = (
                "ChargingStationMaxProfile" if purpose == "ChargePointMaxProfile" else purpose
            )
        if stack_level is not None:
            criteria["stackLevel"] = stack_level
        if criteria:
            p["chargingProfileCriteria"] = criteria
        return await self.call(charger_id, "ClearChargingProfile", p)

    async def get_composite_schedule(
        self, charger_id: str, connector_id: int, duration_s: int, unit: str | None = None
    ) -> dict[str, Any]:
        key = "connectorId" if self.version(charger_id) == "1.6" else "evseId"
        p: dict[str, Any] = {key: connector_id, "duration": duration_s}
        if unit is not None:
            p["chargingRateUnit"] = unit
        return await self.call(charger_id, "GetCompositeSchedule", p)

    async def reset(self, charger_id: str, kind: str = "Soft") -> dict[str, Any]:
        """Reset: ``Soft``/``Hard`` (1.6); 2.0.1 takes ``OnIdle``/``Immediate`` (Soft/Hard mapped)."""
        if self.version(charger_id) == "1.6":
            return await self.call(charger_id, "Reset", {"type": kind})
        mapped = {"Soft": "OnIdle", "Hard": "Immediate"}.get(kind, kind)
        return await self.call(charger_id, "Reset", {"type": mapped})

    async def change_configuration(self, charger_id: str, key: str, value: str) -> dict[str, Any]:
        """1.6 ChangeConfiguration."""
        return await self.call(charger_id, "ChangeConfiguration", {"key": key, "value": value})

    async def set_variables(self, charger_id: str, items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        """2.0.1 SetVariables: (component name, variable name, value) each."""
        data = [{"component": {"name": c}, "variable": {"name": v}, "attributeValue": val} for c, v, val in items]
        return await self.call(charger_id, "SetVariables", {"setVariableData": data})

    async def data_transfer(
        self, charger_id: str, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            p["messageId"] = message_id
        if data is not None:
            p["data"] = data
        return await self.call(charger_id, "DataTransfer", p)

    async def trigger_message(self, charger_id: str, message: str, connector_id: int | None = None) -> dict[str, Any]:
        """TriggerMessage (``message``: the version's ``requestedMessage``, e.g. ``StatusNotification``)."""
        p: dict[str, Any] = {"requestedMessage": message}
        if connector_id is not None:
            if self.version(charger_id) == "1.6":
                p["connectorId"] = connector_id
            else:
                p["evse"] = {"id": connector_id}
        return await self.call(charger_id, "TriggerMessage", p)

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
