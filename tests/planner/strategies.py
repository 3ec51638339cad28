"""Hypothesis strategies: random circuit trees, chargers, sessions and base loads."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

from hypothesis import strategies as st

from controller.model import (
    GRID_ID,
    Charger,
    Circuit,
    Control,
    DemandCharge,
    Grid,
    SessionState,
    Site,
    SiteInfo,
    Snapshot,
    Tariff,
    TariffStep,
)

NOW = datetime(2026, 11, 26, 16, 0, 7, tzinfo=UTC)
ROT3 = tuple("-".join(p) for p in permutations(("L1", "L2", "L3")))
ROT1 = ("L1", "L2", "L3")


@st.composite
def sites(draw: st.DrawFn, max_chargers: int = 6) -> Site:
    n_feeders = draw(st.integers(1, 3))
    circuits: list[Circuit] = []
    for f in range(n_feeders):
        fid = f"feeder-{f}"
        circuits.append(Circuit(id=fid, limit_a=draw(st.sampled_from((16.0, 25.0, 40.0, 63.0, 100.0))),
                                margin_a=draw(st.sampled_from((None, 0.0, 1.0)))))
        for b in range(draw(st.integers(0, 2))):
            circuits.append(Circuit(id=f"board-{f}{b}", parent=fid,
                                    limit_a=draw(st.sampled_from((10.0, 16.0, 32.0, 50.0)))))
    ids = [c.id for c in circuits]
    chargers: list[Charger] = []
    for i in range(draw(st.integers(1, max_chargers))):
        circuit = draw(st.sampled_from(ids))
        kind = draw(st.sampled_from(("ac", "ac", "ac", "dc")))
        if kind == "dc":
            chargers.append(Charger(id=f"c{i}", circuit=circuit, kind="dc", phases=3, phase_rotation="L1-L2-L3",
                                    min_a=0.0, max_kw=draw(st.sampled_from((10.0, 20.0, 50.0))),
                                    efficiency=draw(st.sampled_from((0.9, 0.95))),
                                    power_factor=draw(st.sampled_from((0.95, 1.0)))))
        else:
            phases = draw(st.sampled_from((1, 3)))
            rot = draw(st.sampled_from(ROT3 if phases == 3 else ROT1))
            chargers.append(Charger(id=f"c{i}", circuit=circuit, kind="ac", phases=phases, phase_rotation=rot,
                                    min_a=draw(st.sampled_from((6.0, 6.0, 8.0))),
                                    max_a=draw(st.sampled_from((16.0, 32.0)))))
    tariff: tuple[TariffStep, ...] = ()
    if draw(st.booleans()):
        tariff = (TariffStep(at=datetime(2026, 1, 1, 7).time(), price_per_kwh=0.3),
                  TariffStep(at=datetime(2026, 1, 1, 22).time(), price_per_kwh=draw(st.sampled_from((0.1, -0.05)))))
    demand = draw(st.sampled_from((None, None, DemandCharge(price_per_kw=14.0), DemandCharge(price_per_kw=0.0))))
    return Site(
        site=SiteInfo(name="prop", timezone="Europe/Berlin"),
        grid=Grid(limit_a=draw(st.sampled_from((32.0, 63.0, 100.0, 160.0))), margin_a=2.0,
                  limit_kw=draw(st.sampled_from((None, None, 30.0)))),
        circuits=tuple(circuits),
        chargers=tuple(chargers),
        control=Control(plan_every_s=15.0, horizon_h=12.0, slot_min=15, solver_time_limit_s=5.0,
                        plan_cost=draw(st.booleans())),
        tariff=Tariff(energy=tariff, demand=demand),
    )


@st.composite
def snapshots(
    draw: st.DrawFn, max_chargers: int = 6, overload: bool = True, need_max_kwh: float = 60.0
) -> Snapshot:
    site = draw(sites(max_chargers))
    sessions: list[SessionState] = []
    for ch in site.chargers:
        if not draw(st.integers(0, 4)):
            continue  # charger idle
        dep_h = draw(st.one_of(st.none(), st.floats(0.25, 11.0)))
        sessions.append(SessionState(
            session_id=f"s-{ch.id}", charger_id=ch.id, vehicle_id=f"v-{ch.id}",
            arrived_at=NOW - timedelta(minutes=30),
            departure_at=None if dep_h is None else NOW + timedelta(hours=dep_h),
            energy_need_kwh=draw(st.one_of(st.none(), st.floats(0.0, need_max_kwh))),
            priority=draw(st.integers(1, 10)),
            phases_used=draw(st.sampled_from((None, 1, 3))) if ch.kind == "ac" else None,
            ev_max_a=draw(st.sampled_from((None, None, 10.0, 16.0))),
            cap=draw(caps(ch.kind)),
        ))
    top = 1.3 if overload else 0.7
    base: dict[str, tuple[float, float, float]] = {}
    for node in site.node_ids():
        if node != GRID_ID and draw(st.booleans()):
            continue  # unmetered circuit
        lim = site.node_limit_a(node)
        base[node] = (
            draw(st.floats(0.0, lim * top)), draw(st.floats(0.0, lim * top)), draw(st.floats(0.0, lim * top))
        )
    return Snapshot(site=site, now=NOW, base_load_a=base, sessions=tuple(sessions), **draw(bill_inputs()))


@st.composite
def caps(draw: st.DrawFn, kind: str) -> tuple[tuple[datetime, float], ...]:
    """An outside cap (``SessionState.cap``): none mostly, else up to three steps from around now,
    in the session's unit (A per phase AC, kW DC), 0 and ``inf`` among them."""
    if draw(st.integers(0, 3)):
        return ()
    values = (0.0, 4.0, 6.0, 10.0, 16.0, math.inf) if kind == "ac" else (0.0, 5.0, 12.5, math.inf)
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        steps.append((NOW + timedelta(minutes=draw(st.integers(-30, 600))), draw(st.sampled_from(values))))
    return tuple(steps)


@st.composite
def bill_inputs(draw: st.DrawFn) -> dict[str, Any]:
    """The Snapshot's cost fields: dated prices, the billing peak so far, PV now and its forecast."""
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        start = NOW.replace(minute=0, second=0)
        out["prices"] = tuple(
            (start + timedelta(hours=h), draw(st.sampled_from((0.05, 0.2, 0.4, -0.02))))
            for h in range(draw(st.integers(1, 12)))
        )
    out["demand_peak_kw"] = draw(st.sampled_from((None, 0.0, 5.0, 40.0)))
    if draw(st.booleans()):
        out["pv_kw"] = draw(st.sampled_from((None, 0.0, 3.0, 20.0)))
        out["pv_forecast_kw"] = tuple(
            (NOW + timedelta(hours=h), draw(st.sampled_from((0.0, 5.0, 30.0)))) for h in range(0, 12, 2)
        )
    return out
