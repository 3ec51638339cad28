"""What the bill needs back after a restart (also after ``kill -9``), read from the history database.

* the demand windows of the billing period (table ``demand_windows``): the period's peak, and the
  window the daemon stopped in, which it continues;
* today's import and cost, and the cost of every day before (table ``energy_cost_daily``): the
  running total behind ``depot_energy_cost_total``;
* the PV meter's mean output per slot over the last days (table ``meter_readings``, every 10 s):
  the seed of the PV forecast.

:func:`read_bill` opens its own connection (migrating the file if needed, as :func:`~.restore.restore`
does) and is called once at start, before the history writer has the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType

from controller.energy.arrivals import PastSession
from controller.store.records import DailyEnergy, DemandWindowRecord
from controller.store.schema import connect, migrate
from controller.store.sink import from_unix, to_unix


@dataclass(frozen=True)
class BillHistory:
    """See the module docstring. ``pv_means_kw``: slot start [unix s] → mean PV output [kW]."""

    windows: tuple[DemandWindowRecord, ...] = ()
    today: DailyEnergy | None = None
    cost_before: float = 0.0
    pv_means_kw: Mapping[int, float] = field(default_factory=lambda: MappingProxyType({}))


def read_bill(
    path: str | Path,
    *,
    windows_since: datetime,
    today: date,
    currency: str,
    pv_meter: str | None = None,
    pv_since: datetime | None = None,
    slot_s: int = 900,
    volts_per_amp: float = 230.0,
) -> BillHistory:
    """Read it back (see the module docstring); a missing file gives an empty :class:`BillHistory`.

    ``windows_since``: the billing period's start. ``today``: the site-local day now; ``currency``:
    the tariff's (the cost of other currencies is not added). ``pv_meter`` / ``pv_since``: whose
    readings and from when; ``volts_per_amp`` turns a reading stored without power into W (the sum
    of its line currents × this).
    """
    if not Path(path).exists():
        return BillHistory()
    conn = connect(path)
    try:
        migrate(conn)
        windows = tuple(
            DemandWindowRecord(from_unix(float(r[0])), from_unix(float(r[1])), float(r[2]), float(r[3]), bool(r[4]))
            for r in conn.execute(
                "SELECT window_start, window_end, energy_kwh, covered_s, closed FROM demand_windows"
                " WHERE window_start >= ? ORDER BY window_start",
                (to_unix(windows_since),),
            )
        )
        row = conn.execute(
            "SELECT import_kwh, priced_kwh, cost, updated_at FROM energy_cost_daily WHERE day = ? AND currency = ?",
            (today.isoformat(), currency),
        ).fetchone()
        day = None if row is None else DailyEnergy(
            today, currency, float(row[0]), float(row[1]), float(row[2]), from_unix(float(row[3]))
        )
        before = conn.execute(
            "SELECT COALESCE(SUM(cost), 0) FROM energy_cost_daily WHERE currency = ? AND day <> ?",
            (currency, today.isoformat()),
        ).fetchone()[0]
        pv = _pv_means(conn, pv_meter, pv_since, slot_s, volts_per_amp) if pv_meter and pv_since else {}
    finally:
        conn.close()
    return BillHistory(windows, day, float(before), MappingProxyType(pv))


def _pv_means(
    conn: sqlite3.Connection, meter: str, since: datetime, slot_s: int, volts_per_amp: float
) -> dict[int, float]:
    rows = conn.execute(
        "SELECT CAST(at / ?1 AS INTEGER) * ?1 AS slot,"
        " AVG(MAX(COALESCE(power_w, (l1_a + l2_a + l3_a) * ?2), 0)) / 1000.0"
        " FROM meter_readings WHERE meter_id = ?3 AND at >= ?4 GROUP BY slot ORDER BY slot",
        (slot_s, volts_per_amp, meter, to_unix(since)),
    )
    return {int(slot): float(kw) for slot, kw in rows}


def read_past_sessions(path: str | Path, since: datetime) -> tuple[PastSession, ...]:
    """The finished sessions that started at or after ``since`` (table ``sessions``): what the
    arrival forecast learns from (:mod:`controller.energy.arrivals`). Its own read-only use of the
    file (WAL: beside the history writer); a missing file gives none."""
    if not Path(path).exists():
        return ()
    conn = connect(path)
    try:
        rows = conn.execute(
            "SELECT charger_id, vehicle_id, started_at, stopped_at, COALESCE(energy_kwh, 0) FROM sessions"
            " WHERE started_at >= ? AND stopped_at IS NOT NULL ORDER BY started_at",
            (to_unix(since),),
        ).fetchall()
    finally:
        conn.close()
    return tuple(
        PastSession(str(c), None if v is None else str(v), from_unix(float(a)), from_unix(float(b)), float(e))
        for c, v, a, b, e in rows
    )
