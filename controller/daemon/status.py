"""The daemon's status as the API, ``depotctl status`` and the demo show it.

Per node and line: the measured current (the fast loop's :func:`~controller.daemon.loads.known_loads`:
a meter's reading, else the phasor sum of the chargers below — on a transformer node its primary),
the planned one (the plan's first slot, summed the same way), the limit, the margin and the
headroom. The Prometheus gauges ``depot_circuit_load_amperes`` and
``depot_circuit_headroom_amperes`` carry the same figures (:func:`controller.daemon.fast.observe_measured`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from controller import __version__
from controller.api.models import (
    ChargerInfo,
    FailsafeInfo,
    GridInfo,
    LoopInfo,
    MeterInfo,
    NodeInfo,
    PlanInfo,
    SessionInfo,
    StatusResponse,
    StoreInfo,
    UncontrolledInfo,
)
from controller.chargers.planning import session_id
from controller.daemon.plan_loop import eta
from controller.daemon.sessions import energy_register_wh, fresh_s, grid_draw_a
from controller.model.phasor import draw
from controller.model.site import GRID_ID, Site
from controller.model.snapshot import SessionPlan
from controller.stats import percentile

if TYPE_CHECKING:
    from controller.daemon.core import Daemon


def _kwh_per_unit_h(site: Site, sp: SessionPlan, phases_used: int | None) -> float:
    """Energy per hour per unit of limit: kW, or A per phase × the W per A of the charger's draw
    (:func:`controller.model.phasor.draw`: 208 V for a line-to-line charger on a 208Y/120 V bus,
    3 × 230 V for a three-phase vehicle on a 400 V wye one)."""
    if sp.kind == "dc":
        return 1.0
    try:
        ch = site.charger(sp.charger_id)
    except KeyError:
        return max(1, len(sp.grid_phases)) * site.site.voltage_v / 1000.0
    return draw(site, ch, phases_used).volts_v / 1000.0


def build_status(d: Daemon) -> StatusResponse:
    site = d.site
    now = d.clock()
    plan = d.last_plan
    planned = {sp.session_id: sp for sp in plan.sessions} if plan is not None else {}
    planned_nodes: dict[str, list[float]] = {}
    if plan is not None:
        for nl in plan.nodes:
            planned_nodes.setdefault(nl.node_id, [0.0, 0.0, 0.0])[nl.phase] = nl.planned_a
    known = {s.session_id: s for s in d.last_sessions}

    nodes = []
    for node in site.node_ids():
        parent = None if node == GRID_ID else site.circuit(node).parent
        measured = d.measured.get(node)
        p = planned_nodes.get(node)
        usable = site.node_limit_a(node) - site.node_margin_a(node)
        basis = measured if measured is not None else p
        nodes.append(
            NodeInfo(
                id=node,
                parent=parent,
                limit_a=site.node_limit_a(node),
                margin_a=site.node_margin_a(node),
                measured_a=list(measured) if measured is not None else None,
                planned_a=list(p) if p is not None else None,
                headroom_a=[usable - v for v in basis] if basis is not None else None,
            )
        )

    meters = []
    for mid, ms in d.meters.status().items():
        meters.append(
            MeterInfo(
                id=mid, age_s=ms.age_s, stale=ms.stale, problem=ms.problem,
                accepted=ms.accepted, rejected=ms.rejected, failed=ms.failed,
            )
        )

    chargers = []
    max_age = fresh_s(site)
    for ch in site.chargers:
        st = d.cs.states.get(ch.id)
        sessions = []
        limit = source = None
        statuses = []
        if st is not None:
            for conn_id, conn in sorted(st.connectors.items()):
                if conn_id >= 1:
                    statuses.append(conn.status)
                tx = conn.transaction
                if tx is None or conn_id < 1:
                    continue
                sid = session_id(ch.id, tx.transaction_id)
                sp = planned.get(sid)
                s = known.get(sid)
                book = d.open_sessions.get(sid)
                delivered = s.energy_delivered_kwh if s is not None else (book.delivered_kwh if book else 0.0)
                soc = conn.measured.soc_pct.value if conn.measured.soc_pct is not None else None
                need = s.energy_need_kwh if s is not None else None
                sent = d.dispatch.sent.get(sid)
                if sent is not None:
                    limit = (limit or 0.0) + sent.limit
                    source = sp.limit.source if sp is not None else source
                eta_at: datetime | None = None
                if sp is not None and plan is not None and need:
                    per_unit = _kwh_per_unit_h(site, sp, s.phases_used if s is not None else None)
                    eta_at = eta(sp.schedule, plan.horizon_end, per_unit, need)
                sessions.append(
                    SessionInfo(
                        session_id=sid,
                        connector=conn_id,
                        vehicle_id=tx.vehicle_id,
                        started_at=tx.started_at,
                        departure_at=s.departure_at if s is not None else tx.departure_at,
                        energy_need_kwh=need,
                        delivered_kwh=delivered,
                        expected_kwh=sp.expected_energy_kwh if sp is not None else None,
                        will_meet_departure=sp.will_meet_departure if sp is not None and need is not None else None,
                        soc_pct=soc,
                        eta=eta_at,
                    )
                )
        drawn = grid_draw_a(ch, st, now, max_age, site) if st is not None and st.connected else None
        u = d.dispatch.uncontrolled.get(ch.id)

        chargers.append(
            ChargerInfo(
                id=ch.id,
                circuit=ch.circuit,
                kind=ch.kind,
                connected=bool(st and st.connected),
                ocpp_version=st.ocpp_version if st else None,
                status=statuses[0] if statuses else None,
                limit=limit,
                unit="kW" if ch.kind == "dc" else "A",
                limit_source=source,
                current_a=list(drawn) if drawn is not None else None,
                energy_wh=energy_register_wh(st) if st is not None else None,
                sessions=sessions,
                uncontrolled=UncontrolledInfo(reason=u.reason, since=u.since) if u is not None else None,
                clock_offset_s=st.clock_offset_s if st is not None else None,
                failsafe_installed=d.cs.control.failsafe_installed(ch.id),
            )
        )

    store = None
    if d.store is not None:
        c = d.store.counters()
        store = StoreInfo(
            path=str(d.store.path), written=c.written, dropped=c.dropped, queue_depth=d.store.queue_depth,
            broken=d.store.broken,
        )
    cycle = list(d.stats.cycle_ms)
    shed = list(d.stats.shed_ms)
    plan_info = None
    if plan is not None:
        ps = plan.stats
        summary = d.planning.summary()
        last = d.planning.last
        recent = list(d.planning.records)[-100:]
        plan_info = PlanInfo(
            at=plan.created_at, solver=ps.solver, total_ms=ps.total_ms,
            sessions=len(plan.sessions), warnings=list(plan.warnings),
            fallback_reason=ps.fallback_reason,
            status=ps.status, iterations=max(0, ps.iterations), warm=ps.warm,
            build_ms=max(0.0, ps.build_ms), solve_ms=max(0.0, ps.solve_ms),
            planned_in=last.where if last is not None else None,
            wait_ms=last.wait_ms if last is not None else None,
            plans_last_hour=summary.plans, fallbacks_last_hour=summary.fallbacks,
            fallback_reasons_last_hour=summary.reasons,
            total_ms_p50=summary.total_ms_p50, total_ms_p99=summary.total_ms_p99,
            wait_ms_p50=summary.wait_ms_p50, wait_ms_p99=summary.wait_ms_p99,
            recent_total_ms=[round(r.total_ms, 2) for r in recent],
            recent_wait_ms=[round(r.wait_ms, 2) for r in recent],
        )
    return StatusResponse(
        version=__version__,
        site=site.site.name,
        timezone=site.site.timezone,
        now=now,
        started_at=d.started_at,
        config_file=str(d.config_path),
        config_loaded_at=d.config_loaded_at,
        failsafe=FailsafeInfo(
            active=d.fs.active, reason=d.fs.reason, since=d.fs.since, good_cycles=d.fs.good_cycles,
            recover_cycles=site.control.recover_cycles,
        ),
        grid=GridInfo(
            meter=site.grid.meter,
            current_a=list(d.grid_a) if d.grid_a is not None else None,
            power_w=d.grid_power_w,
            limit_a=site.grid.limit_a,
            margin_a=site.grid.margin_a,
            limit_kw=site.grid.limit_kw,
        ),
        nodes=nodes,
        meters=meters,
        chargers=chargers,
        plan=plan_info,
        loop=LoopInfo(
            cycles=d.stats.cycles,
            cycle_ms_p50=percentile(cycle, 50),
            cycle_ms_p99=percentile(cycle, 99),
            sheds=d.stats.sheds,
            last_shed_at=d.stats.last_shed_at,
            shed_ms_p50=percentile(shed, 50),
            shed_ms_p99=percentile(shed, 99),
        ),
        store=store,
    )


