"""The daily report: per vehicle, the site peak per phase and per charger, for one site-local day.

:func:`daily_report` is a pure read of the history database (its own read-only connection, one
short read transaction; in WAL mode a reader never blocks the writer). It serves
``GET /api/v1/reports/daily?date=`` (JSON via :meth:`DailyReport.to_dict`, CSV via
:meth:`DailyReport.to_csv`).

**The day** is the site-local calendar day, 00:00 to the next 00:00 in the site's time zone, so it
lasts 23 h or 25 h on DST days. All durations are real elapsed seconds (unix time), never wall-clock
differences.

**Vehicles** (``vehicle`` rows). A session without a vehicle is reported as ``(unknown)``.

- ``sessions``: sessions that overlap the day by a positive time, or end within it (a session
  that has not stopped yet counts if it started before the day's end).
- ``sessions_open``: of those, the ones not stopped yet; their energy is only recorded when they
  stop, so it counts as 0 until then.
- ``energy_delivered_kwh``: the energy of each stopped session, split across days **in proportion
  to time**: the share of the session's duration that falls within the day. This is an
  approximation (a vehicle charges faster early in a session and not at all once full); the
  history has no per-charger meter series to attribute the energy exactly. A session of zero
  duration counts wholly on the day it stopped. Summed over consecutive days, each session's
  energy is counted exactly once.
- ``energy_requested_kwh``, ``energy_delivered_for_departures_kwh``: over sessions that *stopped*
  within the day and had an energy need (``energy_need_kwh`` recorded at the start, i.e. a
  departure): the energy asked for, and the energy those sessions delivered in total (so the two
  compare directly, unlike the time-split ``energy_delivered_kwh``).
- ``departures_met`` / ``departures_missed``: sessions that stopped within the day with
  ``met_departure`` true / false.

**Site peak** (``site_peak`` rows, only when a grid meter is given): per phase, the highest current
among the grid meter's readings within the day [A] and the first time it occurred.

**Chargers** (``charger`` rows): configured chargers, and any charger with a session or a status
change within the day or a status before it.

- availability = (time connected and not faulted) / (length of the day), from the append-only
  ``charger_status`` history (:class:`~controller.store.records.ChargerStatus`): the state at the
  start of the day is the last status before it, each status holds until the next one. Time before
  the charger's first-ever status is *unknown* and counts as not available (``unknown_h`` shows how
  much). A charger with no status at or before the end of the day has availability ``None``
  (JSON ``null``, CSV ``unknown``): no data, not 0 and not 100 %.
- success rate = sessions that delivered more than :data:`SUCCESS_MIN_KWH` / sessions plugged in,
  over sessions that stopped within the day (so each session counts once, when its outcome is
  known); ``None`` without such sessions.

**Energy and cost** (``energy`` rows, one per currency): the day's grid import, the part of it a
price covered and its cost, as the daemon integrated them each second from the grid meter
(``energy_cost_daily``: kept per site-local day, so this is exact for the day, not time-split).
``cost`` is ``None`` (CSV ``unknown``) when no price covered any of it.

**Demand** (``demand`` row): the demand charge's averaging windows (``tariff.demand.window_min``)
that *started* within the day: how many, how many with missing readings (partial), and the
highest average of grid import [kW] with its window's start and coverage. The billing period's
peak is the highest of these over the month (``depotctl status``, ``depot_demand_peak_kw``).

``vehicles=`` (a tenant-scoped token) limits the vehicle rows *and* the charger session counts to
those vehicles' sessions; ``(unknown)`` is only included if it is in the set. Charger availability,
the site peak, energy, cost and demand are site-wide and stay.

Raw rows older than ``storage.retention_days`` are purged nightly, so a report for an older day is
incomplete (the roll-up tables keep UTC-day totals only).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controller.store.report_rows import (
    CSV_COLUMNS,
    PARTIAL_BELOW,
    PHASES,
    SUCCESS_MIN_KWH,
    UNKNOWN_VEHICLE,
    ChargerDay,
    DailyReport,
    DemandDay,
    EnergyDay,
    PhasePeak,
    VehicleDay,
)
from controller.store.schema import BUSY_TIMEOUT_S
from controller.store.sink import from_unix, to_unix

__all__ = [
    "CSV_COLUMNS",
    "SUCCESS_MIN_KWH",
    "UNKNOWN_VEHICLE",
    "ChargerDay",
    "DailyReport",
    "DemandDay",
    "EnergyDay",
    "PhasePeak",
    "VehicleDay",
    "daily_report",
    "day_bounds",
]


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The site-local day's start and end (the next day's 00:00), both site-local and aware.

    Where midnight does not exist (a DST gap at 00:00), the day starts when the clock jumps.
    """
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    # normalise through UTC: a non-existent local time becomes the instant it maps to
    return from_unix(to_unix(start)).astimezone(tz), from_unix(to_unix(end)).astimezone(tz)


def daily_report(
    db_path: str | Path,
    day: date,
    tz: ZoneInfo,
    *,
    vehicles: AbstractSet[str] | None = None,
    grid_meter: str | None = None,
    now: datetime | None = None,
) -> DailyReport:
    """The report for the site-local ``day`` in ``tz``, read from the history database at ``db_path``.

    ``vehicles``: only these vehicles' rows and sessions (``None``: all). ``grid_meter``: the grid
    meter's id for the site peak (``None``: no ``site_peak`` rows). ``now``: for a day not over yet,
    pass the current time so availability covers only the elapsed part (and a future day has
    availability ``None``); ``None`` takes the whole day.

    Opens its own read-only connection and reads in one short transaction (a consistent snapshot;
    in WAL mode it never blocks the writer). Raises :class:`FileNotFoundError` if there is no
    database. A database from before ``charger_status`` existed gives availability ``None``.
    """
    path = Path(db_path)
    if not path.is_file():
        raise FileNotFoundError(f"no history database at {path}")
    start, end = day_bounds(day, tz)
    ws, we = to_unix(start), to_unix(end)
    cover = we if now is None else min(we, max(ws, to_unix(now)))
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    conn.isolation_level = None  # explicit transactions only
    try:
        conn.execute("BEGIN")  # one snapshot for every query below
        try:
            sessions = _read_sessions(conn, ws, we)
            peaks = _read_peaks(conn, grid_meter, ws, we, tz) if grid_meter is not None else ()
            statuses = _read_statuses(conn, ws, cover, we)
            configured = [str(r[0]) for r in conn.execute("SELECT charger_id FROM chargers")]
            energy = _read_energy(conn, day)
            demand = _read_demand(conn, ws, we, tz)
        finally:
            if conn.in_transaction:  # an error may already have ended it
                conn.execute("ROLLBACK")
    finally:
        conn.close()

    if vehicles is not None:
        sessions = [s for s in sessions if s.vehicle in vehicles]
    charger_ids = sorted({*configured, *(s.charger_id for s in sessions), *statuses})
    chargers = tuple(_charger_day(cid, statuses.get(cid), sessions, ws, we, cover) for cid in charger_ids)
    return DailyReport(
        day=day,
        tz=tz,
        start=start,
        end=end,
        covered_until=from_unix(cover).astimezone(tz),
        grid_meter=grid_meter,
        vehicles=_vehicle_days(sessions, ws, we),
        site_peak=peaks,
        chargers=chargers,
        energy=energy,
        demand=demand,
    )


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Session:
    charger_id: str
    vehicle: str  # vehicle id or UNKNOWN_VEHICLE
    started_at: float | None  # unix seconds
    stopped_at: float | None
    energy_kwh: float | None
    energy_need_kwh: float | None
    met_departure: bool | None


def _read_sessions(conn: sqlite3.Connection, ws: float, we: float) -> list[_Session]:
    """Sessions that may touch [ws, we): started (or, without a start, stopped) before the end and
    not stopped before the start. :func:`_touches` decides exactly."""
    rows = conn.execute(
        "SELECT charger_id, vehicle_id, started_at, stopped_at, energy_kwh, energy_need_kwh, met_departure"
        " FROM sessions WHERE COALESCE(started_at, stopped_at) < ? AND (stopped_at IS NULL OR stopped_at >= ?)"
        " ORDER BY COALESCE(started_at, stopped_at), session_id",
        (we, ws),
    )
    return [
        _Session(
            charger_id=str(r[0]),
            vehicle=UNKNOWN_VEHICLE if r[1] is None else str(r[1]),
            started_at=_opt_float(r[2]),
            stopped_at=_opt_float(r[3]),
            energy_kwh=_opt_float(r[4]),
            energy_need_kwh=_opt_float(r[5]),
            met_departure=None if r[6] is None else bool(r[6]),
        )
        for r in rows
    ]


def _read_peaks(conn: sqlite3.Connection, meter: str, ws: float, we: float, tz: ZoneInfo) -> tuple[PhasePeak, ...]:
    peaks = []
    for phase, column in zip(PHASES, ("l1_a", "l2_a", "l3_a"), strict=True):
        # the primary key (meter_id, at) bounds the scan to the day's readings of this meter
        row = conn.execute(
            f"SELECT {column}, at FROM meter_readings WHERE meter_id = ? AND at >= ? AND at < ?"
            f" ORDER BY {column} DESC, at ASC LIMIT 1",
            (meter, ws, we),
        ).fetchone()
        if row is None:
            peaks.append(PhasePeak(phase, meter, None, None))
        else:
            peaks.append(PhasePeak(phase, meter, float(row[0]), from_unix(float(row[1])).astimezone(tz)))
    return tuple(peaks)


def _has_table(conn: sqlite3.Connection, table: str) -> bool:
    """Whether ``table`` exists (a database from before its migration is read-only here)."""
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    return found is not None


def _read_energy(conn: sqlite3.Connection, day: date) -> tuple[EnergyDay, ...]:
    if not _has_table(conn, "energy_cost_daily"):
        return ()
    rows = conn.execute(
        "SELECT currency, import_kwh, priced_kwh, cost FROM energy_cost_daily WHERE day = ? ORDER BY currency",
        (day.isoformat(),),
    )
    return tuple(
        EnergyDay(str(r[0]), float(r[1]), float(r[2]), float(r[3]) if float(r[2]) > 0 else None) for r in rows
    )


def _read_demand(conn: sqlite3.Connection, ws: float, we: float, tz: ZoneInfo) -> DemandDay | None:
    if not _has_table(conn, "demand_windows"):
        return None
    rows = conn.execute(
        "SELECT window_start, window_end, covered_s, average_kw FROM demand_windows"
        " WHERE window_start >= ? AND window_start < ? ORDER BY window_start",
        (ws, we),
    ).fetchall()
    if not rows:
        return None
    coverage = [min(1.0, float(c) / (float(e) - float(s))) if float(e) > float(s) else 0.0 for s, e, c, _ in rows]
    best: int | None = None
    for i, r in enumerate(rows):
        if r[3] is not None and (best is None or float(r[3]) > float(rows[best][3])):
            best = i
    return DemandDay(
        windows=len(rows),
        windows_partial=sum(1 for c in coverage if c < PARTIAL_BELOW),
        peak_kw=None if best is None else float(rows[best][3]),
        peak_at=None if best is None else from_unix(float(rows[best][0])).astimezone(tz),
        peak_coverage=None if best is None else coverage[best],
    )


_State = tuple[bool, bool]  # (connected, faulted)


@dataclass(frozen=True)
class _StatusHistory:
    before: _State | None  # the last status before the day
    changes: tuple[tuple[float, _State], ...]  # within [day start, covered until), in order


def _read_statuses(conn: sqlite3.Connection, ws: float, cover: float, we: float) -> dict[str, _StatusHistory]:
    """Per charger with any status before ``we``: the state at ``ws`` and the changes until ``cover``."""
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'charger_status'").fetchone()
    if exists is None:  # a database from before schema version 2 (read-only: cannot migrate)
        return {}
    out: dict[str, _StatusHistory] = {}
    for (cid,) in conn.execute("SELECT DISTINCT charger_id FROM charger_status WHERE at < ?", (we,)).fetchall():
        before = conn.execute(
            "SELECT connected, faulted FROM charger_status WHERE charger_id = ? AND at < ?"
            " ORDER BY at DESC, id DESC LIMIT 1",
            (cid, ws),
        ).fetchone()
        changes = conn.execute(
            "SELECT at, connected, faulted FROM charger_status WHERE charger_id = ? AND at >= ? AND at < ?"
            " ORDER BY at, id",
            (cid, ws, cover),
        ).fetchall()
        out[str(cid)] = _StatusHistory(
            before=None if before is None else (bool(before[0]), bool(before[1])),
            changes=tuple((float(at), (bool(c), bool(f))) for at, c, f in changes),
        )
    return out


# --- computing ------------------------------------------------------------------------------------


def _day_share(s: _Session, ws: float, we: float) -> float:
    """The share (0..1) of a stopped session's energy that falls within [ws, we), by time."""
    assert s.stopped_at is not None
    stop = s.stopped_at
    begin = stop if s.started_at is None else min(s.started_at, stop)
    if stop <= begin:  # no duration (or no recorded start): all on the day it stopped
        return 1.0 if ws <= stop < we else 0.0
    overlap = min(stop, we) - max(begin, ws)
    return max(0.0, overlap) / (stop - begin)


def _touches(s: _Session, ws: float, we: float) -> bool:
    """The session overlaps [ws, we) by a positive time, or stopped within it."""
    if s.stopped_at is None:
        return s.started_at is not None and s.started_at < we
    return _stopped_within(s, ws, we) or _day_share(s, ws, we) > 0


def _stopped_within(s: _Session, ws: float, we: float) -> bool:
    return s.stopped_at is not None and ws <= s.stopped_at < we


def _vehicle_days(sessions: Iterable[_Session], ws: float, we: float) -> tuple[VehicleDay, ...]:
    by_vehicle: dict[str, list[_Session]] = {}
    for s in sessions:
        if _touches(s, ws, we):
            by_vehicle.setdefault(s.vehicle, []).append(s)
    days = []
    for vehicle, group in by_vehicle.items():
        stopped = [s for s in group if s.stopped_at is not None]
        ended = [s for s in stopped if _stopped_within(s, ws, we)]
        with_need = [s for s in ended if s.energy_need_kwh is not None]
        days.append(
            VehicleDay(
                vehicle_id=vehicle,
                sessions=len(group),
                sessions_open=len(group) - len(stopped),
                energy_delivered_kwh=sum((s.energy_kwh or 0.0) * _day_share(s, ws, we) for s in stopped),
                energy_requested_kwh=sum(s.energy_need_kwh or 0.0 for s in with_need),
                energy_delivered_for_departures_kwh=sum(s.energy_kwh or 0.0 for s in with_need),
                departures_met=sum(1 for s in ended if s.met_departure is True),
                departures_missed=sum(1 for s in ended if s.met_departure is False),
            )
        )
    days.sort(key=lambda v: (v.vehicle_id == UNKNOWN_VEHICLE, v.vehicle_id))
    return tuple(days)


def _charger_day(
    charger_id: str,
    history: _StatusHistory | None,
    sessions: Sequence[_Session],
    ws: float,
    we: float,
    cover: float,
) -> ChargerDay:
    ended = [s for s in sessions if s.charger_id == charger_id and _stopped_within(s, ws, we)]
    durations = {"available": 0.0, "faulted": 0.0, "disconnected": 0.0, "unknown": 0.0}
    has_status = history is not None and (history.before is not None or bool(history.changes))
    if history is not None and has_status and cover > ws:
        t, state = ws, history.before
        for at, new in (*history.changes, (cover, None)):
            durations[_category(state)] += at - t
            t, state = at, new
    return ChargerDay(
        charger_id=charger_id,
        available_s=durations["available"],
        faulted_s=durations["faulted"],
        disconnected_s=durations["disconnected"],
        unknown_s=durations["unknown"],
        has_status=has_status and cover > ws,
        sessions_plugged=len(ended),
        sessions_successful=sum(1 for s in ended if (s.energy_kwh or 0.0) > SUCCESS_MIN_KWH),
    )


def _category(state: _State | None) -> str:
    if state is None:
        return "unknown"
    connected, faulted = state
    if not connected:
        return "disconnected"
    return "faulted" if faulted else "available"


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
