"""The fleet book: validation tables, one-off replacement, schedules all-or-nothing, persistence."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fleet import next_departure
from controller.fleet.book import (
    FleetBook,
    FleetError,
    Problem,
    ScheduleEntry,
    format_days,
    parse_days,
    parse_hhmm,
    vehicles_visible,
)
from controller.model import WEEKDAYS, Charger, Grid, Schedule, Site, SiteInfo, Vehicle
from controller.model.site import Weekday
from controller.store.records import Departure
from controller.store.restore import restore
from controller.store.sink import SqliteSink

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=AMS)  # a Monday, CET (UTC+1)
MON_FRI: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


def ams(d: int, h: int, mi: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, d, h, mi, tzinfo=AMS)


def make_site(*schedules: Schedule) -> Site:
    return Site(
        site=SiteInfo("test depot", "Europe/Amsterdam"),
        grid=Grid(limit_a=400.0),
        chargers=(Charger("c1", "grid", "ac", 3, "L1-L2-L3"), Charger("c2", "grid", "ac", 3, "L1-L2-L3")),
        vehicles=(
            Vehicle("bus-1", battery_kwh=300.0, tenant="acme"),
            Vehicle("bus-2", battery_kwh=200.0, tenant="beta"),
            Vehicle("van-1", tenant="acme"),  # no battery size
        ),
        schedules=schedules,
    )


SITE = make_site(Schedule("bus-1", time(6, 30), MON_FRI, energy_kwh=100.0))


def problems(exc: pytest.ExceptionInfo[FleetError]) -> list[tuple[str, str]]:
    return [(p.field, p.reason) for p in exc.value.problems]


# --- one-offs: validation ------------------------------------------------------------------------

TARGET_NO_BATTERY = (
    "vehicle van-1 has no battery_kwh in the site file, so a target state of charge cannot be turned into "
    "energy; give energy_kwh instead, or add battery_kwh to the vehicle"
)
NEITHER = "give the energy needed (energy_kwh) or a target state of charge (target_soc_pct)"

SET_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str]]]] = [
    (
        "unknown vehicle",
        {"vehicle_id": "bus-9"},
        [("vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)")],
    ),
    (
        "in the past",
        {"at": ams(2, 11)},
        [("at", "2026-03-02 11:00 CET is in the past (it is now 2026-03-02 12:00 CET)")],
    ),
    ("exactly now", {"at": NOW}, [("at", "2026-03-02 12:00 CET is in the past (it is now 2026-03-02 12:00 CET)")]),
    (
        "more than 7 days ahead",
        {"at": ams(9, 12, 1)},
        [("at", "2026-03-09 12:01 CET is more than 7 days ahead (one-offs reach 7 days at most)")],
    ),
    (
        "both energy and target",
        {"target_soc_pct": 80.0},
        [("energy_kwh", "give energy_kwh or target_soc_pct, not both")],
    ),
    ("neither energy nor target", {"energy_kwh": None}, [("energy_kwh", NEITHER)]),
    ("zero energy", {"energy_kwh": 0.0}, [("energy_kwh", "must be above 0 kWh, got 0")]),
    ("negative energy", {"energy_kwh": -5.5}, [("energy_kwh", "must be above 0 kWh, got -5.5")]),
    ("energy not finite", {"energy_kwh": math.nan}, [("energy_kwh", "must be a finite number of kWh, got nan")]),
    (
        "energy above the battery",
        {"energy_kwh": 300.5},
        [("energy_kwh", "300.5 kWh is above the battery capacity of bus-1 (300 kWh)")],
    ),
    (
        "target zero",
        {"energy_kwh": None, "target_soc_pct": 0.0},
        [("target_soc_pct", "must be above 0 and at most 100 %, got 0")],
    ),
    (
        "target above 100",
        {"energy_kwh": None, "target_soc_pct": 100.5},
        [("target_soc_pct", "must be above 0 and at most 100 %, got 100.5")],
    ),
    (
        "target without a battery size",
        {"vehicle_id": "van-1", "energy_kwh": None, "target_soc_pct": 80.0},
        [("target_soc_pct", TARGET_NO_BATTERY)],
    ),
    ("priority 0", {"priority": 0}, [("priority", "must be 1 (served first) … 9 (last), got 0")]),
    ("priority 10", {"priority": 10}, [("priority", "must be 1 (served first) … 9 (last), got 10")]),
    (
        "every problem at once, in field order",
        {"vehicle_id": "bus-9", "at": ams(1, 8), "target_soc_pct": 120.0, "priority": 0},
        [
            ("vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)"),
            ("at", "2026-03-01 08:00 CET is in the past (it is now 2026-03-02 12:00 CET)"),
            ("energy_kwh", "give energy_kwh or target_soc_pct, not both"),
            ("target_soc_pct", "must be above 0 and at most 100 %, got 120"),
            ("priority", "must be 1 (served first) … 9 (last), got 0"),
        ],
    ),
]


def set_args(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "site": SITE,
        "vehicle_id": "bus-1",
        "at": ams(3, 5, 30),
        "energy_kwh": 50.0,
        "target_soc_pct": None,
        "priority": None,
        "now": NOW,
    }
    args.update(over)
    return args


@pytest.mark.parametrize(("case", "over", "expected"), SET_CASES, ids=[c[0] for c in SET_CASES])
def test_set_departure_refuses(case: str, over: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    book = FleetBook()
    with pytest.raises(FleetError) as exc:
        book.set_departure(**set_args(**over))
    assert problems(exc) == expected
    assert book.one_offs(NOW) == [] and book.records(NOW) == []


@pytest.mark.parametrize(
    "over",
    [
        {"at": ams(9, 12)},  # exactly 7 days ahead
        {"energy_kwh": 300.0},  # exactly the battery
        {"energy_kwh": None, "target_soc_pct": 100.0},
        {"vehicle_id": "van-1", "energy_kwh": 500.0},  # no battery size: no upper bound
        {"priority": 1},
        {"priority": 9},
    ],
)
def test_set_departure_accepts_the_edges(over: dict[str, Any]) -> None:
    book = FleetBook()
    one_off = book.set_departure(**set_args(**over))
    assert book.one_offs(NOW) == [one_off]


def test_problem_and_error_text() -> None:
    err = FleetError([Problem("at", "in the past"), Problem("energy_kwh", "must be above 0 kWh, got 0")])
    assert str(err) == "at: in the past; energy_kwh: must be above 0 kWh, got 0"


def test_naive_at_is_site_local_and_a_dst_gap_moves_forward() -> None:
    book = FleetBook()
    o = book.set_departure(**set_args(at=datetime(2026, 3, 3, 5, 30)))
    assert o.at == datetime(2026, 3, 3, 4, 30, tzinfo=UTC)
    # 02:30 does not exist on 29 March 2026 in Amsterdam: it becomes 03:30 CEST (01:30 UTC)
    o = book.set_departure(**set_args(at=datetime(2026, 3, 29, 2, 30), now=ams(27, 12)))
    assert o.at == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        FleetBook().set_departure(**set_args(now=datetime(2026, 3, 2, 12)))


# --- one-offs: replacement, clearing, interplay with next_departure --------------------------------


def test_a_one_off_replaces_the_same_site_local_day_only() -> None:
    book = FleetBook()
    book.set_departure(**set_args(at=ams(3, 0, 30)))  # 2 March 23:30 UTC, but 3 March on the depot's clock
    book.set_departure(**set_args(at=ams(3, 23, 30), energy_kwh=70.0))
    assert [(o.at, o.energy_kwh) for o in book.one_offs(NOW)] == [(ams(3, 23, 30).astimezone(UTC), 70.0)]
    book.set_departure(**set_args(at=ams(4, 6)))
    book.set_departure(**set_args(vehicle_id="bus-2", at=ams(3, 7)))
    assert [(o.vehicle_id, o.at.astimezone(AMS)) for o in book.one_offs(NOW)] == [
        ("bus-2", ams(3, 7)),
        ("bus-1", ams(3, 23, 30)),
        ("bus-1", ams(4, 6)),
    ]
    assert [r.departure_id for r in book.records(NOW)] == [
        "oneoff:bus-1:2026-03-03",
        "oneoff:bus-1:2026-03-04",
        "oneoff:bus-2:2026-03-03",
    ]


def test_a_run_time_one_off_beats_that_days_recurring_rule() -> None:
    book = FleetBook()
    book.set_departure(**set_args(at=ams(3, 9), energy_kwh=40.0, priority=2))
    need = next_departure(SITE, "bus-1", NOW, book.one_offs(NOW))
    assert need is not None
    assert (need.at, need.energy_kwh, need.priority, need.source) == (ams(3, 9), 40.0, 2, "one-off")
    # Tuesday's 06:30 is replaced, not merely later: after the one-off comes Wednesday's rule
    after = next_departure(SITE, "bus-1", ams(3, 9), book.one_offs(ams(3, 9)))
    assert after is not None and after.at == ams(4, 6, 30) and after.source == "schedule"


def test_clear_departure_brings_the_recurring_rule_back_and_records_the_removal() -> None:
    book = FleetBook()
    book.set_departure(**set_args(at=ams(3, 9)))
    book.set_departure(**set_args(vehicle_id="bus-2", at=ams(3, 9)))
    assert book.clear_departure("bus-1", ams(2, 13))
    assert not book.clear_departure("bus-1", ams(2, 13))
    need = next_departure(SITE, "bus-1", NOW, book.one_offs(NOW))
    assert need is not None and need.at == ams(3, 6, 30)
    [bus1, bus2] = book.records(ams(2, 13))
    assert bus1 == Departure(
        "oneoff:bus-1:2026-03-03", "bus-1", ams(2, 13), ams(3, 9), None, 50.0, None, cancelled=True
    )
    assert bus2.vehicle_id == "bus-2" and not bus2.cancelled


def test_past_one_offs_drop_out() -> None:
    book = FleetBook()
    book.set_departure(**set_args(at=ams(2, 13)))
    assert len(book.one_offs(NOW)) == 1
    assert book.one_offs(ams(2, 13)) == []  # departing at 13:00 is not upcoming at 13:00
    assert book.records(ams(2, 14)) == []
    assert not book.clear_departure("bus-1", ams(2, 14))


# --- recurring schedules ---------------------------------------------------------------------------


def entry(
    entry_id: str = "e1",
    vehicle_id: str = "bus-2",
    days: tuple[Weekday, ...] = WEEKDAYS,
    at: time = time(7, 0),
    energy_kwh: float | None = 60.0,
    target_soc_pct: float | None = None,
    priority: int | None = None,
) -> ScheduleEntry:
    return ScheduleEntry(entry_id, vehicle_id, days, at, energy_kwh, target_soc_pct, priority)


ENTRY_CASES: list[tuple[str, ScheduleEntry, list[tuple[str, str]]]] = [
    (
        "empty id",
        entry(entry_id=""),
        [("schedules[0].id", "must be printable text of 1 to 200 characters without surrounding spaces")],
    ),
    ("no days", entry(days=()), [("schedules[0].days", "no days given (e.g. mon-fri, mon,wed,fri, daily)")]),
    (
        "repeated day",
        entry(days=("mon", "mon")),
        [("schedules[0].days", "must be distinct weekdays out of mon, tue, wed, thu, fri, sat, sun")],
    ),
    (
        "aware time",
        entry(at=time(7, 0, tzinfo=UTC)),
        [("schedules[0].at", "must be a site-local wall time HH:MM (no time zone, no fractions of a second)")],
    ),
    (
        "unknown vehicle",
        entry(vehicle_id="bus-9"),
        [("schedules[0].vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)")],
    ),
    ("no need", entry(energy_kwh=None), [("schedules[0].energy_kwh", NEITHER)]),
    (
        "above the battery",
        entry(energy_kwh=250.0),
        [("schedules[0].energy_kwh", "250 kWh is above the battery capacity of bus-2 (200 kWh)")],
    ),
    (
        "target without battery",
        entry(vehicle_id="van-1", energy_kwh=None, target_soc_pct=90.0),
        [("schedules[0].target_soc_pct", TARGET_NO_BATTERY)],
    ),
    ("priority", entry(priority=12), [("schedules[0].priority", "must be 1 (served first) … 9 (last), got 12")]),
]


@pytest.mark.parametrize(("case", "bad", "expected"), ENTRY_CASES, ids=[c[0] for c in ENTRY_CASES])
def test_put_schedules_refuses_a_bad_entry(case: str, bad: ScheduleEntry, expected: list[tuple[str, str]]) -> None:
    with pytest.raises(FleetError) as exc:
        FleetBook().put_schedules(SITE, [bad], now=NOW)
    assert problems(exc) == expected


def test_put_schedules_is_all_or_nothing() -> None:
    book = FleetBook()
    before = [entry("a"), entry("b", "bus-1", MON_FRI, time(5, 0), energy_kwh=None, target_soc_pct=90.0)]
    book.put_schedules(SITE, before, now=NOW)
    records = book.records(NOW)
    with pytest.raises(FleetError) as exc:
        book.put_schedules(SITE, [entry("c"), entry("d", energy_kwh=-1.0), entry("c")], now=ams(2, 13))
    assert problems(exc) == [
        ("schedules[1].energy_kwh", "must be above 0 kWh, got -1"),
        ("schedules[2].id", "'c' is already used by schedules[0]"),
    ]
    assert book.schedules() == sorted(before, key=lambda e: (e.vehicle_id, e.id))
    assert book.records(ams(2, 13)) == records


def test_put_schedules_replaces_the_set_and_records_removals() -> None:
    book = FleetBook()
    book.put_schedules(SITE, [entry("a"), entry("b", priority=3)], now=NOW)
    book.put_schedules(SITE, [entry("b", priority=3), entry("c", energy_kwh=20.0)], now=ams(2, 13))
    assert [e.id for e in book.schedules()] == ["b", "c"]
    recs = {r.departure_id: r for r in book.records(ams(2, 13))}
    assert recs["schedule:a"].cancelled and recs["schedule:a"].set_at == ams(2, 13)
    assert recs["schedule:b"].set_at == NOW  # unchanged: keeps when it was set
    assert recs["schedule:b"].recurring == "mon,tue,wed,thu,fri,sat,sun 07:00|energy_kwh=60|priority=3"
    assert recs["schedule:c"] == Departure(
        "schedule:c", "bus-2", ams(2, 13), None, "mon,tue,wed,thu,fri,sat,sun 07:00|energy_kwh=20", 20.0, None
    )
    # a removed id that comes back is live again, not cancelled
    book.put_schedules(SITE, [entry("a")], now=ams(2, 14))
    recs = {r.departure_id: r for r in book.records(ams(2, 14))}
    assert not recs["schedule:a"].cancelled and recs["schedule:b"].cancelled and recs["schedule:c"].cancelled


def test_put_schedules_within_a_scope_keeps_the_others() -> None:
    book = FleetBook()
    book.put_schedules(SITE, [entry("x", "bus-1"), entry("y", "bus-2")], now=NOW)
    with pytest.raises(FleetError) as exc:
        book.put_schedules(SITE, [entry("z", "bus-2"), entry("y", "bus-1")], vehicles={"bus-1"}, now=NOW)
    assert problems(exc) == [
        ("schedules[0].vehicle", "vehicle 'bus-2' is outside your scope"),
        ("schedules[1].id", "'y' is already used by a schedule of bus-2"),
    ]
    book.put_schedules(SITE, [entry("w", "bus-1", energy_kwh=10.0)], vehicles={"bus-1", "van-1"}, now=NOW)
    assert [(e.id, e.vehicle_id) for e in book.schedules()] == [("w", "bus-1"), ("y", "bus-2")]
    assert book.delete_schedules(vehicles={"bus-2"}, now=NOW) == 1
    assert [e.id for e in book.schedules()] == ["w"]
    assert book.delete_schedules(now=NOW) == 1 and book.schedules() == []
    assert {r.departure_id for r in book.records(NOW) if r.cancelled} == {"schedule:w", "schedule:x", "schedule:y"}


def test_site_with_schedules_feeds_next_departure() -> None:
    book = FleetBook()
    assert book.site_with_schedules(SITE) is SITE
    book.put_schedules(SITE, [entry("daily-7", "bus-2", WEEKDAYS, time(7, 0), energy_kwh=80.0)], now=NOW)
    site = book.site_with_schedules(SITE)
    assert site.schedules[0] == SITE.schedules[0] and len(site.schedules) == 2
    assert book.site_with_schedules(SITE) is site  # cached until the schedules change
    need = next_departure(site, "bus-2", NOW, book.one_offs(NOW))
    assert need is not None and need.at == ams(3, 7) and need.energy_kwh == 80.0
    # a run-time one-off replaces the run-time recurring rule of its day
    book.set_departure(**set_args(vehicle_id="bus-2", at=ams(3, 10)))
    need = next_departure(book.site_with_schedules(SITE), "bus-2", NOW, book.one_offs(NOW))
    assert need is not None and need.at == ams(3, 10) and need.source == "one-off"
    need = next_departure(book.site_with_schedules(SITE), "bus-2", ams(3, 10), book.one_offs(ams(3, 10)))
    assert need is not None and need.at == ams(4, 7)
    book.delete_schedules(now=NOW)
    assert book.site_with_schedules(SITE) is SITE
    # entries of a vehicle the site file no longer has are left out
    book.put_schedules(SITE, [entry("v", "van-1")], now=NOW)
    without_van = replace(SITE, vehicles=SITE.vehicles[:2])
    assert book.site_with_schedules(without_van).schedules == SITE.schedules


# --- assignments ----------------------------------------------------------------------------------


def test_assign_validates_and_moves_the_vehicle() -> None:
    book = FleetBook()
    with pytest.raises(FleetError) as exc:
        book.assign(SITE, "c9", "bus-9")
    assert problems(exc) == [
        ("charger", "unknown charger 'c9' (the site has: c1, c2)"),
        ("vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)"),
    ]
    book.assign(SITE, "c1", "bus-1")
    assert book.assignment("c1") == "bus-1" and book.assignment("c2") is None
    book.assign(SITE, "c2", "bus-1")  # the bus moved
    assert book.assignment("c1") is None and book.assignment("c2") == "bus-1"
    assert book.unassign("c2") and not book.unassign("c2")


# --- persistence -----------------------------------------------------------------------------------


def busy_book() -> FleetBook:
    book = FleetBook()
    book.set_departure(**set_args(at=ams(3, 9), priority=2))
    book.set_departure(**set_args(at=ams(4, 9)))
    book.set_departure(**set_args(vehicle_id="bus-2", at=ams(5, 5, 45), energy_kwh=None, target_soc_pct=85.5))
    book.clear_departure("bus-2", ams(2, 12, 30))
    book.set_departure(**set_args(vehicle_id="bus-2", at=ams(6, 6), now=ams(2, 12, 40)))
    book.put_schedules(
        SITE,
        [
            entry("a", "bus-1", ("mon", "wed", "fri"), time(6, 15), energy_kwh=45.5, priority=2),
            entry("b", "bus-2", ("sat", "sun"), time(8, 0, 30), energy_kwh=None, target_soc_pct=90.0),
            entry("gone"),
        ],
        now=NOW,
    )
    book.put_schedules(SITE, [e for e in book.schedules() if e.id != "gone"], now=ams(2, 12, 50))
    return book


def test_records_round_trip_including_removals() -> None:
    book = busy_book()
    now = ams(2, 13)
    records = book.records(now)
    assert [(r.departure_id, r.cancelled) for r in records] == [
        ("oneoff:bus-1:2026-03-03", False),
        ("oneoff:bus-1:2026-03-04", False),
        ("oneoff:bus-2:2026-03-05", True),
        ("oneoff:bus-2:2026-03-06", False),
        ("schedule:a", False),
        ("schedule:b", False),
        ("schedule:gone", True),
    ]
    assert records[0].recurring == "once|priority=2" and records[1].recurring is None
    assert records[5].recurring == "sat,sun 08:00:30|target_soc_pct=90"
    again, warnings = FleetBook.from_records(SITE, records, now)
    assert warnings == []
    assert again.records(now) == records
    assert again.one_offs(now) == book.one_offs(now)
    assert again.schedules() == book.schedules()


def test_round_trip_through_the_store(tmp_path: Path) -> None:
    book = busy_book()
    now = ams(2, 13)
    sink = SqliteSink(tmp_path / "depot.db")
    sink.write(book.records(now))
    sink.close()
    restored = restore(tmp_path / "depot.db", now=now)
    again, warnings = FleetBook.from_records(SITE, restored.departures, now)
    assert warnings == []
    assert again.one_offs(now) == book.one_offs(now)
    assert again.schedules() == book.schedules()


def test_from_records_skips_and_warns() -> None:
    t = NOW.astimezone(UTC)
    records = [
        Departure("oneoff:bus-1:2026-03-01", "bus-1", t, ams(1, 9), None, 50.0),  # past: quietly dropped
        Departure("oneoff:gone:2026-03-03", "gone", t, ams(3, 9), None, 50.0),
        Departure("schedule:bad", "bus-1", t, None, "mon-fir 06:00|energy_kwh=5"),
        Departure("schedule:bad-key", "bus-1", t, None, "mon 06:00|kwh=5"),
        Departure("oneoff:bus-1:2026-03-04", "bus-1", t, ams(4, 9), "weekly", 50.0),
        Departure("nothing", "bus-1", t),
        Departure("schedule:big", "bus-2", t, None, "daily 06:00|energy_kwh=250", 250.0),  # kept, warned
        Departure("d-rec", "bus-2", t, None, "mon 06:00", target_soc_pct=80.0),  # not written by the book
        Departure("schedule:x", "bus-1", t, None, "mon 06:00|energy_kwh=5", 5.0),
        Departure("schedule:x", "bus-1", t, None, "mon 06:00|energy_kwh=5", 5.0, cancelled=True),  # later wins
    ]
    book, warnings = FleetBook.from_records(SITE, records, NOW)
    assert warnings == [
        "stored departure 'oneoff:gone:2026-03-03' of gone: skipped, the vehicle is no longer in the site file",
        "stored departure 'schedule:bad' of bus-1: skipped, cannot read it: "
        "'fir' is not a weekday (mon, tue, wed, thu, fri, sat, sun)",
        "stored departure 'schedule:bad-key' of bus-1: skipped, cannot read it: "
        "bad option 'kwh=5' (expected one each of energy_kwh, target_soc_pct, priority as key=value)",
        "stored departure 'oneoff:bus-1:2026-03-04' of bus-1: skipped, cannot read it: "
        "a one-off's rule must be 'once' with options, got 'weekly'",
        "stored departure 'nothing' of bus-1: skipped, cannot read it: "
        "it has neither a departure time nor a recurring rule",
        "stored departure 'schedule:big' of bus-2: energy_kwh: "
        "250 kWh is above the battery capacity of bus-2 (200 kWh)",
    ]
    assert book.one_offs(NOW) == []
    assert [(e.id, e.days, e.energy_kwh, e.target_soc_pct) for e in book.schedules()] == [
        ("big", WEEKDAYS, 250.0, None),
        ("d-rec", ("mon",), None, 80.0),
    ]
    recs = {r.departure_id: r for r in book.records(NOW)}
    assert recs["d-rec"].cancelled and not recs["schedule:d-rec"].cancelled  # moved to the book's id
    assert recs["schedule:x"].cancelled


# --- text forms ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", MON_FRI),
        ("Mon–Fri", MON_FRI),
        ("mon,wed,fri", ("mon", "wed", "fri")),
        (" mon , wed-fri ", ("mon", "wed", "thu", "fri")),
        ("daily", WEEKDAYS),
        ("sat-sun", ("sat", "sun")),
        ("fri-mon", ("mon", "fri", "sat", "sun")),
        ("weekdays", MON_FRI),
        ("weekend", ("sat", "sun")),
        ("Tuesday,tue", ("tue",)),
    ],
)
def test_parse_days(text: str, days: tuple[Weekday, ...]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no days given (e.g. mon-fri, mon,wed,fri, daily)"),
        ("mon,,fri", "empty day in 'mon,,fri'"),
        ("mon-fir", "'fir' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
        ("often", "'often' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
    ],
)
def test_parse_days_refuses(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_days(text)
    assert str(exc.value) == reason


@pytest.mark.parametrize(
    ("text", "expected"), [("06:30", time(6, 30)), ("6:30", time(6, 30)), ("23:59:59", time(23, 59, 59))]
)
def test_parse_hhmm(text: str, expected: time) -> None:
    assert parse_hhmm(text) == expected


@pytest.mark.parametrize("text", ["24:00", "06:60", "6h30", "0630", ""])
def test_parse_hhmm_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_hhmm(text)


days_st = st.sets(st.sampled_from(WEEKDAYS), min_size=1).map(lambda s: tuple(d for d in WEEKDAYS if d in s))
numbers = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
entries_st = st.builds(
    ScheduleEntry,
    id=st.text(min_size=1, max_size=20).filter(lambda s: s == s.strip() and s.isprintable()),
    vehicle_id=st.sampled_from(["bus-1", "bus-2"]),
    days=days_st,
    at=st.times().map(lambda t: t.replace(microsecond=0)),
    energy_kwh=st.none() | numbers,
    target_soc_pct=st.none() | numbers,
    priority=st.none() | st.integers(1, 9),
)


@given(entries_st)
def test_rule_text_round_trips(e: ScheduleEntry) -> None:
    assert ScheduleEntry.from_rule_text(e.id, e.vehicle_id, e.rule_text()) == e


@given(days_st)
def test_format_days_round_trips(days: tuple[Weekday, ...]) -> None:
    assert parse_days(format_days(days)) == days


# --- tenancy -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vehicles", "tenant", "ids"),
    [
        (None, None, ["bus-1", "bus-2", "van-1"]),
        (frozenset({"bus-2", "nope"}), None, ["bus-2"]),
        (None, "acme", ["bus-1", "van-1"]),
        (frozenset({"bus-1", "bus-2"}), "acme", ["bus-1"]),
        (None, "nobody", []),
    ],
)
def test_vehicles_visible(vehicles: frozenset[str] | None, tenant: str | None, ids: list[str]) -> None:
    assert [v.id for v in vehicles_visible(SITE, vehicles=vehicles, tenant=tenant)] == ids


def test_entry_to_schedule() -> None:
    e = entry("a", "bus-1", MON_FRI, time(6, 0), None, 80.0, 3)
    assert e.to_schedule() == Schedule("bus-1", time(6, 0), MON_FRI, None, None, 80.0, 3)
