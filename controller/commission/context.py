"""One commissioning run's working state and the few moves every check makes: build a control
profile on the charger's clock, send it (never above the headroom), wait — bounded — for what
the meter values show. Used by :mod:`.basic` and :mod:`.ev`; the sequence is :mod:`.runner`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from controller.chargers.control import ApplyResult
from controller.chargers.profiles import FAILSAFE_PROFILE_ID, ProfileSpec, Target, control_profile
from controller.chargers.session import OcppSession
from controller.chargers.state import ChargerState, Transaction
from controller.commission.measure import DrawWatch, LimitLog, Sample
from controller.commission.options import CommissionOptions
from controller.commission.port import CommissionPort
from controller.model.site import Charger

EPS = 1e-6


def fmt(value: float | None, unit: str) -> str:
    """A measured value for a detail text (``None``: "nothing")."""
    return "nothing" if value is None else f"{value:.1f} {unit}"


def describe(spec: ProfileSpec) -> str:
    """One line naming what was sent."""
    limits = "/".join(f"{p.limit:g}" for p in spec.periods)
    where = f"connector {spec.connector_id}, stack {spec.stack_level}, {spec.kind}"
    if spec.transaction_id is not None:
        where += f", transaction {spec.transaction_id}"
    if spec.periods and spec.periods[0].phases is not None and spec.unit == "W":
        where += f", numberPhases {spec.periods[0].phases}"
    life = "" if spec.duration_s is not None or spec.valid_to is not None else ", permanent"
    return f"{spec.purpose} {limits} {spec.unit} ({where}{life})"


def answer(ctx: RunContext, result: ApplyResult) -> str:
    """What the charger answered, in words: a timeout as what it is — no answer (the profile may be
    in force all the same), not a refusal."""
    if result.status == "timeout":
        return f"no answer within {ctx.port.site.ocpp.call_timeout_s:g} s (it may be in force all the same)"
    return result.detail or result.status


class Aborted(Exception):
    """The charger went away (disconnected, or reconnected: a new session) in the middle of a run."""


@dataclass(frozen=True)
class Sent:
    """A profile the run sent, and what became of it."""

    spec: ProfileSpec
    result: ApplyResult
    sent_at: datetime
    answered_at: datetime

    @property
    def accepted(self) -> bool:
        return self.result.status == "accepted"

    @property
    def unanswered(self) -> bool:
        """The charger did not answer in time: it may have applied the profile (or may yet)."""
        return self.result.status == "timeout"

    @property
    def limit(self) -> float:
        """What it allows now, in planner units (as sent: rounded, zero substitutes applied)."""
        return self.spec.planner_limits[0] if self.spec.planner_limits else 0.0


class RunContext:
    def __init__(
        self,
        port: CommissionPort,
        charger: Charger,
        connector: int,
        options: CommissionOptions,
        session: OcppSession,
    ) -> None:
        self.port = port
        self.charger = charger
        self.charger_id = charger.id
        self.connector = connector
        self.options = options
        self.session = session
        self.kind: Literal["ac", "dc"] = charger.kind
        self.watch = DrawWatch(lambda: port.state(charger.id), connector, dc=self.kind == "dc")
        self.log = LimitLog()
        self.found: set[str] = set()
        """Quirks this run found the charger needs."""
        self.disproved: set[str] = set()
        """Quirks this run found it does not need (a site-file guess the checks contradict)."""
        self.units: list[str] = []
        self.reaction_s: float | None = None
        self.phases_in_use: int | None = None
        self.ev_draw: float | None = None
        """What the EV draws under the run's highest limit (``follows_limit``), planner units."""
        self.ev_stuck = False
        """The EV stopped drawing and did not come back (``resume_after_zero`` failed)."""
        self.sent: list[Sent] = []
        self.ev_transaction: str | None = None
        """The transaction the EV checks run in (set when they start): its end aborts the run."""
        self.incomplete: list[str] = []
        """Why a check was not made for want of an EV charging or of headroom (the run then did not
        test what it was asked to: :attr:`~controller.commission.report.Report.incomplete`)."""

    # --- what it is ---------------------------------------------------------------------------
    @property
    def unit(self) -> str:
        """Planner units: A per phase (AC), kW (DC)."""
        return "kW" if self.kind == "dc" else "A"

    @property
    def tolerance(self) -> float:
        return self.options.tolerance_kw if self.kind == "dc" else self.options.tolerance_a

    @property
    def failsafe_limit(self) -> float:
        fs = self.port.site.failsafe
        return fs.dc_kw if self.kind == "dc" else fs.charger_a

    @property
    def allowance_s(self) -> float:
        """How long after a new limit the draw may still show the old one [s]: the reaction limit,
        or — for a slower EV — its measured reaction plus one meter interval (a reaction measured
        from samples varies by up to that much from one step to the next)."""
        measured = self.reaction_s + self.options.sample_s if self.reaction_s is not None else 0.0
        return max(self.options.reaction_bound_s, measured)

    def not_tested(self, name: str, why: str) -> str:
        """Record that check ``name`` could not be made (``why``: a sentence); returns ``why``."""
        self.incomplete.append(f"{name}: {why}")
        return why

    def state(self) -> ChargerState:
        return self.port.state(self.charger_id)

    def transaction(self) -> Transaction | None:
        return self.state().transaction(self.connector)

    def now(self) -> datetime:
        return self.port.clock()

    def check_alive(self) -> None:
        """Raise :class:`Aborted` unless the charger is still on the session the run started on
        (and, once the EV checks began, its EV still in the same transaction)."""
        current = self.port.session(self.charger_id)
        if current is None:
            raise Aborted(f"charger {self.charger_id} disconnected")
        if current is not self.session:
            raise Aborted(f"charger {self.charger_id} reconnected (a new OCPP session)")
        if self.ev_transaction is not None:
            tx = self.transaction()
            if tx is None or str(tx.transaction_id) != self.ev_transaction:
                raise Aborted(
                    f"the EV's transaction {self.ev_transaction} on connector {self.connector} ended during the run"
                )

    def target(self, *, add: Iterable[str] = (), drop: Iterable[str] = ()) -> Target:
        """The connector's target as the controller sees it, with what this run found (``add``
        more quirks, ``drop`` some, for a test of one option)."""
        t = self.port.target(self.charger_id, self.connector)
        quirks = (t.quirks | self.found | frozenset(add)) - self.disproved - frozenset(drop)
        return replace(t, quirks=quirks)

    def headroom(self) -> float:
        """The most the connector may be offered now (planner units, ≥ 0)."""
        return max(0.0, self.port.headroom_a(self.charger_id, self.connector))

    # --- profiles -----------------------------------------------------------------------------
    def build(self, limit: float, ttl_s: float, target: Target | None = None) -> ProfileSpec:
        """A control profile at ``limit`` (planner units) from now for ``ttl_s``: a TxProfile for the
        running transaction, else a TxDefault on the connector (may raise ``NoSafeProfile``)."""
        tx = self.transaction()
        st = self.state()
        return control_profile(
            self.target() if target is None else target,
            now=self.now(),
            limit=limit,
            ttl_s=ttl_s,
            connector_id=self.connector,
            transaction_id=tx.transaction_id if tx else None,
            transaction_seen_at=tx.seen_at if tx else None,
            transaction_started_at=tx.started_at if tx else None,
            max_periods=st.capabilities.max_periods,
            clock_offset_s=st.clock_offset_s,
        )

    async def send(self, spec: ProfileSpec) -> Sent:
        """Send ``spec`` as it is; a control profile that was accepted — or not answered in time, so
        may be in force — joins the limit log (``ignores_limit`` must not blame the charger for
        following a limit it applied without saying so)."""
        self.check_alive()
        sent_at = self.now()
        result = await self.port.send_spec(self.charger_id, spec)
        if result.status == "not_connected":
            raise Aborted(f"charger {self.charger_id} disconnected")
        self.check_alive()
        out = Sent(spec, result, sent_at, self.now())
        self.sent.append(out)
        if spec.profile_id != FAILSAFE_PROFILE_ID:
            if out.accepted:
                self.log.add(out.limit, sent_at, out.answered_at)
            elif out.unanswered:
                self.log.add(out.limit, sent_at, None)
        return out

    async def offer(self, spec: ProfileSpec) -> Sent | str:
        """Send ``spec`` if it allows nothing above the headroom now: the accepted profile, else
        why not (over the headroom, or the charger's answer)."""
        if not self.within_headroom(spec):
            return f"{describe(spec)} would exceed the headroom of {self.headroom():.1f} {self.unit}"
        sent = await self.send(spec)
        if sent.unanswered:
            return f"{describe(spec)}: {answer(self, sent.result)}"
        if not sent.accepted:
            return f"{describe(spec)} answered {answer(self, sent.result)}"
        return sent

    def within_headroom(self, spec: ProfileSpec) -> bool:
        """``spec`` allows nothing above the headroom now."""
        return spec.max_planner_limit <= self.headroom() + EPS

    # --- waiting ------------------------------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``, taking the meter values as they come (every ``poll_s``)."""
        end = self.now().timestamp() + seconds
        while True:
            self.check_alive()
            self.watch.poll()
            left = end - self.now().timestamp()
            if left <= 0:
                return
            await self.port.sleep(min(self.options.poll_s, left))

    async def wait_until(self, pred: Callable[[], bool], timeout_s: float) -> bool:
        """Poll until ``pred()`` (True) or ``timeout_s`` has passed (False)."""
        end = self.now().timestamp() + timeout_s
        while True:
            self.watch.poll()
            if pred():
                return True
            if self.now().timestamp() >= end:
                return False
            self.check_alive()
            await self.port.sleep(min(self.options.poll_s, max(0.0, end - self.now().timestamp())))

    async def wait_sample(self, pred: Callable[[Sample], bool], since: datetime, timeout_s: float) -> Sample | None:
        """The first sample taken at or after ``since`` for which ``pred`` holds, waiting at most
        ``timeout_s`` from now (``None``: none came)."""
        found: list[Sample] = []

        def seen() -> bool:
            hit = next((s for s in self.watch.since(since) if pred(s)), None)
            if hit is not None:
                found.append(hit)
            return hit is not None

        await self.wait_until(seen, timeout_s)
        return found[0] if found else None
