"""The plan loop: every ``control.plan_every_s`` and at once on an event, plan and dispatch.

The planner is a pure function; it runs in a worker thread so the fast loop and the OCPP
receive loops keep running while it solves. In fail-safe the plan is still made (status and
ETAs stay useful) but every charger is sent its fail-safe limit instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from controller.daemon.fast import observe_measured
from controller.daemon.loads import add_budgets, with_unknown
from controller.daemon.sessions import plan_sessions
from controller.metrics import observe_plan, set_departure_at_risk
from controller.model.snapshot import Plan, SessionState, Snapshot
from controller.planner import plan
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
    )
    snapshot = Snapshot(
        site=site,
        now=now,
        base_load_a=add_budgets(site, with_unknown(d.hold.held(), d.base_now), d.budgets),
        sessions=sessions,
        next_plan_at=now + timedelta(seconds=site.control.plan_every_s),
    )
    loop = asyncio.get_running_loop()
    result, d.pstate = await loop.run_in_executor(d.executor, plan, snapshot, d.pstate)
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
