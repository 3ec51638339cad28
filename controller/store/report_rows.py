"""The daily report's rows and how they are written (JSON, CSV); :mod:`controller.store.report`
reads them from the history database (the definitions of every figure are there).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.store.sink import to_unix

UNKNOWN_VEHICLE = "(unknown)"
"""The vehicle key for sessions without a vehicle."""
SUCCESS_MIN_KWH = 0.05
"""A session succeeded when it delivered more than this [kWh]."""
PHASES = ("L1", "L2", "L3")

CSV_COLUMNS: tuple[str, ...] = (
    "section",  # vehicle | site_peak | charger
    "date",  # the site-local day, YYYY-MM-DD
    "vehicle_id",  # vehicle rows
    "sessions",
    "sessions_open",
    "energy_delivered_kwh",
    "energy_requested_kwh",
    "energy_delivered_for_departures_kwh",
    "departures_met",
    "departures_missed",
    "phase",  # site_peak rows: L1 | L2 | L3
    "meter_id",
    "peak_a",
    "peak_at",  # ISO 8601, site-local with UTC offset
    "charger_id",  # charger rows
    "availability",  # 0..1, or "unknown"
    "available_h",
    "faulted_h",
    "disconnected_h",
    "unknown_h",
    "sessions_plugged",
    "sessions_successful",
    "success_rate",  # 0..1, empty without sessions
    "currency",  # energy rows: the tariff's currency
    "import_kwh",  # energy rows: grid import over the day
    "priced_kwh",  # energy rows: the part of it a price covered
    "cost",  # energy rows: its cost, in ``currency`` ("unknown" when nothing was priced)
    "peak_kw",  # demand row: the day's highest demand-window average of grid import (peak_at: its start)
    "coverage",  # demand row: the share of that window its readings covered, 0..1
    "windows",  # demand row: windows that started this day
    "windows_partial",  # demand row: of those, windows with missing readings
)
"""The CSV header. Cells that do not apply to a row's section are empty; missing data is ``unknown``.
Sections: ``vehicle``, ``site_peak``, ``charger``, ``energy`` (one per currency), ``demand``."""

PARTIAL_BELOW = 0.98
"""A demand window whose readings cover less than this share of it is partial (as
:data:`controller.energy.demand.FULL_COVERAGE`)."""

# decimals, by unit
_KWH, _AMPS, _HOURS, _RATIO, _KW, _MONEY = 3, 2, 3, 4, 3, 4
_UNKNOWN = "unknown"


@dataclass(frozen=True)
class VehicleDay:
    """One vehicle's day; see the module docstring for what counts where."""

    vehicle_id: str  # or :data:`UNKNOWN_VEHICLE`
    sessions: int
    sessions_open: int
    energy_delivered_kwh: float  # [kWh], time-proportional share of each session
    energy_requested_kwh: float  # [kWh], sessions stopped this day with an energy need
    energy_delivered_for_departures_kwh: float  # [kWh], the same sessions' whole energy
    departures_met: int
    departures_missed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "vehicle_id": self.vehicle_id,
            "sessions": self.sessions,
            "sessions_open": self.sessions_open,
            "energy_delivered_kwh": round(self.energy_delivered_kwh, _KWH),
            "energy_requested_kwh": round(self.energy_requested_kwh, _KWH),
            "energy_delivered_for_departures_kwh": round(self.energy_delivered_for_departures_kwh, _KWH),
            "departures_met": self.departures_met,
            "departures_missed": self.departures_missed,
        }


@dataclass(frozen=True)
class PhasePeak:
    """The grid meter's highest current on one phase within the day."""

    phase: str  # L1 | L2 | L3
    meter_id: str
    peak_a: float | None  # [A]; None: no readings that day
    at: datetime | None  # first time the peak occurred, site-local

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "meter_id": self.meter_id,
            "peak_a": None if self.peak_a is None else round(self.peak_a, _AMPS),
            "at": _iso(self.at),
        }


@dataclass(frozen=True)
class ChargerDay:
    """One charger's day: time in each connection state [s] and session outcomes."""

    charger_id: str
    available_s: float  # connected and not faulted
    faulted_s: float  # connected and faulted
    disconnected_s: float
    unknown_s: float  # before the charger's first-ever status
    has_status: bool  # False: no status at or before the end of the day
    sessions_plugged: int  # sessions stopped this day
    sessions_successful: int  # of those, more than SUCCESS_MIN_KWH delivered

    @property
    def availability(self) -> float | None:
        """Share of the (elapsed) day connected and not faulted, 0..1; None without status data."""
        total = self.available_s + self.faulted_s + self.disconnected_s + self.unknown_s
        if not self.has_status or total <= 0:
            return None
        return self.available_s / total

    @property
    def success_rate(self) -> float | None:
        """Successful / plugged sessions, 0..1; None without sessions."""
        if self.sessions_plugged == 0:
            return None
        return self.sessions_successful / self.sessions_plugged

    def to_dict(self) -> dict[str, Any]:
        return {
            "charger_id": self.charger_id,
            "availability": _opt_round(self.availability, _RATIO),
            "available_h": round(self.available_s / 3600, _HOURS),
            "faulted_h": round(self.faulted_s / 3600, _HOURS),
            "disconnected_h": round(self.disconnected_s / 3600, _HOURS),
            "unknown_h": round(self.unknown_s / 3600, _HOURS),
            "sessions_plugged": self.sessions_plugged,
            "sessions_successful": self.sessions_successful,
            "success_rate": _opt_round(self.success_rate, _RATIO),
        }


@dataclass(frozen=True)
class EnergyDay:
    """The day's grid import and its cost in one currency (table ``energy_cost_daily``)."""

    currency: str
    import_kwh: float  # [kWh]
    priced_kwh: float  # [kWh] the part of it a price covered
    cost: float | None  # in ``currency``; None when nothing was priced (unknown, not 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "import_kwh": round(self.import_kwh, _KWH),
            "priced_kwh": round(self.priced_kwh, _KWH),
            "cost": _opt_round(self.cost, _MONEY),
        }


@dataclass(frozen=True)
class DemandDay:
    """The demand charge's windows that started in the day (table ``demand_windows``)."""

    windows: int
    windows_partial: int  # with missing readings (coverage below :data:`PARTIAL_BELOW`)
    peak_kw: float | None  # the highest window average of grid import [kW]; None: no window
    peak_at: datetime | None  # that window's start, site-local
    peak_coverage: float | None  # the share of that window its readings covered, 0..1

    def to_dict(self) -> dict[str, Any]:
        return {
            "windows": self.windows,
            "windows_partial": self.windows_partial,
            "peak_kw": _opt_round(self.peak_kw, _KW),
            "peak_at": _iso(self.peak_at),
            "peak_coverage": _opt_round(self.peak_coverage, _RATIO),
        }


@dataclass(frozen=True)
class DailyReport:
    """The report for one site-local day (see the module docstring)."""

    day: date
    tz: ZoneInfo
    start: datetime  # the day's 00:00, site-local
    end: datetime  # the next day's 00:00, site-local
    covered_until: datetime  # ``end``, or ``now`` if the day is not over (availability stops there)
    grid_meter: str | None
    vehicles: tuple[VehicleDay, ...]  # by vehicle id, ``(unknown)`` last
    site_peak: tuple[PhasePeak, ...]  # L1, L2, L3; empty without a grid meter
    chargers: tuple[ChargerDay, ...]  # by charger id
    energy: tuple[EnergyDay, ...] = ()  # by currency; empty before the bill was recorded
    demand: DemandDay | None = None  # None: no demand windows recorded (no grid meter, older database)

    @property
    def hours(self) -> float:
        """Length of the day [h]: 24, or 23 / 25 on DST days."""
        return (to_unix(self.end) - to_unix(self.start)) / 3600

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers rounded (kWh 3, A 2, h 3, ratios 4 decimals), times ISO 8601 local."""
        return {
            "date": self.day.isoformat(),
            "timezone": self.tz.key,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "hours": round(self.hours, _HOURS),
            "covered_until": _iso(self.covered_until),
            "grid_meter": self.grid_meter,
            "vehicles": [v.to_dict() for v in self.vehicles],
            "site_peak": [p.to_dict() for p in self.site_peak],
            "chargers": [c.to_dict() for c in self.chargers],
            "energy": [e.to_dict() for e in self.energy],
            "demand": self.demand.to_dict() if self.demand is not None else None,
        }

    def to_csv(self) -> str:
        """One CSV (RFC 4180, CRLF line ends) with the header :data:`CSV_COLUMNS` and one row per
        vehicle, phase and charger, told apart by ``section``."""
        out = io.StringIO()
        w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, restval="")
        w.writeheader()
        day = self.day.isoformat()
        for v in self.vehicles:
            w.writerow(
                {
                    "section": "vehicle",
                    "date": day,
                    "vehicle_id": v.vehicle_id,
                    "sessions": v.sessions,
                    "sessions_open": v.sessions_open,
                    "energy_delivered_kwh": _fmt(v.energy_delivered_kwh, _KWH),
                    "energy_requested_kwh": _fmt(v.energy_requested_kwh, _KWH),
                    "energy_delivered_for_departures_kwh": _fmt(v.energy_delivered_for_departures_kwh, _KWH),
                    "departures_met": v.departures_met,
                    "departures_missed": v.departures_missed,
                }
            )
        for p in self.site_peak:
            w.writerow(
                {
                    "section": "site_peak",
                    "date": day,
                    "phase": p.phase,
                    "meter_id": p.meter_id,
                    "peak_a": _fmt(p.peak_a, _AMPS, _UNKNOWN),
                    "peak_at": _iso(p.at) or _UNKNOWN,
                }
            )
        for c in self.chargers:
            w.writerow(
                {
                    "section": "charger",
                    "date": day,
                    "charger_id": c.charger_id,
                    "availability": _fmt(c.availability, _RATIO, _UNKNOWN),
                    "available_h": _fmt(c.available_s / 3600, _HOURS),
                    "faulted_h": _fmt(c.faulted_s / 3600, _HOURS),
                    "disconnected_h": _fmt(c.disconnected_s / 3600, _HOURS),
                    "unknown_h": _fmt(c.unknown_s / 3600, _HOURS),
                    "sessions_plugged": c.sessions_plugged,
                    "sessions_successful": c.sessions_successful,
                    "success_rate": _fmt(c.success_rate, _RATIO, ""),
                }
            )
        for e in self.energy:
            w.writerow(
                {
                    "section": "energy",
                    "date": day,
                    "currency": e.currency,
                    "import_kwh": _fmt(e.import_kwh, _KWH),
                    "priced_kwh": _fmt(e.priced_kwh, _KWH),
                    "cost": _fmt(e.cost, _MONEY, _UNKNOWN),
                }
            )
        if self.demand is not None:
            d = self.demand
            w.writerow(
                {
                    "section": "demand",
                    "date": day,
                    "peak_kw": _fmt(d.peak_kw, _KW, _UNKNOWN),
                    "peak_at": _iso(d.peak_at) or _UNKNOWN,
                    "coverage": _fmt(d.peak_coverage, _RATIO, _UNKNOWN),
                    "windows": d.windows,
                    "windows_partial": d.windows_partial,
                }
            )
        return out.getvalue()


# --- formatting -----------------------------------------------------------------------------------


def _opt_round(x: float | None, decimals: int) -> float | None:
    return None if x is None else round(x, decimals)


def _fmt(x: float | None, decimals: int, missing: str = "") -> str:
    return missing if x is None else f"{x:.{decimals}f}"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds")
