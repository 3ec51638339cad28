"""Retention (bounded batch deletes of old rows) and the daily roll-up (pure SQL, idempotent).

The roll-up keeps the long-term picture after raw rows are gone, so :func:`purge` first rolls up
every day it is about to delete (without overwriting days already rolled up) and the roll-up tables
themselves are never purged, nor is ``energy_cost_daily`` (one row a day). Days are UTC. A session
counts on the day it stopped; open sessions are never purged.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from controller.store.restore import DEPARTURES_PER_VEHICLE
from controller.store.schema import connect, failsafe_sql, migrate

# table -> condition on ``?1`` (the cutoff, unix seconds) selecting purgeable rows
PURGE_RULES: dict[str, str] = {
    "meter_readings": "at < ?1",
    "allocations": "plan_at < ?1",
    "events": "at < ?1",
    "sessions": "stopped_at IS NOT NULL AND stopped_at < ?1",
    "departures": "(cancelled = 1 AND set_at < ?1) OR (departure_at IS NOT NULL AND departure_at < ?1)",
    # keep the latest profile of each kind per connector, and the latest fail-safe, whatever their
    # age: restore() needs them (the same partition as restore's)
    "accepted_profiles": (
        "at < ?1 AND id <> (SELECT q.id FROM accepted_profiles q"
        " WHERE q.charger_id = accepted_profiles.charger_id AND q.connector = accepted_profiles.connector"
        " AND q.kind = accepted_profiles.kind"
        f" AND {failsafe_sql('q')} = {failsafe_sql('accepted_profiles')}"
        " ORDER BY q.at DESC, q.id DESC LIMIT 1)"
    ),
    # keep each vehicle's latest finished sessions, whatever their age: its departure estimate
    # needs them (a vehicle back from a month off still has its history); the declared departure
    # of an open session stays with it; one whose session is gone (never stopped) goes with its age
    "departure_history": (
        "COALESCE(actual_at, declared_at) < ?1 AND CASE WHEN actual_at IS NULL"
        " THEN session_id NOT IN (SELECT s.session_id FROM sessions s WHERE s.stopped_at IS NULL)"
        " ELSE session_id NOT IN (SELECT q.session_id FROM departure_history q"
        " WHERE q.vehicle_id = departure_history.vehicle_id AND q.actual_at IS NOT NULL"
        f" ORDER BY q.actual_at DESC LIMIT {DEPARTURES_PER_VEHICLE}) END"
    ),
    # the demand charge's windows go with their age, but never a window of the last two months
    # (however short the retention): a restart must find the billing period's peak
    "demand_windows": (
        "window_start < ?1 AND window_start < (SELECT MAX(q.window_start) FROM demand_windows q) - 62 * 86400"
    ),
    # keep each charger's latest link state: availability on the first kept day starts from it
    "charger_status": (
        "at < ?1 AND id <> (SELECT q.id FROM charger_status q"
        " WHERE q.charger_id = charger_status.charger_id ORDER BY q.at DESC, q.id DESC LIMIT 1)"
    ),
}

_VEHICLE_ENERGY = """
INSERT OR {verb} INTO daily_vehicle_energy (day, vehicle_id, sessions, requested_kwh, delivered_kwh)
SELECT date(stopped_at, 'unixepoch'), COALESCE(vehicle_id, '(none)'), COUNT(*),
       SUM(COALESCE(energy_need_kwh, 0)), SUM(COALESCE(energy_kwh, 0))
FROM sessions
WHERE stopped_at IS NOT NULL AND stopped_at >= ? AND stopped_at < ?
GROUP BY 1, 2
"""
_SITE_PEAK = """
INSERT OR {verb} INTO daily_site_peak (day, meter_id, l1_peak_a, l2_peak_a, l3_peak_a, power_peak_w)
SELECT date(at, 'unixepoch'), meter_id, MAX(l1_a), MAX(l2_a), MAX(l3_a), MAX(power_w)
FROM meter_readings
WHERE at >= ? AND at < ?
GROUP BY 1, 2
"""


def _day_start(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def cutoff_for(retention_days: int, now: datetime) -> date:
    """The first UTC day kept: whole days before it are purged."""
    return (now.astimezone(UTC) - timedelta(days=retention_days)).date()


def rollup_days(conn: sqlite3.Connection, first: date, end: date, *, overwrite: bool = True) -> None:
    """Compute the roll-up for UTC days ``first`` ≤ day < ``end`` in one transaction.

    ``overwrite=False`` keeps days already rolled up (used before purging, where raw rows of an
    interrupted earlier purge may be incomplete).
    """
    verb = "REPLACE" if overwrite else "IGNORE"
    span = (_day_start(first), _day_start(end))
    with conn:
        conn.execute(_VEHICLE_ENERGY.format(verb=verb), span)
        conn.execute(_SITE_PEAK.format(verb=verb), span)


def rollup_daily(path: str | Path, first: date, end: date) -> None:
    """(Re)compute the roll-up for ``first`` ≤ day < ``end``; safe to run again for the same days."""
    conn = connect(path)
    try:
        migrate(conn)
        rollup_days(conn, first, end)
    finally:
        conn.close()


def purge(
    path: str | Path,
    retention_days: int,
    now: datetime,
    *,
    batch_size: int = 1000,
    pause_s: float = 0.0,
    on_batch: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Delete rows from whole UTC days older than ``retention_days``; returns rows deleted per table.

    Each batch of at most ``batch_size`` rows is its own short transaction, with ``pause_s``
    between batches, so the writer thread is never locked out for long. ``on_batch(table, rows)``
    is called after each committed batch (for logs and tests).
    """
    keep_from = cutoff_for(retention_days, now)
    cutoff = _day_start(keep_from)
    conn = connect(path)
    try:
        migrate(conn)
        oldest = conn.execute(
            "SELECT MIN(t) FROM (SELECT MIN(at) AS t FROM meter_readings"
            " UNION ALL SELECT MIN(stopped_at) FROM sessions)"
        ).fetchone()[0]
        if oldest is not None and oldest < cutoff:
            rollup_days(conn, datetime.fromtimestamp(oldest, UTC).date(), keep_from, overwrite=False)
        deleted: dict[str, int] = {}
        for table, where in PURGE_RULES.items():
            total = 0
            while True:
                with conn:
                    cur = conn.execute(
                        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT ?2)",
                        (cutoff, batch_size),
                    )
                total += cur.rowcount
                if on_batch is not None and cur.rowcount:
                    on_batch(table, cur.rowcount)
                if cur.rowcount < batch_size:
                    break
                if pause_s > 0:
                    time.sleep(pause_s)
            deleted[table] = total
        return deleted
    finally:
        conn.close()
