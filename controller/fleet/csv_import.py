"""Recurring departures from a spreadsheet: the schedules CSV file.

Used by ``depotctl schedule import FILE.csv`` and ``POST /api/v1/schedules/import``. One
recurring departure per row; the first row is the header naming the columns, in any order and
any letter case:

==================  ========  =============================================================
column              needed    meaning
==================  ========  =============================================================
``vehicle``         yes       vehicle id, as in the site file's ``vehicles:``
``days``            yes       ``mon-fri``, ``mon,wed,fri``, ``daily``, ``sat-sun``,
                              ``weekdays``, ``weekend``; ranges may wrap (``fri-mon``)
``at``              yes       departure time, site-local 24-hour clock, ``HH:MM``
``energy_kwh``      one of    energy needed by the departure [kWh], above 0 and at most
                    these     the vehicle's ``battery_kwh``
``target_soc_pct``  two       state of charge wanted at departure [%], above 0 and at most
                              100; needs the vehicle's ``battery_kwh``
``priority``        no        1 (served first) … 9 (served last); empty: the vehicle's own
==================  ========  =============================================================

Only the ``energy_kwh`` / ``target_soc_pct`` / ``priority`` columns that are used need to be
there, and their cells may be empty (but each row needs exactly one of the energy and the
target). Example::

    vehicle,days,at,energy_kwh,target_soc_pct,priority
    bus-12,mon-fri,05:30,180,,2
    bus-14,"mon,wed,fri",06:15,,90,
    van-3,daily,07:00,40,,

* Comma-, semicolon- or tab-separated: the separator is taken from the header row, so a file
  saved by Excel with a European locale (``;``) works as is. With ``;`` or tab a decimal comma
  (``45,5``) is read as ``45.5``. In a comma-separated file a day list with commas must be
  quoted (``"mon,wed,fri"``), as spreadsheets do when they save.
* UTF-8, with or without a byte-order mark. Blank rows are skipped. Times of day may carry
  seconds (``05:30:00``) as some spreadsheets write them.
* All or nothing: a file with any bad row is rejected whole, and the error lists every problem
  with the row number as a spreadsheet shows it (the header is line 1) and the column, e.g.
  ``line 7: days: 'fir' is not a weekday``. A file without data rows is an error too.
* The import replaces the run-time schedules (those of the caller's vehicles); schedules in the
  site file stay. Each row becomes a schedule with the id ``<vehicle>#<n>``, ``n`` counting
  that vehicle's rows in the file from 1.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import time

from controller.fleet.book import (
    FleetError,
    Problem,
    ScheduleEntry,
    check_need,
    format_days,
    format_hhmm,
    format_number,
    parse_days,
    parse_hhmm,
)
from controller.model import Site
from controller.model.site import Weekday

COLUMNS: tuple[str, ...] = ("vehicle", "days", "at", "energy_kwh", "target_soc_pct", "priority")
REQUIRED: tuple[str, ...] = ("vehicle", "days", "at")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_INTEGER = re.compile(r"^[+-]?\d+$")
_BOM = "\ufeff"
_QUOTE_HINT = ' (a day list in a comma-separated file needs quotes: "mon,wed,fri")'


def parse_schedules_csv(text: str, site: Site) -> list[ScheduleEntry]:
    """Read a schedules CSV file (format in the module docstring) against ``site``'s vehicles.

    Returns one :class:`~controller.fleet.book.ScheduleEntry` per data row, in file order.
    Raises :class:`~controller.fleet.book.FleetError` with every problem found, each with the
    field ``"line N: <column>"`` (``"line 1: header"`` for the header, ``"file"`` for the file).
    """
    text = text.removeprefix(_BOM)
    first = next((ln for ln in text.splitlines() if ln.strip()), None)
    if first is None:
        raise FleetError([Problem("file", f"the file is empty; the first row must name the columns: {_cols()}")])
    delimiter = max((",", ";", "\t"), key=first.count)
    decimal_comma = delimiter != ","
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True))
    except csv.Error as exc:
        raise FleetError([Problem("file", f"not a readable CSV file: {exc}")]) from None

    numbered = [(n, [c.strip() for c in row]) for n, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    header_line, header = numbered[0]
    columns, problems = _header(header, header_line)
    if problems:
        raise FleetError(problems)
    data = numbered[1:]
    if not data:
        raise FleetError([Problem("file", "no data rows: the file has a header but no schedules")])
    entries: list[ScheduleEntry] = []
    counts: dict[str, int] = {}
    for line, cells in data:
        entry, bad = _row(site, cells, columns, decimal_comma)
        problems += [Problem(f"line {line}: {f}", r) for f, r in bad]
        if entry is not None:
            counts[entry.vehicle_id] = n = counts.get(entry.vehicle_id, 0) + 1
            entries.append(replace(entry, id=f"{entry.vehicle_id}#{n}"))
    if problems:
        raise FleetError(problems)
    return entries


def format_schedules_csv(entries: Sequence[ScheduleEntry], delimiter: str = ",") -> str:
    """The entries as a schedules CSV file that :func:`parse_schedules_csv` reads back (ids aside)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for e in entries:
        writer.writerow(
            [
                e.vehicle_id,
                format_days(e.days),
                format_hhmm(e.at),
                "" if e.energy_kwh is None else format_number(e.energy_kwh),
                "" if e.target_soc_pct is None else format_number(e.target_soc_pct),
                "" if e.priority is None else str(e.priority),
            ]
        )
    return out.getvalue()


# --- helpers -------------------------------------------------------------------------------------


def _cols() -> str:
    return ", ".join(COLUMNS)


def _header(cells: list[str], line: int) -> tuple[dict[str, int], list[Problem]]:
    """Column name → index, and the header's problems."""
    where = f"line {line}: header"
    columns: dict[str, int] = {}
    problems: list[Problem] = []
    for i, cell in enumerate(cells):
        name = re.sub(r"[\s-]+", "_", cell.strip().lower())
        if not name:
            continue  # an unnamed column: its cells must stay empty (checked per row)
        if name not in COLUMNS:
            problems.append(Problem(where, f"unknown column {cell!r} (the columns are: {_cols()})"))
        elif name in columns:
            problems.append(Problem(where, f"column {name!r} appears twice"))
        else:
            columns[name] = i
    missing = [c for c in REQUIRED if c not in columns]
    if "energy_kwh" not in columns and "target_soc_pct" not in columns:
        missing.append("energy_kwh or target_soc_pct")
    if missing:
        problems.append(Problem(where, f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}"))
    return columns, problems


def _row(
    site: Site, cells: list[str], columns: dict[str, int], decimal_comma: bool
) -> tuple[ScheduleEntry | None, list[tuple[str, str]]]:
    """One data row → an entry (id to be set) and its problems as ``(column, reason)``."""

    def cell(name: str) -> str:
        i = columns.get(name)
        return cells[i] if i is not None and i < len(cells) else ""

    bad: list[tuple[str, str]] = []
    named = set(columns.values())
    stray = [i for i, c in enumerate(cells) if c and i not in named]
    if stray:
        bad.append(("row", f"a value in column {stray[0] + 1}, which has no name in the header"))
    vehicle = cell("vehicle")
    if not vehicle:
        bad.append(("vehicle", "empty; give the vehicle id"))
    days: tuple[Weekday, ...] = ()
    at: time | None = None
    try:
        days = parse_days(cell("days"))
    except ValueError as exc:
        bad.append(("days", str(exc)))
    if not cell("at"):
        bad.append(("at", "empty; give the departure time as HH:MM"))
    else:
        try:
            at = parse_hhmm(cell("at"))
        except ValueError as exc:
            bad.append(("at", f"{exc}{_QUOTE_HINT if _is_days(cell('at')) else ''}"))
    numbers_ok = True
    values: dict[str, float | None] = {}
    for name in ("energy_kwh", "target_soc_pct"):
        try:
            values[name] = _number(cell(name), decimal_comma)
        except ValueError as exc:
            bad.append((name, str(exc)))
            numbers_ok = False
    priority: int | None = None
    text = cell("priority")
    if text:
        if _INTEGER.match(text):
            priority = int(text)
        else:
            bad.append(("priority", f"{text!r} is not a whole number 1 … 9"))
            numbers_ok = False
    if numbers_ok:
        need = check_need(site, vehicle, values["energy_kwh"], values["target_soc_pct"], priority)
        bad += [(f, r) for f, r in need if vehicle or f != "vehicle"]
    elif vehicle and not any(v.id == vehicle for v in site.vehicles):
        bad.append(("vehicle", f"unknown vehicle {vehicle!r}"))
    if bad or at is None:
        return None, bad
    return ScheduleEntry("", vehicle, days, at, values["energy_kwh"], values["target_soc_pct"], priority), bad


def _is_days(text: str) -> bool:
    try:
        parse_days(text)
    except ValueError:
        return False
    return True


def _number(text: str, decimal_comma: bool) -> float | None:
    if not text:
        return None
    if decimal_comma and text.count(",") == 1 and "." not in text:
        text = text.replace(",", ".")
    if not _NUMBER.match(text):
        raise ValueError(f"{text!r} is not a number")
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999
        raise ValueError(f"{text!r} is too large")
    return value
