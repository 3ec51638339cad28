"""The daemon's status as the API, ``depotctl status`` and the demo show it.

Per node and line: the measured current (the fast loop's :func:`~controller.rules.loads.known_loads`:
a meter's reading, else the phasor sum of the chargers below — on a transformer node its primary),
the planned one (the plan's first slot, summed the same way), the limit, the margin and the
headroom. The Prometheus gauges ``depot_circuit_load_amperes`` and
``depot_circuit_headroom_amperes`` carry the same figures (:func:`controller.daemon.readings.observe_measured`).

What the status reads of the parts is named in :class:`StatusFace` (everything, read-only: it is
the status page); :func:`build_status` is called for each request, in the event loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol

from controller import __version__
from controller.api.models import (
    ChargerInfo,
    DemandWindowInfo,
    EnergyInfo,
    FailsafeInfo,
    GridInfo,
    LoopInfo,
    MeterInfo,
    NodeInfo,
    PlanInfo,
    PricesFileInfo,
    SessionInfo,
    StatusResponse,
    StoreInfo,
    UncontrolledInfo,
    UpstreamInfo,
)
from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState, ConnectorState
from controller.daemon.bill import BillStatus
from controller.daemon.dispatch import SentBook
from controller.daemon.fast import FastStats
from controller.daemon.plan_loop import eta
from controller.daemon.planning import PlanRecord, PlanSummary
from controller.daemon.ports import Clock, FailsafeView, Observation, PlanOutcome, PlanResults
from controller.daemon.sessions import energy_register_wh, fresh_s, grid_draw_a
from controller.daemon.stats import percentile
from controller.energy.demand import DemandWindow
from controller.meter.reader import MeterStatus
from controller.model.phasor import draw
from controller.model.site import GRID_ID, Charger, Site
from controller.model.snapshot import Plan, SessionPlan, SessionState
from controller.store import Store

Commissioned = Literal["passed", "failed", "running", "never"]


class RunInfo(Protocol):
    """The daemon's run: when it started, its site file and when that was (re)loaded."""

    @property
    def started_at(self) -> datetime: ...

    @property
    def config_path(self) -> Path: ...

    @property
    def config_loaded_at(self) -> datetime: ...


class PlanTimes(Protocol):
    """Where and how fast plans were made (:class:`~controller.daemon.planning.Planning`)."""

    @property
    def last(self) -> PlanRecord | None: ...

    @property
    def records(self) -> deque[PlanRecord]: ...

    def summary(self, now_mono: float | None = None) -> PlanSummary: ...


@dataclass(frozen=True)
class StatusFace:
    site: Callable[[], Site]
    clock: Clock
    run: RunInfo
    failsafe: FailsafeView
    observed: Callable[[], Observation]  # the fast loop's last
    loop: FastStats
    plans: PlanResults
    planning: PlanTimes
    meters: Callable[[], Mapping[str, MeterStatus]]
    states: Mapping[str, ChargerState]  # the central system's chargers
    failsafe_installed: Callable[[str], bool]
    dispatch: SentBook
    delivered_kwh: Callable[[str], float | None]  # an open session's delivered energy, from its book
    store: Callable[[], Store | None]
    commissioned: Callable[[str], Commissioned] = lambda _charger_id: "never"
    """Per charger, its last commissioning: passed, failed (or aborted), running now, never."""
    bill: Callable[[datetime], BillStatus] | None = None
    """The bill now (:class:`~controller.daemon.bill.Bill`): price, today's cost, the period's peak, PV."""
    upstream: Callable[[], UpstreamInfo | None] = lambda: None
    """Local-controller mode: the links to the CSMS and the queue (``None`` without upstream)."""


class HasStatusFace(Protocol):
    @property
    def status_face(self) -> StatusFace: ...


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


def build_status(source: StatusFace | HasStatusFace) -> StatusResponse:
    """The status now (``source``: the face, or what carries it — the daemon)."""
    face = source if isinstance(source, StatusFace) else source.status_face
    site = face.site()
    now = face.clock()
    outcome = face.plans.outcome
    seen = face.observed()
    fs = face.failsafe.state
    index = _PlanIndex.of(outcome)
    return StatusResponse(
        version=__version__,
        site=site.site.name,
        timezone=site.site.timezone,
        now=now,
        started_at=face.run.started_at,
        config_file=str(face.run.config_path),
        config_loaded_at=face.run.config_loaded_at,
        failsafe=FailsafeInfo(
            active=fs.active, reason=fs.reason, since=fs.since, good_cycles=fs.good_cycles,
            recover_cycles=site.control.recover_cycles,
        ),
        grid=GridInfo(
            meter=site.grid.meter,
            current_a=list(seen.grid_a) if seen.grid_a is not None else None,
            power_w=seen.grid_power_w,
            limit_a=site.grid.limit_a,
            margin_a=site.grid.margin_a,
            limit_kw=site.grid.limit_kw,
        ),
        nodes=_nodes(site, seen, outcome.plan if outcome is not None else None),
        meters=[
            MeterInfo(id=mid, age_s=ms.age_s, stale=ms.stale, problem=ms.problem, accepted=ms.accepted,
                      rejected=ms.rejected, failed=ms.failed)
            for mid, ms in face.meters().items()
        ],
        chargers=[_charger(face, site, ch, now, index) for ch in site.chargers],
        plan=_plan_info(outcome.plan, face.planning) if outcome is not None else None,
        loop=_loop_info(face.loop),
        store=_store_info(face.store()),
        energy=_energy_info(face.bill(now)) if face.bill is not None else None,
        upstream=face.upstream(),
    )


def _window_info(w: DemandWindow | None) -> DemandWindowInfo | None:
    if w is None:
        return None
    return DemandWindowInfo(start=w.start, end=w.end, average_kw=w.average_kw, coverage=w.coverage, partial=w.partial)


def _energy_info(b: BillStatus) -> EnergyInfo:
    p = b.prices_file
    return EnergyInfo(
        currency=b.currency,
        price_per_kwh=b.price_per_kwh,
        price_source=b.price_source,
        day=b.day,
        today_import_kwh=b.today.import_kwh if b.today is not None else None,
        today_cost=b.today.cost if b.today is not None and b.today.priced else None,
        cost_total=b.cost_total,
        demand_price_per_kw=b.demand_price_per_kw,
        window_min=b.window_min,
        period_start=b.period_start,
        peak_kw=b.peak_kw,
        peak_window=_window_info(b.peak),
        window=_window_info(b.window),
        demand_charge=(b.peak_kw or 0.0) * b.demand_price_per_kw if b.demand_price_per_kw is not None else None,
        prices_file=None if p is None else PricesFileInfo(
            path=p.path, prices=p.steps, loaded_at=p.loaded_at, covers_until=p.covers_until, error=p.error,
            error_at=p.error_at,
        ),
        pv_meter=b.pv_meter,
        pv_kw=b.pv_kw,
    )


def _nodes(site: Site, seen: Observation, plan: Plan | None) -> list[NodeInfo]:
    planned_nodes: dict[str, list[float]] = {}
    if plan is not None:
        for nl in plan.nodes:
            planned_nodes.setdefault(nl.node_id, [0.0, 0.0, 0.0])[nl.phase] = nl.planned_a
    nodes = []
    for node in site.node_ids():
        parent = None if node == GRID_ID else site.circuit(node).parent
        measured = seen.loads_a.get(node)
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
    return nodes


@dataclass(frozen=True)
class _PlanIndex:
    """The last plan's sessions and the sessions it was made for, by session id."""

    planned: dict[str, SessionPlan]
    known: dict[str, SessionState]
    horizon_end: datetime | None

    @classmethod
    def of(cls, outcome: PlanOutcome | None) -> _PlanIndex:
        if outcome is None:
            return cls({}, {}, None)
        return cls(
            {sp.session_id: sp for sp in outcome.plan.sessions},
            {s.session_id: s for s in outcome.sessions},
            outcome.plan.horizon_end,
        )


def _charger(face: StatusFace, site: Site, ch: Charger, now: datetime, index: _PlanIndex) -> ChargerInfo:
    st = face.states.get(ch.id)
    sessions: list[SessionInfo] = []
    limit: float | None = None
    source: str | None = None
    statuses = []
    if st is not None:
        for conn_id, conn in sorted(st.connectors.items()):
            if conn_id >= 1:
                statuses.append(conn.status)
            tx = conn.transaction
            if tx is None or conn_id < 1:
                continue
            sid = session_id(ch.id, tx.transaction_id)
            sessions.append(_session(face, site, sid, conn_id, conn, index))
            sent = face.dispatch.sent.get(sid)
            if sent is not None:
                sp = index.planned.get(sid)
                limit = (limit or 0.0) + sent.limit
                source = sp.limit.source if sp is not None else source
    drawn = grid_draw_a(ch, st, now, fresh_s(site), site) if st is not None and st.connected else None
    u = face.dispatch.uncontrolled.get(ch.id)
    return ChargerInfo(
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
        failsafe_installed=face.failsafe_installed(ch.id),
        commissioned=face.commissioned(ch.id),
    )


def _session(
    face: StatusFace, site: Site, sid: str, conn_id: int, conn: ConnectorState, index: _PlanIndex
) -> SessionInfo:
    tx = conn.transaction
    assert tx is not None
    sp = index.planned.get(sid)
    s = index.known.get(sid)
    delivered = s.energy_delivered_kwh if s is not None else (face.delivered_kwh(sid) or 0.0)
    soc = conn.measured.soc_pct.value if conn.measured.soc_pct is not None else None
    need = s.energy_need_kwh if s is not None else None
    eta_at: datetime | None = None
    if sp is not None and index.horizon_end is not None and need:
        per_unit = _kwh_per_unit_h(site, sp, s.phases_used if s is not None else None)
        eta_at = eta(sp.schedule, index.horizon_end, per_unit, need)
    return SessionInfo(
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


def _store_info(store: Store | None) -> StoreInfo | None:
    if store is None:
        return None
    c = store.counters()
    return StoreInfo(
        path=str(store.path), written=c.written, dropped=c.dropped, queue_depth=store.queue_depth, broken=store.broken,
    )


def _plan_info(plan: Plan, planning: PlanTimes) -> PlanInfo:
    ps = plan.stats
    summary = planning.summary()
    last = planning.last
    recent = list(planning.records)[-100:]
    return PlanInfo(
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


def _loop_info(stats: FastStats) -> LoopInfo:
    cycle = list(stats.cycle_ms)
    shed = list(stats.shed_ms)
    return LoopInfo(
        cycles=stats.cycles,
        cycle_ms_p50=percentile(cycle, 50),
        cycle_ms_p99=percentile(cycle, 99),
        sheds=stats.sheds,
        last_shed_at=stats.last_shed_at,
        shed_ms_p50=percentile(shed, 50),
        shed_ms_p99=percentile(shed, 99),
    )
