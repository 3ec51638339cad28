"""The fleet side of the daemon: what the API (and through it the CLI and the status page) asks and sets.

Every change goes through the :class:`~controller.fleet.book.FleetBook` (which validates it),
is persisted at once (``Departure`` records; a restart brings it back), and re-plans at once.
Everything here runs in the daemon's event loop and only touches memory, except the daily report
and the session history (read from SQLite in a worker thread) and the persistence (queued to the
store's writer thread).

A ``scope`` (a fleet token's vehicle ids; None = every vehicle) limits what a change may touch, and
the change is checked against a site that has only those vehicles, so that a problem message
never lists vehicles outside the caller's scope.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from controller.api.models import ChargerInfo, StatusResponse
from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState
from controller.daemon.ports import Clock, PlanOutcome, Recorder
from controller.daemon.sessions import DepartureHistory
from controller.fleet.book import FleetBook, FleetError, Problem, ScheduleEntry
from controller.fleet.csv_import import parse_schedules_csv
from controller.fleet.departures import DepartureNeed, OneOff, energy_to_deliver_kwh, expand, next_departure
from controller.model.site import Site, Vehicle
from controller.store import Restored
from controller.store.report import DailyReport, daily_report
from controller.store.schema import BUSY_TIMEOUT_S
from controller.store.sink import from_unix

HISTORY_DAYS = 7.0
"""``GET /sessions?active=false`` reaches this many days back [d]."""
HISTORY_LIMIT = 5000
_HISTORY_SQL = """
SELECT session_id, charger_id, connector, vehicle_id, started_at, stopped_at, energy_need_kwh, energy_kwh,
       met_departure
FROM sessions
WHERE started_at >= :since OR stopped_at >= :since OR stopped_at IS NULL
ORDER BY COALESCE(started_at, stopped_at) DESC
LIMIT :limit
"""


@dataclass(frozen=True)
class Readiness:
    """A vehicle's next departure and what the plan expects for it."""

    vehicle: Vehicle
    departure: DepartureNeed | None
    charger_id: str | None  # where it is plugged in now
    session_id: str | None
    need_kwh: float | None  # still to deliver before the departure
    delivered_kwh: float | None  # in this session so far
    expected_kwh: float | None  # what the plan delivers by the departure
    will_be_ready: bool | None  # None: no departure, or not plugged in
    planned_departure_at: datetime | None = None  # what the plan uses when history moved it earlier


class VehicleSessions(Protocol):
    """The open sessions' book, told which vehicle a running session is."""

    def assign(self, sid: str, charger_id: str, connector: int, vehicle_id: str) -> None: ...


@dataclass(frozen=True)
class FleetPorts:
    site: Callable[[], Site]
    clock: Clock
    recorder: Recorder
    replan: Callable[[], None]
    states: Mapping[str, ChargerState]  # the central system's chargers (a vehicle assigned to its session)
    sessions: VehicleSessions
    outcome: Callable[[], PlanOutcome | None]  # the plan loop's last
    status: Callable[[], StatusResponse]


class FleetService:
    def __init__(self, ports: FleetPorts) -> None:
        self.ports = ports
        self.book = FleetBook()
        # the vehicles' declared vs actual departures (SQLite ``departure_history``); the plan
        # loop passes it to plan_sessions, which plans against it
        self.departures = DepartureHistory(put=ports.recorder.put)

    @property
    def site(self) -> Site:
        return self.ports.site()

    def now(self) -> datetime:
        """The daemon's clock (the API dates "today" and the vehicles' one-offs by it)."""
        return self.ports.clock()

    def scoped_site(self, scope: Collection[str] | None) -> Site:
        """The site with only the vehicles in ``scope`` (the site itself for None)."""
        site = self.ports.site()
        if scope is None:
            return site
        return replace(site, vehicles=tuple(v for v in site.vehicles if v.id in scope))

    # --- wiring -------------------------------------------------------------------------------
    def restore(self, restored: Restored, now: datetime) -> list[str]:
        """The book and the departure history as the store kept them; returns what could not be restored."""
        self.book, warnings = FleetBook.from_records(self.ports.site(), restored.departures, now)
        self.departures.seed(
            restored.departure_history,
            restored.open_declared,
            {s.session_id: s.charger_id for s in restored.open_sessions},
        )
        return warnings

    def departure_of(self, vehicle_id: str, after: datetime) -> DepartureNeed | None:
        return next_departure(self.book.site_with_schedules(self.ports.site()), vehicle_id, after, self.one_offs(after))

    def one_offs(self, now: datetime) -> list[OneOff]:
        return self.book.one_offs(now)

    def upcoming(self, now: datetime, until: datetime) -> list[DepartureNeed]:
        """Every vehicle's departures from ``now`` to ``until`` (schedules and one-offs)."""
        return expand(self.book.site_with_schedules(self.ports.site()), now, until, self.one_offs(now))

    def _changed(self) -> None:
        now = self.ports.clock()
        for record in self.book.records(now):
            self.ports.recorder.put(record)
        self.ports.replan()

    # --- vehicles and departures --------------------------------------------------------------
    def vehicle(self, vehicle_id: str) -> Vehicle:
        try:
            return self.ports.site().vehicle(vehicle_id)
        except KeyError:
            raise FleetError([Problem("vehicle", f"unknown vehicle {vehicle_id!r}")]) from None

    def readiness(self, vehicle: Vehicle) -> Readiness:
        now = self.ports.clock()
        outcome = self.ports.outcome()
        planned = {sp.session_id: sp for sp in outcome.plan.sessions} if outcome is not None else {}
        last = outcome.sessions if outcome is not None else ()
        sessions = {s.session_id: s for s in last if s.vehicle_id == vehicle.id}
        dep = self.departure_of(vehicle.id, now)
        for sid, s in sessions.items():
            sp = planned.get(sid)
            estimate = self.departures.estimates.get(sid)
            return Readiness(
                vehicle,
                dep,
                s.charger_id,
                sid,
                s.energy_need_kwh,
                s.energy_delivered_kwh,
                sp.expected_energy_kwh if sp is not None else None,
                sp.will_meet_departure if sp is not None and s.departure_at is not None else None,
                estimate.at if estimate is not None and estimate.from_history else None,
            )
        need = energy_to_deliver_kwh(dep, vehicle, None) if dep is not None else None
        return Readiness(vehicle, dep, None, None, need, None, None, None)

    def set_departure(
        self,
        vehicle_id: str,
        at: datetime,
        energy_kwh: float | None,
        target_soc_pct: float | None,
        priority: int | None = None,
    ) -> OneOff:
        one_off = self.book.set_departure(self.ports.site(), vehicle_id, at, energy_kwh, target_soc_pct, priority,
                                          self.ports.clock())
        self._changed()
        return one_off

    def clear_departure(self, vehicle_id: str) -> bool:
        self.vehicle(vehicle_id)
        removed = self.book.clear_departure(vehicle_id, self.ports.clock())
        if removed:
            self._changed()
        return removed

    # --- schedules ----------------------------------------------------------------------------
    def schedules(self, scope: Collection[str] | None = None) -> list[ScheduleEntry]:
        return [e for e in self.book.schedules() if scope is None or e.vehicle_id in scope]

    def put_schedules(self, entries: list[ScheduleEntry], scope: Collection[str] | None = None) -> None:
        self.book.put_schedules(self.scoped_site(scope), entries, now=self.ports.clock(), vehicles=scope)
        self._changed()

    def delete_schedules(self, scope: Collection[str] | None = None) -> int:
        n = self.book.delete_schedules(now=self.ports.clock(), vehicles=scope)
        if n:
            self._changed()
        return n

    def import_schedules(self, text: str, scope: Collection[str] | None = None) -> list[ScheduleEntry]:
        """Replace the run-time schedules of the vehicles in scope with the CSV's (all or nothing)."""
        entries = parse_schedules_csv(text, self.scoped_site(scope))
        self.put_schedules(entries, scope)
        return entries

    # --- chargers and sessions ----------------------------------------------------------------
    def assign(self, charger_id: str, vehicle_id: str) -> str | None:
        """Say which vehicle is on ``charger_id`` (its running session takes it at once)."""
        p = self.ports
        self.book.assign(p.site(), charger_id, vehicle_id)
        st = p.states.get(charger_id)
        sid = None
        if st is not None:
            for conn_id, conn in st.connectors.items():
                tx = conn.transaction
                if conn_id >= 1 and tx is not None:
                    tx.vehicle_id = vehicle_id
                    sid = session_id(charger_id, tx.transaction_id)
                    p.sessions.assign(sid, charger_id, conn_id, vehicle_id)
        p.recorder.event("info", f"vehicle {vehicle_id} assigned to charger {charger_id}", charger_id=charger_id)
        p.replan()
        return sid

    def chargers(self) -> list[ChargerInfo]:
        """Every charger of the site as the status shows it (connection, limit, draw, sessions)."""
        return self.ports.status().chargers

    def sessions(self, active: bool = True) -> list[dict[str, Any]]:
        """The running sessions, each as a status ``SessionInfo`` dict plus its ``charger_id``.

        ``active`` is kept for callers; the history is :meth:`recent_sessions` (it reads SQLite).
        """
        status = self.ports.status()
        out = []
        for ch in status.chargers:
            for s in ch.sessions:
                out.append({"charger_id": ch.id, **s.model_dump(mode="json")})
        return out

    async def daily_report(self, day: date, scope: Collection[str] | None = None) -> DailyReport:
        site = self.ports.site()
        return await asyncio.to_thread(
            daily_report,
            site.storage.path,
            day,
            ZoneInfo(site.site.timezone),
            vehicles=frozenset(scope) if scope is not None else None,
            grid_meter=site.grid.meter,
            now=self.ports.clock(),
        )

    async def recent_sessions(self, days: float = HISTORY_DAYS) -> list[dict[str, Any]]:
        """Sessions of the last ``days`` from the history database (newest first; at most
        :data:`HISTORY_LIMIT`), including those still open. Read in a worker thread over a
        read-only connection; an empty list when there is no database yet.

        Each dict: ``session_id``, ``charger_id``, ``connector``, ``vehicle_id``, ``started_at``,
        ``stopped_at`` (aware UTC or None), ``energy_need_kwh``, ``energy_kwh``, ``met_departure``.
        """
        since = self.ports.clock() - timedelta(days=days)
        return await asyncio.to_thread(_read_history, Path(self.ports.site().storage.path), since.timestamp())


def _read_history(path: Path, since: float) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S)
    try:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(_HISTORY_SQL, {"since": since, "limit": HISTORY_LIMIT}).fetchall()
    finally:
        conn.close()
    out = []
    for row in rows:
        item = dict(row)
        for key in ("started_at", "stopped_at"):
            item[key] = None if item[key] is None else from_unix(float(item[key]))
        item["met_departure"] = None if item["met_departure"] is None else bool(item["met_departure"])
        out.append(item)
    return out
