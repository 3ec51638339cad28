"""The daemon's fail-safe state machine (pure): ``normal`` ↔ ``failsafe``, with the reason.

Each control cycle reports what it saw (:class:`CycleHealth`). Any fault sends the site to
``failsafe`` at once — every charger then gets its fail-safe limit; only ``recover_cycles``
consecutive good cycles bring it back to ``normal``. The daemon starts in ``failsafe`` ("starting")
so nothing is controlled on guesses before the first good cycles. The state and its reason are
what ``depotctl status``, the API and the metrics show.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Mode = Literal["normal", "failsafe"]


@dataclass(frozen=True)
class CycleHealth:
    """What one cycle found. ``None`` means "not checked this cycle" (counts as fine)."""

    grid_meter_stale: bool = False
    grid_meter_implausible: bool = False
    planner_failed: bool = False  # the LP and its fallback heuristic both failed
    storage_broken: bool = False  # the fast loop's storage queue is broken (not merely full)
    cycle_failed: bool = False  # the fast cycle raised for longer than a meter may be stale
    plan_stalled: bool = False  # sessions run but no plan was made for several plan periods

    def faults(self) -> list[str]:
        out = []
        if self.cycle_failed:
            out.append("control cycle failing")
        if self.plan_stalled:
            out.append("plan loop stalled")
        if self.grid_meter_stale:
            out.append("grid meter stale")
        if self.grid_meter_implausible:
            out.append("grid meter implausible")
        if self.planner_failed:
            out.append("planner and fallback failed")
        if self.storage_broken:
            out.append("storage broken")
        return out


@dataclass(frozen=True)
class FailsafeState:
    mode: Mode
    reason: str
    since: datetime
    good_cycles: int = 0

    @property
    def active(self) -> bool:
        return self.mode == "failsafe"


@dataclass(frozen=True)
class Transition:
    """A change of mode, for the log, the events table and the metrics."""

    to: Mode
    reason: str
    at: datetime


def starting(now: datetime) -> FailsafeState:
    return FailsafeState("failsafe", "starting", now, 0)


def step(
    state: FailsafeState, health: CycleHealth, now: datetime, recover_cycles: int
) -> tuple[FailsafeState, Transition | None]:
    """The state after one cycle, and the transition if the mode changed."""
    faults = health.faults()
    if faults:
        reason = ", ".join(faults)
        if state.mode == "normal":
            return FailsafeState("failsafe", reason, now, 0), Transition("failsafe", reason, now)
        # stay in fail-safe; the reason follows the present faults, the clock restarts recovery
        return replace(state, reason=reason, good_cycles=0), None
    if state.mode == "normal":
        return state, None
    good = state.good_cycles + 1
    if good >= max(1, recover_cycles):
        why = f"{good} good cycles after: {state.reason}"
        return FailsafeState("normal", "", now, 0), Transition("normal", why, now)
    return replace(state, good_cycles=good), None
