"""What the 1.6 and 2.0.1 sessions share: their context, bounded calls, and the session protocol
the server and :mod:`controller.chargers.control` program against.

Local-controller mode (``ocpp.upstream``, :mod:`controller.upstream`) hooks in here: with an
upstream CSMS, every CALL a charger sends is still handled locally — its state, sessions and
clock offset stay exactly as without one — but the frame the charger gets back is the relay's to
decide (:class:`CallRelay`): the CSMS's answer when it comes in time, else the local one. The
central system knows the relays only as a :class:`RelayFactory`; without one nothing changes.
:func:`relayed_call` sends a call the CSMS made, with a message id of the relay's choosing,
through the charger's one-call-in-flight lock that depotctl's own calls take.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult
from websockets.exceptions import ConnectionClosed

from controller.chargers.clock import Clock
from controller.chargers.events import ChargerEvent, EventKind, EventSink
from controller.chargers.profiles import ProfileSpec
from controller.chargers.rounds import Rounds
from controller.chargers.state import Capabilities, ChargerState
from controller.model.site import Site

LOG = logging.getLogger("depotctl.chargers")

MEASURANDS: tuple[str, ...] = (
    "Current.Import",
    "Power.Active.Import",
    "Energy.Active.Import.Register",
    "SoC",
)


@dataclass
class SessionContext:
    """Everything a session needs from outside: injected, so tests can build one by hand."""

    site: Site
    state: ChargerState
    clock: Clock
    emit: EventSink
    next_transaction_id: Callable[[], int]
    booted: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the charger has its BootNotification answer (the set-up waits for it)."""
    relay_answers_boot: bool = False
    """Local-controller mode: the relay sets :attr:`booted` when it sends the answer (the CSMS's,
    which comes later than the local one)."""

    def event(self, kind: EventKind, **detail: Any) -> None:
        self.emit(ChargerEvent(kind, self.state.charger_id, self.clock(), detail))


@dataclass(frozen=True)
class CallOutcome:
    """``status`` is the charger's status (Accepted, Rejected, NotSupported …), a CALLERROR code,
    ``Timeout`` or ``Disconnected``; ``payload`` the response when there was one."""

    status: str
    payload: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "Accepted"


class CallRelay(Protocol):
    """Local-controller mode (:mod:`.relay_hook`): one charger's relay, told about each CALL the
    charger sends, in the receive loop."""

    async def charger_call(self, call: Call) -> None:
        """See that the charger gets one answer to ``call``, after running it locally
        (``session.answer_locally``) as the relay needs. Must not wait for the CSMS: the receive
        loop waits for this, and the answers to depotctl's own calls come through that loop."""
        ...


class OcppSession(Protocol):
    """One connected charger, either version."""

    id: str
    version: str
    ctx: SessionContext
    frame_hook: Callable[[str, str | bytes], None] | None
    on_frame: Callable[[], None] | None
    work_slots: asyncio.Semaphore | None
    rounds: Rounds | None
    relay: CallRelay | None

    async def start(self) -> None: ...

    async def answer_locally(self, call: Call) -> str | None: ...

    async def send_frame(self, message: str) -> None: ...

    async def read_capabilities(self) -> Capabilities: ...

    async def configure_sampling(self, interval_s: int, measurands: tuple[str, ...]) -> tuple[str, ...]: ...

    async def send_profile(self, spec: ProfileSpec) -> CallOutcome: ...

    async def composite_schedule(self, connector_id: int, duration_s: int) -> CallOutcome: ...


class RelayFactory(Protocol):
    """What the central system asks of local-controller mode when a charger connects and goes."""

    def attach(self, charger_id: str, session: OcppSession) -> CallRelay: ...

    async def detach(self, charger_id: str, relay: CallRelay) -> None: ...


async def bounded_call(cp: Any, payload: Any, timeout_s: float) -> CallOutcome:
    """One call through the ``ocpp`` package (schema-validated both ways), bounded by ``timeout_s``."""
    try:
        result = await asyncio.wait_for(cp.call(payload, suppress=False), timeout_s + 0.5)
    except TimeoutError:
        return CallOutcome("Timeout")
    except ConnectionClosed:
        return CallOutcome("Disconnected")
    except OCPPError as exc:
        return CallOutcome(str(exc.code))
    except Exception as exc:  # a response that fails validation, an unknown error code …
        LOG.warning("%s: %s failed: %s", cp.id, type(payload).__name__, exc)
        return CallOutcome("InvalidResponse")
    return CallOutcome(str(getattr(result, "status", "Accepted")), result)


async def profile_call(cp: Any, action: str, payload: dict[str, Any], timeout_s: float) -> CallOutcome:
    """SetChargingProfile on the fast path: the camelCase payload goes out as built.

    The profile builders' output is schema-tested (``tests/chargers/test_profiles.py``), so the
    package's validation and snake/camel conversions — most of the CPU of a push to a thousand
    chargers — are skipped; the answer's ``status`` is checked here instead. Still one call per
    charger at a time (the package's call lock) and bounded by ``timeout_s``.
    """
    unique_id = str(uuid.uuid4())
    frame = json.dumps([2, unique_id, action, payload], separators=(",", ":"))

    async def exchange() -> Any:
        async with cp._call_lock:
            await cp._send(frame)
            return await cp._get_specific_response(unique_id, timeout_s)

    try:
        response = await asyncio.wait_for(exchange(), timeout_s + 0.5)
    except TimeoutError:
        return CallOutcome("Timeout")
    except ConnectionClosed:
        return CallOutcome("Disconnected")
    if isinstance(response, CallError):
        return CallOutcome(str(response.error_code))
    body = response.payload
    status = body.get("status") if isinstance(body, dict) else None
    if status not in _PROFILE_STATUSES:
        LOG.warning("%s: %s answered %.200r", cp.id, action, body)
        return CallOutcome("InvalidResponse")
    return CallOutcome(str(status), body)


_PROFILE_STATUSES = ("Accepted", "Rejected", "NotSupported")


async def relayed_call(
    cp: Any, unique_id: str, action: str, payload: dict[str, Any], timeout_s: float
) -> CallResult | CallError | None:
    """Send ``payload`` (camelCase, unchanged) to the charger as ``[2, unique_id, action, payload]``
    and return its answer; ``None`` when it gave none within ``timeout_s`` or the link closed.

    Takes the session's call lock, as every call depotctl makes does (OCPP allows one in flight).
    """
    frame = json.dumps([2, unique_id, action, payload], separators=(",", ":"))

    async def exchange() -> Any:
        async with cp._call_lock:
            await cp._send(frame)
            return await cp._get_specific_response(unique_id, timeout_s)

    try:
        response = await asyncio.wait_for(exchange(), timeout_s + 0.5)
    except (TimeoutError, ConnectionClosed):
        return None
    if isinstance(response, (CallResult, CallError)):
        return response
    return None


async def narrow_measurands(
    set_list: Callable[[str], Awaitable[bool]], measurands: tuple[str, ...]
) -> tuple[str, ...]:
    """Ask for ``measurands`` with ``set_list`` (a comma list → accepted?); when the charger refuses
    the list (one unsupported measurand rejects it all), add them one by one and keep what sticks."""
    if await set_list(",".join(measurands)):
        return measurands
    kept: list[str] = []
    for m in measurands:
        if await set_list(",".join([*kept, m])):
            kept.append(m)
    if kept:
        await set_list(",".join(kept))
    return tuple(kept)
