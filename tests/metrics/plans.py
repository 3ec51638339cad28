"""Hand-built plans and sites for the metrics tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.model import (
    Charger,
    Circuit,
    Grid,
    Limit,
    NodeLoad,
    Plan,
    SessionPlan,
    SessionState,
    Site,
    SiteInfo,
    Snapshot,
    SolveStats,
)
from controller.model.snapshot import SolverName

NOW = datetime(2026, 11, 26, 17, 0, 0, tzinfo=UTC)


def site(chargers: tuple[str, ...] = ("a1", "a2", "dc1"), circuits: tuple[str, ...] = ("feeder-a",)) -> Site:
    return Site(
        site=SiteInfo(name="t", timezone="Europe/Amsterdam"),
        grid=Grid(limit_a=100.0, margin_a=2.0),
        circuits=tuple(Circuit(id=c, limit_a=63.0, margin_a=1.0) for c in circuits),
        chargers=tuple(
            Charger(id=c, circuit=circuits[0], kind="dc" if c.startswith("dc") else "ac", phases=3,
                    phase_rotation="L1-L2-L3", max_a=32.0, max_kw=50.0 if c.startswith("dc") else None,
                    min_a=0.0 if c.startswith("dc") else 6.0)
            for c in chargers
        ),
    )


def session(sid: str, charger: str, need_kwh: float, expected_kwh: float, limit: Limit,
            current_a: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SessionPlan:
    return SessionPlan(
        session_id=sid, charger_id=charger, kind="dc" if limit.unit == "kW" else "ac", limit=limit,
        schedule=((NOW, limit.value),), expected_energy_kwh=expected_kwh, energy_need_kwh=need_kwh,
        departure_at=NOW + timedelta(hours=8), grid_phases=(0, 1, 2), current_a=current_a,
    )


def hand_plan(solver: SolverName = "highs", total_ms: float = 42.0,
              nodes: tuple[NodeLoad, ...] | None = None,
              sessions: tuple[SessionPlan, ...] | None = None) -> Plan:
    if nodes is None:
        nodes = (
            NodeLoad("grid", 0, base_a=10.0, ev_a=40.0, limit_a=98.0),
            NodeLoad("grid", 1, base_a=12.5, ev_a=40.0, limit_a=98.0),
            NodeLoad("grid", 2, base_a=5.0, ev_a=24.0, limit_a=98.0),
            NodeLoad("feeder-a", 0, base_a=0.0, ev_a=40.0, limit_a=62.0),
            NodeLoad("feeder-a", 1, base_a=0.0, ev_a=40.0, limit_a=62.0),
            NodeLoad("feeder-a", 2, base_a=0.0, ev_a=70.0, limit_a=62.0, overloaded=True),
        )
    if sessions is None:
        sessions = (
            session("s1", "a1", need_kwh=20.0, expected_kwh=20.0, limit=Limit(16.0, "circuit feeder-a L1")),
            session("s2", "a2", need_kwh=30.0, expected_kwh=27.5, limit=Limit(8.0, "grid L2")),
            session("s3", "dc1", need_kwh=60.0, expected_kwh=50.0, limit=Limit(11.0, "grid kW", unit="kW"),
                    current_a=(16.5, 16.5, 16.5)),
        )
    stats = SolveStats("Optimal", solver, build_ms=total_ms / 2, solve_ms=total_ms / 2, total_ms=total_ms,
                       variables=10, constraints=20, slots=4)
    return Plan(created_at=NOW, slot_starts=(NOW,), horizon_end=NOW + timedelta(hours=8), sessions=sessions,
                nodes=nodes, stats=stats)


def small_snapshot() -> Snapshot:
    """Two AC sessions and a DC one on one feeder: something the real planner can solve quickly."""
    return Snapshot(
        site=site(), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)},
        sessions=tuple(
            SessionState(session_id=f"s-{c}", charger_id=c, vehicle_id=f"v-{c}", energy_need_kwh=need,
                         departure_at=NOW + timedelta(hours=dep_h), arrived_at=NOW - timedelta(hours=1), priority=5)
            for c, need, dep_h in (("a1", 20.0, 8.0), ("a2", 200.0, 2.0), ("dc1", 30.0, 4.0))
        ),
    )
