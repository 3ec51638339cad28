from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from controller.model import Limit, NodeLoad, PhaseCurrents, Plan, SessionPlan, SolveStats
from controller.rules.failsafe import Transition
from controller.store import (
    SCHEMA_VERSION,
    AcceptedProfile,
    Departure,
    Event,
    SessionStart,
    Store,
    allocations_from_plan,
    event_from_transition,
    restore,
    schema,
)
from controller.store.schema import open_database

from .conftest import T0, at, one_of_each


def rows(path: Path, table: str) -> list[dict[str, object]]:
    db = sqlite_utils.Database(path)
    try:
        return list(db.query(f"SELECT * FROM {table} ORDER BY rowid"))
    finally:
        db.close()


def test_every_record_kind_round_trips(store: Store, db_path: Path) -> None:
    records = one_of_each()
    assert all(store.put(r) for r in records)
    assert store.flush(timeout_s=5.0)
    assert store.counters().written == len(records)

    assert rows(db_path, "chargers") == [
        {
            "charger_id": "cp1",
            "circuit_id": "feeder-a",
            "kind": "ac",
            "phases": 3,
            "connectors": 2,
            "max_a": 32.0,
            "max_kw": None,
            "updated_at": at(0).timestamp(),
        }
    ]
    sessions = {r["session_id"]: r for r in rows(db_path, "sessions")}
    assert sessions["s1"]["stopped_at"] is None and sessions["s1"]["energy_need_kwh"] == 120.0
    assert sessions["s2"]["started_at"] == at(2).timestamp()
    assert sessions["s2"]["stopped_at"] == at(900).timestamp()
    assert sessions["s2"]["energy_kwh"] == 3.5 and sessions["s2"]["met_departure"] is None
    assert rows(db_path, "meter_readings") == [
        {"meter_id": "grid", "at": at(3).timestamp(), "l1_a": 101.5, "l2_a": 99.0, "l3_a": 97.25, "power_w": 68_000.0}
    ]
    alloc = rows(db_path, "allocations")
    assert [(a["charger_id"], a["limit_a"], a["limit_kw"], a["source"], a["solver"]) for a in alloc] == [
        ("cp1", 16.0, None, "circuit feeder-a L2", "highs"),
        ("dc1", None, 50.0, "grid kW", "heuristic"),
    ]
    events = rows(db_path, "events")
    assert [(e["kind"], e["detail"], e["charger_id"]) for e in events] == [
        ("failsafe_enter", "grid meter stale", None),
        ("reject", "SetChargingProfile Rejected", "cp1"),
    ]

    # what comes back through restore() equals what went in
    got = restore(db_path)
    assert got.open_sessions == (SessionStart("s1", "cp1", 1, "bus-7", at(1), energy_need_kwh=120.0),)
    assert got.departures == tuple(r for r in records if isinstance(r, Departure))
    accepted = [r for r in records if isinstance(r, AcceptedProfile)]
    assert dict(got.profiles) == {(r.charger_id, r.connector): r for r in accepted if not r.is_failsafe}
    assert dict(got.failsafes) == {r.charger_id: r for r in accepted if r.is_failsafe}
    assert got.last_failsafe == Event(at(5), "failsafe_enter", "grid meter stale")
    assert got.was_in_failsafe


def test_session_stop_then_start_order_independent(store: Store, db_path: Path) -> None:
    from controller.store import SessionStop

    store.put(SessionStop("s9", "cp2", 1, "van-1", at(50), 7.0, True))
    store.put(SessionStart("s9", "cp2", 1, None, at(10), 9.0))
    assert store.flush(5.0)
    (row,) = rows(db_path, "sessions")
    assert (row["vehicle_id"], row["started_at"], row["stopped_at"], row["met_departure"]) == (
        "van-1",
        at(10).timestamp(),
        at(50).timestamp(),
        1,
    )
    assert restore(db_path).open_sessions == ()


def test_wal_and_schema_version(db_path: Path) -> None:
    open_database(db_path).close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        conn.close()
    # reopening does not migrate again
    open_database(db_path).close()
    assert len(rows(db_path, "schema_version")) == SCHEMA_VERSION


def test_restore_missing_file_is_empty(tmp_path: Path) -> None:
    got = restore(tmp_path / "nope.db")
    assert got.open_sessions == () and got.departures == () and dict(got.profiles) == {}
    assert dict(got.failsafes) == {} and dict(got.in_force) == {}
    assert got.last_failsafe is None and not got.was_in_failsafe


def test_restore_picks_latest_profile_and_filters(store: Store, db_path: Path) -> None:
    store.put(AcceptedProfile("cp1", 1, 16.0, "A", at(600), at(10)))
    store.put(AcceptedProfile("cp1", 2, 10.0, "A", at(700), at(20)))
    store.put(AcceptedProfile("cp1", 1, 6.0, "A", None, at(15)))
    store.put(Departure("old", "bus-1", at(0), departure_at=at(100)))
    store.put(Departure("new", "bus-1", at(0), departure_at=at(10_000)))
    store.put(Departure("gone", "bus-2", at(0), departure_at=at(10_000)))
    store.put(Departure("gone", "bus-2", at(5), departure_at=at(10_000), cancelled=True))
    store.put(event_from_transition(Transition("failsafe", "starting", at(1))))
    store.put(event_from_transition(Transition("normal", "3 good cycles after: starting", at(30))))
    assert store.flush(5.0)
    got = restore(db_path, now=at(1000))
    assert dict(got.profiles) == {
        ("cp1", 1): AcceptedProfile("cp1", 1, 6.0, "A", None, at(15)),  # latest of connector 1
        ("cp1", 2): AcceptedProfile("cp1", 2, 10.0, "A", at(700), at(20)),
    }
    assert [d.departure_id for d in got.departures] == ["new"]
    assert got.last_failsafe is not None and got.last_failsafe.kind == "failsafe_exit"
    assert not got.was_in_failsafe


def test_allocations_from_plan() -> None:
    pc: PhaseCurrents = (16.0, 16.0, 16.0)
    sp = SessionPlan(
        session_id="s1",
        charger_id="cp1",
        kind="ac",
        limit=Limit(16.0, "grid L1"),
        schedule=(),
        expected_energy_kwh=10.0,
        energy_need_kwh=10.0,
        departure_at=at(3600),
        grid_phases=(0, 1, 2),
        current_a=pc,
    )
    stats = SolveStats("optimal", "highs", 1.0, 2.0, 3.0, 10, 10, 4)
    plan = Plan(T0, (T0,), at(3600), (sp,), (NodeLoad("grid", 0, 10.0, 16.0, 100.0),), stats)
    (a,) = allocations_from_plan(plan)
    assert (a.plan_at, a.charger_id, a.limit, a.unit, a.source, a.solver) == (T0, "cp1", 16.0, "A", "grid L1", "highs")


def test_migration_hook_applies_new_versions_once(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_database(db_path).close()

    def next_version(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE events ADD COLUMN severity TEXT")

    nxt = SCHEMA_VERSION + 1
    monkeypatch.setitem(schema.MIGRATIONS, nxt, next_version)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", nxt)
    for _ in range(2):
        open_database(db_path).close()
    assert [r["version"] for r in rows(db_path, "schema_version")] == list(range(1, nxt + 1))
    conn = sqlite3.connect(db_path)
    try:
        assert "severity" in [c[1] for c in conn.execute("PRAGMA table_info(events)")]
    finally:
        conn.close()
