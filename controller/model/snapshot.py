"""What the planner sees each cycle (Snapshot) and what it answers (Plan). Stdlib only.

Phases are grid phases 0, 1, 2 (L1, L2, L3) unless a name says otherwise. Currents in A, power in
kW, energy in kWh, times as timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from controller.model.site import Site

PhaseCurrents = tuple[float, float, float]
"""Current [A] on grid phases L1, L2, L3."""

NO_VEHICLE_PRIORITY = 10
"""Priority given to a session whose vehicle is unknown (1 = most important)."""


@dataclass(frozen=True)
class SessionState:
    """One plugged-in vehicle (an OCPP transaction or an occupied connector).

    ``phases_used`` is how many of the charger's own phases the vehicle draws from, counted from
    the charger's first phase (1 = single-phase car, 3 = three-phase car); ``None`` = not known
    yet, so the planner assumes every wired phase. ``energy_need_kwh`` is the *remaining* need;
    ``None`` = unknown (the planner then uses the vehicle's battery size, else as much as it can
    deliver before departure). ``departure_at`` ``None`` = unknown (``control.default_dwell_h``
    after arrival).
    """

    session_id: str
    charger_id: str
    connector: int = 1
    vehicle_id: str | None = None
    arrived_at: datetime | None = None
    departure_at: datetime | None = None
    energy_need_kwh: float | None = None
    priority: int = NO_VEHICLE_PRIORITY
    phases_used: int | None = None
    ev_max_a: float | None = None
    ev_max_kw: float | None = None
    measured_a: PhaseCurrents | None = None
    energy_delivered_kwh: float = 0.0
    soc_pct: float | None = None
    """State of charge now (from the charger's meter values or the vehicle), if known."""
    battery_kwh: float | None = None
    """Usable battery capacity; with ``soc_pct`` the planner expects the charge to taper near full."""
    cap: tuple[tuple[datetime, float], ...] = ()
    """An upper bound from outside depotctl (the operator's CSMS, local-controller mode): steps
    ``(from, limit)`` in the session's unit (A per used phase for AC, kW for DC), each until the
    next; no cap before the first step, none at all when empty. ``inf`` lifts the cap."""


@dataclass(frozen=True)
class ExpectedArrival:
    """EV load the depot expects from vehicles not plugged in yet (learnt from its own history:
    :mod:`controller.energy.arrivals`): vehicles arriving at ``arrive_at`` and leaving at
    ``depart_at`` that take ``energy_kwh`` in all at up to ``max_kw`` together (grid side).
    Expected values: a group of past sessions averaged over the days looked at, so both may be a
    fraction of one vehicle's. Used only for the demand charge (the cost stage's peak)."""

    arrive_at: datetime
    depart_at: datetime
    energy_kwh: float
    max_kw: float


@dataclass(frozen=True)
class Snapshot:
    """Everything one planning cycle needs. Built by the daemon, hand-built in tests.

    ``base_load_a`` maps a node id (``grid`` or a circuit id) to the measured non-EV current on
    L1..L3 at that node (meter current minus measured EV current, a recent maximum is fine).
    Nodes without an entry are assumed to carry no non-EV load beyond what their metered children
    carry. ``next_plan_at`` ``None`` = ``now + control.plan_every_s``.
    """

    site: Site
    now: datetime
    base_load_a: Mapping[str, PhaseCurrents] = field(default_factory=dict)
    sessions: tuple[SessionState, ...] = ()
    next_plan_at: datetime | None = None
    base_load_forecast_a: Mapping[str, tuple[tuple[datetime, PhaseCurrents], ...]] = field(default_factory=dict)
    """Optional day-ahead forecast per node: steps ``(from, A per phase)``, each until the next
    (e.g. the same time yesterday, learnt from history). For the next hour the larger of it and
    the measured base load counts; after that the forecast does. The measured base load is as the
    meters read it (at the grid: net of on-site PV); the forecast is the load *without* PV — the
    limits must allow for a cloud — and the planner's cost stage takes the PV forecast off it."""
    prices: tuple[tuple[datetime, float], ...] = ()
    """Dated energy prices (``tariff.prices_file``): steps ``(from, price per kWh)``, each until the
    next, the last one until the end of its hour; where they cover a slot they win over the site's
    daily ``tariff.energy``."""
    demand_peak_kw: float | None = None
    """The billing period's highest ``tariff.demand.window_min`` average of grid import so far:
    load up to it costs no demand charge (``None``: none recorded yet, 0)."""
    pv_kw: float | None = None
    """PV output measured now (``pv.meter``); ``None`` without PV or without a fresh reading."""
    pv_forecast_kw: tuple[tuple[datetime, float], ...] = ()
    """Day-ahead PV forecast: steps ``(from, kW)``, each until the next. For the current slot the
    planner never counts more than :attr:`pv_kw`."""
    expected_arrivals: tuple[ExpectedArrival, ...] = ()
    """Vehicles the depot expects later in the horizon (its history): the cost stage counts their
    load in the billing peak it plans against, so the vehicles present now are not flattened into
    room the later ones will need. Never a limit, never a departure: only the demand charge."""


LimitUnit = Literal["A", "kW"]


@dataclass(frozen=True)
class Limit:
    """A limit and why it is what it is, e.g. ``Limit(16.0, "circuit feeder-a L2")``."""

    value: float
    source: str
    unit: LimitUnit = "A"


@dataclass(frozen=True)
class SessionPlan:
    """The plan for one session.

    ``limit`` is what to enforce now: A per phase for AC, kW for DC, with the binding constraint
    as its source (``circuit feeder-a L2``, ``grid L1``, ``grid kW``, ``charger max``,
    ``vehicle max``, ``departure met``, ``min current: paused``, ``tariff``, ...).
    ``schedule`` is ``(start, limit)`` per slot over the horizon, in the same unit.
    ``current_a`` is the planned first-slot current per line L1..L3 at the charger's own bus (below
    a transformer: its secondary; the nodes' loads in ``Plan.nodes`` are what each limit sees).
    """

    session_id: str
    charger_id: str
    kind: Literal["ac", "dc"]
    limit: Limit
    schedule: tuple[tuple[datetime, float], ...]
    expected_energy_kwh: float
    energy_need_kwh: float
    departure_at: datetime
    grid_phases: tuple[int, ...]
    current_a: PhaseCurrents
    paused: bool = False

    @property
    def shortfall_kwh(self) -> float:
        return max(0.0, self.energy_need_kwh - self.expected_energy_kwh)

    @property
    def will_meet_departure(self) -> bool:
        return self.shortfall_kwh <= 1e-3 * max(1.0, self.energy_need_kwh)


@dataclass(frozen=True)
class NodeLoad:
    """Planned first-slot load on one node and phase. ``limit_a`` already has the margin taken off."""

    node_id: str
    phase: int
    base_a: float
    ev_a: float
    limit_a: float
    overloaded: bool = False

    @property
    def planned_a(self) -> float:
        return self.base_a + self.ev_a

    @property
    def headroom_a(self) -> float:
        return self.limit_a - self.planned_a


SolverName = Literal["highs", "cbc", "heuristic", "none"]


@dataclass(frozen=True)
class SolveStats:
    status: str
    solver: SolverName
    build_ms: float
    solve_ms: float
    total_ms: float
    variables: int
    constraints: int
    slots: int
    warm: bool = False
    iterations: int = 0
    fallback_reason: str | None = None


@dataclass(frozen=True)
class Plan:
    """The planner's answer for one cycle. Only the first slot is enforced."""

    created_at: datetime
    slot_starts: tuple[datetime, ...]
    horizon_end: datetime
    sessions: tuple[SessionPlan, ...]
    nodes: tuple[NodeLoad, ...]
    stats: SolveStats
    overloads: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def session(self, session_id: str) -> SessionPlan:
        for sp in self.sessions:
            if sp.session_id == session_id:
                return sp
        raise KeyError(session_id)

    def node(self, node_id: str, phase: int) -> NodeLoad:
        for nl in self.nodes:
            if nl.node_id == node_id and nl.phase == phase:
                return nl
        raise KeyError((node_id, phase))
