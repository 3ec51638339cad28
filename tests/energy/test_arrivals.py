"""The arrival forecast from the depot's own history (controller.energy.arrivals), read from a real
SQLite history file. Pinned now: Tuesday 2026-03-03 19:00 in Amsterdam (a weekday)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.energy.arrivals import PastSession, expected_arrivals
from controller.store.bill import read_past_sessions
from controller.store.schema import connect, migrate

TZ = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 3, 18, 0, tzinfo=UTC)  # Tuesday 19:00 in Amsterdam


def day_at(days_ago: int, hh: int, mm: int = 0) -> datetime:
    local = datetime(2026, 3, 3, hh, mm) - timedelta(days=days_ago)
    return local.replace(tzinfo=TZ).astimezone(UTC)


def bus(vehicle: str, days_ago: int, arrive_h: int, kwh: float) -> PastSession:
    return PastSession("DC1", vehicle, day_at(days_ago, arrive_h), day_at(days_ago, arrive_h) + timedelta(hours=9), kwh)


def test_weekdays_are_averaged_and_known_vehicles_are_not_expected_again() -> None:
    history = [
        bus("b1", 1, 21, 200.0), bus("b1", 2, 21, 100.0),  # Monday, and Sunday: another kind of day
        bus("b1", 7, 21, 100.0),  # last Tuesday
        bus("b2", 1, 22, 90.0), bus("b2", 7, 22, 90.0),
        bus("b3", 1, 20, 50.0), bus("b3", 7, 20, 50.0),
        bus("b4", 1, 18, 80.0),  # before now on its day: today's visit would be under way, not expected
    ]
    out = expected_arrivals(history, NOW, TZ, 24.0, here=[("b3", "DC1")], max_kw=lambda c: 150.0)
    assert [(e.arrive_at, round(e.energy_kwh, 6), e.max_kw) for e in out] == [
        (day_at(0, 21), 150.0, 150.0),  # (200 + 100) / 2 weekdays; Sunday is not a weekday
        (day_at(0, 22), 90.0, 150.0),
        (day_at(-1, 18), 40.0, 75.0),  # b4 tomorrow at 18:00 (in the 24 h horizon): one of two weekdays
    ]
    assert out[0].depart_at == day_at(0, 21) + timedelta(hours=9)
    # no history of the same kind of day: nothing is expected (not "no vehicles")
    assert expected_arrivals([bus("b1", 2, 21, 100.0)], NOW, TZ, 24.0, (), lambda c: 150.0) == ()
    # a charger the site does not have any more: its sessions are left out
    assert expected_arrivals(history, NOW, TZ, 24.0, (), lambda c: None) == ()


def test_the_sessions_are_read_back_from_the_history_file(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    conn = connect(db)
    migrate(conn)
    rows = [("s1", "DC1", 1, "b1", day_at(1, 21).timestamp(), day_at(0, 6).timestamp(), 250.0, 200.0),
            ("s2", "DC2", 1, None, day_at(20, 21).timestamp(), day_at(19, 6).timestamp(), 250.0, 180.0),  # too old
            ("s3", "DC3", 1, "b3", day_at(0, 17).timestamp(), None, 250.0, 10.0)]  # still open
    conn.executemany("INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, started_at, stopped_at,"
                     " energy_need_kwh, energy_kwh) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    got = read_past_sessions(db, NOW - timedelta(days=15))
    assert got == (PastSession("DC1", "b1", day_at(1, 21), day_at(0, 6), 200.0),)
    assert read_past_sessions(tmp_path / "missing.sqlite", NOW) == ()
    with pytest.raises(sqlite3.Error):
        read_past_sessions(tmp_path, NOW)  # a directory is no history file


def test_a_session_without_a_vehicle_id_is_not_expected_again_where_its_charger_is_in_use_today() -> None:
    anon = [PastSession("DC1", None, day_at(1, 21), day_at(0, 6), 200.0),
            PastSession("DC2", None, day_at(1, 22), day_at(0, 6), 100.0)]
    out = expected_arrivals(anon, NOW, TZ, 24.0, [(None, "DC1")], lambda c: 150.0)
    assert [(e.arrive_at, e.energy_kwh) for e in out] == [(day_at(0, 22), 100.0)]
