"""What the daemon needs back after a restart (including ``kill -9``), read from the database."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from controller.store.records import (
    FAILSAFE_KINDS,
    UNRECORDED_STACK_LEVEL,
    AcceptedProfile,
    DeclaredDeparture,
    Departure,
    Event,
    EventKind,
    SessionStart,
)
from controller.store.schema import connect, failsafe_sql, migrate
from controller.store.sink import from_unix, to_unix

ConnectorKey = tuple[str, int]  # (charger_id, connector); connector 0: the whole charger
DEPARTURES_PER_VEHICLE = 20
"""How many finished sessions of each vehicle :func:`restore` brings back (the estimator's window;
retention keeps at least these, whatever their age)."""


@dataclass(frozen=True)
class PastDeparture:
    """A finished session of a vehicle: the departure declared for it and when it really left."""

    session_id: str
    vehicle_id: str
    declared_at: datetime
    actual_at: datetime


_EMPTY: Mapping[Any, Any] = MappingProxyType({})


def _empty() -> Mapping[Any, Any]:
    return _EMPTY


@dataclass(frozen=True)
class Restored:
    """What the daemon needs back after a restart.

    ``profiles``: per (charger, connector), the latest accepted profile that is not a fail-safe.
    ``in_force``: per charger, per connector, the latest of each ``kind`` (newest first): a
    charger holds a TxProfile and a TxDefaultProfile on the same connector side by side (different
    profile ids), so both may still be in force. ``failsafes``: per charger, the latest fail-safe
    (connector 0, stack level 0, no expiry). ``departure_history``: per vehicle, its last
    :data:`DEPARTURES_PER_VEHICLE` finished sessions with a declared departure, oldest first.
    ``open_declared``: per open session (of ``open_sessions``), the departure declared for it.
    """

    open_sessions: tuple[SessionStart, ...] = ()  # started, not stopped; oldest first
    departures: tuple[Departure, ...] = ()  # not cancelled (and, given ``now``, not past one-offs)
    profiles: Mapping[ConnectorKey, AcceptedProfile] = field(default_factory=_empty)
    last_failsafe: Event | None = None  # the last fail-safe entry or exit
    failsafes: Mapping[str, AcceptedProfile] = field(default_factory=_empty)
    in_force: Mapping[str, Mapping[int, tuple[AcceptedProfile, ...]]] = field(default_factory=_empty)
    departure_history: Mapping[str, tuple[PastDeparture, ...]] = field(default_factory=_empty)
    open_declared: Mapping[str, DeclaredDeparture] = field(default_factory=_empty)

    @property
    def was_in_failsafe(self) -> bool:
        return self.last_failsafe is not None and self.last_failsafe.kind == "failsafe_enter"

    def charger_profiles(self, charger_id: str) -> Mapping[int, tuple[AcceptedProfile, ...]]:
        """Connector → the profiles that may still be in force there, for one charger (may be empty)."""
        return self.in_force.get(charger_id, _EMPTY)


def _opt_dt(v: Any) -> datetime | None:
    return None if v is None else from_unix(float(v))


def restore(path: str | Path, now: datetime | None = None) -> Restored:
    """Read open sessions, departures, accepted profiles (see :class:`Restored`), the last fail-safe event.

    A missing file gives an empty :class:`Restored`. With ``now``, one-off departures already in
    the past are left out.
    """
    if not Path(path).exists():
        return Restored()
    conn = connect(path)
    try:
        migrate(conn)
        conn.row_factory = sqlite3.Row
        return _read(conn, now)
    finally:
        conn.close()


def _read(conn: sqlite3.Connection, now: datetime | None) -> Restored:
    sessions = tuple(
        SessionStart(
            session_id=r["session_id"],
            charger_id=r["charger_id"],
            connector=int(r["connector"]),
            vehicle_id=r["vehicle_id"],
            started_at=from_unix(float(r["started_at"])),
            energy_need_kwh=r["energy_need_kwh"],
        )
        for r in conn.execute(
            "SELECT * FROM sessions WHERE stopped_at IS NULL AND started_at IS NOT NULL ORDER BY started_at, session_id"
        )
    )
    sql = "SELECT * FROM departures WHERE cancelled = 0"
    params: tuple[Any, ...] = ()
    if now is not None:
        sql += " AND (departure_at IS NULL OR departure_at >= ?)"
        params = (to_unix(now),)
    departures = tuple(
        Departure(
            departure_id=r["departure_id"],
            vehicle_id=r["vehicle_id"],
            set_at=from_unix(float(r["set_at"])),
            departure_at=_opt_dt(r["departure_at"]),
            recurring=r["recurring"],
            energy_kwh=r["energy_kwh"],
            target_soc_pct=r["target_soc_pct"],
            cancelled=False,
        )
        for r in conn.execute(sql + " ORDER BY vehicle_id, departure_id", params)
    )
    profiles, in_force, failsafes = _profiles(conn)
    row = conn.execute(
        f"SELECT * FROM events WHERE kind IN ({','.join('?' * len(FAILSAFE_KINDS))}) ORDER BY at DESC, id DESC LIMIT 1",
        FAILSAFE_KINDS,
    ).fetchone()
    last = None
    if row is not None:
        last = Event(
            at=from_unix(float(row["at"])),
            kind=cast(EventKind, row["kind"]),
            detail=row["detail"],
            charger_id=row["charger_id"],
            circuit_id=row["circuit_id"],
        )
    history, declared = _departure_history(conn, {s.session_id for s in sessions})
    return Restored(
        sessions,
        departures,
        MappingProxyType(profiles),
        last,
        failsafes=MappingProxyType(failsafes),
        in_force=MappingProxyType(in_force),
        departure_history=MappingProxyType(history),
        open_declared=MappingProxyType(declared),
    )


_LATEST_DEPARTURES = """
SELECT session_id, vehicle_id, declared_at, actual_at FROM (
    SELECT h.*, ROW_NUMBER() OVER (PARTITION BY h.vehicle_id ORDER BY h.actual_at DESC, h.session_id DESC) AS rn
    FROM departure_history h WHERE h.actual_at IS NOT NULL
) WHERE rn <= ? ORDER BY vehicle_id, actual_at, session_id
"""


def _departure_history(
    conn: sqlite3.Connection, open_ids: set[str]
) -> tuple[dict[str, tuple[PastDeparture, ...]], dict[str, DeclaredDeparture]]:
    history: dict[str, list[PastDeparture]] = {}
    for r in conn.execute(_LATEST_DEPARTURES, (DEPARTURES_PER_VEHICLE,)):
        history.setdefault(r["vehicle_id"], []).append(
            PastDeparture(
                r["session_id"], r["vehicle_id"], from_unix(float(r["declared_at"])), from_unix(float(r["actual_at"]))
            )
        )
    declared = {
        r["session_id"]: DeclaredDeparture(r["session_id"], r["vehicle_id"], from_unix(float(r["declared_at"])))
        for r in conn.execute("SELECT * FROM departure_history WHERE actual_at IS NULL ORDER BY session_id")
        if r["session_id"] in open_ids
    }
    return {v: tuple(ps) for v, ps in history.items()}, declared


def _json_tuple(v: Any) -> tuple[Any, ...] | None:
    return None if v is None else tuple(json.loads(v))


def _profile(r: sqlite3.Row) -> AcceptedProfile:
    is_a = r["limit_a"] is not None
    limit = float(r["limit_a"] if is_a else r["limit_w"])
    planner = _json_tuple(r["planner_limits"])
    starts = _json_tuple(r["period_starts_s"])
    if planner is None:  # a row from before schema 3: a one-period schedule at its first limit
        planner = (limit,) if is_a else ()  # W: unknown in planner units (see planner_schedule)
        starts = (0,)
    stack = r["stack_level"]
    return AcceptedProfile(
        charger_id=r["charger_id"],
        connector=int(r["connector"]),
        limit=limit,
        unit="A" if is_a else "W",
        valid_until=_opt_dt(r["valid_until"]),
        at=from_unix(float(r["at"])),
        planner_limits=tuple(float(x) for x in planner),
        period_starts_s=tuple(int(x) for x in starts or ()),
        start=_opt_dt(r["start_at"]),
        kind=str(r["kind"]),
        stack_level=UNRECORDED_STACK_LEVEL if stack is None else int(stack),
    )


_LATEST_PER_KIND = f"""
SELECT * FROM (
    SELECT p.*, {failsafe_sql("p")} AS is_failsafe, ROW_NUMBER() OVER (
        PARTITION BY p.charger_id, p.connector, p.kind, {failsafe_sql("p")} ORDER BY p.at DESC, p.id DESC
    ) AS rn
    FROM accepted_profiles p
) WHERE rn = 1 ORDER BY charger_id, connector, at DESC, id DESC
"""


def _profiles(
    conn: sqlite3.Connection,
) -> tuple[
    dict[ConnectorKey, AcceptedProfile],
    dict[str, Mapping[int, tuple[AcceptedProfile, ...]]],
    dict[str, AcceptedProfile],
]:
    """Latest profile per (charger, connector), latest per kind there, latest fail-safe per charger.

    "Latest" is the highest ``at``, ties broken by insertion order.
    """
    in_force: dict[ConnectorKey, list[AcceptedProfile]] = {}
    failsafes: dict[str, AcceptedProfile] = {}
    for r in conn.execute(_LATEST_PER_KIND):  # newest first within each (charger, connector)
        p = _profile(r)
        if r["is_failsafe"]:
            failsafes.setdefault(p.charger_id, p)
        else:
            in_force.setdefault((p.charger_id, p.connector), []).append(p)
    profiles = {key: ps[0] for key, ps in in_force.items()}
    by_charger: dict[str, dict[int, tuple[AcceptedProfile, ...]]] = {}
    for (cid, connector), ps in in_force.items():
        by_charger.setdefault(cid, {})[connector] = tuple(ps)
    return profiles, {cid: MappingProxyType(m) for cid, m in by_charger.items()}, failsafes
