"""The bridge to the planner: charger state → ``SessionState`` values, a ``Plan`` → profile pushes.

Pure apart from :func:`push_plan`, which only calls :meth:`Control.apply` for every session.
Freshness is judged on our clock: a :class:`~controller.chargers.state.Reading`'s ``at`` is when we
received it (backdated by its age on the charger's own clock), whatever that clock says.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from controller.chargers.control import ApplyResult, Control
from controller.chargers.state import ChargerState, ConnectorState, Reading, Transaction
from controller.model.phasor import node_service
from controller.model.site import Charger, Site
from controller.model.snapshot import NO_VEHICLE_PRIORITY, PhaseCurrents, Plan, SessionState


def session_id(charger_id: str, transaction_id: int | str) -> str:
    return f"{charger_id}:{transaction_id}"


def _fresh(r: Reading | None, now: datetime, max_age: timedelta) -> float | None:
    return r.value if r is not None and now - r.at <= max_age else None


SINGLE_LINE_MAX_A = 1.0
"""On a delta bus, a three-phase charger whose own L3 reads below this draws between its first two
lines (a single-phase vehicle: there is no neutral)."""


def grid_currents(
    charger: Charger, conn: ConnectorState, now: datetime, max_age: timedelta, site: Site | None = None
) -> PhaseCurrents | None:
    """Measured current on grid L1..L3 (through the charger's phase rotation); ``None`` if not fresh.

    A line-to-line charger (``phase_rotation: L1-L2``) carries one current through both of its
    lines: it may report it on its L1, on L1 and L2, or without a phase; both lines get the
    largest of those. A single-phase charger reporting only a phase-less current gets that. With
    ``site``: on a delta bus (no neutral) a three-phase charger whose vehicle draws on one phase
    draws between its first two lines, so its L1 current flows in both (the larger reading of the
    two).
    """
    m = conn.measured
    own = [_fresh(r, now, max_age) for r in m.current_a]
    unphased = _fresh(m.current_unphased_a, now, max_age) if charger.phases == 1 else None
    grid = [0.0, 0.0, 0.0]
    if charger.line_to_line:
        seen = [v for v in (own[0], own[1], unphased) if v is not None]
        if not seen:
            return None
        for gp in charger.grid_phases[:2]:
            grid[gp] = max(seen)
        return (grid[0], grid[1], grid[2])
    if charger.phases == 1 and own[0] is None:
        own[0] = unphased
    if all(v is None for v in own[: charger.phases]):
        return None
    wired = charger.grid_phases
    if (
        site is not None
        and charger.kind == "ac"
        and charger.phases >= 3
        and len(wired) >= 3
        and (own[2] or 0.0) < SINGLE_LINE_MAX_A
        and node_service(site, charger.circuit) == "delta"
    ):
        amps = max(own[0] or 0.0, own[1] or 0.0)
        grid[wired[0]] = grid[wired[1]] = amps
        grid[wired[2]] += own[2] or 0.0
        return (grid[0], grid[1], grid[2])
    for i, gp in enumerate(wired):
        grid[gp] += own[i] or 0.0
    return (grid[0], grid[1], grid[2])


def _remaining_need(tx: Transaction, conn: ConnectorState) -> float | None:
    if tx.energy_need_kwh is None:
        return None
    register = conn.measured.energy_wh
    if tx.energy_need_at_wh is None or register is None:
        return tx.energy_need_kwh
    return max(0.0, tx.energy_need_kwh - (register.value - tx.energy_need_at_wh) / 1000.0)


def session_states(
    site: Site, states: Mapping[str, ChargerState], now: datetime, max_age_s: float | None = None
) -> tuple[SessionState, ...]:
    """One ``SessionState`` per running transaction of a charger in the site file.

    Measurements older than ``max_age_s`` (default three meter intervals) count as unknown, so the
    planner assumes the worst (docs/safety.md: an unknown draw counts at its offered limit) rather than a stale value.
    """
    max_age = timedelta(seconds=max_age_s if max_age_s is not None else 3 * site.ocpp.meter_sample_s)
    chargers = {ch.id: ch for ch in site.chargers}
    vehicles = {v.id: v for v in site.vehicles}
    out: list[SessionState] = []
    for cid, st in sorted(states.items()):
        charger = chargers.get(cid)
        if charger is None:
            continue
        for connector_id, conn in sorted(st.connectors.items()):
            tx = conn.transaction
            if tx is None or connector_id < 1:
                continue
            vehicle = vehicles.get(tx.vehicle_id) if tx.vehicle_id else None
            energy = conn.measured.energy_wh
            delivered = 0.0
            if energy is not None and tx.meter_start_wh is not None:
                delivered = max(0.0, (energy.value - tx.meter_start_wh) / 1000.0)
            out.append(
                SessionState(
                    session_id=session_id(cid, tx.transaction_id),
                    charger_id=cid,
                    connector=connector_id,
                    vehicle_id=tx.vehicle_id,
                    arrived_at=tx.started_at,
                    departure_at=tx.departure_at,
                    energy_need_kwh=_remaining_need(tx, conn),
                    priority=vehicle.priority if vehicle else NO_VEHICLE_PRIORITY,
                    phases_used=tx.phases_in_use,
                    ev_max_a=vehicle.max_a if vehicle else None,
                    ev_max_kw=vehicle.max_kw if vehicle else None,
                    measured_a=grid_currents(charger, conn, now, max_age, site),
                    energy_delivered_kwh=delivered,
                )
            )
    return tuple(out)


async def push_plan(control: Control, plan: Plan, sessions: Sequence[SessionState]) -> list[ApplyResult]:
    """Send every session's first-slot limit and schedule, all chargers in parallel."""
    connectors = {s.session_id: s.connector for s in sessions}
    return list(
        await asyncio.gather(
            *(
                control.apply(
                    sp.charger_id,
                    sp.limit.value,
                    sp.schedule,
                    connector=connectors.get(sp.session_id, 1),
                    source=sp.limit.source,
                )
                for sp in plan.sessions
            )
        )
    )
