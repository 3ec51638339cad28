"""What the history store writes: one frozen dataclass per record kind.

All datetimes must be timezone-aware (naive values are read as UTC); the schema stores them as
unix seconds. Units are in the field names, except where a ``unit`` field says which one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal, Protocol

from controller.model import Plan

AllocationUnit = Literal["A", "kW"]  # as the planner's Limit
ProfileUnit = Literal["A", "W"]  # as OCPP's chargingRateUnit
EventKind = Literal[
    "failsafe_enter",
    "failsafe_exit",
    "reject",  # a charger rejected a profile or a command
    "overload",
    "config_reload",
    "prices_file",  # the prices file (tariff.prices_file) was refused, or read again after a refusal
    "info",
]
FAILSAFE_KINDS: tuple[EventKind, ...] = ("failsafe_enter", "failsafe_exit")


@dataclass(frozen=True)
class ChargerRecord:
    """A charger as configured (upserted by ``charger_id``)."""

    charger_id: str
    circuit_id: str
    kind: str  # "ac" | "dc"
    phases: int
    connectors: int
    max_a: float | None
    max_kw: float | None
    at: datetime  # when this configuration was loaded


@dataclass(frozen=True)
class SessionStart:
    session_id: str
    charger_id: str
    connector: int
    vehicle_id: str | None
    started_at: datetime
    energy_need_kwh: float | None = None  # what the departure asked for, if known


@dataclass(frozen=True)
class SessionStop:
    session_id: str
    charger_id: str
    connector: int
    vehicle_id: str | None
    stopped_at: datetime
    energy_kwh: float  # delivered over the session
    met_departure: bool | None  # None: no departure was set


@dataclass(frozen=True)
class MeterSample:
    meter_id: str
    at: datetime
    current_a: tuple[float, float, float]  # L1, L2, L3
    power_w: float | None = None


@dataclass(frozen=True)
class Allocation:
    """One charger's enforced limit in one plan, and its binding constraint (``source``)."""

    plan_at: datetime
    charger_id: str
    session_id: str | None
    limit: float
    unit: AllocationUnit
    source: str
    solver: str


@dataclass(frozen=True)
class Event:
    at: datetime
    kind: EventKind
    detail: str
    charger_id: str | None = None
    circuit_id: str | None = None


@dataclass(frozen=True)
class Departure:
    """A departure set by the fleet manager (upserted by ``departure_id``).

    One-off: ``departure_at`` set, ``recurring`` None. Recurring: ``recurring`` is the rule as
    entered (e.g. ``"mon,tue,wed 06:30"``, site-local), ``departure_at`` None.
    ``cancelled`` records a withdrawal so that a restart does not bring it back.
    """

    departure_id: str
    vehicle_id: str
    set_at: datetime
    departure_at: datetime | None = None
    recurring: str | None = None
    energy_kwh: float | None = None
    target_soc_pct: float | None = None
    cancelled: bool = False


@dataclass(frozen=True)
class DeclaredDeparture:
    """The departure declared for a running session (upserted by ``session_id``, table
    ``departure_history``): the fleet schedule's, a one-off's, or the EV's own.

    Its actual departure is the session's end: the :class:`SessionStop` of the same session fills
    it in. A later declaration for the same session (changed before it was due) replaces it; one
    for a session already ended is ignored.
    """

    session_id: str
    vehicle_id: str
    declared_at: datetime


FAILSAFE_STACK_LEVEL = 0
UNRECORDED_STACK_LEVEL = 1
"""The stack level of a row written before schema 3: a control profile's (never the fail-safe's 0)."""


@dataclass(frozen=True)
class AcceptedProfile:
    """A charging profile the charger accepted; after a restart it bounds that connector's draw.

    ``connector`` is where the charger holds it (0: every connector). ``limit``/``unit``: the
    first period as sent on the wire. ``planner_limits``: every period's limit in planner units
    (A per phase for AC, kW for DC: what the charger may draw), converted by the sender;
    ``period_starts_s``: each period's start, seconds after ``start`` (the schedule start on our
    clock; None for Relative profiles). ``valid_until``: the expiry on our clock (None: permanent).
    ``kind``: the purpose (``TxProfile``, ``TxDefaultProfile``, ``failsafe``; ``unknown`` for
    rows from before schema 3). The fail-safe is the permanent stack-level-0 profile on connector
    0 (:attr:`is_failsafe`), whatever its ``kind``.
    """

    charger_id: str
    connector: int
    limit: float
    unit: ProfileUnit
    valid_until: datetime | None  # None: no expiry (e.g. the stack-level-0 fail-safe profile)
    at: datetime  # when it was accepted
    planner_limits: tuple[float, ...] = ()
    period_starts_s: tuple[int, ...] = ()
    start: datetime | None = None
    kind: str = "unknown"
    stack_level: int = UNRECORDED_STACK_LEVEL

    @property
    def is_failsafe(self) -> bool:
        return self.connector == 0 and self.stack_level == FAILSAFE_STACK_LEVEL and self.valid_until is None

    @property
    def planner_schedule(self) -> tuple[float, ...] | None:
        """Every period's limit in planner units; None when unknown (a W row without planner limits).

        Without ``planner_limits`` an A profile is its own first limit (A per phase is the planner
        unit for AC); a W profile cannot be converted here (it needs voltage and phases in use).
        """
        if self.planner_limits:
            return self.planner_limits
        return (self.limit,) if self.unit == "A" else None


@dataclass(frozen=True)
class ChargerStatus:
    """A charger's connection and fault state from ``at`` until its next :class:`ChargerStatus`.

    Append-only (table ``charger_status``); the daily report derives availability from it.
    ``connected``: the charger has an open OCPP connection to this controller. ``faulted``: the
    charger as a whole, or any of its connectors, last reported the OCPP status ``Faulted``.
    The daemon writes one on every change of either flag, and ``connected=False`` for every
    configured charger when it starts and when it stops (it cannot be connected while down).
    """

    charger_id: str
    at: datetime
    connected: bool
    faulted: bool


@dataclass(frozen=True)
class DemandWindowRecord:
    """One demand-charge averaging window of grid import (upserted by ``start``, table
    ``demand_windows``): written while it runs (every few seconds) and when it closes, so a restart
    continues it and keeps the billing period's peak. ``covered_s``: the time readings covered
    (less than the window when readings were missing)."""

    start: datetime
    end: datetime
    energy_kwh: float
    covered_s: float
    closed: bool

    @property
    def average_kw(self) -> float | None:
        return None if self.covered_s <= 0 else self.energy_kwh * 3600.0 / self.covered_s


@dataclass(frozen=True)
class DailyEnergy:
    """One site-local day's grid import and its cost (upserted by ``day`` and ``currency``, table
    ``energy_cost_daily``). ``priced_kwh``: the part of the import a price covered (``cost`` is
    for that part; 0: the cost is unknown)."""

    day: date
    currency: str
    import_kwh: float
    priced_kwh: float
    cost: float
    at: datetime  # when these figures were taken


Record = (
    ChargerRecord
    | SessionStart
    | SessionStop
    | MeterSample
    | Allocation
    | Event
    | Departure
    | AcceptedProfile
    | ChargerStatus
    | DeclaredDeparture
    | DemandWindowRecord
    | DailyEnergy
)
RECORD_KINDS: tuple[type[Record], ...] = (
    ChargerRecord,
    SessionStart,
    SessionStop,
    MeterSample,
    Allocation,
    Event,
    Departure,
    AcceptedProfile,
    ChargerStatus,
    DeclaredDeparture,
    DemandWindowRecord,
    DailyEnergy,
)


class TransitionLike(Protocol):
    """The shape of ``controller.rules.failsafe.Transition`` (the store may import only the model)."""

    @property
    def to(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def at(self) -> datetime: ...


def event_from_transition(t: TransitionLike) -> Event:
    """The events-table entry for a fail-safe mode change."""
    kind: EventKind = "failsafe_enter" if t.to == "failsafe" else "failsafe_exit"
    return Event(at=t.at, kind=kind, detail=t.reason)


class PeriodLike(Protocol):
    """The shape of ``controller.chargers.profiles.Period``."""

    @property
    def start_s(self) -> int: ...
    @property
    def limit(self) -> float: ...


class ProfileSpecLike(Protocol):
    """The shape of ``controller.chargers.profiles.ProfileSpec`` (the store may import only the model)."""

    @property
    def connector_id(self) -> int: ...
    @property
    def stack_level(self) -> int: ...
    @property
    def purpose(self) -> str: ...
    @property
    def unit(self) -> ProfileUnit: ...
    @property
    def periods(self) -> Sequence[PeriodLike]: ...
    @property
    def start_schedule(self) -> datetime | None: ...
    @property
    def planner_limits(self) -> tuple[float, ...]: ...
    @property
    def expires_at(self) -> datetime | None: ...


def accepted_profile(
    charger_id: str,
    spec: ProfileSpecLike,
    at: datetime,
    *,
    clock_offset_s: float | None = None,
    valid_until: datetime | None = None,
) -> AcceptedProfile:
    """The record of ``spec`` accepted by ``charger_id`` at ``at``: whole schedule, where it is held.

    ``connector`` is ``spec.connector_id`` (0 when a quirk moved a TxDefault there), not the
    connector the plan meant: the charger applies a connector-0 profile to every connector.
    ``clock_offset_s`` (charger clock − ours) turns a ``start_schedule`` sent on the charger's
    clock into ours. ``valid_until`` (our clock) replaces ``spec.expires_at`` when given: the
    sender's latest time the charger may still hold the profile (e.g. widened for an unmeasured
    clock offset). ``spec.planner_limits`` must already be what the charger may draw per phase
    (for W on AC: sized by the phases in use, 1 when unknown).
    """
    until = spec.expires_at if valid_until is None else valid_until
    failsafe = spec.connector_id == 0 and spec.stack_level == FAILSAFE_STACK_LEVEL and until is None
    start = spec.start_schedule
    if start is not None and clock_offset_s is not None:
        start = start - timedelta(seconds=clock_offset_s)
    return AcceptedProfile(
        charger_id=charger_id,
        connector=spec.connector_id,
        limit=spec.periods[0].limit,
        unit=spec.unit,
        valid_until=until,
        at=at,
        planner_limits=tuple(spec.planner_limits),
        period_starts_s=tuple(p.start_s for p in spec.periods),
        start=start,
        kind="failsafe" if failsafe else spec.purpose,
        stack_level=spec.stack_level,
    )


def allocations_from_plan(plan: Plan) -> list[Allocation]:
    """One :class:`Allocation` per session in ``plan``: its enforced limit and binding constraint."""
    return [
        Allocation(
            plan_at=plan.created_at,
            charger_id=s.charger_id,
            session_id=s.session_id,
            limit=s.limit.value,
            unit=s.limit.unit,
            source=s.limit.source,
            solver=plan.stats.solver,
        )
        for s in plan.sessions
    ]
