"""One charger's relay between its session with depotctl and its link to the operator's CSMS.

**Charger → CSMS.** Every CALL the charger sends is handled locally first, in the receive loop as
without upstream (state, sessions, clock offset unchanged; the local answer is kept, not sent),
then queued for the relay's worker, which forwards it unchanged — same message id — and gives the
charger the CSMS's answer when it comes within ``answer_within_s`` of the call's arrival. Else the
charger gets the local answer, with an id tag answered as ``offline_authorize`` says
(:mod:`.authcache`). One exception to "local first": a 1.6 StartTransaction is handled locally
only once the transaction id the charger will get is known — the CSMS's, or a local one
(:mod:`.txids`) — so that depotctl's own state names the id the charger knows (a CSMS that
answers it with a CALLERROR: the charger gets that, as it would directly, and depotctl records no
transaction; the charger sends the start again).

**Transaction messages** (1.6 StartTransaction, StopTransaction, MeterValues naming a
transaction; 2.0.1 TransactionEvent) that the CSMS has not answered are never dropped, nor are
the charger's BootNotification, StatusNotification and status/event notifications (the CSMS's
view of the charger; :data:`QUEUED_16`, :data:`QUEUED_201`): before the charger is answered
locally the message is committed to the queue in SQLite (:mod:`.store`). The queue is replayed in
order, as the charger sent it (original timestamps and message ids — a fresh id for one that went
up and timed out, as the CSMS may still hold it — and only a local 1.6 transaction id is replaced
by the CSMS's once known), whenever the link is up; while it is not empty — or the
link is down — every such message joins its end, so nothing live reaches the CSMS before the
backlog is through. The rest (Heartbeat, Authorize, DataTransfer …) is answered locally then and
not sent late: its answer was given.

Delivery is **at least once**: a message leaves the queue (one committed delete) after the CSMS
answered it; a ``kill -9`` between the answer and the delete, or a CSMS that answers only after
``answer_within_s`` (the message is queued and sent again), can make the CSMS see it twice. A
CALLERROR from the CSMS to a queued message is logged and the message dropped: sending it again
would not change the answer.

**CSMS → charger.** SetChargingProfile, ClearChargingProfile and GetCompositeSchedule are never
forwarded: the cap book (:mod:`.caps`) takes them and answers. A RemoteStartTransaction /
RequestStartTransaction carrying a ``chargingProfile`` goes on without it (the profile goes to the
cap book). Every other call is forwarded with a message id of depotctl's own (``up-<n>``: never a
UUID, so never one of depotctl's own calls), through the charger's call queue behind any waiting
decrease (:meth:`~controller.chargers.control.Control.foreign_call`), bounded by
``forward_timeout_s``; the answer goes back under the CSMS's id. A charger that does not answer in
time: the CSMS gets a CALLERROR ``InternalError`` at once (see :data:`NO_ANSWER`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from ocpp.messages import Call, CallError, CallResult

from controller.chargers.control import Control
from controller.chargers.rpc import call_error_frame
from controller.chargers.session import MEASURANDS, CallRelay, OcppSession, relayed_call
from controller.upstream.authcache import AuthCache, Change
from controller.upstream.guard import (
    REFUSED_ACTIONS,
    guard_key,
    merged_sampling,
    refused_items,
    refused_key_16,
    rejected_result,
    sampling_asked,
)
from controller.upstream.link import Error, LinkState, Reply, Result, UpstreamLink
from controller.upstream.store import Queued, UpstreamStore
from controller.upstream.txids import TxIds

LOG = logging.getLogger("depotctl.upstream.relay")
Version = Literal["1.6", "2.0.1"]

INTERCEPTED = frozenset({"SetChargingProfile", "ClearChargingProfile", "GetCompositeSchedule"})
"""The CSMS's smart-charging calls: answered from the cap book, never forwarded."""
REMOTE_START = frozenset({"RemoteStartTransaction", "RequestStartTransaction"})
NO_ANSWER = "The charge point did not answer within the proxy's timeout"
"""The CALLERROR (``InternalError``) the CSMS gets when a forwarded call is not answered in time:
at once rather than after its own, often far longer, timeout — depotctl cannot hold the charger's
one call slot longer without delaying its own decreases, and an answer that comes later would have
nowhere to go (the package drops it). The charger may still have acted on the call."""


class CapAnswer(Protocol):
    @property
    def status(self) -> str: ...

    @property
    def payload(self) -> dict[str, Any]: ...


class CapsFace(Protocol):
    """What the relay needs of the cap book (:class:`controller.upstream.caps.CapBook`)."""

    def set_profile(self, charger_id: str, version: Version, payload: dict[str, Any]) -> CapAnswer: ...

    def clear(self, charger_id: str, version: Version, payload: dict[str, Any]) -> CapAnswer: ...

    def composite(self, charger_id: str, version: Version, payload: dict[str, Any]) -> CapAnswer: ...

    def remote_start_profile(
        self, charger_id: str, version: Version, connector_id: int | None, profile: dict[str, Any]
    ) -> None: ...

    def transaction_started(self, charger_id: str, connector_id: int, transaction_id: str) -> None: ...

    def transaction_ended(self, charger_id: str, connector_id: int, transaction_id: str) -> None: ...

    def transaction_alias(self, charger_id: str, transaction_id: str, upstream_id: str) -> None: ...

    def snapshot(self) -> list[dict[str, Any]]: ...

    def restore(self, rows: list[dict[str, Any]]) -> None: ...


class RelayHost(Protocol):
    """What a relay shares with the others (:class:`controller.upstream.proxy.Proxy`)."""

    store: UpstreamStore
    txids: TxIds
    auth: AuthCache
    caps: CapsFace | None
    control: Control

    def clock(self) -> datetime: ...

    def answer_within_s(self) -> float: ...

    def forward_timeout_s(self) -> float: ...

    def count(self, what: str) -> None: ...

    def backlog(self, charger_id: str) -> collections.deque[Queued]: ...

    def link_changed(self, charger_id: str, state: LinkState, relay: ChargerRelay) -> None: ...

    def learn_auth(self, changes: list[Change]) -> None: ...

    def caps_changed(self) -> None: ...

    def forget_tx(self, charger_id: str, local: int) -> None: ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


QUEUED_16 = frozenset({
    "StartTransaction", "StopTransaction", "BootNotification", "StatusNotification", "FirmwareStatusNotification",
    "DiagnosticsStatusNotification", "SecurityEventNotification", "LogStatusNotification",
    "SignedFirmwareStatusNotification",
})
QUEUED_201 = frozenset({
    "TransactionEvent", "BootNotification", "StatusNotification", "FirmwareStatusNotification",
    "LogStatusNotification", "SecurityEventNotification", "NotifyEvent",
})
"""What the CSMS must still get when it cannot answer now — the transaction messages, and the
charger's boot, status and notifications (its view of the charger) — in the order sent. The rest
(Heartbeat, Authorize, DataTransfer, MeterValues outside a transaction, NotifyEVChargingNeeds …)
is answered locally and not sent late: its answer was given."""


def is_queued_message(version: str, action: str, payload: dict[str, Any]) -> bool:
    """A message that goes to the durable queue when it cannot be delivered live."""
    if version == "1.6":
        if action == "MeterValues":
            return payload.get("transactionId") is not None  # a transaction message
        return action in QUEUED_16
    return action in QUEUED_201


def result_frame(unique_id: str, payload: dict[str, Any]) -> str:
    return json.dumps([3, unique_id, payload], separators=(",", ":"))


def error_frame(unique_id: str, error: Error) -> str:
    return json.dumps([4, unique_id, error.code, error.description, error.details], separators=(",", ":"))


@dataclass
class _Item:
    call: Call
    local: str | None
    """The local answer frame (``None`` for a 1.6 StartTransaction: handled when the id is known)."""
    deadline: float
    """Loop time by which the charger must have its answer."""


class ChargerRelay(CallRelay):
    def __init__(self, proxy: RelayHost, charger_id: str, session: OcppSession, link: UpstreamLink) -> None:
        self.proxy = proxy
        self.charger_id = charger_id
        self.session = session
        self.version: Version = "2.0.1" if session.version == "2.0.1" else "1.6"
        self.link = link
        link.on_call = self._csms_call
        link.on_state = self._link_state
        self.backlog: collections.deque[Queued] = proxy.backlog(charger_id)
        self.draining = False
        """The backlog is being sent: live messages wait their turn."""
        self._inbox: asyncio.Queue[_Item] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pending_tx_id: int | None = None
        self._ids = itertools.count(1)
        if self.version == "1.6":
            session.ctx.next_transaction_id = self._next_transaction_id
        session.ctx.relay_answers_boot = True

    # --- life ---------------------------------------------------------------------------------
    def start(self, after: asyncio.Task[None] | None = None) -> None:
        """Connect upstream and relay; ``after``: the close of the charger's previous relay (its
        backlog is this one's: only one may send it)."""
        self.link.start()
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"relay {self.charger_id}"),
            asyncio.create_task(self._replayer(after), name=f"replay {self.charger_id}"),
        ]
        if self.backlog:
            self._wake.set()

    async def close(self) -> None:
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        await self.link.close()

    @property
    def answer_within_s(self) -> float:
        return self.proxy.answer_within_s()

    def _backlogged(self) -> bool:
        return self.draining or bool(self.backlog)

    def _link_state(self, state: LinkState) -> None:
        if state == "up" and self.backlog:
            self.draining = True  # before anything live can go: the worker checks this first
        self.proxy.link_changed(self.charger_id, state, self)
        self._wake.set()

    def _next_transaction_id(self) -> int:
        tx_id, self._pending_tx_id = self._pending_tx_id, None
        return tx_id if tx_id is not None else self.proxy.txids.new_local(self.charger_id)

    # --- charger → CSMS -----------------------------------------------------------------------
    async def charger_call(self, call: Call) -> None:
        deadline = asyncio.get_running_loop().time() + self.answer_within_s
        if self.version == "1.6" and call.action == "StartTransaction":
            self._inbox.put_nowait(_Item(call, None, deadline))
            return
        local = await self.session.answer_locally(call)
        self._inbox.put_nowait(_Item(call, local, deadline))

    async def _worker(self) -> None:
        while True:
            item = await self._inbox.get()
            try:
                await self._serve(item)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("%s: relaying %s failed; answered locally", self.charger_id, item.call.action)
                with contextlib.suppress(Exception):
                    await self._send_local(item, item.local)

    def _left_s(self, item: _Item) -> float:
        return item.deadline - asyncio.get_running_loop().time()

    async def _serve(self, item: _Item) -> None:
        call = item.call
        if not self._backlogged():
            await self.link.wait_up(self._left_s(item))
        if self.link.up and not self._backlogged():
            payload = self._rewrite_up(call.action, call.payload)
            reply = await self.link.call(call.unique_id, call.action, payload, self._left_s(item))
            if reply is not None:
                await self._answered(item, reply)
                return
            self.proxy.count("answered_locally_timeout")
            await self._answer_here(item, sent=True)
            return
        await self._answer_here(item, sent=False)

    async def _answered(self, item: _Item, reply: Reply) -> None:
        call = item.call
        if isinstance(reply, Result):
            self._learn_auth(call.action, call.payload, reply.payload)
            if self.version == "1.6" and call.action == "StartTransaction":
                tx_id = reply.payload.get("transactionId")
                if isinstance(tx_id, int) and not isinstance(tx_id, bool):
                    self._pending_tx_id = tx_id
                    await self.session.answer_locally(call)
                    self._pending_tx_id = None
            if self.version == "1.6" and call.action == "StopTransaction":
                self._forget_local(call.payload.get("transactionId"))
            await self._to_charger(call, result_frame(call.unique_id, reply.payload))
        else:
            LOG.info("%s: the CSMS answered %s with %s", self.charger_id, call.action, reply.code)
            await self._to_charger(call, error_frame(call.unique_id, reply))
        self.proxy.count("relayed")

    async def _answer_here(self, item: _Item, *, sent: bool) -> None:
        """The CSMS cannot answer now: queue what must reach it, answer the charger locally.
        ``sent``: it went up and timed out — the CSMS may still be working on it, so the queued
        copy gets a message id of its own (OCPP-J: an id is not reused while its call may be
        pending); one never sent keeps the charger's."""
        call = item.call
        if is_queued_message(self.version, call.action, call.payload):
            local_tx: int | None = None
            frame = item.local
            if self.version == "1.6" and call.action == "StartTransaction":
                local_tx = self.proxy.txids.new_local(self.charger_id)
                self._pending_tx_id = local_tx
                frame = await self.session.answer_locally(call)
                self._pending_tx_id = None
            try:
                queued = await self.proxy.store.enqueue(
                    self.charger_id, self.version, str(uuid.uuid4()) if sent else call.unique_id, call.action,
                    call.payload, local_tx, self.proxy.clock(),
                )
            except Exception:
                LOG.exception("%s: %s not queued: left unanswered (the charger sends it again)", self.charger_id,
                              call.action)
                self.proxy.count("queue_write_failed")
                return
            self.backlog.append(queued)
            if self.link.up:
                self.draining = True
            self._wake.set()
            self.proxy.count("queued")
            await self._send_local(item, frame)
            return
        self.proxy.count("answered_locally")
        await self._send_local(item, item.local)

    async def _send_local(self, item: _Item, frame: str | None) -> None:
        call = item.call
        if frame is None:
            frame = call_error_frame(self.version, call.unique_id, "InternalError", "No answer")
            await self._to_charger(call, frame)
            return
        await self._to_charger(call, self._offline_answer(call, frame))

    async def _to_charger(self, call: Call, frame: str) -> None:
        await self.session.send_frame(frame)
        if call.action == "BootNotification":
            self.session.ctx.booted.set()  # depotctl's set-up may call the charger now

    def _offline_answer(self, call: Call, frame: str) -> str:
        """The local answer, with what it says about an id tag as ``offline_authorize`` has it."""
        msg = json.loads(frame)
        if msg[0] != 3 or not isinstance(msg[2], dict):
            return frame
        body: dict[str, Any] = msg[2]
        token, field = self._token_of(call.action, call.payload)
        if field is None or field not in body:
            return frame
        body[field] = self.proxy.auth.answer(self.version, token, self.proxy.clock())
        return result_frame(call.unique_id, body)

    def _token_of(self, action: str, payload: dict[str, Any]) -> tuple[Any, str | None]:
        """(The id tag a charger message names, the answer's field about it)."""
        if self.version == "1.6":
            if action in ("Authorize", "StartTransaction", "StopTransaction"):
                return payload.get("idTag"), "idTagInfo"
            return None, None
        if action in ("Authorize", "TransactionEvent"):
            return payload.get("idToken"), "idTokenInfo"
        return None, None

    def _learn_auth(self, action: str, request: dict[str, Any], answer: dict[str, Any]) -> None:
        token, field = self._token_of(action, request)
        if field is not None and token is not None:
            self.proxy.learn_auth(self.proxy.auth.learn(self.version, token, answer.get(field)))

    def _rewrite_up(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A 1.6 message naming a local transaction id, with the CSMS's id instead (once known)."""
        if self.version != "1.6" or action not in ("StopTransaction", "MeterValues"):
            return payload
        tx_id = payload.get("transactionId")
        if not self.proxy.txids.is_local(tx_id):
            return payload
        assert isinstance(tx_id, int)
        csms = self.proxy.txids.csms_id(self.charger_id, tx_id)
        if csms is None:
            LOG.warning("%s: %s names local transaction %d, which the CSMS never numbered: sent as it is",
                        self.charger_id, action, tx_id)
            return payload
        return {**payload, "transactionId": csms}

    def _forget_local(self, tx_id: Any) -> None:
        if self.proxy.txids.is_local(tx_id):
            self.proxy.forget_tx(self.charger_id, int(tx_id))

    # --- the backlog --------------------------------------------------------------------------
    async def _replayer(self, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            await asyncio.wait([after], timeout=5.0)
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self.link.up:
                continue
            if not self.backlog:
                self.draining = False
                continue
            self.draining = True
            if await self._drain():
                self.draining = False
                LOG.info("%s: upstream backlog delivered; live traffic resumes", self.charger_id)

    async def _drain(self) -> bool:
        """Send the backlog in order; ``False`` when the link failed on the way (the rest waits)."""
        timeout_s = self.proxy.answer_within_s()
        while self.backlog:
            q = self.backlog[0]
            payload = self._rewrite_up(q.action, q.payload)
            reply = await self.link.call(q.unique_id, q.action, payload, timeout_s)
            if reply is None:
                if self.backlog and self.backlog[0] is q:  # it may be pending at the CSMS: a new id next time
                    self.backlog[0] = dataclasses.replace(q, unique_id=str(uuid.uuid4()))
                return False
            mapped: tuple[str, int, int] | None = None
            if isinstance(reply, Result):
                self._learn_auth(q.action, q.payload, reply.payload)
                tx_id = reply.payload.get("transactionId")
                if q.local_tx_id is not None and isinstance(tx_id, int) and not isinstance(tx_id, bool):
                    self.proxy.txids.map(self.charger_id, q.local_tx_id, tx_id)
                    mapped = (self.charger_id, q.local_tx_id, tx_id)
                    if self.proxy.caps is not None:  # a TxProfile naming the CSMS's id is the local one's
                        self.proxy.caps.transaction_alias(self.charger_id, str(q.local_tx_id), str(tx_id))
                        self.proxy.caps_changed()
                    LOG.info("%s: local transaction %d is the CSMS's %d", self.charger_id, q.local_tx_id, tx_id)
                if q.action == "StartTransaction" and reply.payload.get("idTagInfo", {}).get("status") != "Accepted":
                    LOG.warning("%s: the CSMS answered a queued StartTransaction with %s (the charger was told %s)",
                                self.charger_id, reply.payload.get("idTagInfo"), "the offline answer")
            else:
                LOG.error("%s: the CSMS refused queued %s (seq %d) with %s %s: dropped", self.charger_id, q.action,
                          q.seq, reply.code, reply.description)
                self.proxy.count("queued_refused")
            try:
                await self.proxy.store.delivered(q.seq, mapped, self.proxy.clock())
            except Exception:
                LOG.exception("%s: delivered message %d not removed from the queue (sent again later)",
                              self.charger_id, q.seq)
            if self.backlog and self.backlog[0] is q:
                self.backlog.popleft()
            self.proxy.count("replayed")
            if q.action == "StopTransaction":
                self._forget_local(q.payload.get("transactionId"))
        return True

    # --- CSMS → charger -----------------------------------------------------------------------
    async def _csms_call(self, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        caps = self.proxy.caps
        if action in INTERCEPTED:
            if caps is None:
                await self.link.send(call_error_frame(self.version, unique_id, "NotSupported", "No cap book"))
                return
            request = self._rewrite_down(action, payload)
            if action == "SetChargingProfile":
                answer = caps.set_profile(self.charger_id, self.version, request)
            elif action == "ClearChargingProfile":
                answer = caps.clear(self.charger_id, self.version, request)
            else:
                answer = caps.composite(self.charger_id, self.version, request)
            if action != "GetCompositeSchedule":
                self.proxy.caps_changed()
            self.proxy.count("intercepted")
            await self.link.send(result_frame(unique_id, answer.payload))
            return
        request = self._rewrite_down(action, payload)
        if action in REMOTE_START and isinstance(request.get("chargingProfile"), dict):
            request = dict(request)
            profile = request.pop("chargingProfile")
            connector = request.get("connectorId" if self.version == "1.6" else "evseId")
            if caps is not None:
                caps.remote_start_profile(
                    self.charger_id, self.version, connector if isinstance(connector, int) else None, profile
                )
                self.proxy.caps_changed()
        if action in REFUSED_ACTIONS or (
            self.version == "1.6" and action == "ChangeConfiguration" and refused_key_16(request)
        ):  # the charger would be taken away from depotctl (guard.py)
            LOG.warning("%s: refused the CSMS's %s %.100s", self.charger_id, action, json.dumps(request))
            self.proxy.count("refused")
            await self.link.send(result_frame(unique_id, {"status": "Rejected"}))
            return
        refused = refused_items(request) if self.version != "1.6" and action == "SetVariables" else []
        if refused:
            await self._set_variables_guarded(unique_id, request, refused)
            return
        reply = await self._forward(action, request)
        if reply is None:
            LOG.warning("%s: no answer to the CSMS's %s within %.1f s", self.charger_id, action,
                        self.proxy.forward_timeout_s())
            self.proxy.count("forward_unanswered")
            await self.link.send(call_error_frame(self.version, unique_id, "InternalError", NO_ANSWER))
            return
        self.proxy.count("forwarded")
        if isinstance(reply, CallResult):
            body = reply.payload if isinstance(reply.payload, dict) else {}
            if action == "SendLocalList" and body.get("status") == "Accepted":
                self.proxy.learn_auth(self.proxy.auth.learn_local_list(self.version, request))
            await self.link.send(result_frame(unique_id, body))
            asked = sampling_asked(self.version, action, request)
            if asked and "Accepted" in json.dumps(body):
                self.proxy.spawn(self._sampling_again(asked))
            return
        assert isinstance(reply, CallError)
        details = reply.error_details if isinstance(reply.error_details, dict) else {}
        await self.link.send(
            error_frame(unique_id, Error(str(reply.error_code), str(reply.error_description or ""), details))
        )

    async def _forward(self, action: str, request: dict[str, Any]) -> CallResult | CallError | None:
        """Through the charger's call queue, bounded as a whole (the wait for its turn included)."""
        own_id = f"up-{next(self._ids)}"
        timeout_s = self.proxy.forward_timeout_s()
        try:
            return await asyncio.wait_for(self.proxy.control.foreign_call(
                self.charger_id, lambda: relayed_call(self.session, own_id, action, request, timeout_s)
            ), timeout_s + 1.0)
        except TimeoutError:
            return None

    async def _set_variables_guarded(self, unique_id: str, request: dict[str, Any], refused: list[int]) -> None:
        """A 2.0.1 SetVariables with items depotctl refuses (smart charging or meter values off, the
        charger's network or credentials): those items Rejected here, the rest forwarded; one
        answer, the results in the order asked (:mod:`.guard`)."""
        items = list(request.get("setVariableData") or [])
        results: list[Any] = [rejected_result(items[i]) if i in refused else None for i in range(len(items))]
        LOG.warning("%s: refused the CSMS's SetVariables of %s", self.charger_id,
                    ", ".join(".".join(map(str, guard_key(items[i]))) for i in refused))
        self.proxy.count("refused_smart_charging_off")
        keep = [i for i in range(len(items)) if i not in refused]
        if keep:
            reply = await self._forward("SetVariables", {**request, "setVariableData": [items[i] for i in keep]})
            if reply is None:
                await self.link.send(call_error_frame(self.version, unique_id, "InternalError", NO_ANSWER))
                return
            if isinstance(reply, CallError):
                details = reply.error_details if isinstance(reply.error_details, dict) else {}
                await self.link.send(
                    error_frame(unique_id, Error(str(reply.error_code), str(reply.error_description or ""), details))
                )
                return
            got = list((reply.payload or {}).get("setVariableResult") or [])
            for i, result in zip(keep, got, strict=False):
                results[i] = result
        await self.link.send(result_frame(unique_id, {"setVariableResult": [r for r in results if r is not None]}))
        asked = sampling_asked(self.version, "SetVariables", {"setVariableData": [items[i] for i in keep]})
        if asked and "Accepted" in json.dumps(results):
            self.proxy.spawn(self._sampling_again(asked))

    async def _sampling_again(self, asked: dict[str, str]) -> None:
        """After the CSMS changed meter sampling: what depotctl and the CSMS both need (:mod:`.guard`)."""
        interval, measurands = merged_sampling(self.session.ctx.site.ocpp.meter_sample_s, MEASURANDS, asked)
        try:
            await self.proxy.control.foreign_call(
                self.charger_id, lambda: self.session.configure_sampling(interval, measurands)
            )
        except Exception:
            LOG.exception("%s: meter sampling not set again after the CSMS changed it", self.charger_id)
            return
        LOG.info("%s: meter sampling set again after the CSMS's change: every %d s, %s", self.charger_id,
                 interval, ",".join(measurands))

    def _rewrite_down(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A 1.6 call naming a CSMS transaction id the charger knows by a local one, rewritten."""
        if self.version != "1.6":
            return payload
        txids = self.proxy.txids
        if action == "RemoteStopTransaction":
            local = _local_of(txids.local_id, self.charger_id, payload.get("transactionId"))
            return payload if local is None else {**payload, "transactionId": local}
        if action == "SetChargingProfile":
            profile = payload.get("csChargingProfiles")
            if isinstance(profile, dict):
                local = _local_of(txids.local_id, self.charger_id, profile.get("transactionId"))
                if local is not None:
                    return {**payload, "csChargingProfiles": {**profile, "transactionId": local}}
        return payload


def _local_of(lookup: Callable[[str, int], int | None], charger_id: str, tx_id: Any) -> int | None:
    if not isinstance(tx_id, int) or isinstance(tx_id, bool):
        return None
    return lookup(charger_id, tx_id)
