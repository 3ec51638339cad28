"""The one owner of what each session has been told it may draw, and of every rule about changing it.

The charger-side book (profiles pending, accepted and expiring on the charger's clock) is kept per
connector by :class:`~controller.chargers.control.Control`; this module keeps the controller-side
book per *session* and decides what may be sent when (docs/safety.md, hazards 1–4, 6, 7, 19, 21):

* **Only the plan raises.** :meth:`Dispatcher.lower` (the overload shed, the fail-safe) sends
  ``min(what the session may draw now, wanted)`` and nothing when that is not lower; a paused
  session stays paused.
* **A plan never undoes a newer decrease.** A plan's increase for a session lowered after the
  plan's snapshot was taken is not sent; a re-plan is asked for instead.
* **Decreases before increases.** A plan's decreases go out first; its increases wait until the
  decreases they depend on (a node and phase in common) were accepted and their EVs had time to
  react. An increase whose decrease failed (rejected, timed out, not connected) is not sent.
* **A charger that rejects or ignores limits is uncontrolled**: it is left out of the plan and
  budgeted at what it draws, up to its maximum; it leaves that state when it obeys again
  (a profile accepted, and its measured draw within the limit after the reaction time).
* **A charger a commissioning run holds gets nothing of the dispatcher's own** (``held``): no
  plan limit, no refresh, no probe; only the safety may still lower it — the overload shed, the
  fail-safe — and then ``overridden`` is told first (the run is cancelled: safety wins). A plan
  whose snapshot is older than a run's start raises nothing, also after it waited for the
  reaction time; a plan push that was waiting for the charger when the run began writes nothing
  in the book (the run's profiles are what the charger runs under).
* **Reaction times are per charger** (``reaction_of``; else the one ``reaction_s``): a raise
  waits for the largest reaction time of the chargers its plan lowered. A raise held back for a
  decrease that is still settling asks for a plan when the settling ends (``call_later``), not
  at the next plan cycle: a fleet manager's new departure reaches the charger that soon.

The book's ``limit`` is the *lowest* limit a session may be running under that we know of: an
accepted limit, or a decrease that timed out (the charger may have applied it). It is the
reference for "only lower"; the *highest* a connector may draw — for budgets — is Control's
:meth:`~controller.chargers.control.Control.connector_budget`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from controller.chargers.control import ApplyResult, Budget
from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState
from controller.daemon.sessions import REACTION_S, Sent
from controller.daemon.uncontrolled import (
    IGNORE_CONFIRM_S,
    IGNORE_TOLERANCE_A,
    IGNORE_TOLERANCE_KW,
    MUTE_TIMEOUTS,
    UNCONTROLLED_HOLD_S,
    Uncontrolled,
    UncontrolledRules,
)
from controller.model.phasor import charger_phasors
from controller.model.site import Site
from controller.model.snapshot import PhaseCurrents, Plan, SessionPlan, SessionState

LOG = logging.getLogger("depotctl.daemon.dispatch")

EPS = 1e-6
SETTLED_MARGIN_S = 0.05
"""A plan asked for when a decrease has settled comes this much after (clocks round)."""
SENT_OK = ("accepted", "unchanged", "superseded")
__all__ = [
    "IGNORE_CONFIRM_S", "IGNORE_TOLERANCE_A", "IGNORE_TOLERANCE_KW", "MUTE_TIMEOUTS", "UNCONTROLLED_HOLD_S",
    "Dispatcher", "ProfilePort", "PushObserver", "SentBook", "Uncontrolled",
]

Schedule = tuple[tuple[datetime, float], ...]


class ProfilePort(Protocol):
    """What the dispatcher needs from :class:`~controller.chargers.control.Control`."""

    async def apply(
        self,
        charger_id: str,
        limit: float,
        schedule: Sequence[tuple[datetime, float]] = (),
        *,
        connector: int = 1,
        source: str = "",
        go: Callable[[], bool] | None = None,
    ) -> ApplyResult: ...

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget: ...

    def failsafe_limit(self, charger_id: str) -> float: ...

    def unanswered_calls(self, charger_id: str) -> int: ...

    def lowerable_now(self, charger_id: str, now: datetime | None = None) -> bool: ...


PushObserver = Callable[[str, int, float, ApplyResult], None]
"""(charger, connector, limit asked for, result): metrics and history of every push."""


class SentBook(Protocol):
    """The dispatcher's book, read-only: what each session was last sent (by session id), and the
    chargers it holds uncontrolled (by charger id). Only the dispatcher writes them."""

    @property
    def sent(self) -> Mapping[str, Sent]: ...

    @property
    def uncontrolled(self) -> Mapping[str, Uncontrolled]: ...


@dataclass
class Dispatcher(UncontrolledRules):
    """Sends limits to sessions by the rules above. ``site`` is read through a callable (reload)."""

    control: ProfilePort
    states: Mapping[str, ChargerState]
    site: Callable[[], Site]
    clock: Callable[[], datetime]
    observe: PushObserver
    request_replan: Callable[[], None]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    reaction_s: float = REACTION_S
    reaction_of: Callable[[str], float] | None = None
    """Per charger, how long its EVs take to follow a new limit [s] (None: ``reaction_s`` for all)."""
    held: Callable[[str], bool] | None = None
    """Chargers a commissioning run holds (None: none)."""
    overridden: Callable[[str, str], None] | None = None
    """(charger, why): the shed or the fail-safe lowers a held charger — its run ends first."""
    call_later: Callable[[float, Callable[[], None]], object] | None = None
    """(delay [s], callback): runs the callback later (None: the running event loop's call_later)."""
    sent: dict[str, Sent] = field(default_factory=dict)
    uncontrolled: dict[str, Uncontrolled] = field(default_factory=dict)
    _over_since: dict[str, datetime] = field(default_factory=dict)
    _under_since: dict[str, datetime] = field(default_factory=dict)
    lowered_at: dict[str, datetime] = field(default_factory=dict)
    pending_lower: dict[str, float] = field(default_factory=dict)
    """Per session, a decrease on its way (shed, fail-safe): counts before its answer arrives."""
    settling: dict[str, datetime] = field(default_factory=dict)
    """Per session, until when a decrease is not done — raises sharing a node and phase wait: the
    answer + the reaction time; unconfirmed (timed out, not connected), until what the charger may
    still hold has ended by its own rules + the reaction time."""
    _unconfirmed: set[str] = field(default_factory=set)
    _lowering: Counter[str] = field(default_factory=Counter)
    """Per charger, decreases in flight (not answered yet): raises sharing its nodes and phases wait."""
    _drawn: dict[str, list[tuple[datetime, PhaseCurrents]]] = field(default_factory=dict)
    _charger_of: dict[str, str] = field(default_factory=dict)  # session → charger
    _probing: dict[str, asyncio.Task[str]] = field(default_factory=dict)  # uncontrolled charger → its probe
    _taken_at: datetime | None = None  # when a commissioning run last took a charger over
    _wake_at: datetime | None = None  # a plan asked for then: a held-back raise's settling ends

    # --- what a session may draw now -------------------------------------------------------------
    def session_key(self, charger_id: str, connector: int) -> str | None:
        st = self.states.get(charger_id)
        tx = st.transaction(connector) if st is not None else None
        return None if tx is None else session_id(charger_id, tx.transaction_id)

    def current_limit(self, charger_id: str, connector: int) -> float:
        """The limit the session on this connector runs under, as far as we know (planner units):
        the book's entry, else what the charger may draw on that connector by its own profiles."""
        key = self.session_key(charger_id, connector)
        sent = self.sent.get(key) if key is not None else None
        if sent is not None:
            value = sent.limit
        else:
            value = self.control.connector_budget(charger_id, connector, self.clock()).value
        pending = self.pending_lower.get(key) if key is not None else None
        return value if pending is None else min(value, pending)

    def can_lower_now(self, charger_id: str) -> bool:
        """A decrease sent now would take effect soon: the charger is not uncontrolled (it rejects
        or ignores limits, or does not answer) and no profile call to it is stuck
        (:meth:`~controller.chargers.control.Control.lowerable_now`). The overload shed counts the
        others' sessions as load that stays."""
        return charger_id not in self.uncontrolled and self.control.lowerable_now(charger_id, self.clock())

    # --- sending ----------------------------------------------------------------------------------
    async def _push(
        self,
        charger_id: str,
        connector: int,
        limit: float,
        schedule: Schedule,
        source: str,
        *,
        lowering: bool,
        plan: bool = False,
    ) -> ApplyResult:
        """Send one limit and keep the book. ``plan``: the plan's (not the safety's): once a run
        holds the charger its answer goes in no book of ours but the history (it may have waited
        for the charger while the run began)."""
        go = (lambda: not self.is_held(charger_id)) if plan else None
        if lowering:  # until it is answered, nothing sharing its nodes and phases is raised
            self._lowering[charger_id] += 1
        try:
            result = await self.control.apply(charger_id, limit, schedule, connector=connector, source=source, go=go)
        finally:
            if lowering:
                self._lowering[charger_id] -= 1
        self.observe(charger_id, connector, limit, result)
        if plan and self.is_held(charger_id):
            return result
        key = self.session_key(charger_id, connector)
        now = self.clock()
        if result.status == "rejected":
            self.mark_uncontrolled(charger_id, f"rejected a profile: {result.detail or 'Rejected'}")
        if key is None:
            return result
        self._charger_of[key] = charger_id
        prev = self.sent.get(key)
        applied = result.status == "accepted" or (lowering and result.status == "timeout")
        lowered = prev is not None and limit < prev.limit - EPS
        if applied and (prev is None or abs(prev.limit - limit) > EPS):
            self.sent[key] = Sent(limit, now, prev.limit if prev is not None else None)
            if lowered:
                self.lowered_at[key] = now
        reaction = timedelta(seconds=self.reaction(charger_id))
        if result.status == "accepted":
            if lowered or key in self._unconfirmed:
                self._unconfirmed.discard(key)
                self.settling[key] = now + reaction  # done once the EV reacted
        elif lowering and result.status not in ("unchanged", "superseded"):
            # may or may not be in force: nothing sharing it is raised until whatever the charger
            # may still hold has ended by its own rules (and the EV reacted)
            self._unconfirmed.add(key)
            until = self.control.connector_budget(charger_id, connector, now).until
            self.settling[key] = (until if until is not None and until > now else now) + reaction
        self._judge_answers(charger_id)
        if result.status == "accepted" and charger_id in self.uncontrolled:
            self._maybe_controlled(charger_id)
        return result

    async def lower(self, charger_id: str, connector: int, wanted: float, source: str, *, probe: bool = False) -> str:
        """Send ``wanted`` if it is below what the session may draw now (shed, fail-safe); else
        nothing — unless a limit from the book is to be kept alive, or ``probe`` (an uncontrolled
        charger is offered its limit again, to show whether it obeys). A charger a commissioning
        run holds is never probed; lowering it ends the run first (``overridden``)."""
        if self.is_held(charger_id):
            if probe:
                return "unchanged"
            if self.overridden is not None:
                self.overridden(charger_id, source)
        current = self.current_limit(charger_id, connector)
        target = min(current, wanted)
        key = self.session_key(charger_id, connector)
        if ((key is not None and key in self.sent) or probe) and target >= current - EPS:
            # not lower: keep the profile that holds it there alive (a refresh, never a raise)
            result = await self._push(charger_id, connector, target, (), source, lowering=True)
            return result.status
        if target >= current - EPS:
            return "unchanged"
        if key is None:
            return (await self._push(charger_id, connector, target, (), source, lowering=True)).status
        self.lowered_at[key] = self.clock()  # before the call: a plan running now must not undo it
        self.pending_lower[key] = min(target, self.pending_lower.get(key, target))
        try:
            result = await self._push(charger_id, connector, target, (), source, lowering=True)
        finally:
            if self.pending_lower.get(key) == target:
                del self.pending_lower[key]
        return result.status

    async def failsafe(self, reason: str) -> None:
        """Every running session on a connected charger to min(what it may draw, its fail-safe limit)."""
        calls = []
        for cid, st in list(self.states.items()):
            if not st.connected:
                continue
            limit = self.control.failsafe_limit(cid)
            for conn_id, conn in st.connectors.items():
                if conn_id >= 1 and conn.transaction is not None:
                    calls.append(self.lower(cid, conn_id, limit, f"fail-safe: {reason}"))
        if calls:
            await asyncio.gather(*calls)

    async def dispatch_plan(
        self, result: Plan, sessions: Sequence[SessionState], snapshot_at: datetime, failsafe_active: Callable[[], bool]
    ) -> None:
        """Send a plan: decreases first, then the increases whose decreases held, after the reaction time."""
        connectors = {s.session_id: s.connector for s in sessions}
        down, up = self._split(result, connectors, snapshot_at)
        # decreases, and refreshes that raise nothing, go out at once (a refresh held back behind a
        # slow charger's decrease and the reaction time could let a profile lapse); raises wait
        raising = [sp for sp in up if self._is_raise(sp, connectors)]
        first = down + [sp for sp in up if sp not in raising]
        if raising and self._taken_over_since(snapshot_at):
            raising = []
        failed: list[str] = []
        if first:
            results = await asyncio.gather(*(
                self._push(sp.charger_id, connectors.get(sp.session_id, 1), sp.limit.value, sp.schedule,
                           sp.limit.source, lowering=sp in down, plan=True)
                for sp in first
            ))
            for sp, res in zip(first, results, strict=True):
                if sp in down and res.status not in SENT_OK:
                    failed.append(sp.charger_id)
        await self._uncontrolled_to_failsafe()
        if not raising:
            return
        if down:  # the lowered EVs react before any raised one may: the slowest of them
            await self.sleep(max(self.reaction(sp.charger_id) for sp in down))
        if failsafe_active():
            return
        await self._raise(raising, connectors, snapshot_at, failed)

    def _split(
        self, result: Plan, connectors: Mapping[str, int], snapshot_at: datetime
    ) -> tuple[list[SessionPlan], list[SessionPlan]]:
        """The plan's sessions that may go out, as (decreases, the rest); uncontrolled chargers',
        held chargers' and sessions lowered after the snapshot are left out."""
        down: list[SessionPlan] = []
        up: list[SessionPlan] = []
        for sp in result.sessions:
            conn = connectors.get(sp.session_id, 1)
            if sp.charger_id in self.uncontrolled or self.is_held(sp.charger_id):
                continue
            if self._newer_than(sp.session_id, snapshot_at):
                continue  # lowered after the snapshot: nothing this plan says about it may go out
            if sp.limit.value < self.current_limit(sp.charger_id, conn) - EPS:
                down.append(sp)
            else:
                up.append(sp)
        return down, up

    async def _raise(
        self, raising: list[SessionPlan], connectors: Mapping[str, int], snapshot_at: datetime, failed: list[str]
    ) -> None:
        """Send the plan's increases, but none sharing a node and phase with a decrease that failed
        or is not done yet — and none at all when a run took a charger over since the snapshot
        (while the plan waited for the reaction time)."""
        if self._taken_over_since(snapshot_at):
            return
        blocked = self._blocked_phases(failed) | self._blocked_phases(self._unsettled_chargers())
        sendable: list[SessionPlan] = []
        held_back = False
        for sp in raising:
            if self._newer_than(sp.session_id, snapshot_at):
                continue  # a shed landed while this plan waited
            if self.is_held(sp.charger_id):
                continue  # a commissioning run began while this plan waited
            if self._is_raise(sp, connectors) and blocked & self._phases_of(sp.charger_id):
                held_back = True
                continue  # the next plan, once the decreases it depends on are done
            sendable.append(sp)
        if held_back:
            self._plan_when_settled()
        if failed:
            LOG.warning("a decrease did not go through (%s): increases sharing its nodes and phases wait",
                        ", ".join(sorted(set(failed))))
        await asyncio.gather(*(
            self._push(sp.charger_id, connectors.get(sp.session_id, 1), sp.limit.value, sp.schedule,
                       sp.limit.source, lowering=False, plan=True)
            for sp in sendable
        ))

    def _taken_over_since(self, snapshot_at: datetime) -> bool:
        """A run took a charger over after this plan's snapshot: the plan counted it at its old
        limit, not at its maximum — its raises could crowd the run out; the next plan may."""
        if self._taken_at is None or self._taken_at <= snapshot_at:
            return False
        self.request_replan()
        return True

    def _newer_than(self, key: str, snapshot_at: datetime) -> bool:
        lowered = self.lowered_at.get(key)
        if lowered is None or lowered <= snapshot_at:
            return False
        self.request_replan()  # plan again on data newer than that decrease
        return True

    def _unsettled_chargers(self) -> list[str]:
        """Chargers with a decrease not yet done (unconfirmed, or its EV still reacting), or drawing
        above their limit (perhaps ignoring it) — uncontrolled ones are budgeted at their draw instead."""
        now = self.clock()
        keys = [key for key, until in self.settling.items() if until > now] + list(self._over_since)
        out = {self._charger_of[key] for key in keys if key in self._charger_of}
        out |= {cid for cid, n in self._lowering.items() if n > 0}  # a decrease still in flight
        return [cid for cid in out if cid not in self.uncontrolled]

    def _plan_when_settled(self) -> None:
        """Ask for a plan when the first decrease still settling is done (a raise waits for it);
        one wake at a time, the earliest. A decrease still in flight or an EV drawing above its
        limit has no known end: the plan cycle comes back to those."""
        now = self.clock()
        ends = [until for until in self.settling.values() if until > now]
        if not ends:
            return
        at = min(ends)
        if self._wake_at is not None and now < self._wake_at <= at:
            return  # a plan is already asked for by then
        self._wake_at = at
        delay_s = (at - now).total_seconds() + SETTLED_MARGIN_S
        later = self.call_later if self.call_later is not None else asyncio.get_running_loop().call_later
        later(delay_s, self.request_replan)

    def _is_raise(self, sp: SessionPlan, connectors: Mapping[str, int]) -> bool:
        return sp.limit.value > self.current_limit(sp.charger_id, connectors.get(sp.session_id, 1)) + EPS

    async def _uncontrolled_to_failsafe(self) -> None:
        """Uncontrolled chargers are not planned; they are offered their fail-safe limit (only ever
        lower), which is also how they show that they obey again. In the background: a charger
        that does not answer must not hold up the plan's other pushes."""
        for cid, u in list(self.uncontrolled.items()):
            st = self.states.get(cid)
            if st is None or not st.connected or cid in self._probing or self.is_held(cid):
                continue
            for conn_id, conn in st.connectors.items():
                if conn_id >= 1 and conn.transaction is not None:
                    task = asyncio.create_task(
                        self.lower(cid, conn_id, self.control.failsafe_limit(cid), f"uncontrolled: {u.reason}",
                                   probe=True)
                    )
                    self._probing[cid] = task
                    task.add_done_callback(self._probe_done)

    def _probe_done(self, task: asyncio.Task[str]) -> None:
        for cid, t in list(self._probing.items()):
            if t is task:
                del self._probing[cid]

    def _phases_of(self, charger_id: str) -> set[tuple[str, int]]:
        """(node, line) pairs the charger loads: every node above it, on the lines its current
        reaches there (its wired lines; through a transformer, the primary lines they feed)."""
        site = self.site()
        try:
            ch = site.charger(charger_id)
        except KeyError:
            return {(node, p) for node in site.node_ids() for p in range(3)}
        return {
            (node, ln)
            for node, vec in charger_phasors(site, ch).items()
            for ln in range(3)
            if abs(vec[ln]) > 1e-12
        }

    def _blocked_phases(self, charger_ids: Iterable[str]) -> set[tuple[str, int]]:
        out: set[tuple[str, int]] = set()
        for cid in charger_ids:
            out |= self._phases_of(cid)
        return out

    # --- bookkeeping ------------------------------------------------------------------------------
    def forget_charger(self, charger_id: str, *, taken_over: bool = True) -> None:
        """Drop what the book holds of the charger's sessions: what it runs under is then what its
        own profiles allow (Control's book). ``taken_over`` (a commissioning run takes it over): a
        plan whose snapshot is older raises nothing; else (the run ended) nothing more."""
        if taken_over:
            self._taken_at = self.clock()
        st = self.states.get(charger_id)
        keys = {key for key, cid in self._charger_of.items() if cid == charger_id}
        if st is not None:
            for conn_id, conn in st.connectors.items():
                if conn_id >= 1 and conn.transaction is not None:
                    keys.add(session_id(charger_id, conn.transaction.transaction_id))
        for key in keys:
            self.session_ended(key)

    def session_ended(self, key: str) -> None:
        for book in (self.sent, self.lowered_at, self._over_since, self._under_since, self.settling,
                     self.pending_lower, self._charger_of):
            book.pop(key, None)
        self._unconfirmed.discard(key)


