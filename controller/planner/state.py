"""What the planner carries from one cycle to the next (an explicit object, never a global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the HiGHS model type only: a holder of a state need not load the solver
    from controller.planner.lp import LpModel


@dataclass
class PlannerState:
    """Passed into :func:`controller.planner.plan` and returned, updated, with each plan.

    ``limits``: the first-slot limit enforced last cycle per session (A per phase or kW).
    ``paused_since`` / ``running_since``: when the min-current repair last paused / started a
    session (rotation and hysteresis). ``rotating``: sessions whose first-slot limit came from
    the min-current repair last cycle, with their LP share then (the LP's tie-break target for
    them, rather than the 0 or minimum the repair made of it). ``model``: the live HiGHS model,
    reused while the shape of the problem does not change. Treat a state as consumed once passed
    to ``plan``.
    """

    limits: dict[str, float] = field(default_factory=dict)
    paused_since: dict[str, datetime] = field(default_factory=dict)
    running_since: dict[str, datetime] = field(default_factory=dict)
    rotating: dict[str, float] = field(default_factory=dict)
    model: LpModel | None = None
    last_plan_at: datetime | None = None
