"""Pushing limits to chargers: ``apply``, the fail-safe install, quirk fallback and the budget.

* :meth:`Control.apply` builds the control profile for one charger/connector and sends it, unless
  the charger already runs one within the deadband that is not yet due for refresh. One call per
  charger at a time; a newer ``apply`` for the same connector supersedes one still waiting; any
  number of chargers in parallel. Every call is bounded by ``ocpp.call_timeout_s``.
* A profile answered Rejected/NotSupported (or a CALLERROR) is retried with the quirk options that
  fit, one at a time; the first that works is *learned* for the charger (logged with the line to
  put in the site file, counted, visible in :class:`ChargerState`).
* :meth:`Control.budget` is the worst case to budget a charger at (DESIGN §3 rule 2): the limit it
  accepted (or may have accepted: a call that timed out) until that profile can have expired,
  then its fail-safe limit; never 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from controller.chargers.clock import Clock
from controller.chargers.events import ChargerEvent, EventKind, EventSink
from controller.chargers.profiles import (
    CONTROL_STACK_LEVEL,
    NoSafeProfile,
    ProfileSpec,
    Target,
    control_profile,
    effective_planner_limit,
    failsafe_profile,
    same_intent,
    target_for,
)
from controller.chargers.session import CallOutcome, OcppSession
from controller.chargers.state import AcceptedProfile, ChargerState
from controller.model.site import Charger, Site

LOG = logging.getLogger("depotctl.chargers.control")

ApplyStatus = Literal[
    "accepted", "unchanged", "superseded", "not_connected", "deferred", "rejected", "timeout", "failed"
]
_NO_FALLBACK = ("Timeout", "Disconnected")
_FALLBACK_BACKOFF_S = 60.0


@dataclass(frozen=True)
class ApplyResult:
    charger_id: str
    connector_id: int
    status: ApplyStatus
    spec: ProfileSpec | None = None
    detail: str = ""


@dataclass(frozen=True)
class Budget:
    """Worst-case limit in planner units (A per phase for AC, kW for DC), summed over connectors.

    ``until`` is when it steps down to the fail-safe (``None``: it already is the fail-safe).
    """

    value: float
    unit: Literal["A", "kW"]
    source: str
    until: datetime | None


@dataclass
class _Ctl:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: Counter[int] = field(default_factory=Counter)
    accepted: dict[int, AcceptedProfile] = field(default_factory=dict)
    pending: dict[int, ProfileSpec] = field(default_factory=dict)
    learned: frozenset[str] = frozenset()
    fallback_failed_at: datetime | None = None


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
    ) -> None:
        self._session_of = session_of
        self._state_of = state_of
        self.clock = clock
        self.emit = emit
        self.refresh_fraction = refresh_fraction
        self.skew_s = skew_s
        self._ctl: dict[str, _Ctl] = {}
        self.counters: Counter[str] = Counter()
        self._chargers: dict[str, Charger] = {}
        self.site = site

    @property
    def site(self) -> Site:
        return self._site

    @site.setter
    def site(self, site: Site) -> None:
        self._site = site
        self._chargers = {ch.id: ch for ch in site.chargers}

    # --- helpers ------------------------------------------------------------------------------
    def ctl(self, charger_id: str) -> _Ctl:
        if charger_id not in self._ctl:
            self._ctl[charger_id] = _Ctl()
        return self._ctl[charger_id]

    def target(self, charger_id: str) -> Target:
        charger = self._chargers.get(charger_id)
        if charger is not None:
            base = target_for(self.site, charger)
        else:  # accept_unknown: treat as a 3-phase AC charger at the defaults
            base = Target(charger_id, voltage_v=self.site.site.voltage_v)
        st = self._state_of(charger_id)
        caps = st.capabilities
        extra = set(self.ctl(charger_id).learned)
        if caps.rate_units and "A" not in caps.rate_units:
            extra.add("power_only")
        if caps.max_stack_level is not None and caps.max_stack_level < CONTROL_STACK_LEVEL:
            extra.add("stack_level_zero_only")
        return base.with_quirks(extra)

    def failsafe_limit(self, charger_id: str) -> float:
        kind = self.target(charger_id).kind
        return self.site.failsafe.dc_kw if kind == "dc" else self.site.failsafe.charger_a

    def deadband(self, charger_id: str) -> float:
        t = self.target(charger_id)
        db = self.site.control.deadband_a
        return db * t.voltage_v * 3 / 1000.0 if t.kind == "dc" else db

    def _event(self, kind: EventKind, charger_id: str, **detail: object) -> None:
        self.emit(ChargerEvent(kind, charger_id, self.clock(), detail))

    def connection_reset(self, charger_id: str) -> None:
        """A new connection: keep what was accepted (profiles survive reboots) for budgeting."""
        self.ctl(charger_id).fallback_failed_at = None

    # --- sending ------------------------------------------------------------------------------
    async def _send(
        self, session: OcppSession, charger_id: str, build: Callable[[Target], ProfileSpec], candidates: Sequence[str]
    ) -> tuple[CallOutcome, ProfileSpec | None]:
        ctl = self.ctl(charger_id)
        st = self._state_of(charger_id)
        base = self.target(charger_id)
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
                LOG.warning(
                    "%s accepts profiles only with quirk %r; add `ocpp_quirks: [%s]` to charger %s in the site file",
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
        ctl.pending[spec.connector_id] = spec
        self.counters["profile_sent"] += 1
        outcome = await session.send_profile(spec)
        if outcome.status == "Timeout":
            self.counters["profile_timeout"] += 1
            return outcome  # may have been applied: stays pending for the budget until it expires
        ctl.pending.pop(spec.connector_id, None)
        if outcome.ok:
            st = self._state_of(charger_id)
            acc = AcceptedProfile(spec, self.clock())
            if spec.stack_level == 0 and spec.purpose == "TxDefaultProfile" and spec.duration_s is None:
                st.failsafe = acc
            else:
                ctl.accepted[spec.connector_id] = acc
                st.accepted[spec.connector_id] = acc
            self.counters["profile_accepted"] += 1
        return outcome

    async def install_failsafe(self, charger_id: str) -> ApplyResult:
        """Send the permanent stack-level-0 fail-safe (at boot / reconnect)."""
        session = self._session_of(charger_id)
        if session is None:
            return ApplyResult(charger_id, 0, "not_connected")
        limit = self.failsafe_limit(charger_id)
        async with self.ctl(charger_id).lock:
            outcome, spec = await self._send(
                session,
                charger_id,
                lambda t: failsafe_profile(t, limit, self.clock()),
                ("power_only", "relative_profiles", "no_zero_limit"),
            )
        status = _status(outcome)
        if outcome.ok:
            self._event("failsafe_installed", charger_id, limit=limit)
        return ApplyResult(charger_id, 0, status, spec, outcome.status)

    async def apply(
        self,
        charger_id: str,
        limit: float,
        schedule: Sequence[tuple[datetime, float]] = (),
        *,
        connector: int = 1,
        source: str = "",
    ) -> ApplyResult:
        """Enforce ``limit`` (A per phase for AC, kW for DC) now and ``schedule`` after, until the TTL."""
        ctl = self.ctl(charger_id)
        ctl.seq[connector] += 1
        mine = ctl.seq[connector]
        async with ctl.lock:
            if ctl.seq[connector] != mine:
                return ApplyResult(charger_id, connector, "superseded")
            session = self._session_of(charger_id)
            if session is None:
                return ApplyResult(charger_id, connector, "not_connected")
            st = self._state_of(charger_id)
            tx = st.transaction(connector)
            ttl = self.site.ocpp.profile_ttl_s
            max_periods = st.capabilities.max_periods

            def build(t: Target) -> ProfileSpec:
                return control_profile(
                    t,
                    now=self.clock(),
                    limit=limit,
                    schedule=schedule,
                    ttl_s=ttl,
                    connector_id=connector,
                    transaction_id=tx.transaction_id if tx else None,
                    transaction_started_at=tx.started_at if tx else None,
                    max_periods=max_periods,
                )

            target = self.target(charger_id)
            try:
                wanted = build(target)
            except NoSafeProfile as exc:
                return ApplyResult(charger_id, connector, "deferred", detail=str(exc))
            prev = ctl.accepted.get(wanted.connector_id)
            now = self.clock()
            if (
                prev is not None
                and same_intent(prev.spec, wanted, self.deadband(charger_id))
                and (now - prev.accepted_at).total_seconds() < ttl * self.refresh_fraction
            ):
                return ApplyResult(charger_id, connector, "unchanged", prev.spec)
            candidates = ["power_only", "txdefault_on_connector_0", "stack_level_zero_only", "relative_profiles"]
            if effective_planner_limit(target, limit) <= 0:
                candidates.insert(0, "no_zero_limit")  # a rejected 0 is most likely the 0 itself
            outcome, spec = await self._send(session, charger_id, build, candidates)
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
            for conn, acc in ctl.accepted.items():
                alive = acc.spec.expires_at is not None and acc.spec.expires_at > now - timedelta(seconds=self.skew_s)
                if alive and (now - acc.accepted_at).total_seconds() >= ttl * self.refresh_fraction:
                    out.append((cid, conn))
        return out

    # --- budgeting ----------------------------------------------------------------------------
    def budget(self, charger_id: str, now: datetime | None = None) -> Budget:
        """Worst-case draw (DESIGN §3 rule 2), summed over the charger's connectors."""
        now = self.clock() if now is None else now
        target = self.target(charger_id)
        unit: Literal["A", "kW"] = "kW" if target.kind == "dc" else "A"
        failsafe = effective_planner_limit(target, self.failsafe_limit(charger_id))
        fs_source = "fail-safe"
        charger = self._chargers.get(charger_id)
        connectors = charger.connectors if charger is not None else 1
        own_max = None if charger is None else charger.max_kw if target.kind == "dc" else charger.max_a
        if self._state_of(charger_id).failsafe is None and own_max is not None:
            failsafe, fs_source = max(failsafe, own_max), "charger max (no fail-safe installed)"
        ctl = self.ctl(charger_id)
        skew = timedelta(seconds=self.skew_s)
        total, sources, until = 0.0, [], None
        for conn in range(1, connectors + 1):
            value, source, conn_until = failsafe, fs_source, None
            acc = ctl.accepted.get(conn) or ctl.accepted.get(0)
            if acc is not None and acc.spec.expires_at is not None and now < acc.spec.expires_at + skew:
                value, source, conn_until = acc.spec.max_planner_limit, "accepted profile", acc.spec.expires_at + skew
            pend = ctl.pending.get(conn) or ctl.pending.get(0)
            if pend is not None and (pend.expires_at is None or now < pend.expires_at + skew):
                if pend.max_planner_limit > value:
                    value, source = pend.max_planner_limit, "unconfirmed profile"
                if pend.expires_at is not None:
                    pend_until = pend.expires_at + skew
                    conn_until = pend_until if conn_until is None else max(conn_until, pend_until)
            total += value
            sources.append(source)
            if conn_until is not None:
                until = conn_until if until is None else max(until, conn_until)
        return Budget(total, unit, ", ".join(sorted(set(sources))), until)


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
