"""Writing one batch of records to the database, in one transaction.

:class:`Sink` is what the writer thread writes through; :class:`SqliteSink` is the real one.
Tests inject slow or failing sinks to prove the control path never waits on the disk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import sqlite_utils

from controller.store.records import (
    AcceptedProfile,
    Allocation,
    ChargerRecord,
    ChargerStatus,
    DailyEnergy,
    DeclaredDeparture,
    DemandWindowRecord,
    Departure,
    Event,
    MeterSample,
    Record,
    SessionStart,
    SessionStop,
)
from controller.store.schema import open_database


class Sink(Protocol):
    def write(self, batch: Sequence[Record]) -> None:
        """Write every record of ``batch`` durably (one commit), or raise and write none."""

    def close(self) -> None: ...


def to_unix(t: datetime) -> float:
    """Unix seconds; a naive datetime is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def from_unix(s: float) -> datetime:
    return datetime.fromtimestamp(s, UTC)


def _opt_unix(t: datetime | None) -> float | None:
    return None if t is None else to_unix(t)


def _opt_bool(b: bool | None) -> int | None:
    return None if b is None else int(b)


_SESSION_START = """
INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, started_at, energy_need_kwh)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    charger_id = excluded.charger_id, connector = excluded.connector,
    vehicle_id = COALESCE(excluded.vehicle_id, sessions.vehicle_id),
    started_at = excluded.started_at,
    energy_need_kwh = COALESCE(excluded.energy_need_kwh, sessions.energy_need_kwh)
"""
_SESSION_STOP = """
INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, stopped_at, energy_kwh, met_departure)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET
    vehicle_id = COALESCE(excluded.vehicle_id, sessions.vehicle_id),
    stopped_at = excluded.stopped_at, energy_kwh = excluded.energy_kwh,
    met_departure = excluded.met_departure
"""
_CLOSE_DEPARTURE = "UPDATE departure_history SET actual_at = ? WHERE session_id = ? AND actual_at IS NULL"
_DECLARED = """
INSERT INTO departure_history (session_id, vehicle_id, declared_at) VALUES (?, ?, ?)
ON CONFLICT (session_id) DO UPDATE SET vehicle_id = excluded.vehicle_id, declared_at = excluded.declared_at
WHERE departure_history.actual_at IS NULL
"""
_CHARGER = """
INSERT OR REPLACE INTO chargers (charger_id, circuit_id, kind, phases, connectors, max_a, max_kw, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_METER = "INSERT OR REPLACE INTO meter_readings (meter_id, at, l1_a, l2_a, l3_a, power_w) VALUES (?, ?, ?, ?, ?, ?)"
_ALLOCATION = """
INSERT INTO allocations (plan_at, charger_id, session_id, limit_a, limit_kw, source, solver)
VALUES (?, ?, ?, ?, ?, ?, ?)
"""
_EVENT = "INSERT INTO events (at, kind, detail, charger_id, circuit_id) VALUES (?, ?, ?, ?, ?)"
_DEPARTURE = """
INSERT OR REPLACE INTO departures
    (departure_id, vehicle_id, set_at, departure_at, recurring, energy_kwh, target_soc_pct, cancelled)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_CHARGER_STATUS = "INSERT INTO charger_status (charger_id, at, connected, faulted) VALUES (?, ?, ?, ?)"
_PROFILE = """
INSERT INTO accepted_profiles
    (charger_id, connector, limit_a, limit_w, valid_until, at, planner_limits, period_starts_s, start_at, kind,
     stack_level)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_DEMAND_WINDOW = """
INSERT OR REPLACE INTO demand_windows (window_start, window_end, energy_kwh, covered_s, average_kw, closed)
VALUES (?, ?, ?, ?, ?, ?)
"""
_DAILY_ENERGY = """
INSERT OR REPLACE INTO energy_cost_daily (day, currency, import_kwh, priced_kwh, cost, updated_at)
VALUES (?, ?, ?, ?, ?, ?)
"""


def statement(r: Record) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters that write ``r``."""
    if isinstance(r, MeterSample):
        l1, l2, l3 = r.current_a
        return _METER, (r.meter_id, to_unix(r.at), l1, l2, l3, r.power_w)
    if isinstance(r, Allocation):
        a, kw = (r.limit, None) if r.unit == "A" else (None, r.limit)
        return _ALLOCATION, (to_unix(r.plan_at), r.charger_id, r.session_id, a, kw, r.source, r.solver)
    if isinstance(r, Event):
        return _EVENT, (to_unix(r.at), r.kind, r.detail, r.charger_id, r.circuit_id)
    if isinstance(r, SessionStart):
        return _SESSION_START, (
            r.session_id,
            r.charger_id,
            r.connector,
            r.vehicle_id,
            to_unix(r.started_at),
            r.energy_need_kwh,
        )
    if isinstance(r, SessionStop):
        return _SESSION_STOP, (
            r.session_id,
            r.charger_id,
            r.connector,
            r.vehicle_id,
            to_unix(r.stopped_at),
            r.energy_kwh,
            _opt_bool(r.met_departure),
        )
    if isinstance(r, DeclaredDeparture):
        return _DECLARED, (r.session_id, r.vehicle_id, to_unix(r.declared_at))
    if isinstance(r, ChargerStatus):
        return _CHARGER_STATUS, (r.charger_id, to_unix(r.at), int(r.connected), int(r.faulted))
    if isinstance(r, AcceptedProfile):
        a, w = (r.limit, None) if r.unit == "A" else (None, r.limit)
        return _PROFILE, (
            r.charger_id,
            r.connector,
            a,
            w,
            _opt_unix(r.valid_until),
            to_unix(r.at),
            json.dumps(list(r.planner_limits)),  # '[]', never NULL: NULL marks a row from before schema 3
            json.dumps(list(r.period_starts_s)),
            _opt_unix(r.start),
            r.kind,
            r.stack_level,
        )
    if isinstance(r, Departure):
        return _DEPARTURE, (
            r.departure_id,
            r.vehicle_id,
            to_unix(r.set_at),
            _opt_unix(r.departure_at),
            r.recurring,
            r.energy_kwh,
            r.target_soc_pct,
            int(r.cancelled),
        )
    if isinstance(r, DemandWindowRecord):
        return _DEMAND_WINDOW, (
            to_unix(r.start), to_unix(r.end), r.energy_kwh, r.covered_s, r.average_kw, int(r.closed)
        )
    if isinstance(r, DailyEnergy):
        return _DAILY_ENERGY, (r.day.isoformat(), r.currency, r.import_kwh, r.priced_kwh, r.cost, to_unix(r.at))
    if isinstance(r, ChargerRecord):
        return _CHARGER, (r.charger_id, r.circuit_id, r.kind, r.phases, r.connectors, r.max_a, r.max_kw, to_unix(r.at))
    raise TypeError(f"not a store record: {type(r).__name__}")


def statements(r: Record) -> list[tuple[str, tuple[Any, ...]]]:
    """Every statement that writes ``r``: :func:`statement`, and for a :class:`SessionStop` also
    the actual departure in ``departure_history`` (the session's end; a no-op for a session that
    had no declared departure)."""
    out = [statement(r)]
    if isinstance(r, SessionStop):
        out.append((_CLOSE_DEPARTURE, (to_unix(r.stopped_at), r.session_id)))
    return out


class SqliteSink:
    """The real sink: one connection, owned by the thread that created it."""

    def __init__(self, path: str | Path) -> None:
        self.db: sqlite_utils.Database = open_database(path)

    def write(self, batch: Sequence[Record]) -> None:
        with self.db.atomic():
            for r in batch:
                for sql, params in statements(r):
                    self.db.execute(sql, params)

    def close(self) -> None:
        self.db.close()
