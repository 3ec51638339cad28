"""Functions the daemon calls to move its state into :class:`DepotMetrics`. No I/O.

Phases come in as grid phase indexes 0..2 (as in :mod:`controller.model`) or as ``L1``..``L3``
and go out as ``L1``..``L3``; the grid connection is the circuit ``grid``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

from controller.metrics.registry import DepotMetrics
from controller.model import GRID_ID, PHASES, Plan, SessionPlan, Site

SOLVERS: tuple[str, ...] = ("highs", "cbc", "heuristic", "none")
"""Every value of ``depot_plan_solver{solver}`` (one-hot: exactly one is 1)."""


def phase_label(phase: int | str) -> str:
    """``0``/``1``/``2`` or ``L1``/``L2``/``L3`` → ``L1``/``L2``/``L3``."""
    if isinstance(phase, int):
        if not 0 <= phase < len(PHASES):
            raise ValueError(f"phase index {phase} out of range 0..2")
        return PHASES[phase]
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}, expected one of {PHASES}")
    return phase


def charger_limit_a(sp: SessionPlan) -> float:
    """The limit a session's charger gets now [A per phase]: AC the limit, DC its planned grid current."""
    if sp.limit.unit == "A":
        return sp.limit.value
    return max(sp.current_a)


def observe_plan(m: DepotMetrics, plan: Plan) -> None:
    """Record one plan: circuits per node and phase, charger limits, unmet energy, solve time, solver.

    Circuit and per-session series follow the latest plan: nodes and chargers it no longer
    mentions lose their series (a stale limit is worse than none).
    """
    present: set[tuple[str, str]] = set()
    for nl in plan.nodes:
        key = (nl.node_id, phase_label(nl.phase))
        present.add(key)
        m.circuit_limit.labels(*key).set(nl.limit_a)
        m.circuit_load.labels(*key).set(nl.planned_a)
        m.circuit_headroom.labels(*key).set(nl.headroom_a)
    for metric in (m.circuit_limit, m.circuit_load, m.circuit_headroom):
        for labels in m.label_sets(metric):
            if (labels["circuit"], labels["phase"]) not in present:
                metric.remove(labels["circuit"], labels["phase"])

    # one charger may show several sessions (several connectors): add limits and shortfalls
    limits: dict[str, float] = {}
    unmet_wh: dict[str, float] = {}
    for sp in plan.sessions:
        limits[sp.charger_id] = limits.get(sp.charger_id, 0.0) + charger_limit_a(sp)
        unmet_wh[sp.charger_id] = unmet_wh.get(sp.charger_id, 0.0) + sp.shortfall_kwh * 1000.0
    for charger, value in limits.items():
        m.charger_limit.labels(charger).set(value)
    for charger, value in unmet_wh.items():
        m.session_unmet.labels(charger).set(value)
    m.remove_where(m.charger_limit, "charger", limits)
    m.remove_where(m.session_unmet, "charger", unmet_wh)

    m.plan_duration.observe(max(0.0, plan.stats.total_ms) / 1000.0)
    for solver in {*SOLVERS, plan.stats.solver}:
        m.plan_solver.labels(solver).set(1.0 if solver == plan.stats.solver else 0.0)
    m.plan_last_timestamp.set(plan.created_at.timestamp())
    m.plan_sessions.set(len(plan.sessions))


def observe_grid(m: DepotMetrics, currents_a: Sequence[float], power_w: float | None = None) -> None:
    """Measured grid current on L1..L3 [A] and, if the meter gives it, active power [W]."""
    if len(currents_a) != len(PHASES):
        raise ValueError(f"expected {len(PHASES)} phase currents, got {len(currents_a)}")
    for phase, current in zip(PHASES, currents_a, strict=True):
        m.grid_current.labels(phase).set(current)
    if power_w is not None:
        m.grid_power.set(power_w)


def observe_meter(m: DepotMetrics, meter_id: str, result: str, age_s: float) -> None:
    """One read attempt: count it by ``result`` (``ok``, ``error``, ``timeout``, ``implausible``, ...).

    ``age_s`` [s] is the time since the meter's last *good* read, so it grows while reads fail.
    """
    m.meter_reads.labels(meter_id, result).inc()
    m.meter_age.labels(meter_id).set(max(0.0, age_s))


def observe_failsafe(m: DepotMetrics, active: bool, reason: str = "") -> None:
    """The fail-safe state and its reason (e.g. ``grid meter stale``; empty when normal)."""
    m.failsafe_active.set(1.0 if active else 0.0)
    m.failsafe_reason.info({"reason": reason if active else ""})


def observe_charger(
    m: DepotMetrics,
    charger_id: str,
    connected: bool,
    current_a: Sequence[float] | None = None,
    energy_wh: float | None = None,
) -> None:
    """A charger's link state, its measured current per grid phase L1..L3 [A] and energy register [Wh].

    ``current_a`` ``None`` = not reported (the series is dropped rather than shown as 0 A).
    Only a change reaches the collectors (the fast loop calls it for every charger each cycle).
    """
    if current_a is not None and len(current_a) != len(PHASES):
        raise ValueError(f"expected {len(PHASES)} phase currents, got {len(current_a)}")
    seen = (connected, None if current_a is None else tuple(current_a), energy_wh)
    if m.charger_seen.get(charger_id) == seen:
        return
    m.charger_seen[charger_id] = seen
    m.charger_connected.labels(charger_id).set(1.0 if connected else 0.0)
    if current_a is None:
        for phase in PHASES:
            # not ``in label_sets()``: that collects every series, once per idle charger and
            # phase each cycle — quadratic in the number of chargers
            with contextlib.suppress(KeyError):
                m.charger_current.remove(charger_id, phase)
    else:
        for phase, current in zip(PHASES, current_a, strict=True):
            m.charger_current.labels(charger_id, phase).set(current)
    if energy_wh is not None:
        m.charger_energy.set((charger_id,), energy_wh)


def observe_charger_safety(
    m: DepotMetrics,
    charger_id: str,
    *,
    uncontrolled: bool,
    clock_offset_s: float | None,
    failsafe_installed: bool,
) -> None:
    """Whether the charger is under control: uncontrolled (rejects or ignores its limits), its
    measured clock offset (charger minus ours [s]; ``None`` = not measured, the series is dropped
    rather than shown as 0 s) and whether its fail-safe profile is confirmed installed.

    O(1) per call (no walk over every series): the fast loop calls it for every charger each cycle,
    so only a change (the offset to 0.1 s) reaches the collectors.
    """
    offset = None if clock_offset_s is None or not math.isfinite(clock_offset_s) else round(clock_offset_s, 1)
    seen = (uncontrolled, offset, failsafe_installed)
    if m.safety_seen.get(charger_id) == seen:
        return
    m.safety_seen[charger_id] = seen
    m.charger_uncontrolled.labels(charger_id).set(1.0 if uncontrolled else 0.0)
    m.charger_failsafe_installed.labels(charger_id).set(1.0 if failsafe_installed else 0.0)
    if offset is None:
        with contextlib.suppress(KeyError):
            m.charger_clock_offset.remove(charger_id)
    else:
        assert clock_offset_s is not None  # offset is not None
        m.charger_clock_offset.labels(charger_id).set(clock_offset_s)


def count_shed(m: DepotMetrics, circuit: str = GRID_ID) -> None:
    """The fast loop shed load because ``circuit`` was over its limit."""
    m.overload_sheds.labels(circuit).inc()


def count_push(m: DepotMetrics, charger: str, result: str) -> None:
    """A charging profile was sent: ``accepted``, ``rejected``, ``error``, ``timeout``, ..."""
    m.profile_pushes.labels(charger, result).inc()


def add_exceeded(m: DepotMetrics, circuit: str, phase: int | str, seconds: float) -> None:
    """``circuit`` carried more than its rated limit on ``phase`` for another ``seconds`` [s]."""
    if seconds < 0:
        raise ValueError("seconds must not be negative")
    m.limit_exceeded.labels(circuit, phase_label(phase)).inc(seconds)


def set_departure_at_risk(m: DepotMetrics, vehicle: str, at_risk: bool | None) -> None:
    """Whether ``vehicle`` will miss its departure; ``None`` drops the series (vehicle gone)."""
    if at_risk is None:
        with contextlib.suppress(KeyError):
            m.departure_at_risk.remove(vehicle)
        return
    m.departure_at_risk.labels(vehicle).set(1.0 if at_risk else 0.0)


def observe_bill(
    m: DepotMetrics, currency: str, price_per_kwh: float | None, peak_kw: float | None, cost_total: float | None
) -> None:
    """The bill now: the price per kWh in force (``None`` drops the series: no price), the billing
    period's peak [kW] (``None``: none yet, shown as 0) and the running cost of import (``None``:
    no series, the site has no energy prices). Series of another currency are dropped."""
    for labels in m.label_sets(m.energy_price):
        if labels["currency"] != currency or price_per_kwh is None:
            with contextlib.suppress(KeyError):
                m.energy_price.remove(labels["currency"])
    if price_per_kwh is not None:
        m.energy_price.labels(currency).set(price_per_kwh)
    m.demand_peak.set(0.0 if peak_kw is None else peak_kw)
    for held in m.energy_cost.label_sets():
        if held != (currency,) or cost_total is None:
            m.energy_cost.remove(held)
    if cost_total is not None:
        m.energy_cost.set((currency,), cost_total)


def count_store_dropped(m: DepotMetrics, records: int = 1) -> None:
    """The storage queue was full and dropped ``records`` (extra, outside the contract)."""
    m.store_dropped.inc(records)


def observe_site(m: DepotMetrics, site: Site) -> None:
    """After a (re)load: drop the series of chargers, circuits and meters the site no longer has.

    Vehicles are not pruned here (the fleet API adds vehicles the site file does not list); use
    :func:`set_departure_at_risk` with ``None``.
    """
    chargers = {ch.id for ch in site.chargers}
    m.safety_seen.clear()  # the series of chargers gone are dropped below: set the rest again
    m.charger_seen.clear()
    circuits = set(site.node_ids())
    meters = {mt.id for mt in site.meters}
    for cm in (m.charger_connected, m.charger_limit, m.charger_current, m.session_unmet, m.profile_pushes,
               m.charger_uncontrolled, m.charger_clock_offset, m.charger_failsafe_installed):
        m.remove_where(cm, "charger", chargers)
    for labels in m.charger_energy.label_sets():
        if labels[0] not in chargers:
            m.charger_energy.remove(labels)
    for cc in (m.circuit_limit, m.circuit_load, m.circuit_headroom, m.overload_sheds, m.limit_exceeded):
        m.remove_where(cc, "circuit", circuits)
    for mm in (m.meter_reads, m.meter_age):
        m.remove_where(mm, "meter", meters)
