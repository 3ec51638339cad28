"""Pushing limits to chargers, and what each connector may draw by the charger's own rules.

* :meth:`Control.apply` builds the control profile for one charger/connector and sends it, unless
  the charger already runs one within the deadband that is not yet due for refresh *and* nothing
  in the new one is lower (a decrease always goes out). One call per charger at a time
  (:class:`~controller.chargers.call_queue.CallQueue`): a waiting decrease goes ahead of a
  waiting increase; a newer ``apply`` for the same connector supersedes one still waiting; any
  number of chargers in parallel. Every call is bounded by ``ocpp.call_timeout_s``; so a
  charger whose last call timed out, or whose call in flight is unanswered for more than
  :data:`STUCK_CALL_S`, cannot be lowered soon (:meth:`Control.lowerable_now`: the overload shed
  takes its excess from the others).
* A profile answered Rejected/NotSupported (or a CALLERROR) is retried with the quirk options that
  fit, one at a time; the first that works is *learned* for the charger (logged with the line to
  put in the site file, counted, visible in :class:`ChargerState`).
* Profiles are built on the charger's clock (its measured offset, :mod:`.clock_offset`) and W
  limits are sized by the phases the connector's EV uses (:mod:`.profiles`).
* The **book**: every profile sent to a charger stays in it while it may be in force in the
  charger's eyes — pending (in flight, timed out, cut off) or accepted — until its end on the
  charger's clock, mapped back to ours, plus ``skew_s``; an accepted profile replaces the older
  ones it replaces on the charger (same id, or same stack level + purpose + connector); a
  rejected one never counts. A BootNotification makes every accepted profile uncertain (the
  charger may have lost them) and the fail-safe unconfirmed.
* :meth:`Control.connector_budget` is the worst case a connector may draw (docs/safety.md): the max
  over every profile that may be in force for it (connector-0 TxDefault profiles apply to every
  connector), over the whole schedule; plus what it falls back to unless an accepted profile
  certainly covers it now — the fail-safe limit once the fail-safe profile was *confirmed*
  installed, else the charger's maximum. :meth:`Control.budget` sums a charger's connectors.
* The fail-safe is confirmed: :meth:`Control.keep_failsafe` retries it with exponential back-off
  while the charger stays connected; a changed ``failsafe.*`` (:attr:`Control.site`) re-installs
  it on every connected charger, budgeted at max(old, new) until accepted.
* **holds_last_limit** (docs/safety.md): a charger known to hold a profile's last limit after
  its end — the site file's quirk, or learnt (:meth:`Control.learn`, from a commissioning whose
  ``profile_expiry`` failed) — is budgeted as holding it until we send a lower one: a control
  profile in its book (accepted, or one that may have been applied: timed out) stays counted
  after its end, until a newer accepted profile replaces it on the charger.
* :meth:`Control.send_spec` sends a ready-built profile as it is (commissioning): through the
  same one-call-per-charger queue and into the same book, without quirk fall-backs.
* :meth:`Control.foreign_call` runs a call the operator's CSMS made (local-controller mode)
  through the same queue, behind every waiting decrease.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar

from controller.chargers.call_queue import CallQueue
from controller.chargers.clock import Clock
from controller.chargers.events import ChargerEvent, EventKind, EventSink
from controller.chargers.profiles import (
    CONTROL_STACK_LEVEL,
    FAILSAFE_PROFILE_ID,
    INTERNAL_OPTIONS,
    UNKNOWN_OFFSET_S,
    NoSafeProfile,
    ProfileSpec,
    Target,
    control_profile,
    effective_planner_limit,
    failsafe_profile,
    lowers,
    same_intent,
    target_for,
)
from controller.chargers.session import CallOutcome, OcppSession
from controller.chargers.state import AcceptedProfile, ChargerState, Transaction
from controller.config.schema import KNOWN_QUIRKS
from controller.model.site import GRID_ID, Charger, Site

LOG = logging.getLogger("depotctl.chargers.control")
T = TypeVar("T")

ApplyStatus = Literal[
    "accepted", "unchanged", "superseded", "not_connected", "deferred", "rejected", "timeout", "failed"
]
_NO_FALLBACK = ("Timeout", "Disconnected")
_MAY_HAVE_APPLIED = ("Timeout", "Disconnected")
_FALLBACK_BACKOFF_S = 60.0
EPS = 1e-6
FAILSAFE_RETRY_S = (2.0, 60.0)
"""Fail-safe install retries: first delay, longest delay [s] (doubling in between)."""
MIN_RETRY_S = 0.05
STUCK_CALL_S = 1.0
"""A profile call unanswered for longer than this [s] holds up the charger's next one: a
decrease would reach it only once that call ends (answered, or timed out)."""
HOLDS_LAST_LIMIT = "holds_last_limit"
"""The quirk of a charger that keeps a profile's last limit after the profile ends."""


@dataclass(frozen=True)
class ApplyResult:
    charger_id: str
    connector_id: int
    status: ApplyStatus
    spec: ProfileSpec | None = None
    detail: str = ""


@dataclass(frozen=True)
class Budget:
    """Worst-case limit in planner units (A per phase for AC, kW for DC).

    ``until`` is when the profiles it counts can have ended (``None``: none counts, it already is
    the fall-back: the confirmed fail-safe, or the charger's maximum).
    """

    value: float
    unit: Literal["A", "kW"]
    source: str
    until: datetime | None


@dataclass
class SentProfile:
    """One profile the charger may hold: pending until accepted (``accepted_at``)."""

    spec: ProfileSpec
    seq: int
    sent_at: datetime
    accepted_at: datetime | None = None
    certain: bool = True
    """False once the charger rebooted after accepting it: it may have lost it."""

    @property
    def confirmed(self) -> bool:
        return self.accepted_at is not None and self.certain


@dataclass
class _Ctl:
    queue: CallQueue = field(default_factory=CallQueue)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    book: list[SentProfile] = field(default_factory=list)
    """Control profiles that may be in force (fail-safe profiles are kept apart)."""
    failsafe: SentProfile | None = None
    """The fail-safe profile the charger accepted (``None``: none confirmed)."""
    failsafe_pending: list[SentProfile] = field(default_factory=list)
    learned: frozenset[str] = frozenset()
    fallback_failed_at: datetime | None = None
    unanswered: int = 0
    """Profile calls (control and fail-safe) timed out in a row; any answer resets it."""
    in_flight_since: datetime | None = None
    """When the profile call now waiting for the charger's answer was sent (``None``: none)."""
    restored: dict[int, tuple[float, datetime]] = field(default_factory=dict)
    """Per connector (0: every connector), the most a profile accepted before a restart of the
    controller allows (planner units) and until when (our clock, margin included)."""


@dataclass(frozen=True)
class _Window:
    """When (our clock) a profile may be in force: certainly from ``started`` to ``lo``, possibly
    until ``hi`` (``None``: permanent)."""

    started: datetime | None
    lo: datetime | None
    hi: datetime | None


class Control:
    """Profile push for every charger of the site. ``session_of``/``state_of`` come from the server."""

    def __init__(
        self,
        site: Site,
        session_of: Callable[[str], OcppSession | None],
        state_of: Callable[[str], ChargerState],
        clock: Clock,
        emit: EventSink,
        *,
        refresh_fraction: float = 0.5,
        skew_s: float = 10.0,
        unknown_offset_s: float = UNKNOWN_OFFSET_S,
        failsafe_retry_s: tuple[float, float] = FAILSAFE_RETRY_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._session_of = session_of
        self._state_of = state_of
        self.clock = clock
        self.emit = emit
        self.refresh_fraction = refresh_fraction
        self.skew_s = skew_s
        """Margin on every profile end mapped from the charger's clock to ours [s]."""
        self.unknown_offset_s = unknown_offset_s
        """How far off an unmeasured charger clock may be [s] (must match the profiles' start margin)."""
        self.failsafe_retry_s = failsafe_retry_s
        self._sleep = sleep
        self._ctl: dict[str, _Ctl] = {}
        self._failsafe_tasks: dict[str, asyncio.Task[ApplyResult]] = {}
        self.counters: Counter[str] = Counter()
        self._chargers: dict[str, Charger] = {}
        self._site: Site | None = None
        self.site = site

    @property
    def site(self) -> Site:
        assert self._site is not None
        return self._site

    @site.setter
    def site(self, site: Site) -> None:
        old = self._site
        self._site = site
        self._chargers = {ch.id: ch for ch in site.chargers}
        if old is not None and old.failsafe != site.failsafe:
            self._failsafe_changed()

    # --- helpers ------------------------------------------------------------------------------
    def ctl(self, charger_id: str) -> _Ctl:
        if charger_id not in self._ctl:
            self._ctl[charger_id] = _Ctl()
        return self._ctl[charger_id]

    def target(self, charger_id: str, connector: int | None = None) -> Target:
        """What the builders need for this charger; with ``connector``: its EV's phases in use."""
        charger = self._chargers.get(charger_id)
        if charger is not None:
            base = target_for(self.site, charger)
        else:  # accept_unknown: treat as a 3-phase AC charger on the grid's bus at the defaults
            base = target_for(self.site, Charger(charger_id, GRID_ID, "ac", 3, "L1-L2-L3"))
        st = self._state_of(charger_id)
        caps = st.capabilities
        extra = set(self.ctl(charger_id).learned)
        if caps.rate_units and "A" not in caps.rate_units:
            extra.add("power_only")
        if caps.max_stack_level is not None and caps.max_stack_level < CONTROL_STACK_LEVEL:
            extra.add("stack_level_zero_only")
        target = base.with_quirks(extra)
        if connector is not None:
            target = target.with_phases_in_use(self.phases_in_use(charger_id, connector))
        return target

    def phases_in_use(self, charger_id: str, connector: int) -> int | None:
        """Phases the connector's EV draws on: measured during its transaction, else as reported,
        else ``None`` (a W limit is then sized for one phase)."""
        c = self._state_of(charger_id).connectors.get(connector)
        tx = c.transaction if c is not None else None
        if c is None or tx is None:
            return None
        since = tx.started_at if tx.seen_at is None else min(tx.started_at, tx.seen_at)
        measured = c.measured.phases_in_use(since)
        return measured if measured is not None else tx.phases_known

    def learn(self, charger_id: str, quirks: Iterable[str]) -> None:
        """Add quirks known from elsewhere — a commissioning report — to what was learnt for the
        charger (so :meth:`target` includes them from now on, as if the site file said so).

        Raises ``ValueError`` naming any name that is no known quirk."""
        new = frozenset(quirks)
        unknown = sorted(new - frozenset(KNOWN_QUIRKS) - INTERNAL_OPTIONS)
        if unknown:
            raise ValueError(
                f"charger {charger_id}: unknown quirk(s) {', '.join(map(repr, unknown))};"
                f" known: {', '.join(KNOWN_QUIRKS)}"
            )
        ctl = self.ctl(charger_id)
        if new <= ctl.learned:
            return
        ctl.learned = ctl.learned | new
        self._state_of(charger_id).learned_quirks = tuple(sorted(ctl.learned))
        LOG.info("%s: quirks %s learnt", charger_id, ", ".join(sorted(new)))

    def holds_last_limit(self, charger_id: str) -> bool:
        """The charger keeps a profile's last limit after its end (site file or learnt)."""
        return HOLDS_LAST_LIMIT in self.target(charger_id).quirks

    def failsafe_limit(self, charger_id: str) -> float:
        kind = self.target(charger_id).kind
        return self.site.failsafe.dc_kw if kind == "dc" else self.site.failsafe.charger_a

    def failsafe_spec(self, charger_id: str) -> ProfileSpec:
        """The fail-safe profile this charger should hold now."""
        return failsafe_profile(self.target(charger_id), self.failsafe_limit(charger_id))

    def failsafe_installed(self, charger_id: str) -> bool:
        """The charger accepted the fail-safe profile at the current fail-safe value (and has not
        rebooted since)."""
        confirmed = self.ctl(charger_id).failsafe
        if confirmed is None:
            return False
        return abs(confirmed.spec.max_planner_limit - self.failsafe_spec(charger_id).max_planner_limit) <= EPS

    def deadband(self, charger_id: str) -> float:
        t = self.target(charger_id)
        db = self.site.control.deadband_a
        return db * t.full_watts_per_a / 1000.0 if t.kind == "dc" else db

    def _event(self, kind: EventKind, charger_id: str, **detail: object) -> None:
        self.emit(ChargerEvent(kind, charger_id, self.clock(), detail))

    def _sync_failsafe(self, charger_id: str) -> None:
        self._state_of(charger_id).failsafe_confirmed = self.failsafe_installed(charger_id)

    # --- connection life ----------------------------------------------------------------------
    def connection_reset(self, charger_id: str) -> None:
        """A new connection: what was accepted still counts for budgeting until it ends, but not
        as certainly in force — some firmwares keep profiles in RAM only and lose them with the
        link, without a BootNotification — so the set-up re-installs the fail-safe and the next
        push is sent, not judged "unchanged"."""
        self.ctl(charger_id).fallback_failed_at = None
        self.note_boot(charger_id, "reconnected")

    def connection_lost(self, charger_id: str) -> None:
        """The charger's link ended: stop retrying its fail-safe (a reconnect starts again)."""
        task = self._failsafe_tasks.pop(charger_id, None)
        if task is not None and not task.done():
            task.cancel()

    def note_boot(self, charger_id: str, why: str = "booted") -> None:
        """A BootNotification: the charger may have lost every profile. Its fail-safe counts as
        unconfirmed (budget: its maximum) until installed again; accepted control profiles still
        count until they end, but no longer as certainly in force."""
        ctl = self.ctl(charger_id)
        had = ctl.failsafe is not None or any(r.accepted_at is not None for r in ctl.book)
        ctl.failsafe = None
        ctl.failsafe_pending.clear()
        for rec in ctl.book:
            rec.certain = False
        st = self._state_of(charger_id)
        st.failsafe = None
        st.accepted.clear()
        st.failsafe_confirmed = False
        if had:
            self.counters["reboot_profiles_uncertain"] += 1
            LOG.warning("%s %s: its profiles may be lost; budgeted at its maximum until re-installed", charger_id, why)

    async def close(self) -> None:
        """Stop every fail-safe retry (server shutdown)."""
        tasks = list(self._failsafe_tasks.values())
        self._failsafe_tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    # --- sending ------------------------------------------------------------------------------
    async def _send(
        self,
        session: OcppSession,
        charger_id: str,
        build: Callable[[Target], ProfileSpec],
        candidates: Sequence[str],
        base: Target,
    ) -> tuple[CallOutcome, ProfileSpec | None]:
        ctl = self.ctl(charger_id)
        st = self._state_of(charger_id)
        spec = build(base)
        outcome = await self._send_one(session, charger_id, spec)
        if outcome.ok or outcome.status in _NO_FALLBACK:
            return outcome, spec
        reason = f"{spec.purpose} stack {spec.stack_level} connector {spec.connector_id}: {outcome.status}"
        st.last_rejection = reason
        st.counters["profile_rejected"] += 1
        self.counters["profile_rejected"] += 1
        LOG.warning("%s rejected %s", charger_id, reason)
        self._event("profile_rejected", charger_id, reason=reason, status=outcome.status)
        now = self.clock()
        if ctl.fallback_failed_at is not None and (now - ctl.fallback_failed_at).total_seconds() < _FALLBACK_BACKOFF_S:
            return outcome, spec
        for quirk in candidates:
            if quirk in base.quirks:
                continue
            try:
                trial = build(base.with_quirks([quirk]))
            except NoSafeProfile:
                continue
            if _shape(trial) == _shape(spec):
                continue  # this quirk changes nothing for this profile
            outcome = await self._send_one(session, charger_id, trial)
            if outcome.ok:
                ctl.learned = ctl.learned | {quirk}
                st.learned_quirks = tuple(sorted(ctl.learned))
                self.counters["quirk_learned"] += 1
                if quirk in INTERNAL_OPTIONS:
                    LOG.warning("%s accepts profiles only with option %r (learned for this run)", charger_id, quirk)
                else:
                    LOG.warning(
                        "%s accepts profiles only with quirk %r; "
                        "add `ocpp_quirks: [%s]` to charger %s in the site file",
                        charger_id,
                        quirk,
                        quirk,
                        charger_id,
                    )
                self._event("quirk_learned", charger_id, quirk=quirk)
                return outcome, trial
            if outcome.status in _NO_FALLBACK:
                return outcome, trial
        ctl.fallback_failed_at = now
        return outcome, spec

    async def _send_one(self, session: OcppSession, charger_id: str, spec: ProfileSpec) -> CallOutcome:
        ctl = self.ctl(charger_id)
        failsafe = spec.profile_id == FAILSAFE_PROFILE_ID
        rec = SentProfile(spec, next(ctl.seq), self.clock())
        if failsafe:  # one pending record per value is enough (a charger timing out for days)
            value = spec.max_planner_limit
            ctl.failsafe_pending = [r for r in ctl.failsafe_pending if abs(r.spec.max_planner_limit - value) > EPS]
            ctl.failsafe_pending.append(rec)
        else:
            self._prune(charger_id)
            ctl.book.append(rec)
        self.counters["profile_sent"] += 1
        ctl.in_flight_since = rec.sent_at
        try:
            outcome = await session.send_profile(spec)
        finally:
            ctl.in_flight_since = None
        ctl.unanswered = ctl.unanswered + 1 if outcome.status == "Timeout" else 0
        if outcome.status in _MAY_HAVE_APPLIED:
            if outcome.status == "Timeout":
                self.counters["profile_timeout"] += 1
            return outcome  # may have been applied: stays pending for the budget until it can have ended
        if failsafe:
            ctl.failsafe_pending = [r for r in ctl.failsafe_pending if r is not rec]
        else:
            ctl.book = [r for r in ctl.book if r is not rec]
        if not outcome.ok:
            return outcome
        now = self.clock()
        rec.accepted_at = now
        st = self._state_of(charger_id)
        acc = AcceptedProfile(spec, now)
        if failsafe:
            ctl.failsafe_pending = [r for r in ctl.failsafe_pending if r.seq > rec.seq]
            ctl.failsafe = rec
            st.failsafe = acc
            self._sync_failsafe(charger_id)
        else:
            ctl.book = [r for r in ctl.book if not (r.seq < rec.seq and _replaces(spec, r.spec))]
            ctl.book.append(rec)
            st.accepted[spec.connector_id] = acc
        self.counters["profile_accepted"] += 1
        return outcome

    def _prune(self, charger_id: str) -> None:
        """Drop profiles that can no longer be in force. On a ``holds_last_limit`` charger an ended
        profile may still be held: of those only the highest per place on the charger (stack
        level, purpose, connector) is kept — what the budget needs — until a newer accepted
        profile replaces it."""
        ctl = self.ctl(charger_id)
        st = self._state_of(charger_id)
        now = self.clock()
        alive: list[SentProfile] = []
        held: dict[tuple[int, str, int], SentProfile] = {}
        for r in ctl.book:
            w = self._window(r, st)
            if w.hi is None or now < w.hi:
                alive.append(r)
                continue
            key = (r.spec.stack_level, r.spec.purpose, r.spec.connector_id)
            best = held.get(key)
            if best is None or _last_limit(r.spec) > _last_limit(best.spec):
                held[key] = r
        if not held or not self.holds_last_limit(charger_id):
            ctl.book = alive
            return
        keep = {id(r) for r in alive} | {id(r) for r in held.values()}
        ctl.book = [r for r in ctl.book if id(r) in keep]

    async def install_failsafe(self, charger_id: str) -> ApplyResult:
        """Send the permanent stack-level-0 fail-safe once (at boot / reconnect / a new value)."""
        session = self._session_of(charger_id)
        if session is None:
            return ApplyResult(charger_id, 0, "not_connected")
        ctl = self.ctl(charger_id)
        limit = self.failsafe_limit(charger_id)
        confirmed = ctl.failsafe
        new_value = self.failsafe_spec(charger_id).max_planner_limit
        urgent = confirmed is None or new_value < confirmed.spec.max_planner_limit
        if not await ctl.queue.acquire(("failsafe",), urgent):
            return ApplyResult(charger_id, 0, "superseded")
        try:
            session = self._session_of(charger_id)
            if session is None:
                return ApplyResult(charger_id, 0, "not_connected")
            outcome, spec = await self._send(
                session,
                charger_id,
                lambda t: failsafe_profile(t, limit),
                ("relative_failsafe", "power_only", "no_zero_limit"),
                self.target(charger_id),
            )
        finally:
            ctl.queue.release()
        self._sync_failsafe(charger_id)
        status = _status(outcome)
        if outcome.ok:
            self._event("failsafe_installed", charger_id, limit=limit)
        return ApplyResult(charger_id, 0, status, spec, outcome.status)

    def keep_failsafe(self, charger_id: str, *, first_delay_s: float = 0.0) -> asyncio.Task[ApplyResult] | None:
        """(Re)start installing the fail-safe on a connected charger until it is accepted: attempts
        ``failsafe_retry_s[0]`` apart at first, doubling up to ``failsafe_retry_s[1]``, for as long as
        the same connection lasts (a new connection, :meth:`connection_lost` or :meth:`close` ends
        it). Returns the task (``None``: not connected)."""
        session = self._session_of(charger_id)
        if session is None:
            return None
        old = self._failsafe_tasks.pop(charger_id, None)
        if old is not None and not old.done():
            old.cancel()
        task = asyncio.get_running_loop().create_task(self._failsafe_loop(charger_id, session, first_delay_s))
        self._failsafe_tasks[charger_id] = task
        task.add_done_callback(lambda t: self._forget_task(charger_id, t))
        return task

    def _forget_task(self, charger_id: str, task: asyncio.Task[ApplyResult]) -> None:
        if self._failsafe_tasks.get(charger_id) is task:
            del self._failsafe_tasks[charger_id]

    async def _failsafe_loop(self, charger_id: str, session: OcppSession, first_delay_s: float) -> ApplyResult:
        first = max(MIN_RETRY_S, self.failsafe_retry_s[0])
        longest = max(first, self.failsafe_retry_s[1])
        delay = first
        if first_delay_s > 0:
            await self._sleep(first_delay_s)
        result = ApplyResult(charger_id, 0, "not_connected")
        while self._session_of(charger_id) is session:
            if self.failsafe_installed(charger_id):
                return ApplyResult(charger_id, 0, "accepted", self.failsafe_spec(charger_id))
            result = await self.install_failsafe(charger_id)
            if result.status == "accepted" or self._session_of(charger_id) is not session:
                break
            self.counters["failsafe_retry"] += 1
            LOG.error(
                "%s: fail-safe profile not installed (%s); budgeted at its maximum, retry in %.0f s",
                charger_id,
                result.detail or result.status,
                delay,
            )
            await self._sleep(delay)
            delay = min(longest, delay * 2.0)
        return result

    def _failsafe_changed(self) -> None:
        """``failsafe.*`` changed: every connected charger gets the new fail-safe profile."""
        for cid in list(self._ctl):
            self._sync_failsafe(cid)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a test building a site): the next connection installs it
        for cid in sorted(set(self._ctl) | set(self._chargers)):
            if self._session_of(cid) is not None and not self.failsafe_installed(cid):
                self.keep_failsafe(cid)

    async def foreign_call(self, charger_id: str, run: Callable[[], Awaitable[T]]) -> T:
        """Run a call that is not ours — the CSMS's, forwarded in local-controller mode — through
        the charger's call queue: after every decrease waiting, never superseded, and seen by
        :meth:`lowerable_now` while it waits for its answer (a decrease waits behind it)."""
        ctl = self.ctl(charger_id)
        await ctl.queue.acquire(("foreign", next(ctl.seq)), urgent=False)  # a unique key: never superseded
        ctl.in_flight_since = self.clock()
        try:
            return await run()
        finally:
            ctl.in_flight_since = None
            ctl.queue.release()

    async def send_spec(self, charger_id: str, spec: ProfileSpec, *, urgent: bool = True) -> ApplyResult:
        """Send one profile exactly as built — no quirk fall-backs, nothing learnt from a rejection
        (commissioning asks what the charger does with *this* profile) — through the charger's
        call queue (``urgent``: ahead of waiting increases; never superseded by another call) and
        kept in the book like any other: pending until answered, counted until it can have ended
        (a timeout: it may have been applied). The fail-safe's id makes it the fail-safe record."""
        if self._session_of(charger_id) is None:
            return ApplyResult(charger_id, spec.connector_id, "not_connected", spec)
        ctl = self.ctl(charger_id)
        failsafe = spec.profile_id == FAILSAFE_PROFILE_ID
        if not await ctl.queue.acquire(("spec", next(ctl.seq)), urgent):
            return ApplyResult(charger_id, spec.connector_id, "superseded", spec)  # a unique key: never happens
        try:
            session = self._session_of(charger_id)
            if session is None:
                return ApplyResult(charger_id, spec.connector_id, "not_connected", spec)
            outcome = await self._send_one(session, charger_id, spec)
        finally:
            ctl.queue.release()
        if failsafe:
            self._sync_failsafe(charger_id)
        if outcome.ok:
            kind: EventKind = "failsafe_installed" if failsafe else "profile_accepted"
            self._event(
                kind, charger_id, connector=spec.connector_id, limit=spec.first_limit, unit=spec.unit, source="spec"
            )
        return ApplyResult(charger_id, spec.connector_id, _status(outcome), spec, outcome.status)

    async def apply(
        self,
        charger_id: str,
        limit: float,
        schedule: Sequence[tuple[datetime, float]] = (),
        *,
        connector: int = 1,
        source: str = "",
        urgent: bool | None = None,
        go: Callable[[], bool] | None = None,
    ) -> ApplyResult:
        """Enforce ``limit`` (A per phase for AC, kW for DC) now and ``schedule`` after, until the TTL.

        ``urgent`` (default: the limit is below what the connector may draw now) puts the call
        ahead of waiting increases on the same charger. ``go``: asked once the call's turn has
        come (it may have waited behind a slow one); False drops it as ``superseded`` (a plan's
        push to a charger a commissioning run took over meanwhile)."""
        if self._session_of(charger_id) is None:
            return ApplyResult(charger_id, connector, "not_connected")
        ctl = self.ctl(charger_id)
        if urgent is None:
            wanted_now = effective_planner_limit(self.target(charger_id, connector), limit)
            urgent = wanted_now < self.connector_budget(charger_id, connector).value - EPS
        if not await ctl.queue.acquire(("control", connector), urgent):
            return ApplyResult(charger_id, connector, "superseded")
        try:
            if go is not None and not go():
                return ApplyResult(charger_id, connector, "superseded", detail="not to be sent any more")
            return await self._apply(charger_id, limit, schedule, connector, source)
        finally:
            ctl.queue.release()

    async def _apply(
        self, charger_id: str, limit: float, schedule: Sequence[tuple[datetime, float]], connector: int, source: str
    ) -> ApplyResult:
        ctl = self.ctl(charger_id)
        session = self._session_of(charger_id)
        if session is None:
            return ApplyResult(charger_id, connector, "not_connected")
        st = self._state_of(charger_id)
        tx = st.transaction(connector)
        ttl = self.site.ocpp.profile_ttl_s
        max_periods = st.capabilities.max_periods
        offset = st.clock_offset_s

        def build(t: Target) -> ProfileSpec:
            return control_profile(
                t,
                now=self.clock(),
                limit=limit,
                schedule=schedule,
                ttl_s=ttl,
                connector_id=connector,
                transaction_id=tx.transaction_id if tx else None,
                transaction_seen_at=tx.seen_at if tx else None,
                transaction_started_at=tx.started_at if tx else None,
                max_periods=max_periods,
                clock_offset_s=offset,
            )

        target = self.target(charger_id, connector)
        try:
            wanted = build(target)
        except NoSafeProfile as exc:
            return ApplyResult(charger_id, connector, "deferred", detail=str(exc))
        prev = self._in_force(ctl, wanted)
        now = self.clock()
        if (
            prev is not None
            and prev.accepted_at is not None
            and not self._pending_on(ctl, wanted.connector_id)
            and same_intent(prev.spec, wanted, self.deadband(charger_id))
            and not lowers(prev.spec, wanted)
            and (now - prev.accepted_at).total_seconds() < ttl * self.refresh_fraction
        ):
            return ApplyResult(charger_id, connector, "unchanged", prev.spec)
        candidates = ["power_only", "txdefault_on_connector_0", "stack_level_zero_only", "relative_profiles"]
        if "relative_failsafe" in target.quirks:  # it refused an Absolute fail-safe: Relative is likelier
            candidates.remove("relative_profiles")
            candidates.insert(0, "relative_profiles")
        if effective_planner_limit(target, limit) <= 0:
            candidates.insert(0, "no_zero_limit")  # a rejected 0 is most likely the 0 itself
        outcome, spec = await self._send(session, charger_id, build, candidates, target)
        if outcome.ok and spec is not None:
            self._event(
                "profile_accepted",
                charger_id,
                connector=connector,
                limit=spec.first_limit,
                unit=spec.unit,
                source=source,
            )
        return ApplyResult(charger_id, connector, _status(outcome), spec, outcome.status)

    @staticmethod
    def _in_force(ctl: _Ctl, wanted: ProfileSpec) -> SentProfile | None:
        """The newest confirmed profile ``wanted`` would replace."""
        for rec in reversed(ctl.book):
            if rec.confirmed and _replaces(wanted, rec.spec):
                return rec
        return None

    @staticmethod
    def _pending_on(ctl: _Ctl, connector_id: int) -> bool:
        return any(not r.confirmed and r.spec.connector_id == connector_id for r in ctl.book)

    def due_for_refresh(self) -> list[tuple[str, int]]:
        """(charger, connector) pairs whose accepted control profile is past the refresh point.

        Informational (status, metrics): refreshing is :meth:`apply`'s job, called by the daemon
        with a fresh plan each cycle; nothing here re-sends on its own, so a controller whose
        planning stops still lets its chargers fall back when the TTL ends.
        """
        now = self.clock()
        ttl = self.site.ocpp.profile_ttl_s
        out = []
        for cid, ctl in self._ctl.items():
            st = self._state_of(cid)
            for rec in ctl.book:
                if not rec.confirmed or rec.accepted_at is None:
                    continue
                hi = self._window(rec, st).hi
                alive = hi is not None and now < hi
                if alive and (now - rec.accepted_at).total_seconds() >= ttl * self.refresh_fraction:
                    out.append((cid, rec.spec.connector_id))
        return sorted(set(out))

    # --- budgeting ----------------------------------------------------------------------------
    def _window(self, rec: SentProfile, st: ChargerState) -> _Window:
        """When ``rec`` may be in force, on our clock (see :class:`_Window`)."""
        spec = rec.spec
        skew = timedelta(seconds=self.skew_s)
        unknown = timedelta(seconds=self.unknown_offset_s)
        est = st.clock_offset_s

        def bounds(charger_time: datetime) -> tuple[datetime, datetime]:
            """(earliest, latest) on our clock of a moment on the charger's clock."""
            if est is not None:
                mapped = charger_time - timedelta(seconds=est)
                return mapped, mapped
            if spec.clock_offset_s is not None:  # measured when sent, unmeasured now (a reboot)
                mapped = charger_time - timedelta(seconds=spec.clock_offset_s)
                return mapped - unknown, mapped + unknown
            return charger_time - unknown, charger_time + unknown

        started: datetime | None = rec.sent_at
        if spec.kind == "Absolute" and spec.start_schedule is not None:
            started = max(rec.sent_at, bounds(spec.start_schedule)[1] + skew)
        end = spec.valid_to if spec.valid_to is not None else spec.charger_end
        if end is not None:
            # validTo bounds both ways a firmware ends a schedule (fall back, or hold its last period)
            early, late = bounds(end)
            lo, hi = early - skew, late + skew
            if spec.kind == "Relative" and spec.expires_not_before is not None:
                lo = min(lo, spec.expires_not_before - skew)
            return _Window(started, lo, hi)
        if spec.expires_at is not None:
            return _Window(started, (spec.expires_not_before or spec.expires_at) - skew, spec.expires_at + skew)
        return _Window(started, None, None)

    def _fallback(self, charger_id: str) -> tuple[float, str]:
        """What a connector draws when no control profile holds it: the confirmed fail-safe (the
        larger of old and new while a changed value is being installed), else the charger's max."""
        target = self.target(charger_id)
        current = self.failsafe_spec(charger_id).max_planner_limit
        charger = self._chargers.get(charger_id)
        own_max = None if charger is None else charger.max_kw if target.kind == "dc" else charger.max_a
        ctl = self.ctl(charger_id)
        confirmed = ctl.failsafe
        if confirmed is None:
            if own_max is None:
                return current, "fail-safe"  # a charger not in the site file: nothing better known
            return max(current, own_max), "charger max (no fail-safe installed)"
        value, source = confirmed.spec.max_planner_limit, "fail-safe"
        if abs(value - current) > EPS:
            value, source = max(value, current), "fail-safe (new value not yet installed)"
        for rec in ctl.failsafe_pending:
            value = max(value, rec.spec.max_planner_limit)
        return value, source

    def unanswered_calls(self, charger_id: str) -> int:
        """How many profile calls to the charger timed out in a row (0 after any answer)."""
        return self.ctl(charger_id).unanswered

    def lowerable_now(self, charger_id: str, now: datetime | None = None) -> bool:
        """A decrease sent to the charger now can reach it soon: its last profile call did not time
        out, and none has waited for its answer longer than :data:`STUCK_CALL_S` (OCPP allows one
        call at a time: a decrease waits behind the one in flight, up to ``ocpp.call_timeout_s``)."""
        ctl = self.ctl(charger_id)
        if ctl.unanswered > 0:
            return False
        since = ctl.in_flight_since
        now = self.clock() if now is None else now
        return since is None or (now - since).total_seconds() <= STUCK_CALL_S

    def note_restored(self, charger_id: str, connector: int, limit: float, until: datetime) -> None:
        """A profile the charger accepted before the controller restarted (from history): it may
        still be in force, so the connector budgets at least ``limit`` until ``until`` (our clock,
        margin included) — also after the charger reconnects, whatever is confirmed since."""
        ctl = self.ctl(charger_id)
        old = ctl.restored.get(connector)
        if old is not None:  # several profiles on one connector (a TxProfile and a TxDefault): the most, the longest
            limit, until = max(limit, old[0]), max(until, old[1])
        ctl.restored[connector] = (limit, until)

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget:
        """Worst case one connector may draw (planner units), by the charger's own rules."""
        now = self.clock() if now is None else now
        target = self.target(charger_id)
        unit: Literal["A", "kW"] = "kW" if target.kind == "dc" else "A"
        st = self._state_of(charger_id)
        ctl = self.ctl(charger_id)
        tx = st.transaction(connector)
        holds = HOLDS_LAST_LIMIT in target.quirks
        candidates: list[tuple[float, str]] = []
        until: datetime | None = None
        covered = False
        for key in (connector, 0):
            restored = ctl.restored.get(key)
            if restored is not None and now < restored[1]:
                candidates.append((restored[0], "profile from before a restart"))
                until = restored[1] if until is None else max(until, restored[1])
        for rec in ctl.book:
            spec = rec.spec
            if spec.connector_id not in (connector, 0):
                continue
            w = self._window(rec, st)
            if w.hi is not None and now >= w.hi:
                if holds:  # ended, but the charger may hold its last limit until replaced
                    candidates.append((_last_limit(spec), "held last limit"))
                continue
            candidates.append((spec.max_planner_limit, "accepted profile" if rec.confirmed else "unconfirmed profile"))
            if w.hi is not None:
                until = w.hi if until is None else max(until, w.hi)
            certain = w.started is not None and w.started <= now and (w.lo is None or now < w.lo)
            if rec.confirmed and certain and _applies(spec, tx):
                covered = True
        if not covered:
            candidates.append(self._fallback(charger_id))
        value, source = candidates[0]
        for v, s in candidates[1:]:
            if v > value + EPS:
                value, source = v, s
        return Budget(value, unit, source, until)

    def budget(self, charger_id: str, now: datetime | None = None) -> Budget:
        """Worst-case draw (docs/safety.md): the sum of the charger's connector budgets."""
        now = self.clock() if now is None else now
        charger = self._chargers.get(charger_id)
        connectors = charger.connectors if charger is not None else 1
        parts = [self.connector_budget(charger_id, conn, now) for conn in range(1, connectors + 1)]
        untils = [p.until for p in parts if p.until is not None]
        return Budget(
            sum(p.value for p in parts),
            parts[0].unit,
            ", ".join(sorted({p.source for p in parts})),
            max(untils) if untils else None,
        )


def _replaces(new: ProfileSpec, old: ProfileSpec) -> bool:
    """On the charger, installing ``new`` removes ``old`` (same id, or same stack level, purpose
    and connector)."""
    if new.profile_id == old.profile_id:
        return True
    return (new.stack_level, new.purpose, new.connector_id) == (old.stack_level, old.purpose, old.connector_id)


def _last_limit(spec: ProfileSpec) -> float:
    """The limit of the profile's last period (planner units): what a charger holding it keeps."""
    return spec.planner_limits[-1] if spec.planner_limits else 0.0


def _applies(spec: ProfileSpec, tx: Transaction | None) -> bool:
    """``spec`` is what the charger obeys on a connector whose transaction is ``tx``: a TxDefault
    always, a TxProfile only for its own transaction."""
    if spec.purpose != "TxProfile":
        return True
    return tx is not None and str(tx.transaction_id) == str(spec.transaction_id)


def _shape(spec: ProfileSpec) -> tuple[object, ...]:
    """What the charger sees of a profile, without the times (two builds differ by a few ms)."""
    limits = tuple((p.start_s, p.limit, p.phases) for p in spec.periods)
    return (spec.connector_id, spec.stack_level, spec.purpose, spec.kind, spec.unit, limits, spec.transaction_id)


def _status(outcome: CallOutcome) -> ApplyStatus:
    if outcome.ok:
        return "accepted"
    if outcome.status == "Timeout":
        return "timeout"
    if outcome.status == "Disconnected":
        return "not_connected"
    if outcome.status in ("Rejected", "NotSupported", "NotImplemented"):
        return "rejected"
    return "failed"
