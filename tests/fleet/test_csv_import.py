"""Schedules CSV: good files in the dialects spreadsheets write, every kind of bad row with its line."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fleet.book import FleetBook, FleetError, ScheduleEntry
from controller.fleet.csv_import import format_schedules_csv, parse_schedules_csv
from controller.model import WEEKDAYS, Grid, Site, SiteInfo, Vehicle
from controller.model.site import Weekday

SITE = Site(
    site=SiteInfo("test depot", "Europe/Amsterdam"),
    grid=Grid(limit_a=400.0),
    vehicles=(
        Vehicle("bus-1", battery_kwh=300.0),
        Vehicle("bus-2", battery_kwh=200.0),
        Vehicle("van-1"),  # no battery size
    ),
)
MON_FRI: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


def problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(FleetError) as exc:
        parse_schedules_csv(text, SITE)
    return [(p.field, p.reason) for p in exc.value.problems]


def test_a_good_file() -> None:
    text = (
        "Vehicle,DAYS,at,Energy_kWh,target_soc_pct,priority\n"
        "bus-1,mon-fri,05:30,180,,2\n"
        'bus-2,"mon,wed,fri",06:15,,90,\n'
        "bus-1,sat-sun,07:00:00,40.5,,\n"
        "van-1,daily,7:05,12,,9\n"
    )
    assert parse_schedules_csv(text, SITE) == [
        ScheduleEntry("bus-1#1", "bus-1", MON_FRI, time(5, 30), 180.0, None, 2),
        ScheduleEntry("bus-2#1", "bus-2", ("mon", "wed", "fri"), time(6, 15), None, 90.0, None),
        ScheduleEntry("bus-1#2", "bus-1", ("sat", "sun"), time(7, 0), 40.5, None, None),
        ScheduleEntry("van-1#1", "van-1", WEEKDAYS, time(7, 5), 12.0, None, 9),
    ]


def test_column_order_is_free_and_optional_columns_may_be_missing() -> None:
    text = "at,energy_kwh,vehicle,days\n06:00,50,bus-1,mon\n"
    assert parse_schedules_csv(text, SITE) == [ScheduleEntry("bus-1#1", "bus-1", ("mon",), time(6, 0), 50.0)]


def test_excel_in_europe_semicolons_bom_crlf_and_decimal_commas() -> None:
    text = "\ufeffvehicle;days;at;energy_kwh;target_soc_pct;priority\r\nbus-1;mon,wed;05:30;45,5;;\r\n;;;;;\r\n"
    assert parse_schedules_csv(text, SITE) == [ScheduleEntry("bus-1#1", "bus-1", ("mon", "wed"), time(5, 30), 45.5)]


def test_tabs() -> None:
    text = "vehicle\tdays\tat\ttarget_soc_pct\nbus-2\tmon-fri\t05:30\t80\n"
    assert parse_schedules_csv(text, SITE) == [ScheduleEntry("bus-2#1", "bus-2", MON_FRI, time(5, 30), None, 80.0)]


HEADER = "vehicle,days,at,energy_kwh,target_soc_pct,priority\n"
EMPTY = (
    "the file is empty; the first row must name the columns: vehicle, days, at, energy_kwh, target_soc_pct, priority"
)
QUOTE_HINT = ' (a day list in a comma-separated file needs quotes: "mon,wed,fri")'
NEITHER = "give the energy needed (energy_kwh) or a target state of charge (target_soc_pct)"

BAD_ROWS: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "unknown vehicle",
        "bus-9,mon,06:00,10,,",
        [("vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)")],
    ),
    ("empty vehicle", ",mon,06:00,10,,", [("vehicle", "empty; give the vehicle id")]),
    ("bad day", "bus-1,mon-fir,06:00,10,,", [("days", "'fir' is not a weekday (mon, tue, wed, thu, fri, sat, sun)")]),
    ("no days", "bus-1,,06:00,10,,", [("days", "no days given (e.g. mon-fri, mon,wed,fri, daily)")]),
    ("bad time", "bus-1,mon,6h30,10,,", [("at", "'6h30' is not a time of day as HH:MM")]),
    ("time out of range", "bus-1,mon,24:00,10,,", [("at", "'24:00' is not a time of day (00:00 … 23:59)")]),
    ("no time", "bus-1,mon,,10,,", [("at", "empty; give the departure time as HH:MM")]),
    ("energy not a number", "bus-1,mon,06:00,lots,,", [("energy_kwh", "'lots' is not a number")]),
    ("energy too large", "bus-1,mon,06:00,1e999,,", [("energy_kwh", "'1e999' is too large")]),
    ("decimal comma in a comma file", 'bus-1,mon,06:00,"45,5",,', [("energy_kwh", "'45,5' is not a number")]),
    ("zero energy", "bus-1,mon,06:00,0,,", [("energy_kwh", "must be above 0 kWh, got 0")]),
    (
        "energy above the battery",
        "bus-2,mon,06:00,201,,",
        [("energy_kwh", "201 kWh is above the battery capacity of bus-2 (200 kWh)")],
    ),
    ("neither", "bus-1,mon,06:00,,,", [("energy_kwh", NEITHER)]),
    ("both", "bus-1,mon,06:00,10,80,", [("energy_kwh", "give energy_kwh or target_soc_pct, not both")]),
    ("target above 100", "bus-1,mon,06:00,,101,", [("target_soc_pct", "must be above 0 and at most 100 %, got 101")]),
    (
        "target without battery size",
        "van-1,mon,06:00,,80,",
        [
            (
                "target_soc_pct",
                "vehicle van-1 has no battery_kwh in the site file, so a target state of charge cannot be turned "
                "into energy; give energy_kwh instead, or add battery_kwh to the vehicle",
            )
        ],
    ),
    ("priority not whole", "bus-1,mon,06:00,10,,2.5", [("priority", "'2.5' is not a whole number 1 … 9")]),
    ("priority out of range", "bus-1,mon,06:00,10,,0", [("priority", "must be 1 (served first) … 9 (last), got 0")]),
    (
        "unquoted day list",
        "bus-1,mon,wed,06:00,10,,3",
        [
            ("row", "a value in column 7, which has no name in the header"),
            ("at", "'wed' is not a time of day as HH:MM" + QUOTE_HINT),
            ("energy_kwh", "'06:00' is not a number"),
        ],
    ),
]


@pytest.mark.parametrize(("case", "row", "expected"), BAD_ROWS, ids=[c[0] for c in BAD_ROWS])
def test_a_bad_row_names_its_line_and_column(case: str, row: str, expected: list[tuple[str, str]]) -> None:
    # line 1 header, line 2 good, line 3 blank (a spreadsheet shows it as a row too), line 4 the bad row
    text = HEADER + "bus-1,mon,05:00,10,,\n\n" + row + "\nbus-2,tue,05:00,10,,\n"
    assert problems(text) == [(f"line 4: {field}", reason) for field, reason in expected]


def test_every_bad_row_is_reported_and_nothing_is_returned() -> None:
    text = HEADER + "bus-9,mon,06:00,10,,\nbus-1,mon,06:00,10,,\nbus-1,often,25:00,-1,,\n"
    assert problems(text) == [
        ("line 2: vehicle", "unknown vehicle 'bus-9' (the site has: bus-1, bus-2, van-1)"),
        ("line 4: days", "'often' is not a weekday (mon, tue, wed, thu, fri, sat, sun)"),
        ("line 4: at", "'25:00' is not a time of day (00:00 … 23:59)"),
        ("line 4: energy_kwh", "must be above 0 kWh, got -1"),
    ]


def test_line_numbers_count_spreadsheet_rows_not_text_lines() -> None:
    text = HEADER + 'bus-1,mon,05:00,10,,\n"bus\n1",mon,05:00,10,,\nbus-1,often,05:00,10,,\n'
    assert [field for field, _ in problems(text)] == ["line 3: vehicle", "line 4: days"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", [("file", EMPTY)]),
        ("\ufeff\n\n", [("file", EMPTY)]),
        (HEADER, [("file", "no data rows: the file has a header but no schedules")]),
        (HEADER + "\n,,,\n", [("file", "no data rows: the file has a header but no schedules")]),
        (
            "vehicle,day,at,energy,priority\nbus-1,mon,06:00,10,\n",
            [
                (
                    "line 1: header",
                    "unknown column 'day' (the columns are: vehicle, days, at, energy_kwh, target_soc_pct, priority)",
                ),
                (
                    "line 1: header",
                    "unknown column 'energy' (the columns are: vehicle, days, at, energy_kwh, target_soc_pct, "
                    "priority)",
                ),
                ("line 1: header", "missing columns: days, energy_kwh or target_soc_pct"),
            ],
        ),
        ("vehicle,days,days,at,energy_kwh\n", [("line 1: header", "column 'days' appears twice")]),
        ("vehicle,at\nbus-1,06:00\n", [("line 1: header", "missing columns: days, energy_kwh or target_soc_pct")]),
        (
            "vehicle,days,at,priority\nbus-1,mon,06:00,1\n",
            [("line 1: header", "missing column: energy_kwh or target_soc_pct")],
        ),
    ],
)
def test_file_and_header_problems(text: str, expected: list[tuple[str, str]]) -> None:
    assert problems(text) == expected


def test_spaces_and_hyphens_in_header_names() -> None:
    text = "Vehicle , Days, At, Energy kWh, Target-SoC-Pct\nbus-1, mon , 06:00 , 10 ,\n"
    assert parse_schedules_csv(text, SITE) == [ScheduleEntry("bus-1#1", "bus-1", ("mon",), time(6, 0), 10.0)]


def test_an_unnamed_empty_column_is_ignored() -> None:
    text = "vehicle;days;at;energy_kwh;\nbus-1;mon;06:00;10;\n"
    assert len(parse_schedules_csv(text, SITE)) == 1


def test_an_import_goes_into_the_book() -> None:
    book = FleetBook()
    entries = parse_schedules_csv(HEADER + "bus-1,mon-fri,05:30,180,,2\n", SITE)
    book.put_schedules(SITE, entries, now=datetime(2026, 3, 2, tzinfo=UTC))
    assert book.schedules() == entries


# --- round trip ----------------------------------------------------------------------------------

days_st = st.sets(st.sampled_from(WEEKDAYS), min_size=1).map(lambda s: tuple(d for d in WEEKDAYS if d in s))
need_st = st.one_of(
    st.tuples(st.floats(min_value=0.01, max_value=200.0), st.none()),
    st.tuples(st.none(), st.floats(min_value=0.01, max_value=100.0)),
)
row_st = st.builds(
    lambda vehicle, days, at, need, priority: ScheduleEntry("", vehicle, days, at, need[0], need[1], priority),
    st.sampled_from(["bus-1", "bus-2"]),
    days_st,
    st.times().map(lambda t: t.replace(microsecond=0)),
    need_st,
    st.none() | st.integers(1, 9),
)


@given(st.lists(row_st, min_size=1, max_size=8), st.sampled_from([",", ";", "\t"]))
def test_written_files_read_back(rows: list[ScheduleEntry], delimiter: str) -> None:
    got = parse_schedules_csv(format_schedules_csv(rows, delimiter), SITE)
    assert [replace(e, id="") for e in got] == rows
    counts: dict[str, int] = {}
    for e in got:
        counts[e.vehicle_id] = counts.get(e.vehicle_id, 0) + 1
        assert e.id == f"{e.vehicle_id}#{counts[e.vehicle_id]}"
