"""Request and response models of the fleet API (vehicles, departures, schedules, sessions, reports).

Same conventions as :mod:`controller.api.models`: units in the field names, ``None`` = not known,
every timestamp with its UTC offset (site-local time in answers). Requests refuse unknown fields
and non-finite numbers; answers may gain fields (clients ignore what they do not know).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="ignore")


# --- errors ----------------------------------------------------------------------------------------


class ProblemInfo(_Out):
    """One reason a request was refused."""

    field: str = Field(description="The input at fault: 'energy_kwh', 'schedules[2].days', 'line 7: days', 'date' …")
    reason: str = Field(description="What is wrong with it, for a human.")


class ProblemsResponse(_Out):
    """Body of a 422 answer: every problem found (the change was not applied, not even in part)."""

    detail: list[ProblemInfo]


# --- departures --------------------------------------------------------------------------------------


class DepartureIn(_In):
    """``PUT /vehicles/{id}/departure``: a one-off departure. Give ``energy_kwh`` or ``target_soc_pct``."""

    at: str = Field(
        description="When the vehicle leaves: ISO 8601 date and time, site-local ('2024-11-27T05:30') or with "
        "a UTC offset ('2024-11-27T05:30+01:00'). After now and at most 7 days ahead.",
        examples=["2024-11-27T05:30"],
    )
    energy_kwh: float | None = Field(None, description="Energy needed by then [kWh]: above 0, at most the battery.")
    target_soc_pct: float | None = Field(None, description="State of charge wanted by then [%] (needs battery_kwh).")
    priority: int | None = Field(None, description="1 (served first) … 9 (last); default: the vehicle's own.")


class OneOffInfo(_Out):
    """A one-off departure set through the API."""

    at: AwareDatetime = Field(description="Departure time, site-local with its UTC offset.")
    energy_kwh: float | None = Field(description="Energy needed [kWh]; None when a target SoC is given.")
    target_soc_pct: float | None = Field(description="State of charge wanted [%]; None when energy is given.")
    priority: int | None = Field(description="Priority 1 … 9; None: the vehicle's own.")


class DepartureInfo(_Out):
    """A vehicle's next departure, whichever rule it comes from."""

    at: AwareDatetime = Field(description="Departure time, site-local with its UTC offset.")
    rule: str = Field(description="The rule as site-local text, e.g. 'mon–fri 06:30' or 'one-off 2024-11-27 05:30'.")
    source: Literal["schedule", "one-off"] = Field(
        description="'schedule': the site file or a run-time schedule; 'one-off': set through the API."
    )
    energy_kwh: float | None = Field(description="Energy the rule asks for [kWh].")
    target_soc_pct: float | None = Field(description="State of charge the rule asks for [%].")
    priority: int | None = Field(description="Priority the rule sets; None: the vehicle's own.")


class VehicleInfo(_Out):
    """A vehicle, its next departure and whether the current plan gets it ready in time."""

    id: str = Field(description="Vehicle id from the site file.")
    tenant: str | None = Field(description="Operator owning the vehicle; None on a single-tenant depot.")
    battery_kwh: float | None = Field(description="Usable battery capacity [kWh]; None if not configured.")
    priority: int = Field(description="The vehicle's own priority, 1 (served first) … 9.")
    departure: DepartureInfo | None = Field(description="The next departure; None: none within the rules.")
    need_kwh: float | None = Field(
        description="Energy still to deliver before the departure [kWh]; None if unknown (e.g. a SoC target "
        "without a SoC reading)."
    )
    charger_id: str | None = Field(description="Charger the vehicle is plugged in at; None if not plugged in.")
    session_id: str | None = Field(description="Its running session; None if not plugged in.")
    delivered_kwh: float | None = Field(description="Energy delivered in the running session [kWh].")
    expected_kwh: float | None = Field(description="Energy the current plan delivers by the departure [kWh].")
    will_be_ready: bool | None = Field(
        description="True if the plan meets the need by the departure, False if not (at risk); None without a "
        "departure, when not plugged in, or before the first plan."
    )
    one_offs: list[OneOffInfo] = Field(description="Upcoming one-off departures set through the API, by time.")


class DepartureSet(_Out):
    """Answer to ``PUT /vehicles/{id}/departure``."""

    vehicle: str
    timezone: str = Field(description="The site's IANA time zone.")
    one_off: OneOffInfo = Field(description="The one-off departure as stored.")
    next_departure: DepartureInfo | None = Field(
        description="The vehicle's next departure now (an earlier rule may come first)."
    )


class DepartureCleared(_Out):
    """Answer to ``DELETE /vehicles/{id}/departure``."""

    vehicle: str
    removed: bool = Field(description="Whether there was an upcoming one-off to remove.")
    next_departure: DepartureInfo | None = Field(description="The vehicle's next departure now (from schedules).")


# --- schedules ---------------------------------------------------------------------------------------


class ScheduleIn(_In):
    """One recurring departure in ``PUT /schedules``."""

    id: str | None = Field(None, description="Entry id; default '<vehicle>#<n>' (n counts the vehicle's entries).")
    vehicle: str = Field(description="Vehicle id.")
    days: str = Field(description="Weekdays: 'mon-fri', 'mon,wed,fri', 'daily', 'sat-sun', 'weekdays' …")
    at: str = Field(description="Departure time, site-local 24-hour clock 'HH:MM'.")
    energy_kwh: float | None = Field(None, description="Energy needed [kWh] (or target_soc_pct).")
    target_soc_pct: float | None = Field(None, description="State of charge wanted [%] (or energy_kwh).")
    priority: int | None = Field(None, description="1 (served first) … 9; default: the vehicle's own.")


class ScheduleInfo(_Out):
    """A recurring departure set at run time (the site file's own ``schedules:`` are not listed)."""

    id: str
    vehicle: str
    days: str = Field(description="Weekdays as text, e.g. 'mon-fri'.")
    at: str = Field(description="Site-local time 'HH:MM'.")
    energy_kwh: float | None
    target_soc_pct: float | None
    priority: int | None


class SchedulesDeleted(_Out):
    """Answer to ``DELETE /schedules``."""

    removed: int = Field(ge=0, description="How many run-time schedules were removed.")


# --- chargers and sessions ---------------------------------------------------------------------------


class AssignIn(_In):
    """``PUT /chargers/{id}/vehicle``: which vehicle is plugged in at the charger."""

    vehicle: str = Field(description="Vehicle id.")


class AssignInfo(_Out):
    """Answer to ``PUT /chargers/{id}/vehicle``."""

    charger_id: str
    vehicle: str
    session_id: str | None = Field(description="The running session that took the vehicle; None if none runs.")


class SessionRecord(_Out):
    """A charging session: running (live values) or from the last 7 days of history."""

    session_id: str
    charger_id: str
    connector: int = Field(ge=0)
    vehicle_id: str | None = Field(description="The vehicle; None if unknown.")
    active: bool = Field(description="True while the session runs.")
    started_at: AwareDatetime | None = Field(description="When it started; None if not recorded.")
    stopped_at: AwareDatetime | None = Field(description="When it stopped; None while it runs.")
    delivered_kwh: float | None = Field(description="Energy delivered [kWh] (so far, for a running session).")
    energy_need_kwh: float | None = Field(description="Energy the departure asked for [kWh]; None without one.")
    departure_at: AwareDatetime | None = Field(description="Departure of a running session; None if none.")
    expected_kwh: float | None = Field(description="Running: what the plan delivers by the departure [kWh].")
    will_meet_departure: bool | None = Field(
        description="Running: whether the plan meets the departure; stopped: whether it was met. None: no departure."
    )
    soc_pct: float | None = Field(description="Running: state of charge reported by the vehicle [%].")


# --- reports ---------------------------------------------------------------------------------------------


class VehicleDayInfo(_Out):
    vehicle_id: str = Field(description="Vehicle id, or '(unknown)' for sessions without a vehicle.")
    sessions: int
    sessions_open: int
    energy_delivered_kwh: float = Field(description="Energy delivered within the day [kWh] (time-proportional).")
    energy_requested_kwh: float = Field(description="Energy asked for by sessions that stopped this day [kWh].")
    energy_delivered_for_departures_kwh: float = Field(description="What those sessions delivered in all [kWh].")
    departures_met: int
    departures_missed: int


class PhasePeakInfo(_Out):
    phase: Literal["L1", "L2", "L3"]
    meter_id: str
    peak_a: float | None = Field(description="Highest grid current on the phase [A]; None without readings.")
    at: AwareDatetime | None = Field(description="When the peak first occurred.")


class ChargerDayInfo(_Out):
    charger_id: str
    availability: float | None = Field(description="Share of the day connected and not faulted, 0..1; None: no data.")
    available_h: float
    faulted_h: float
    disconnected_h: float
    unknown_h: float
    sessions_plugged: int
    sessions_successful: int
    success_rate: float | None = Field(description="Sessions that delivered energy / sessions plugged in, 0..1.")


class DailyReportInfo(_Out):
    """``GET /reports/daily``: one site-local day (23 h or 25 h on DST days)."""

    date: str = Field(description="The site-local day, YYYY-MM-DD.")
    timezone: str
    start: AwareDatetime
    end: AwareDatetime
    hours: float
    covered_until: AwareDatetime = Field(description="End of the day, or now if the day is not over.")
    grid_meter: str | None
    vehicles: list[VehicleDayInfo]
    site_peak: list[PhasePeakInfo] = Field(description="Per phase; empty without a grid meter.")
    chargers: list[ChargerDayInfo]
