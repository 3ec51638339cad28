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
from controller.model.site import Charger, Site
from controller.model.snapshot import NO_VEHICLE_PRIORITY, PhaseCurrents, Plan, SessionState


def session_id(charger_id: str, transaction_id: int | str) -> str:
    return f"{charger_id}:{transaction_id}"


def _fresh(r: Reading | None, now: datetime, max_age: timedelta) -> float | None:
    return r.value if r is not None and now - r.at <= max_age else None


def grid_currents(charger: Charger, conn: ConnectorState, now: datetime, max_age: timedelta) -> PhaseCurrents | None:
    """Measured current on grid L1..L3 (through the charger's phase rotation); ``None`` if not fresh."""
    own = [_fresh(r, now, max_age) for r in conn.measured.current_a]
    if all(v is None for v in own[: charger.phases]):
        return None
    grid = [0.0, 0.0, 0.0]
    for i, gp in enumerate(charger.grid_phases):
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
    planner assumes the worst (DESIGN §3 rule 3) rather than a stale value.
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
                    measured_a=grid_currents(charger, conn, now, max_age),
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
