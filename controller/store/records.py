"""What the history store writes: one frozen dataclass per record kind.

All datetimes must be timezone-aware (naive values are read as UTC); the schema stores them as
unix seconds. Units are in the field names, except where a ``unit`` field says which one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
class AcceptedProfile:
    """A charging profile the charger accepted; after a restart it bounds that charger's draw."""

    charger_id: str
    connector: int
    limit: float
    unit: ProfileUnit
    valid_until: datetime | None  # None: no expiry (e.g. the stack-level-0 fail-safe profile)
    at: datetime  # when it was accepted


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
)


class TransitionLike(Protocol):
    """The shape of ``controller.failsafe.Transition`` (the store may import only the model)."""

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
