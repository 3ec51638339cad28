"""What the daemon needs back after a restart (including ``kill -9``), read from the database."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

from controller.store.records import FAILSAFE_KINDS, AcceptedProfile, Departure, Event, EventKind, SessionStart
from controller.store.schema import connect, migrate
from controller.store.sink import from_unix, to_unix


@dataclass(frozen=True)
class Restored:
    open_sessions: tuple[SessionStart, ...] = ()  # started, not stopped; oldest first
    departures: tuple[Departure, ...] = ()  # not cancelled (and, given ``now``, not past one-offs)
    profiles: Mapping[str, AcceptedProfile] = field(default_factory=lambda: MappingProxyType({}))
    last_failsafe: Event | None = None  # the last fail-safe entry or exit

    @property
    def was_in_failsafe(self) -> bool:
        return self.last_failsafe is not None and self.last_failsafe.kind == "failsafe_enter"


def _opt_dt(v: Any) -> datetime | None:
    return None if v is None else from_unix(float(v))


def restore(path: str | Path, now: datetime | None = None) -> Restored:
    """Read open sessions, departures, the last accepted profile per charger, the last fail-safe event.

    A missing file gives an empty :class:`Restored`. With ``now``, one-off departures already in
    the past are left out. ``profiles`` is keyed by charger id: the most recently accepted
    profile of any of its connectors.
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
    # the latest row per charger: highest ``at``, ties broken by insertion order
    profiles: dict[str, AcceptedProfile] = {}
    for r in conn.execute(
        "SELECT p.* FROM accepted_profiles p WHERE p.id = ("
        " SELECT q.id FROM accepted_profiles q WHERE q.charger_id = p.charger_id ORDER BY q.at DESC, q.id DESC LIMIT 1"
        ") ORDER BY p.charger_id"
    ):
        is_a = r["limit_a"] is not None
        profiles[r["charger_id"]] = AcceptedProfile(
            charger_id=r["charger_id"],
            connector=int(r["connector"]),
            limit=float(r["limit_a"] if is_a else r["limit_w"]),
            unit="A" if is_a else "W",
            valid_until=_opt_dt(r["valid_until"]),
            at=from_unix(float(r["at"])),
        )
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
    return Restored(sessions, departures, MappingProxyType(profiles), last)
