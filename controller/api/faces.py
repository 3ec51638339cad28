"""What the HTTP API needs of the daemon, as narrow faces (the API imports nothing of the daemon).

* the status: a :data:`~controller.api.app.StatusProvider` (a callable answering the
  :class:`~controller.api.models.StatusResponse`);
* the fleet: :class:`FleetFace` — vehicles and their departures, schedules, chargers and
  sessions, the daily report — implemented by the daemon's
  :class:`~controller.daemon.fleet.FleetService`.
* commissioning: :class:`CommissionFace` — start a run on one charger, its reports — implemented
  by the daemon's :class:`~controller.daemon.commission.Commissioning`.

Every method runs in the daemon's event loop and touches memory only; those that read SQLite are
``async`` (they read in a worker thread).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from typing import Any, Literal, Protocol

from controller.api.models import ChargerInfo
from controller.commission.report import Report
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


class CommissionRefused(Exception):
    """A commissioning that cannot start: ``status`` 404 (a charger the site file does not have)
    or 409 (not connected, one already running, the site in fail-safe); ``str()`` is the answer's
    ``detail``."""

    def __init__(self, status: Literal[404, 409], detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class CommissionFace(Protocol):
    """The commissioning routes' view of the daemon."""

    @property
    def site(self) -> Site: ...

    def start(self, charger_id: str, *, connector: int = 1, no_ev: bool = False) -> Report:
        """Start a run (returns its first report, state running); :class:`CommissionRefused` if it
        cannot start."""
        ...

    def latest(self, charger_id: str) -> tuple[Report, list[str]] | None:
        """The charger's latest report (running: the checks so far) and what differs from its
        previous finished one (one line each); None: never commissioned."""
        ...

    async def history(self, charger_id: str, limit: int) -> list[Report]:
        """The charger's reports, newest first (reads SQLite in a worker thread)."""
        ...

    def site_report(self) -> list[Report]:
        """Every commissioned charger's latest report, in site-file order."""
        ...
