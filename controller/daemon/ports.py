"""The ports between the daemon's parts: the values one part hands another, and the narrow faces
through which a part is read.

Each part owns what it writes (see :mod:`controller.daemon.core` for who is who):

* the fast loop (:class:`~controller.daemon.fast.FastLoop`) publishes an :class:`Observation`
  after every cycle — the loads it measured, the base load it holds for the planner, the budgets
  of chargers whose draw it cannot see;
* the plan loop (:class:`~controller.daemon.plan_loop.PlanLoop`) publishes a :class:`PlanOutcome`
  after every plan, and answers :class:`PlanHealth` (is the planner failing, has the loop stalled);
* the dispatcher (:class:`~controller.daemon.dispatch.Dispatcher`) owns the book of what each
  session was sent; others read it through :class:`~controller.daemon.dispatch.SentBook`;
* the fail-safe guard (:class:`~controller.daemon.safety.FailsafeGuard`) owns the fail-safe state,
  read through :class:`FailsafeView`;
* history goes through a :class:`Recorder` (:class:`~controller.daemon.record.StoreRecorder`);
* the bill (:class:`~controller.daemon.bill.Bill`) owns prices, the billing period's peak, the
  cost of import and the PV history: the fast loop tells it what the meters read
  (:class:`EnergyMeter`), the plan loop asks it for the planner's cost inputs (:class:`CostInputs`).

Nothing here imports a part: the parts import this module, the composition root wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from controller.energy.arrivals import Candidates
from controller.model.snapshot import PhaseCurrents, Plan, SessionState
from controller.rules.failsafe import FailsafeState
from controller.store.records import EventKind, Record

Spawn = Callable[[Coroutine[Any, Any, object]], None]
"""Run a coroutine in the background (a shed, a fail-safe push), keeping a reference to it."""

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]


class Recorder(Protocol):
    """History: records queued for the store (never blocking), events stamped with the daemon's clock."""

    def put(self, record: Record) -> None: ...

    def event(
        self, kind: EventKind, detail: str, *, charger_id: str | None = None, circuit_id: str | None = None
    ) -> None: ...


@dataclass(frozen=True)
class Observation:
    """What the fast loop made of its last cycle (empty before the first).

    ``loads_a``: per node, the current it is measured to carry (where known: a meter, or the
    chargers below it), as its limit sees it; ``base_a``: per node, the load that is not EV
    charging now (NaN where the node's meter has no reading); ``held_a``: the base load held over
    the hold window (what the planner is given, :class:`~controller.rules.loads.BaseHold`);
    ``budgets_a``: per charger whose draw is not planned (out of contact, uncontrolled), its
    worst case; ``grid_a`` / ``grid_power_w``: the grid meter's reading, None when it has none.
    """

    loads_a: Mapping[str, PhaseCurrents] = field(default_factory=dict)
    base_a: Mapping[str, PhaseCurrents] = field(default_factory=dict)
    held_a: Mapping[str, PhaseCurrents] = field(default_factory=dict)
    budgets_a: Mapping[str, PhaseCurrents] = field(default_factory=dict)
    grid_a: PhaseCurrents | None = None
    grid_power_w: float | None = None


class EnergyMeter(Protocol):
    """What the fast loop tells the bill each cycle: the grid meter's and the PV meter's active
    power [W] (import positive; None: no usable reading this cycle, or no such meter)."""

    def metered(self, now: datetime, grid_power_w: float | None, pv_power_w: float | None) -> None: ...


@dataclass(frozen=True)
class CostInputs:
    """What the bill gives the planner each cycle: the fields of the same names of
    :class:`~controller.model.snapshot.Snapshot` (read their docstrings)."""

    prices: tuple[tuple[datetime, float], ...] = ()
    demand_peak_kw: float | None = None
    pv_kw: float | None = None
    pv_forecast_kw: tuple[tuple[datetime, float], ...] = ()
    arrivals: Candidates | None = None
    """The arrival forecast's history, for one site-local day (demand charge + ``plan_cost``)."""


@dataclass(frozen=True)
class PlanOutcome:
    """The plan loop's last plan and the sessions it was made for (``failed``: nothing usable)."""

    plan: Plan
    sessions: tuple[SessionState, ...]
    failed: bool = False


class PlanHealth(Protocol):
    """What the fast loop (fail-safe) and the watchdog ask of the plan loop."""

    @property
    def planner_failed(self) -> bool: ...

    def stalled(self, t_s: float) -> bool:
        """Sessions run, but no plan was finished for too long (monotonic ``t_s``)."""
        ...


class PlanResults(Protocol):
    """The plan loop's last outcome, for the status and the fleet's readiness."""

    @property
    def outcome(self) -> PlanOutcome | None: ...


class FailsafeView(Protocol):
    """The fail-safe state in force (read-only)."""

    @property
    def state(self) -> FailsafeState: ...
