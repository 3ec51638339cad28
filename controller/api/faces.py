"""What the HTTP API needs of the daemon, as narrow faces (the API imports nothing of the daemon).

* the status: a :data:`~controller.api.app.StatusProvider` (a callable answering the
  :class:`~controller.api.models.StatusResponse`);
* the fleet: :class:`FleetFace` — vehicles and their departures, schedules, chargers and
  sessions, the daily report — implemented by the daemon's
  :class:`~controller.daemon.fleet.FleetService`.

Every method runs in the daemon's event loop and touches memory only; those that read SQLite are
``async`` (they read in a worker thread).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any, Protocol

from controller.api.models import ChargerInfo
from controller.fleet.book import ScheduleEntry
from controller.fleet.departures import DepartureNeed, OneOff
from controller.model import Site, Vehicle
from controller.store.report import DailyReport


class ReadinessView(Protocol):
    """A vehicle's next departure and what the plan expects for it (None: not known, or not plugged in)."""

    @property
    def departure(self) -> DepartureNeed | None: ...

    @property
    def charger_id(self) -> str | None: ...

    @property
    def session_id(self) -> str | None: ...

    @property
    def need_kwh(self) -> float | None: ...

    @property
    def delivered_kwh(self) -> float | None: ...

    @property
    def expected_kwh(self) -> float | None: ...

    @property
    def will_be_ready(self) -> bool | None: ...


class FleetFace(Protocol):
    """The fleet routes' view of the daemon. ``scope``: a fleet token's vehicle ids (None: all)."""

    @property
    def site(self) -> Site:
        """The site in force (it changes on a reload)."""
        ...

    def now(self) -> datetime:
        """The daemon's clock."""
        ...

    # --- vehicles and departures
    def readiness(self, vehicle: Vehicle) -> ReadinessView: ...

    def one_offs(self, now: datetime) -> list[OneOff]: ...

    def departure_of(self, vehicle_id: str, after: datetime) -> DepartureNeed | None: ...

    def set_departure(
        self, vehicle_id: str, at: datetime, energy_kwh: float | None, target_soc_pct: float | None,
        priority: int | None = None,
    ) -> OneOff: ...

    def clear_departure(self, vehicle_id: str) -> bool: ...

    # --- schedules
    def scoped_site(self, scope: Collection[str] | None) -> Site: ...

    def schedules(self, scope: Collection[str] | None = None) -> list[ScheduleEntry]: ...

    def put_schedules(self, entries: list[ScheduleEntry], scope: Collection[str] | None = None) -> None: ...

    def delete_schedules(self, scope: Collection[str] | None = None) -> int: ...

    def import_schedules(self, text: str, scope: Collection[str] | None = None) -> list[ScheduleEntry]: ...

    # --- chargers, sessions, reports
    def chargers(self) -> list[ChargerInfo]: ...

    def sessions(self, active: bool = True) -> list[dict[str, Any]]: ...

    async def recent_sessions(self) -> list[dict[str, Any]]: ...

    def assign(self, charger_id: str, vehicle_id: str) -> str | None: ...

    async def daily_report(self, day: date, scope: Collection[str] | None = None) -> DailyReport: ...
