"""The per-vehicle history of declared vs actual departures (schema 4): written, restored, kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.store import (
    DEPARTURES_PER_VEHICLE,
    SCHEMA_VERSION,
    DeclaredDeparture,
    Departure,
    PastDeparture,
    Record,
    SessionStart,
    SessionStop,
    Store,
    purge,
    restore,
)
from controller.store.schema import _v1, _v2, _v3, schema_version
from controller.store.sink import to_unix

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def t(hours: float) -> datetime:
    return NOW + timedelta(hours=hours)


def write(path: Path, records: list[Record]) -> None:
    store = Store(path, meter_interval_s=0.0, batch_interval_s=0.01)
    assert all(store.put(r) for r in records)
    assert store.flush(5.0)
    assert store.close()


def session(sid: str, vehicle: str, start: datetime, declared: datetime, stop: datetime | None) -> list[Record]:
    out: list[Record] = [SessionStart(sid, "cp1", 1, vehicle, start), DeclaredDeparture(sid, vehicle, declared)]
    if stop is not None:
        out.append(SessionStop(sid, "cp1", 1, vehicle, stop, 10.0, True))
    return out


def test_declared_and_actual_departures_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    write(
        path,
        [
            *session("cp1:1", "van-1", t(-30), t(-22), t(-23)),  # left an hour early
            *session("cp1:2", "van-1", t(-6), t(-1), None),  # still plugged in
            SessionStart("cp1:3", "cp1", 2, "van-2", t(-5)),  # no declared departure: no history
            SessionStop("cp1:3", "cp1", 2, "van-2", t(-4), 3.0, None),
        ],
    )
    got = restore(path, NOW)
    assert dict(got.departure_history) == {"van-1": (PastDeparture("cp1:1", "van-1", t(-22), t(-23)),)}
    assert dict(got.open_declared) == {"cp1:2": DeclaredDeparture("cp1:2", "van-1", t(-1))}


def test_a_new_declaration_replaces_the_old_until_the_session_ends(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    write(path, session("cp1:1", "van-1", t(-30), t(-22), None))
    write(path, [DeclaredDeparture("cp1:1", "van-1", t(-21))])  # changed while it was ahead
    write(path, [SessionStop("cp1:1", "cp1", 1, "van-1", t(-20), 5.0, None)])
    write(path, [DeclaredDeparture("cp1:1", "van-1", t(-2))])  # too late: the session has ended
    write(path, [SessionStop("cp1:1", "cp1", 1, "van-1", t(-1), 5.0, None)])  # a repeated stop keeps the first end
    got = restore(path, NOW)
    assert got.departure_history["van-1"] == (PastDeparture("cp1:1", "van-1", t(-21), t(-20)),)
    assert dict(got.open_declared) == {}


def test_restore_brings_back_the_latest_sessions_of_each_vehicle_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    records: list[Record] = []
    for i in range(DEPARTURES_PER_VEHICLE + 5):
        start = t(-24.0 * (40 - i))
        records += session(f"cp1:{i}", "van-1", start, start + timedelta(hours=9), start + timedelta(hours=8))
    write(path, records)
    history = restore(path, NOW).departure_history["van-1"]
    assert [p.session_id for p in history] == [f"cp1:{i}" for i in range(5, DEPARTURES_PER_VEHICLE + 5)]


def test_retention_keeps_each_vehicles_latest_sessions_whatever_their_age(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    records: list[Record] = []
    for i in range(DEPARTURES_PER_VEHICLE + 3):  # all 100+ days old: the vehicle was away since
        start = t(-24.0 * (200 - i))
        records += session(f"cp1:{i}", "van-1", start, start + timedelta(hours=9), start + timedelta(hours=8))
    records += session("cp1:recent", "van-2", t(-10), t(-2), t(-3))
    records += session("cp1:open", "van-3", t(-24 * 100), t(-24 * 100 + 8), None)  # plugged in for ages
    records += session("cp1:lost", "van-4", t(-24 * 100), t(-24 * 100 + 8), None)
    write(path, records)
    with sqlite3.connect(path) as conn:  # a session row lost: its declared departure is an orphan
        conn.execute("DELETE FROM sessions WHERE session_id = 'cp1:lost'")
    conn.close()
    deleted = purge(path, retention_days=30, now=NOW)
    assert deleted["departure_history"] == 3 + 1
    got = restore(path, NOW)
    assert len(got.departure_history["van-1"]) == DEPARTURES_PER_VEHICLE
    assert [p.session_id for p in got.departure_history["van-2"]] == ["cp1:recent"]
    assert list(got.open_declared) == ["cp1:open"]
    assert purge(path, retention_days=30, now=NOW)["departure_history"] == 0


def _v3_database(path: Path) -> None:
    """A database as the previous release left it: schema 3, with sessions and departures."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    for migration in (_v1, _v2, _v3):
        migration(conn)
    conn.executemany("INSERT INTO schema_version VALUES (?, 0)", [(1,), (2,), (3,)])
    conn.execute(
        "INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, started_at) VALUES (?, ?, ?, ?, ?)",
        ("cp1:7", "cp1", 1, "van-1", to_unix(t(-3))),
    )
    conn.execute(
        "INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, started_at, stopped_at, energy_kwh)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        ("cp1:6", "cp1", 1, "van-1", to_unix(t(-30)), to_unix(t(-20)), 40.0),
    )
    conn.execute(
        "INSERT INTO departures (departure_id, vehicle_id, set_at, recurring) VALUES (?, ?, ?, ?)",
        ("d1", "van-1", to_unix(t(-100)), "mon–fri 06:30"),
    )
    conn.commit()
    conn.close()


def test_a_schema_3_database_migrates_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v3.db"
    _v3_database(path)
    got = restore(path, NOW)
    conn = sqlite3.connect(path)
    try:
        assert schema_version(conn) == SCHEMA_VERSION >= 4
        assert conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2
        assert conn.execute("SELECT COUNT(*) FROM departure_history").fetchone()[0] == 0
    finally:
        conn.close()
    assert [s.session_id for s in got.open_sessions] == ["cp1:7"]
    assert got.departures == (Departure("d1", "van-1", t(-100), recurring="mon–fri 06:30"),)
    assert dict(got.departure_history) == {} and dict(got.open_declared) == {}
    # the open session from before the upgrade gets its declared departure now, and history when it ends
    write(path, [DeclaredDeparture("cp1:7", "van-1", t(2)), SessionStop("cp1:7", "cp1", 1, "van-1", t(1), 9.0, True)])
    assert restore(path, NOW).departure_history["van-1"] == (PastDeparture("cp1:7", "van-1", t(2), t(1)),)
