"""OCPP-J framing hardened for the field, shared by the 1.6 and 2.0.1 sessions (and the simulator).

The ``ocpp`` package logs and drops frames it cannot parse, stops on ``ConnectionClosed`` with an
exception, and queues stray CALLRESULTs for the next call. Here: every malformed frame gets a
CALLERROR (message id ``"-1"`` when the id cannot be read, as OCPP-J 2.0.1 §4.2.3 says), error
codes are spelt as the peer's version spells them, error details never echo the frame back, stray
results are dropped, and a closed connection ends :meth:`start` quietly. The connection is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult
from ocpp.routing import after as _after
from ocpp.routing import on as _on
from websockets.exceptions import ConnectionClosed

from controller.chargers.rounds import Rounds

if TYPE_CHECKING:
    from controller.chargers.session import CallRelay

LOG = logging.getLogger("depotctl.chargers.rpc")


F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """Typed ``ocpp.routing.on``: register a handler for an incoming action."""
    return cast(Callable[[F], F], _on(action))


def after(action: str) -> Callable[[F], F]:
    """Typed ``ocpp.routing.after``: run after the response to an action was sent."""
    return cast(Callable[[F], F], _after(action))


class Transport(Protocol):
    """Anything with async ``recv``/``send`` (a websockets connection, or a fake in tests)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str) -> None: ...


_V16_CODES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "RpcFrameworkError": "ProtocolError",
    "MessageTypeNotSupported": "ProtocolError",
}
_V201_CODES = {
    "FormationViolation": "FormatViolation",
    "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
}


def error_code_for(version: str, code: str) -> str:
    table = _V16_CODES if version == "1.6" else _V201_CODES
    return table.get(code, code)


def call_error_frame(version: str, unique_id: str, code: str, description: str, cause: str = "") -> str:
    details = {"cause": cause[:200]} if cause else {}
    return json.dumps([4, unique_id, error_code_for(version, code), description[:250], details], separators=(",", ":"))


FrameHook = Callable[[str, str | bytes], None]


class RobustRpcMixin:
    """Mix in *before* an ``ocpp`` ChargePoint class: ``class X(RobustRpcMixin, v16.ChargePoint)``."""

    _ocpp_version: str
    _connection: Transport
    id: str
    frame_hook: FrameHook | None = None
    on_frame: Callable[[], None] | None = None

    # provided by ocpp.ChargePoint
    _call_lock: Any
    _response_queue: Any
    _handle_call: Callable[[Call], Awaitable[Any]]

    relay: CallRelay | None = None
    """Local-controller mode: the charger's CALLs go to the relay (:mod:`.relay_hook`), which
    answers them; ``None``: answered here, as always."""
    _capture: tuple[str, list[str]] | None = None

    work_slots: asyncio.Semaphore | None = None
    """Shared by all sessions of a server: at most this many frames are processed at once, so a
    burst (hundreds of chargers booting after a power cut) is spread over many loop iterations
    instead of stalling the event loop — and the control loop in it — for one long one."""
    frame_timeout_s: float = 10.0
    rounds: Rounds | None = None
    """Shared by all sessions of a server: how many frames may start per event-loop round
    (:mod:`.rounds`: 400 meter values in one second must not hold the fast loop's meter answer)."""

    async def start(self) -> None:
        try:
            while True:
                message = await self._connection.recv()
                if self.frame_hook is not None:
                    self.frame_hook("in", message)
                if self.on_frame is not None:
                    self.on_frame()
                if self.rounds is not None:
                    await self.rounds.admit()
                if self.work_slots is None:
                    await self.route_message(message)
                    continue
                async with self.work_slots:
                    try:
                        async with asyncio.timeout(self.frame_timeout_s):  # a charger that stops reading
                            await self.route_message(message)
                    except TimeoutError:
                        LOG.warning("%s: gave up answering a frame after %.0f s", self.id, self.frame_timeout_s)
        except ConnectionClosed:
            return

    async def _send(self, message: str) -> None:
        if self._capture is not None and _answers(message, self._capture[0]):
            self._capture[1].append(message)
            return
        if self.frame_hook is not None:
            self.frame_hook("out", message)
        await self._connection.send(message)

    async def send_frame(self, message: str) -> None:
        """Send one frame as it is (the relay's answers and forwarded calls)."""
        await self._send(message)

    async def _error(self, unique_id: str, code: str, description: str, cause: str = "") -> None:
        LOG.info("%s: CALLERROR %s to a frame: %s", self.id, code, cause or description)
        await self._send(call_error_frame(self._ocpp_version, unique_id, code, description, cause))

    async def _answer(self, call: Call) -> None:
        """Handle a CALL and send the answer (a CALLRESULT, or a CALLERROR for any failure)."""
        uid = call.unique_id
        try:
            await self._handle_call(call)
        except OCPPError as error:
            cause = error.details.get("cause", "") if isinstance(error.details, dict) else ""
            await self._error(uid, str(error.code), str(error.description), str(cause))
        except ConnectionClosed:
            raise
        except Exception as exc:  # never let one bad frame end the session
            LOG.exception("%s: error handling %s", self.id, call.action)
            await self._error(uid, "InternalError", "An internal error occurred", type(exc).__name__)

    async def answer_locally(self, call: Call) -> str | None:
        """Handle a CALL as :meth:`_answer` does — every handler and state update — but return
        the answer frame instead of sending it (``None``: the handler sent none)."""
        captured: list[str] = []
        self._capture = (call.unique_id, captured)
        try:
            await self._answer(call)
        finally:
            self._capture = None
        return captured[0] if captured else None

    async def route_message(self, raw_msg: str | bytes) -> None:
        version = self._ocpp_version
        try:
            msg = json.loads(raw_msg)
        except (ValueError, TypeError):
            await self._error("-1", "FormatViolation", "Message is not valid JSON")
            return
        if not isinstance(msg, list) or len(msg) < 3:
            uid = msg[1] if isinstance(msg, list) and len(msg) > 1 and isinstance(msg[1], str) else "-1"
            await self._error(
                uid, "RpcFrameworkError" if version != "1.6" else "FormatViolation", "Not an OCPP-J frame"
            )
            return
        kind, uid = msg[0], msg[1]
        if not isinstance(uid, str) or not uid or len(uid) > 36:
            await self._error("-1", "RpcFrameworkError" if version != "1.6" else "FormatViolation", "Bad message id")
            return
        if kind == 2:
            if len(msg) != 4 or not isinstance(msg[2], str):
                await self._error(uid, "RpcFrameworkError" if version != "1.6" else "ProtocolError", "Malformed CALL")
                return
            if not isinstance(msg[3], dict):
                await self._error(uid, "FormatViolation", "Payload must be a JSON object")
                return
            call = Call(uid, msg[2], msg[3])
            if self.relay is not None:
                await self.relay.charger_call(call)
            else:
                await self._answer(call)
            return
        if kind in (3, 4):
            if not self._call_lock.locked():
                LOG.debug("%s: dropped a result nobody waits for: %.100s", self.id, raw_msg)
                return
            try:
                response: CallResult | CallError = CallResult(uid, msg[2]) if kind == 3 else CallError(*msg[1:5])
            except TypeError:
                return
            self._response_queue.put_nowait(response)
            return
        await self._error(
            uid, "MessageTypeNotSupported" if version != "1.6" else "ProtocolError", f"Unknown message type {kind!r}"
        )


def _answers(message: str, unique_id: str) -> bool:
    """``message`` is the CALLRESULT or CALLERROR to the call ``unique_id``."""
    try:
        frame = json.loads(message)
    except ValueError:
        return False
    return isinstance(frame, list) and len(frame) >= 2 and frame[0] in (3, 4) and frame[1] == unique_id
