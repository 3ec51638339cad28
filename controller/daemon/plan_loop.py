"""The plan loop: every ``control.plan_every_s`` and at once on an event, plan and dispatch.

Each cycle builds the Snapshot (the planner's sessions from the chargers' state and the fleet,
:mod:`.sessions`; the base load the fast loop holds, :class:`~controller.daemon.ports.Observation`),
has it planned where :class:`~controller.daemon.planning.Planning` says (a worker process, so
neither the solve nor its Python parts hold the GIL of the fast loop and the OCPP receive loops),
and hands the plan to the dispatcher. In fail-safe the plan is still made (status and ETAs stay
useful) but every charger is sent its fail-safe limit instead.

:class:`PlanLoop` owns what it works out — the last :class:`~controller.daemon.ports.PlanOutcome`,
the vehicles' learnt maxima, whether the planner is failing — and answers
:class:`~controller.daemon.ports.PlanHealth`; what it needs of the other parts is named in
:class:`PlanPorts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from controller.chargers.state import ChargerState
from controller.daemon.bill import site_tz
from controller.daemon.planning import Planning, PlanRecord, PlanSummary, worker_timeout_s
from controller.daemon.ports import Clock, CostInputs, FailsafeView, Monotonic, Observation, PlanOutcome, Recorder
from controller.daemon.readings import observe_measured
from controller.daemon.sessions import CapSource, DepartureHistory, Sent, plan_sessions
from controller.daemon.uncontrolled import Uncontrolled
from controller.energy.arrivals import Candidates, expected_from
from controller.fleet.departures import DepartureNeed
from controller.metrics import DepotMetrics, observe_plan, set_departure_at_risk
from controller.model.site import Site
from controller.model.snapshot import ExpectedArrival, PhaseCurrents, Plan, SessionState, Snapshot
from controller.rules.loads import add_budgets, with_unknown
from controller.store import allocations_from_plan

LOG = logging.getLogger("depotctl.daemon.plan")
MIN_GAP_S = 0.25  # a burst of events (a reconnect storm) gives one plan, not hundreds
PLAN_STALL_PERIODS = 5.0
"""A plan older than this many ``plan_every_s`` while sessions run is a fault (fail-safe)."""
__all__ = ["PlanLoop", "PlanPorts", "PlanRecord", "PlanSummary", "Planning", "eta", "plan_loop", "worker_timeout_s"]


class PlanDispatch(Protocol):
    """What the plan loop asks of the dispatcher: its book (read-only), a plan sent, fail-safe limits."""

    @property
    def sent(self) -> Mapping[str, Sent]: ...

    @property
    def uncontrolled(self) -> Mapping[str, Uncontrolled]: ...

    async def dispatch_plan(
        self, result: Plan, sessions: Sequence[SessionState], snapshot_at: datetime, failsafe_active: Callable[[], bool]
    ) -> None: ...

    async def failsafe(self, reason: str) -> None: ...


class DepartureSource(Protocol):
    """What the plan loop asks of the fleet: each vehicle's next departure, and its history."""

    @property
    def departures(self) -> DepartureHistory: ...

    def departure_of(self, vehicle_id: str, after: datetime) -> DepartureNeed | None: ...


class SessionProgress(Protocol):
    """The open sessions' book, told each session's progress by every plan."""

    def note_progress(self, session_id: str, delivered_kwh: float, requested_kwh: float | None) -> None: ...


class Planner(Protocol):
    async def plan(self, snapshot: Snapshot) -> Plan: ...


@dataclass(frozen=True)
class PlanPorts:
    site: Callable[[], Site]
    clock: Clock
    mono: Monotonic
    states: Mapping[str, ChargerState]  # the central system's chargers (read)
    dispatch: PlanDispatch
    fleet: DepartureSource
    observation: Callable[[], Observation]  # the fast loop's last
    planner: Planner
    failsafe: FailsafeView
    sessions: SessionProgress
    recorder: Recorder
    metrics: DepotMetrics
    wake: asyncio.Event  # set: plan now (an arrival, a departure, a shed, a reload …)
    stop: asyncio.Event
    held: Callable[[], frozenset[str]] = frozenset
    """The chargers commissioning runs hold: left out of the plan, ..."""
    held_budgets_a: Callable[[], Mapping[str, PhaseCurrents]] = dict
    """... and budgeted at their maximum on their lines (from the start: not only once the fast
    loop's next observation has them)."""
    reaction_of: Callable[[str], float] | None = None
    """Per charger, its EVs' reaction time [s] (None: the default for all)."""
    caps: CapSource | None = None
    """Local-controller mode: the CSMS's caps per session (``controller.upstream.caps.CapBook``;
    None: no upstream, no caps)."""
    costs: Callable[[datetime], CostInputs] | None = None
    """The bill's inputs for the planner now: dated prices, the period's peak, PV (None: none)."""
    refresh_costs: Callable[[datetime], Awaitable[None]] | None = None
    """Before each snapshot: the bill reads its prices file again if it changed."""


class PlanLoop:
    def __init__(self, ports: PlanPorts) -> None:
        self.ports = ports
        self.outcome: PlanOutcome | None = None
        self.plans = 0
        self.planner_failed = False
        self.last_plan_mono = ports.mono()  # the loop's liveness (:meth:`stalled`)
        self.learned: dict[str, float] = {}  # per session: the vehicle's own maximum, learnt
        self._risk_reported: set[str] = set()  # vehicles whose at-risk departure was logged
        self._at_risk: set[str] = set()

    def stalled(self, t_s: float) -> bool:
        """Sessions run, but no plan was finished for :data:`PLAN_STALL_PERIODS` periods."""
        if not any(
            st.connected and any(c.transaction is not None for k, c in st.connectors.items() if k >= 1)
            for st in self.ports.states.values()
        ):
            return False
        return t_s - self.last_plan_mono > PLAN_STALL_PERIODS * self.ports.site().control.plan_every_s

    def snapshot(self, now: datetime) -> Snapshot:
        """The planner's input now: the sessions (noting each vehicle's departure and learnt
        maximum on the way; none of uncontrolled chargers, nor of chargers being commissioned),
        the base load the fast loop holds (with those chargers' budgets), and the bill's
        (dated prices over the horizon, the billing period's peak, PV now and forecast)."""
        p = self.ports
        site = p.site()
        sessions = plan_sessions(
            site, p.states, now, departure_of=p.fleet.departure_of, sent=p.dispatch.sent, learned=self.learned,
            uncontrolled=frozenset(p.dispatch.uncontrolled) | p.held(),
            departures=p.fleet.departures, use_history=site.control.departure_history, reaction_of=p.reaction_of,
            caps=p.caps,
        )
        seen = p.observation()
        costs = p.costs(now) if p.costs is not None else CostInputs()
        return Snapshot(
            site=site,
            now=now,
            base_load_a=add_budgets(
                site, with_unknown(seen.held_a, seen.base_a), {**seen.budgets_a, **p.held_budgets_a()}
            ),
            sessions=sessions,
            next_plan_at=now + timedelta(seconds=site.control.plan_every_s),
            prices=costs.prices,
            demand_peak_kw=costs.demand_peak_kw,
            pv_kw=costs.pv_kw,
            pv_forecast_kw=costs.pv_forecast_kw,
            expected_arrivals=expected_now(site, now, sessions, costs.arrivals),
        )

    def finished(self, result: Plan, sessions: tuple[SessionState, ...]) -> PlanOutcome:
        """Note a plan: the loop's liveness, the planner's health, metrics, progress, risks, history."""
        p = self.ports
        self.plans += 1
        self.last_plan_mono = p.mono()
        failed = result.stats.solver == "none" and bool(sessions)
        if failed and not self.planner_failed:
            LOG.error("planner and fallback failed: %s", result.stats.fallback_reason)
        self.planner_failed = failed
        self.outcome = PlanOutcome(result, sessions, failed)
        observe_plan(p.metrics, result)
        observe_measured(p.metrics, p.site(), p.observation().loads_a)  # measured beats planned where known
        self._report(result, sessions)
        for a in allocations_from_plan(result):
            p.recorder.put(a)
        return self.outcome

    def _report(self, result: Plan, sessions: tuple[SessionState, ...]) -> None:
        """Each session's progress to the sessions' book; departures at risk to the log and metrics."""
        p = self.ports
        by_id = {s.session_id: s for s in sessions}
        at_risk: dict[str, bool] = {}
        why: dict[str, str] = {}
        for sp in result.sessions:
            s = by_id.get(sp.session_id)
            if s is None:
                continue
            requested = None
            if s.departure_at is not None and s.energy_need_kwh is not None:
                requested = s.energy_delivered_kwh + s.energy_need_kwh
            p.sessions.note_progress(sp.session_id, s.energy_delivered_kwh, requested)
            if s.vehicle_id is not None and s.departure_at is not None:
                at_risk[s.vehicle_id] = at_risk.get(s.vehicle_id, False) or not sp.will_meet_departure
                if not sp.will_meet_departure:
                    why[s.vehicle_id] = (
                        f"{s.vehicle_id} on {sp.charger_id}: {sp.expected_energy_kwh:.1f} of"
                        f" {sp.energy_need_kwh:.1f} kWh expected by {s.departure_at.isoformat(timespec='minutes')}"
                    )
        for vehicle, risk in at_risk.items():
            set_departure_at_risk(p.metrics, vehicle, risk)
            if risk and vehicle not in self._risk_reported:
                self._risk_reported.add(vehicle)
                LOG.warning("departure at risk: %s", why.get(vehicle, vehicle))
                p.recorder.event("info", f"departure at risk: {why.get(vehicle, vehicle)}")
            elif not risk:
                self._risk_reported.discard(vehicle)
        for vehicle in self._at_risk - set(at_risk):
            set_departure_at_risk(p.metrics, vehicle, None)
            self._risk_reported.discard(vehicle)
        self._at_risk = set(at_risk)


async def plan_loop(loop: PlanLoop) -> None:
    p = loop.ports
    while not p.stop.is_set():
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(p.wake.wait(), p.site().control.plan_every_s)
        if p.stop.is_set():
            return
        await asyncio.sleep(MIN_GAP_S)
        p.wake.clear()
        try:
            await plan_cycle(loop)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("plan cycle failed")
            loop.planner_failed = True


async def plan_cycle(loop: PlanLoop) -> Plan:
    p = loop.ports
    if p.refresh_costs is not None:
        await p.refresh_costs(p.clock())
    now = p.clock()
    snapshot = loop.snapshot(now)
    result = await p.planner.plan(snapshot)
    outcome = loop.finished(result, snapshot.sessions)
    fs = p.failsafe.state
    if fs.active:
        await p.dispatch.failsafe(fs.reason)
    elif not outcome.failed:
        await p.dispatch.dispatch_plan(result, outcome.sessions, now, lambda: p.failsafe.state.active)
    return result


def eta(sp_schedule: tuple[tuple[datetime, float], ...], horizon_end: datetime, kwh_per_unit_h: float,
        need_kwh: float) -> datetime | None:
    """When the planned schedule delivers ``need_kwh`` (``kwh_per_unit_h``: energy per hour per
    unit of limit), or None if it does not within the horizon."""
    if need_kwh <= 1e-6:
        return None
    total = 0.0
    for i, (start, limit) in enumerate(sp_schedule):
        end = sp_schedule[i + 1][0] if i + 1 < len(sp_schedule) else horizon_end
        hours = max(0.0, (end - start).total_seconds() / 3600.0)
        rate = limit * kwh_per_unit_h
        if rate > 0 and total + rate * hours >= need_kwh:
            return start + timedelta(hours=(need_kwh - total) / rate)
        total += rate * hours
    return None


def expected_now(
    site: Site, now: datetime, sessions: tuple[SessionState, ...], arrivals: Candidates | None
) -> tuple[ExpectedArrival, ...]:
    """The vehicles still to come today (the bill's session history, as the forecast's candidates
    for one day; only where the planner prices a demand charge): a vehicle plugged in now or seen
    today is not expected again. Candidates of another day (the bill reads again at the day's
    change, before the plan): none."""
    if arrivals is None or site.tariff.demand is None or not site.control.plan_cost:
        return ()
    try:
        if arrivals.day != now.astimezone(site_tz(site)).date():
            return ()
        here = [(s.vehicle_id, s.charger_id) for s in sessions]
        return expected_from(arrivals, now, site.control.horizon_h, here)
    except Exception:  # a forecast, not control: plan without it
        LOG.exception("the arrival forecast failed: planning without it")
        return ()
