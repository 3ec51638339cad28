"""The per-cycle planner: a pure function of a Snapshot and the carried PlannerState.

No asyncio, Modbus or OCPP here; time comes in with the snapshot.
"""

from controller.planner.plan import DEFAULT_SOLVERS, plan
from controller.planner.state import PlannerState

__all__ = ["DEFAULT_SOLVERS", "PlannerState", "plan"]
