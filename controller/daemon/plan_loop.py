"""The plan loop: every ``control.plan_every_s`` and at once on an event, plan and dispatch.

The planner is a pure function; it runs in a worker *process* (:mod:`controller.planner.worker`)
that keeps its HiGHS model warm, so neither the solve nor its Python parts hold the GIL of the
fast loop and the OCPP receive loops (:class:`Planning`). In fail-safe the plan is still made
(status and ETAs stay useful) but every charger is sent its fail-safe limit instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from controller.daemon.fast import observe_measured
from controller.daemon.loads import add_budgets, with_unknown
from controller.daemon.sessions import plan_sessions
from controller.metrics import observe_plan, set_departure_at_risk
from controller.model.site import Control
from controller.model.snapshot import Plan, SessionState, Snapshot
from controller.planner import PlannerState, plan
from controller.planner.worker import PlanWorker, WorkerFailed
from controller.stats import percentile
from controller.store import allocations_from_plan

if TYPE_CHECKING:
    from controller.daemon.core import Daemon

LOG = logging.getLogger("depotctl.daemon.plan")
MIN_GAP_S = 0.25  # a burst of events (a reconnect storm) gives one plan, not hundreds


async def plan_loop(d: Daemon) -> None:
    while not d.stop_event.is_set():
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(d.replan.wait(), d.site.control.plan_every_s)
        if d.stop_event.is_set():
            return
        await asyncio.sleep(MIN_GAP_S)
        d.replan.clear()
        try:
            await plan_cycle(d)
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("plan cycle failed")
            d.planner_failed = True


async def plan_cycle(d: Daemon) -> Plan:
    site = d.site
    now = d.clock()
    sessions = plan_sessions(
        site, d.cs.states, now, departure_of=d.departure_of, sent=d.dispatch.sent, learned=d.learned,
        uncontrolled=frozenset(d.dispatch.uncontrolled),
        departures=d.fleet.departures, use_history=site.control.departure_history,
    )
    snapshot = Snapshot(
        site=site,
        now=now,
        base_load_a=add_budgets(site, with_unknown(d.hold.held(), d.base_now), d.budgets),
        sessions=sessions,
        next_plan_at=now + timedelta(seconds=site.control.plan_every_s),
    )
    result = await d.planning.plan(snapshot)
    d.stats.plans += 1
    d.last_plan_mono = d.mono()
    failed = result.stats.solver == "none" and bool(sessions)
    if failed and not d.planner_failed:
        LOG.error("planner and fallback failed: %s", result.stats.fallback_reason)
    d.planner_failed = failed
    d.last_plan, d.last_sessions = result, sessions
    _observe(d, result, sessions)
    for a in allocations_from_plan(result):
        d.put(a)
    if d.fs.active:
        await d.dispatch_failsafe(d.fs.reason)
    elif not failed:
        await d.dispatch.dispatch_plan(result, sessions, now, lambda: d.fs.active)
    return result


def _observe(d: Daemon, result: Plan, sessions: tuple[SessionState, ...]) -> None:
    observe_plan(d.metrics, result)
    observe_measured(d)  # measured beats planned where the load is known
    by_id = {s.session_id: s for s in sessions}
    at_risk: dict[str, bool] = {}
    why: dict[str, str] = {}
    for sp in result.sessions:
        s = by_id.get(sp.session_id)
        if s is None:
            continue
        book = d.open_sessions.get(sp.session_id)
        if book is not None:
            book.delivered_kwh = s.energy_delivered_kwh
            if s.departure_at is not None and s.energy_need_kwh is not None:
                book.requested_kwh = s.energy_delivered_kwh + s.energy_need_kwh
        if s.vehicle_id is not None and s.departure_at is not None:
            at_risk[s.vehicle_id] = at_risk.get(s.vehicle_id, False) or not sp.will_meet_departure
            if not sp.will_meet_departure:
                why[s.vehicle_id] = (
                    f"{s.vehicle_id} on {sp.charger_id}: {sp.expected_energy_kwh:.1f} of {sp.energy_need_kwh:.1f} kWh"
                    f" expected by {s.departure_at.isoformat(timespec='minutes')}"
                )
    for vehicle, risk in at_risk.items():
        set_departure_at_risk(d.metrics, vehicle, risk)
        if risk and vehicle not in d.risk_reported:
            d.risk_reported.add(vehicle)
            LOG.warning("departure at risk: %s", why.get(vehicle, vehicle))
            d.record_event("info", f"departure at risk: {why.get(vehicle, vehicle)}")
        elif not risk:
            d.risk_reported.discard(vehicle)
    for vehicle in d.at_risk_vehicles - set(at_risk):
        set_departure_at_risk(d.metrics, vehicle, None)
        d.risk_reported.discard(vehicle)
    d.at_risk_vehicles = set(at_risk)


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


# --- where the plan is made -------------------------------------------------------------------

WORKER_RETRY_MAX_S = 300.0
"""After failures in a row the worker is restarted after plan_every_s x 2^(k-1), at most this [s]."""
HISTORY_S = 3600.0
"""The status shows the plans of this last stretch (count, fallbacks and why, p50/p99)."""
OUTER_MARGIN_S = 5.0
Where = Literal["worker", "daemon thread", "heuristic"]


def worker_timeout_s(control: Control) -> float:
    """How long one plan cycle waits for the worker's answer [s].

    One plan may make up to three solves of up to ``solver_time_limit_s`` each (departures first
    in two HiGHS stages; CBC after a failed HiGHS): ``3 x limit + 2 s``, but at most two plan
    periods (a stuck worker must not stall the loop into fail-safe, 5 periods) and never less
    than one solve plus a second. Defaults (2 s, 15 s): 8 s.
    """
    limit = control.solver_time_limit_s
    return max(limit + 1.0, min(3.0 * limit + 2.0, 2.0 * control.plan_every_s))


@dataclass(frozen=True)
class PlanRecord:
    at_mono: float
    where: Where
    solver: str
    status: str
    iterations: int
    total_ms: float
    """The planner's own time (``SolveStats.total_ms``, measured where it ran)."""
    wait_ms: float
    """What the plan loop waited for the plan (the worker: pickling, the pipe, the plan)."""
    fallback_reason: str | None

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None or self.solver not in ("highs", "none")


@dataclass(frozen=True)
class PlanSummary:
    plans: int
    fallbacks: int
    reasons: dict[str, int]
    total_ms_p50: float | None
    total_ms_p99: float | None
    wait_ms_p50: float | None
    wait_ms_p99: float | None


class Planning:
    """Where each plan is made, in order:

    * the worker process (the product): bounded by :func:`worker_timeout_s`;
    * when the worker failed on this cycle (died, hung, raised) or is waiting out its back-off
      after failing again: the deterministic heuristic in the daemon's thread — the snapshot may be
      what broke the solver, so HiGHS is not run inside the daemon — with the reason in
      ``SolveStats.fallback_reason`` and an error in the log; the worker is restarted at once
      (the first failure) or after ``plan_every_s x 2^(k-1)`` (k failures in a row, ≤ 5 min);
    * no worker (``DaemonOptions.plan_in_worker`` off) or one that cannot start: the planner in
      the daemon's thread, as before (the reason says so when the worker could not start).

    A reload calls :meth:`reset` (an empty PlannerState, the site sent again). :meth:`summary`
    is the last hour of plans for the status page.
    """

    def __init__(
        self, worker: PlanWorker | None, executor: Executor, mono: Callable[[], float] = time.monotonic
    ) -> None:
        self.worker = worker
        self.executor = executor
        self.mono = mono
        self.state = PlannerState()  # the in-thread planner's own state
        self.failures = 0
        self.last_failure: WorkerFailed | None = None
        self.retry_at = 0.0
        self.records: deque[PlanRecord] = deque(maxlen=8000)
        self.last: PlanRecord | None = None

    def start(self) -> None:
        if self.worker is None:
            return
        try:
            self.worker.start()
        except WorkerFailed as exc:
            self._failed(exc, 15.0)

    def reset(self) -> None:
        self.state = PlannerState()
        if self.worker is not None:
            self.worker.reset()

    def close(self) -> None:
        """Stop the worker (bounded, blocking: call it from a thread)."""
        if self.worker is not None:
            self.worker.stop()

    async def plan(self, snapshot: Snapshot) -> Plan:
        loop = asyncio.get_running_loop()
        control = snapshot.site.control
        t0 = time.perf_counter()
        where: Where
        worker = self.worker
        if worker is None:
            result, where = await self._in_thread(snapshot, None), "daemon thread"
        elif self.failures and self.mono() < self.retry_at:
            result, where = await self._without_worker(snapshot, f"{self.last_failure} ({self.failures} in a row)")
        else:
            timeout = worker_timeout_s(control)
            fut = loop.run_in_executor(self.executor, worker.plan, snapshot, timeout)
            try:
                answer = await asyncio.wait_for(fut, timeout + worker.start_timeout_s + OUTER_MARGIN_S)
            except (WorkerFailed, TimeoutError) as exc:
                if not isinstance(exc, WorkerFailed):
                    worker.kill()  # unblocks the thread stuck on its pipe
                    exc = WorkerFailed("hung", "the request itself did not go through")
                self._failed(exc, control.plan_every_s)
                result, where = await self._without_worker(snapshot, str(exc))
            else:
                result, where = answer.plan, "worker"
                if self.failures:
                    LOG.warning("planner worker back (pid %s) after %d failure(s)", worker.pid, self.failures)
                self.failures, self.last_failure = 0, None
        wait_ms = (time.perf_counter() - t0) * 1e3
        st = result.stats
        self.last = PlanRecord(self.mono(), where, st.solver, st.status, st.iterations, st.total_ms, wait_ms,
                               st.fallback_reason)
        self.records.append(self.last)
        return result

    async def _without_worker(self, snapshot: Snapshot, why: str) -> tuple[Plan, Where]:
        failure = self.last_failure
        if failure is not None and failure.kind == "start":  # the planner is not suspect
            return await self._in_thread(snapshot, f"{why}; planned in the daemon's thread"), "daemon thread"
        loop = asyncio.get_running_loop()
        result, _ = await loop.run_in_executor(self.executor, _heuristic, snapshot)
        reason = f"{why}; heuristic plan"
        return replace(result, stats=replace(result.stats, fallback_reason=reason)), "heuristic"

    async def _in_thread(self, snapshot: Snapshot, reason: str | None) -> Plan:
        loop = asyncio.get_running_loop()
        result, self.state = await loop.run_in_executor(self.executor, plan, snapshot, self.state)
        if reason is not None:
            detail = f"{reason}; {result.stats.fallback_reason}" if result.stats.fallback_reason else reason
            result = replace(result, stats=replace(result.stats, fallback_reason=detail))
        return result

    def _failed(self, exc: WorkerFailed, plan_every_s: float) -> None:
        self.failures += 1
        self.last_failure = exc
        delay = 0.0 if self.failures == 1 else min(plan_every_s * 2.0 ** (self.failures - 1), WORKER_RETRY_MAX_S)
        self.retry_at = self.mono() + delay
        if delay:
            LOG.error("%s: planning without the worker; next try in %.0f s (%d failures in a row)",
                      exc, delay, self.failures)
        elif exc.kind == "start":
            LOG.error("%s: planning in the daemon's thread; trying again next cycle", exc)
        else:
            LOG.error("%s: this cycle planned by the heuristic; worker restarted", exc)
            if self.worker is not None:
                try:
                    self.worker.start()
                except WorkerFailed as again:
                    self.last_failure = again

    def summary(self, now_mono: float | None = None) -> PlanSummary:
        now = self.mono() if now_mono is None else now_mono
        recent = [r for r in self.records if now - r.at_mono <= HISTORY_S]
        reasons = Counter((r.fallback_reason or f"solver {r.solver}")[:160] for r in recent if r.fell_back)
        total = [r.total_ms for r in recent]
        wait = [r.wait_ms for r in recent]
        return PlanSummary(
            plans=len(recent), fallbacks=sum(reasons.values()), reasons=dict(reasons.most_common(5)),
            total_ms_p50=percentile(total, 50), total_ms_p99=percentile(total, 99),
            wait_ms_p50=percentile(wait, 50), wait_ms_p99=percentile(wait, 99),
        )


def _heuristic(snapshot: Snapshot) -> tuple[Plan, PlannerState]:
    return plan(snapshot, PlannerState(), solvers=())
