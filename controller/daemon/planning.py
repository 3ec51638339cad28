"""Where each plan is made: the planner worker process, the daemon's thread, or the heuristic.

The planner is a pure function; it runs in a worker *process* (:mod:`controller.planner.worker`)
that keeps its HiGHS model warm, so neither the solve nor its Python parts hold the GIL of the
fast loop and the OCPP receive loops. :class:`Planning` chooses where each plan is made, falls
back when the worker fails, and keeps the last hour of plans for the status page.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Literal

from controller.daemon.stats import percentile
from controller.model.site import Control
from controller.model.snapshot import Plan, Snapshot
from controller.planner.state import PlannerState
from controller.planner.worker import PlanWorker, WorkerFailed, product_plan

LOG = logging.getLogger("depotctl.daemon.plan")

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
        result, self.state = await loop.run_in_executor(self.executor, product_plan, snapshot, self.state)
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
    from controller.planner.plan import plan  # loaded on first need: the worker plans as a rule

    return plan(snapshot, PlannerState(), solvers=())
