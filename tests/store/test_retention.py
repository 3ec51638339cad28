from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from controller.store import (
    AcceptedProfile,
    Allocation,
    DailyEnergy,
    DemandWindowRecord,
    Departure,
    Event,
    MeterSample,
    Record,
    SessionStart,
    SessionStop,
    Store,
    purge,
    restore,
    rollup_daily,
)

DAY = 86_400.0
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def ago(days: float, hour: float = 0.0) -> datetime:
    """``days`` whole days before NOW's UTC midnight, plus ``hour`` hours."""
    midnight = datetime(NOW.year, NOW.month, NOW.day, tzinfo=UTC)
    return midnight - timedelta(days=days) + timedelta(hours=hour)


def write(path: Path, records: list[Record]) -> None:
    store = Store(path, meter_interval_s=0.0, batch_interval_s=0.01)
    assert all(store.put(r) for r in records)
    assert store.flush(5.0)
    assert store.close()


def count(db: sqlite_utils.Database, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_purge_deletes_only_old_rows_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    old = [MeterSample("grid", ago(40, h / 20), (1.0, 1.0, 1.0)) for h in range(250)]
    new = [MeterSample("grid", ago(5, h / 10), (2.0, 2.0, 2.0)) for h in range(30)]
    records: list[Record] = [
        *old,
        *new,
        Event(ago(40), "overload", "feeder-a L1"),
        Event(ago(1), "overload", "feeder-a L2"),
        Allocation(ago(40), "cp1", "s1", 16.0, "A", "grid L1", "highs"),
        Allocation(ago(1), "cp1", "s2", 10.0, "A", "grid L1", "highs"),
        SessionStart("s-old", "cp1", 1, "bus-1", ago(41)),
        SessionStop("s-old", "cp1", 1, "bus-1", ago(40, 5), 20.0, True),
        SessionStart("s-open", "cp2", 1, "bus-2", ago(45)),  # open for ages: never purged
        SessionStart("s-new", "cp1", 1, "bus-1", ago(2)),
        SessionStop("s-new", "cp1", 1, "bus-1", ago(1), 30.0, False),
        AcceptedProfile("cp1", 1, 16.0, "A", ago(40, 1), ago(40)),
        AcceptedProfile("cp1", 1, 12.0, "A", ago(1, 1), ago(1)),
        AcceptedProfile("cp2", 1, 6.0, "A", None, ago(45)),  # cp2's only profile: kept
        Departure("d-old", "bus-1", ago(50), departure_at=ago(40)),
        Departure("d-cancelled", "bus-1", ago(50), departure_at=ago(-1), cancelled=True),
        Departure("d-rec", "bus-2", ago(50), recurring="mon 06:00"),
        Departure("d-next", "bus-1", ago(1), departure_at=ago(-1)),
        # demand windows: older than the retention, but the last two months stay (a billing period's peak)
        *(DemandWindowRecord(ago(d), ago(d, 0.25), 5.0, 900.0, True) for d in (100, 40, 1)),
        DailyEnergy(ago(100).date(), "EUR", 500.0, 500.0, 90.0, ago(99)),  # never purged
    ]
    write(path, records)
    batches: list[tuple[str, int]] = []
    deleted = purge(path, retention_days=30, now=NOW, batch_size=100, on_batch=lambda t, n: batches.append((t, n)))
    assert [n for t, n in batches if t == "meter_readings"] == [100, 100, 50]
    assert deleted == {
        "meter_readings": 250,
        "allocations": 1,
        "events": 1,
        "sessions": 1,
        "departures": 2,
        "accepted_profiles": 1,
        "charger_status": 0,
        "departure_history": 0,
        "demand_windows": 1,
    }
    db = sqlite_utils.Database(path)
    assert [r[0] for r in db.execute("SELECT window_start FROM demand_windows ORDER BY 1")] == [
        ago(40).timestamp(),
        ago(1).timestamp(),
    ]
    assert count(db, "energy_cost_daily") == 1
    assert count(db, "meter_readings") == 30
    assert [r["session_id"] for r in db.query("SELECT session_id FROM sessions ORDER BY 1")] == ["s-new", "s-open"]
    assert [r["departure_id"] for r in db.query("SELECT departure_id FROM departures ORDER BY 1")] == [
        "d-next",
        "d-rec",
    ]
    # purged days were rolled up first
    assert count(db, "daily_site_peak") == 1
    assert db.execute("SELECT day FROM daily_vehicle_energy").fetchall() == [(ago(40).date().isoformat(),)]
    db.close()
    got = restore(path)
    assert {p: got.profiles[p].limit for p in got.profiles} == {("cp1", 1): 12.0, ("cp2", 1): 6.0}
    assert [s.session_id for s in got.open_sessions] == ["s-open"]
    # a second run finds nothing more
    assert set(purge(path, retention_days=30, now=NOW, batch_size=100).values()) == {0}


def test_rollup_matches_hand_computed_values(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    d1 = ago(3)
    records: list[Record] = [
        # bus-1: two sessions stopping on d1; requested 100 + 50, delivered 80 + 50
        SessionStart("a", "cp1", 1, "bus-1", d1 - timedelta(hours=5), energy_need_kwh=100.0),
        SessionStop("a", "cp1", 1, "bus-1", d1 + timedelta(hours=6), 80.0, False),
        SessionStart("b", "cp1", 1, "bus-1", d1 + timedelta(hours=7), energy_need_kwh=50.0),
        SessionStop("b", "cp1", 1, "bus-1", d1 + timedelta(hours=9), 50.0, True),
        # van-2: one session on d1, no departure set
        SessionStart("c", "cp2", 1, "van-2", d1 + timedelta(hours=1)),
        SessionStop("c", "cp2", 1, "van-2", d1 + timedelta(hours=2), 12.5, None),
        # bus-1 again the next day
        SessionStart("d", "cp1", 1, "bus-1", d1 + timedelta(hours=20), energy_need_kwh=40.0),
        SessionStop("d", "cp1", 1, "bus-1", d1 + timedelta(hours=26), 40.0, True),
        # still open: not in the roll-up
        SessionStart("e", "cp2", 1, "van-2", d1 + timedelta(hours=3), energy_need_kwh=99.0),
        # meter: peaks per phase on different samples
        MeterSample("grid", d1 + timedelta(hours=1), (100.0, 50.0, 20.0), 40_000.0),
        MeterSample("grid", d1 + timedelta(hours=2), (90.0, 120.0, 30.0), 55_000.0),
        MeterSample("grid", d1 + timedelta(hours=3), (10.0, 10.0, 140.0), 30_000.0),
        MeterSample("grid", d1 + timedelta(hours=25), (500.0, 500.0, 500.0), 300_000.0),  # next day
    ]
    write(path, records)
    day, end = d1.date(), d1.date() + timedelta(days=1)
    for _ in range(2):  # idempotent
        rollup_daily(path, day, end)
        db = sqlite_utils.Database(path)
        vehicles = list(db.query("SELECT * FROM daily_vehicle_energy ORDER BY vehicle_id"))
        peaks = list(db.query("SELECT * FROM daily_site_peak"))
        db.close()
        assert vehicles == [
            {
                "day": day.isoformat(),
                "vehicle_id": "bus-1",
                "sessions": 2,
                "requested_kwh": 150.0,
                "delivered_kwh": 130.0,
            },
            {"day": day.isoformat(), "vehicle_id": "van-2", "sessions": 1, "requested_kwh": 0.0, "delivered_kwh": 12.5},
        ]
        assert peaks == [
            {
                "day": day.isoformat(),
                "meter_id": "grid",
                "l1_peak_a": 100.0,
                "l2_peak_a": 120.0,
                "l3_peak_a": 140.0,
                "power_peak_w": 55_000.0,
            }
        ]
    rollup_daily(path, day, end + timedelta(days=1))
    db = sqlite_utils.Database(path)
    assert db.execute(
        "SELECT sessions, requested_kwh, delivered_kwh FROM daily_vehicle_energy WHERE day = ?",
        [(day + timedelta(days=1)).isoformat()],
    ).fetchall() == [(1, 40.0, 40.0)]
    db.close()


def test_purge_on_empty_database(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    assert set(purge(path, retention_days=90, now=NOW).values()) == {0}
