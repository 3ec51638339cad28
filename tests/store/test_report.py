"""The daily report, on real history databases written through :class:`Store`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.store import ChargerRecord, MeterSample, Record, SessionStart, SessionStop, Store
from controller.store.records import ChargerStatus
from controller.store.report import CSV_COLUMNS, UNKNOWN_VEHICLE, ChargerDay, DailyReport, daily_report, day_bounds
from controller.store.schema import SCHEMA_VERSION, _v1, open_database

AMS = ZoneInfo("Europe/Amsterdam")


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=AMS, fold=fold)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def build(path: Path, records: Iterable[Record]) -> Path:
    store = Store(path, batch_interval_s=0.01, meter_interval_s=0)
    for r in records:
        assert store.put(r)
    assert store.close()
    assert store.counters().lost == 0
    return path


def session(
    sid: str,
    charger: str,
    vehicle: str | None,
    start: datetime | None,
    stop: datetime | None,
    kwh: float = 0.0,
    *,
    need: float | None = None,
    met: bool | None = None,
) -> list[Record]:
    out: list[Record] = []
    if start is not None:
        out.append(SessionStart(sid, charger, 1, vehicle, start, energy_need_kwh=need))
    if stop is not None:
        out.append(SessionStop(sid, charger, 1, vehicle, stop, energy_kwh=kwh, met_departure=met))
    return out


def status(charger: str, at: datetime, connected: bool = True, faulted: bool = False) -> ChargerStatus:
    return ChargerStatus(charger, at, connected, faulted)


def charger(cid: str) -> ChargerRecord:
    return ChargerRecord(cid, "feeder-a", "ac", 3, 1, 32.0, None, utc(2026, 1, 1))


def grid(at: datetime, l1: float, l2: float, l3: float, meter: str = "grid") -> MeterSample:
    return MeterSample(meter, at, (l1, l2, l3), None)


def by_id(report: DailyReport) -> tuple[dict[str, dict[str, object]], dict[str, ChargerDay]]:
    return {v.vehicle_id: v.to_dict() for v in report.vehicles}, {c.charger_id: c for c in report.chargers}


# --- an ordinary summer day (CEST, +02:00), 2026-06-10 -------------------------------------------

JUNE = date(2026, 6, 10)


@pytest.fixture(scope="module")
def june_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reports") / "june.db"
    return build(
        path,
        [
            charger("cp1"),
            charger("cp2"),
            charger("cp3"),  # configured, never reported a status
            # bus-1: overnight into the day (8 h, 6 of them on the 10th), and into the next night (4 of 8 h)
            *session("cp1:1", "cp1", "bus-1", local(2026, 6, 9, 22), local(2026, 6, 10, 6), 80.0, need=80.0, met=True),
            *session(
                "cp1:2", "cp1", "bus-1", local(2026, 6, 10, 20), local(2026, 6, 11, 4), 40.0, need=50.0, met=False
            ),
            # van-2: a session with no energy at all, one below the success threshold, one still open
            *session("cp2:1", "cp2", "van-2", local(2026, 6, 10, 10), local(2026, 6, 10, 10, 30), 0.0),
            *session("cp2:2", "cp2", "van-2", local(2026, 6, 10, 11), local(2026, 6, 10, 11, 20), 0.04),
            *session("cp2:4", "cp2", "van-2", local(2026, 6, 10, 21), None),
            # no vehicle known
            *session("cp2:3", "cp2", None, local(2026, 6, 10, 12), local(2026, 6, 10, 13), 5.0),
            # cp1: disconnected 08:00–14:00 (6 h)
            status("cp1", local(2026, 6, 9, 12)),
            status("cp1", local(2026, 6, 10, 8), connected=False),
            status("cp1", local(2026, 6, 10, 14)),
            status("cp1", local(2026, 6, 11, 1), connected=False),  # the next day: no effect
            # cp2: faulted 10:00–12:00, disconnected 22:00–23:00
            status("cp2", local(2026, 6, 9, 12)),
            status("cp2", local(2026, 6, 10, 10), faulted=True),
            status("cp2", local(2026, 6, 10, 12)),
            status("cp2", local(2026, 6, 10, 22), connected=False, faulted=True),
            status("cp2", local(2026, 6, 10, 23)),
            # grid meter, with higher readings just outside the day and on another meter
            grid(local(2026, 6, 9, 23, 59, 50), 500.0, 500.0, 500.0),
            grid(local(2026, 6, 10, 0), 100.0, 90.0, 80.0),
            grid(local(2026, 6, 10, 7, 15), 180.0, 120.0, 95.0),
            grid(local(2026, 6, 10, 18, 30), 150.0, 175.5, 95.0),
            grid(local(2026, 6, 11, 0), 600.0, 600.0, 600.0),
            grid(local(2026, 6, 10, 12), 900.0, 900.0, 900.0, meter="pv"),
        ],
    )


def test_vehicles_on_an_ordinary_day(june_db: Path) -> None:
    report = daily_report(june_db, JUNE, AMS, grid_meter="grid")
    assert [v.vehicle_id for v in report.vehicles] == ["bus-1", "van-2", UNKNOWN_VEHICLE]
    vehicles, _ = by_id(report)
    assert vehicles["bus-1"] == {
        "vehicle_id": "bus-1",
        "sessions": 2,
        "sessions_open": 0,
        "energy_delivered_kwh": 80.0,  # 6/8 of 80 + 4/8 of 40
        "energy_requested_kwh": 80.0,  # only the session that stopped on the 10th
        "energy_delivered_for_departures_kwh": 80.0,
        "departures_met": 1,
        "departures_missed": 0,
    }
    assert vehicles["van-2"] == {
        "vehicle_id": "van-2",
        "sessions": 3,
        "sessions_open": 1,
        "energy_delivered_kwh": 0.04,
        "energy_requested_kwh": 0.0,
        "energy_delivered_for_departures_kwh": 0.0,
        "departures_met": 0,
        "departures_missed": 0,
    }
    assert vehicles[UNKNOWN_VEHICLE]["sessions"] == 1
    assert vehicles[UNKNOWN_VEHICLE]["energy_delivered_kwh"] == 5.0


def test_a_session_across_midnight_is_split_by_time_and_counted_once(june_db: Path) -> None:
    days = [daily_report(june_db, date(2026, 6, d), AMS) for d in (9, 10, 11)]
    bus = [next(v for v in r.vehicles if v.vehicle_id == "bus-1") for r in days]
    assert [v.energy_delivered_kwh for v in bus] == pytest.approx([20.0, 80.0, 20.0])
    assert sum(v.energy_delivered_kwh for v in bus) == pytest.approx(80.0 + 40.0)
    # the missed departure and its request belong to the day the session stopped
    assert (bus[2].energy_requested_kwh, bus[2].departures_met, bus[2].departures_missed) == (50.0, 0, 1)
    assert (bus[0].energy_requested_kwh, bus[0].departures_met, bus[0].departures_missed) == (0.0, 0, 0)


def test_site_peak_per_phase_from_the_grid_meter_within_the_day(june_db: Path) -> None:
    report = daily_report(june_db, JUNE, AMS, grid_meter="grid")
    assert [p.to_dict() for p in report.site_peak] == [
        {"phase": "L1", "meter_id": "grid", "peak_a": 180.0, "at": "2026-06-10T07:15:00+02:00"},
        {"phase": "L2", "meter_id": "grid", "peak_a": 175.5, "at": "2026-06-10T18:30:00+02:00"},
        {"phase": "L3", "meter_id": "grid", "peak_a": 95.0, "at": "2026-06-10T07:15:00+02:00"},  # first of a tie
    ]
    assert daily_report(june_db, JUNE, AMS).site_peak == ()


def test_charger_availability_and_success_rate(june_db: Path) -> None:
    _, chargers = by_id(daily_report(june_db, JUNE, AMS))
    assert list(chargers) == ["cp1", "cp2", "cp3"]
    cp1, cp2, cp3 = chargers["cp1"], chargers["cp2"], chargers["cp3"]
    assert cp1.availability == 0.75  # disconnected 6 h of 24
    assert (cp1.available_s, cp1.disconnected_s, cp1.faulted_s, cp1.unknown_s) == (18 * 3600, 6 * 3600, 0, 0)
    assert (cp1.sessions_plugged, cp1.sessions_successful, cp1.success_rate) == (1, 1, 1.0)
    assert cp2.availability == 21 / 24  # faulted 2 h, disconnected 1 h
    assert (cp2.faulted_s, cp2.disconnected_s) == (2 * 3600, 3600)
    # 0 kWh and 0.04 kWh do not count as delivered; the open session is not judged yet
    assert (cp2.sessions_plugged, cp2.sessions_successful) == (3, 1)
    assert cp2.success_rate == pytest.approx(1 / 3)
    assert cp3.availability is None and cp3.success_rate is None
    assert cp3.to_dict()["availability"] is None


def test_vehicles_filter_limits_rows_and_charger_session_counts(june_db: Path) -> None:
    report = daily_report(june_db, JUNE, AMS, vehicles=frozenset({"bus-1", "not-here"}))
    assert [v.vehicle_id for v in report.vehicles] == ["bus-1"]
    _, chargers = by_id(report)
    assert (chargers["cp1"].sessions_plugged, chargers["cp2"].sessions_plugged) == (1, 0)
    assert chargers["cp2"].success_rate is None
    assert chargers["cp2"].availability == 21 / 24  # site-wide: not filtered
    only_unknown = daily_report(june_db, JUNE, AMS, vehicles=frozenset({UNKNOWN_VEHICLE}))
    assert [v.vehicle_id for v in only_unknown.vehicles] == [UNKNOWN_VEHICLE]
    assert by_id(only_unknown)[1]["cp2"].success_rate == 1.0
    assert daily_report(june_db, JUNE, AMS, vehicles=frozenset()).vehicles == ()


def test_a_day_not_over_yet_covers_only_the_elapsed_part(june_db: Path) -> None:
    report = daily_report(june_db, JUNE, AMS, now=local(2026, 6, 10, 12))
    assert report.covered_until == local(2026, 6, 10, 12)
    cp1 = by_id(report)[1]["cp1"]
    assert (cp1.available_s, cp1.disconnected_s) == (8 * 3600, 4 * 3600)
    assert cp1.availability == pytest.approx(8 / 12)
    future = daily_report(june_db, date(2026, 6, 12), AMS, now=local(2026, 6, 10, 12))
    assert all(c.availability is None for c in future.chargers)


def test_a_day_before_any_data(june_db: Path) -> None:
    report = daily_report(june_db, date(2026, 6, 1), AMS, grid_meter="grid")
    assert report.vehicles == ()
    assert [(p.peak_a, p.at) for p in report.site_peak] == [(None, None)] * 3
    assert [(c.charger_id, c.availability) for c in report.chargers] == [("cp1", None), ("cp2", None), ("cp3", None)]


def test_csv_parses_back(june_db: Path) -> None:
    text = daily_report(june_db, JUNE, AMS, grid_meter="grid").to_csv()
    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    assert [r["section"] for r in rows] == ["vehicle"] * 3 + ["site_peak"] * 3 + ["charger"] * 3
    assert {r["date"] for r in rows} == {"2026-06-10"}
    bus = rows[0]
    assert (bus["vehicle_id"], bus["sessions"], bus["energy_delivered_kwh"], bus["energy_requested_kwh"]) == (
        "bus-1",
        "2",
        "80.000",
        "80.000",
    )
    assert (bus["departures_met"], bus["departures_missed"], bus["charger_id"], bus["peak_a"]) == ("1", "0", "", "")
    assert rows[1]["energy_delivered_kwh"] == "0.040"
    assert rows[2]["vehicle_id"] == "(unknown)"
    l2 = rows[4]
    assert (l2["phase"], l2["meter_id"], l2["peak_a"], l2["peak_at"]) == (
        "L2",
        "grid",
        "175.50",
        "2026-06-10T18:30:00+02:00",
    )
    cp1, cp2, cp3 = rows[6:]
    assert (cp1["charger_id"], cp1["availability"], cp1["available_h"], cp1["disconnected_h"]) == (
        "cp1",
        "0.7500",
        "18.000",
        "6.000",
    )
    assert (cp2["availability"], cp2["faulted_h"], cp2["sessions_plugged"], cp2["success_rate"]) == (
        "0.8750",
        "2.000",
        "3",
        "0.3333",
    )
    assert (cp3["availability"], cp3["success_rate"], cp3["vehicle_id"]) == ("unknown", "", "")


def test_to_dict_is_json(june_db: Path) -> None:
    d = daily_report(june_db, JUNE, AMS, grid_meter="grid").to_dict()
    assert json.loads(json.dumps(d)) == d
    assert (d["date"], d["timezone"], d["hours"], d["grid_meter"]) == ("2026-06-10", "Europe/Amsterdam", 24.0, "grid")
    assert (d["start"], d["end"], d["covered_until"]) == (
        "2026-06-10T00:00:00+02:00",
        "2026-06-11T00:00:00+02:00",
        "2026-06-11T00:00:00+02:00",
    )
    assert d["chargers"][1] == {
        "charger_id": "cp2",
        "availability": 0.875,
        "available_h": 21.0,
        "faulted_h": 2.0,
        "disconnected_h": 1.0,
        "unknown_h": 0.0,
        "sessions_plugged": 3,
        "sessions_successful": 1,
        "success_rate": 0.3333,
    }


# --- DST days ------------------------------------------------------------------------------------


def test_spring_forward_day_has_23_hours(tmp_path: Path) -> None:
    # 2026-03-29: 02:00 CET → 03:00 CEST; the local day is 2026-03-28 23:00Z – 2026-03-29 22:00Z
    db = build(
        tmp_path / "spring.db",
        [
            # 23:00 CET → 05:00 CEST: 5 h, of which 4 h on the 29th (not 6 h and 5 h by the wall clock)
            *session("cp1:1", "cp1", "bus-1", local(2026, 3, 28, 23), local(2026, 3, 29, 5), 50.0, need=45.0, met=True),
            status("cp1", local(2026, 3, 28, 12)),
            status("cp1", local(2026, 3, 29, 1), connected=False),  # 01:00 CET
            status("cp1", local(2026, 3, 29, 7, 45)),  # 07:45 CEST: 5.75 h later
            grid(utc(2026, 3, 28, 22, 59), 300.0, 300.0, 300.0),  # 23:59 CET on the 28th
            grid(utc(2026, 3, 28, 23, 0), 120.0, 110.0, 100.0),  # 00:00 CET
            grid(utc(2026, 3, 29, 21, 59), 130.0, 100.0, 100.0),  # 23:59 CEST
        ],
    )
    report = daily_report(db, date(2026, 3, 29), AMS, grid_meter="grid")
    assert report.hours == 23.0
    assert (report.start, report.end) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert report.to_dict()["end"] == "2026-03-30T00:00:00+02:00"
    (bus,) = report.vehicles
    assert bus.energy_delivered_kwh == pytest.approx(40.0)
    assert (bus.energy_requested_kwh, bus.departures_met) == (45.0, 1)
    (cp1,) = report.chargers
    assert cp1.disconnected_s == 5.75 * 3600
    assert cp1.availability == 0.75  # 17.25 h of 23
    assert [(p.peak_a, p.to_dict()["at"]) for p in report.site_peak] == [
        (130.0, "2026-03-29T23:59:00+02:00"),
        (110.0, "2026-03-29T00:00:00+01:00"),
        (100.0, "2026-03-29T00:00:00+01:00"),
    ]
    before = daily_report(db, date(2026, 3, 28), AMS)
    assert before.vehicles[0].energy_delivered_kwh == pytest.approx(10.0)


def test_fall_back_day_has_25_hours(tmp_path: Path) -> None:
    # 2026-10-25: 03:00 CEST → 02:00 CET; the local day is 2026-10-24 22:00Z – 2026-10-25 23:00Z
    db = build(
        tmp_path / "autumn.db",
        [
            # 22:00 CEST → 04:00 CET: 7 h, of which 5 h on the 25th
            *session("cp1:1", "cp1", "bus-1", local(2026, 10, 24, 22), local(2026, 10, 25, 4), 70.0),
            status("cp1", local(2026, 10, 24, 12)),
            status("cp1", local(2026, 10, 25, 2, 30, fold=0), connected=False),  # the first 02:30 (CEST)
            status("cp1", local(2026, 10, 25, 7, 45)),  # 07:45 CET: 6.25 h later
            grid(local(2026, 10, 25, 2, 30, fold=0), 100.0, 100.0, 100.0),
            grid(local(2026, 10, 25, 2, 30, fold=1), 140.0, 90.0, 100.0),  # the second 02:30 (CET)
        ],
    )
    report = daily_report(db, date(2026, 10, 25), AMS, grid_meter="grid")
    assert report.hours == 25.0
    (bus,) = report.vehicles
    assert bus.energy_delivered_kwh == pytest.approx(50.0)
    (cp1,) = report.chargers
    assert (cp1.available_s, cp1.disconnected_s) == (18.75 * 3600, 6.25 * 3600)
    assert cp1.availability == 0.75
    assert [p.to_dict()["at"] for p in report.site_peak] == [
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:00+02:00",
    ]
    rows = list(csv.DictReader(io.StringIO(report.to_csv(), newline="")))
    assert [r["availability"] for r in rows if r["section"] == "charger"] == ["0.7500"]


def test_day_bounds_where_midnight_does_not_exist() -> None:
    # Santiago: 2026-09-06 00:00 → 01:00 (DST starts at midnight); the day starts at 01:00 local
    santiago = ZoneInfo("America/Santiago")
    start, end = day_bounds(date(2026, 9, 6), santiago)
    assert start.isoformat() == "2026-09-06T01:00:00-03:00"
    assert (end - start).total_seconds() == 23 * 3600


# --- edges ---------------------------------------------------------------------------------------


def test_status_before_the_first_row_is_unknown_and_counts_as_unavailable(tmp_path: Path) -> None:
    db = build(tmp_path / "first.db", [status("cp9", local(2026, 6, 10, 18))])
    (cp9,) = daily_report(db, JUNE, AMS).chargers
    assert (cp9.unknown_s, cp9.available_s, cp9.availability) == (18 * 3600, 6 * 3600, 0.25)


def test_empty_database(tmp_path: Path) -> None:
    db = build(tmp_path / "empty.db", [])
    report = daily_report(db, JUNE, AMS, grid_meter="grid")
    assert (report.vehicles, report.chargers) == ((), ())
    rows = list(csv.DictReader(io.StringIO(report.to_csv(), newline="")))
    assert [(r["section"], r["phase"], r["peak_a"], r["peak_at"]) for r in rows] == [
        ("site_peak", "L1", "unknown", "unknown"),
        ("site_peak", "L2", "unknown", "unknown"),
        ("site_peak", "L3", "unknown", "unknown"),
    ]
    no_meter = daily_report(db, JUNE, AMS).to_csv()
    assert no_meter.splitlines() == [",".join(CSV_COLUMNS)]


def test_missing_database_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        daily_report(tmp_path / "nope.db", JUNE, AMS)
    assert not (tmp_path / "nope.db").exists()


def test_reads_while_the_writer_is_open(tmp_path: Path) -> None:
    store = Store(tmp_path / "live.db", batch_interval_s=0.01)
    try:
        for r in session("cp1:1", "cp1", "bus-1", local(2026, 6, 10, 1), local(2026, 6, 10, 2), 7.5):
            store.put(r)
        assert store.flush()
        (bus,) = daily_report(tmp_path / "live.db", JUNE, AMS).vehicles
        assert bus.energy_delivered_kwh == 7.5
        store.put(status("cp1", local(2026, 6, 10, 12)))  # the writer still writes after the read
        assert store.flush()
    finally:
        assert store.close()
    assert daily_report(tmp_path / "live.db", JUNE, AMS).chargers[0].availability == 0.5


def test_a_version_1_database_reports_unknown_availability_then_migrates(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    _v1(conn)
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute("INSERT INTO chargers VALUES ('cp1', 'feeder-a', 'ac', 3, 1, 32.0, NULL, 0)")
    conn.commit()
    conn.close()
    (cp1,) = daily_report(path, JUNE, AMS).chargers  # read-only: no migration, no charger_status table
    assert cp1.availability is None
    open_database(path).close()  # the daemon's next start migrates; old rows stay
    build(path, [status("cp1", local(2026, 6, 9))])
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] == SCHEMA_VERSION >= 4
        assert conn.execute("SELECT charger_id, connected, faulted FROM charger_status").fetchall() == [("cp1", 1, 0)]
    finally:
        conn.close()
    assert daily_report(path, JUNE, AMS).chargers[0].availability == 1.0
