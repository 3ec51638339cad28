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
)
"""The CSV header. Cells that do not apply to a row's section are empty; missing data is ``unknown``."""

# decimals, by unit
_KWH, _AMPS, _HOURS, _RATIO = 3, 2, 3, 4
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
        return out.getvalue()


# --- formatting -----------------------------------------------------------------------------------


def _opt_round(x: float | None, decimals: int) -> float | None:
    return None if x is None else round(x, decimals)


def _fmt(x: float | None, decimals: int, missing: str = "") -> str:
    return missing if x is None else f"{x:.{decimals}f}"


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat(timespec="seconds")
