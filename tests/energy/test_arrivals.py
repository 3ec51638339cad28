"""The arrival forecast from the depot's own history (controller.energy.arrivals), read from a real
SQLite history file. Pinned now: Tuesday 2026-03-03 19:00 in Amsterdam (a weekday)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.energy import arrivals
from controller.energy.arrivals import ArrivalForecast, PastSession, charger_max_kw, expected_arrivals
from controller.model import Charger, Circuit
from controller.model.site import Grid, Site, SiteInfo
from controller.planner.instance import DEFAULT_DC_MAX_KW
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


def test_the_kept_forecast_equals_the_whole_one_and_is_built_again_for_a_new_day_or_read() -> None:
    """:class:`ArrivalForecast` keeps the per-day part between plans: each plan's answer is the
    one-shot forecast's, through the evening, past midnight (a new day: built again — Wednesday's
    forecast is not Tuesday's) and for a new history read (a new tuple)."""
    history = tuple(
        [bus(f"b{i}", ago, 19 + i % 5, 50.0 + i) for i in range(12) for ago in (1, 7, 8)]
        + [PastSession("DC2", None, day_at(ago, 23, 30), day_at(ago, 23, 30) + timedelta(hours=3), 40.0)
           for ago in (1, 7)]
        + [bus("b3", 0, 8, 60.0)]  # came and went this morning: not expected again today
    )
    site = dc_site()
    kept = ArrivalForecast()
    built: list[str] = []
    real = arrivals.candidates

    def plan(history: tuple[PastSession, ...], now: datetime, here: list[tuple[str | None, str]]) -> Any:
        def counting(*a: Any, **kw: Any) -> arrivals.Candidates:
            built.append(a[1].isoformat())
            return real(*a, **kw)

        arrivals.candidates = counting  # type: ignore[assignment]
        try:
            return kept.expected(history, now, TZ, 24.0, here, site)
        finally:
            arrivals.candidates = real  # type: ignore[assignment]

    for minutes in range(0, 8 * 60, 20):  # Tuesday 19:00 to Wednesday 03:00
        now = NOW + timedelta(minutes=minutes)
        here: list[tuple[str | None, str]] = [("b1", "DC1")] if minutes < 60 else []
        got = plan(history, now, here)
        assert got == expected_arrivals(history, now, TZ, 24.0, here, partial(charger_max_kw, site))
        assert got, now
    assert built == ["2026-03-03", "2026-03-04"]  # kept, then built again for the new day
    assert plan(history, NOW + timedelta(hours=8), [])
    assert len(built) == 2  # the same read and day: kept
    plan(tuple(list(history)), NOW + timedelta(hours=8), [])
    assert len(built) == 3  # a new read: built again
    # b3 came and went this morning (in the history itself): not expected again — b3 and b8 share
    # 22:00 (i % 5 == 3), so only b8's energy is in that group
    at_22 = [e for e in expected_arrivals(history, NOW, TZ, 24.0, (), partial(charger_max_kw, site))
             if e.arrive_at == day_at(0, 22)]
    assert [round(e.energy_kwh, 6) for e in at_22] == [58.0]
    without = expected_arrivals(history[:-1], NOW, TZ, 24.0, (), partial(charger_max_kw, site))
    assert [round(e.energy_kwh, 6) for e in without if e.arrive_at == day_at(0, 22)] == [58.0 + 53.0]


def test_a_dc_charger_without_max_kw_is_expected_at_the_planners_default() -> None:
    site = dc_site(max_kw=None)
    assert charger_max_kw(site, "DC1") == pytest.approx(DEFAULT_DC_MAX_KW / 0.95)
    assert charger_max_kw(site, "nowhere") is None
    out = expected_arrivals([bus("b1", 1, 21, 100.0)], NOW, TZ, 24.0, (), partial(charger_max_kw, site))
    assert [(e.energy_kwh, e.max_kw) for e in out] == [(100.0, pytest.approx(DEFAULT_DC_MAX_KW / 0.95))]


def dc_site(max_kw: float | None = 150.0) -> Site:
    return Site(
        site=SiteInfo(name="t", timezone="Europe/Amsterdam"),
        grid=Grid(limit_a=400.0),
        circuits=(Circuit(id="yard", limit_a=400.0),),
        chargers=tuple(Charger(id=c, circuit="yard", kind="dc", phases=3, phase_rotation="L1-L2-L3", max_kw=max_kw,
                               efficiency=0.95) for c in ("DC1", "DC2")),
    )
