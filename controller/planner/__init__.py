"""The per-cycle planner: a pure function of a Snapshot and the carried PlannerState
(:func:`controller.planner.plan.plan`, :class:`controller.planner.state.PlannerState`).

No asyncio, Modbus or OCPP here; time comes in with the snapshot. This package's ``__init__``
imports nothing: the daemon holds :mod:`controller.planner.worker` and ``.state`` without loading
the solver stack (NumPy, HiGHS) — its planner worker process is the one that solves.
"""
