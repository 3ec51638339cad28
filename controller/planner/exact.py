"""Exact min-current planning for small sites: the same LP with semi-continuous AC columns, as a
HiGHS MIP (each AC current 0 or within [min, max]). Used only when the LP + repair lost energy
that a continuous plan had, and only while the model is small enough to solve within a cycle.
"""

from __future__ import annotations

import time

import highspy
import numpy as np
import numpy.typing as npt

from controller.planner.highs import new_highs
from controller.planner.instance import Instance
from controller.planner.lp import INF, LpData, matrix

FloatArray = npt.NDArray[np.float64]
MAX_SEMI_CONTINUOUS = 600  # AC session-slots; above this the MIP is not tried
TIME_LIMIT_S = 1.0


def solve_semi_continuous(inst: Instance, data: LpData, first_slot: FloatArray, time_limit_s: float) -> tuple[
    FloatArray | None, float
]:
    """Schedule (n, t) with slot 0 fixed to ``first_slot``, or None (no solution in time)."""
    lay = data.layout
    n, t = lay.n, lay.t
    t0 = time.perf_counter()
    mins, is_ac = inst.min_unit, inst.is_ac
    x_up = data.col_upper[: lay.n_x].reshape(n, t).copy()
    semi = is_ac[:, None] & (mins[:, None] > 0) & (x_up >= mins[:, None])
    semi[:, 0] = False
    if semi.sum() == 0 or semi.sum() > MAX_SEMI_CONTINUOUS:
        return None, 0.0
    lower = data.col_lower.copy()
    upper = data.col_upper.copy()
    x_lo = np.where(semi, mins[:, None], 0.0)
    x_up = np.where(is_ac[:, None] & (mins[:, None] > 0) & ~semi, 0.0, x_up)  # max below min: off
    x_lo[:, 0] = first_slot
    x_up[:, 0] = first_slot
    lower[: lay.n_x] = x_lo.ravel()
    upper[: lay.n_x] = x_up.ravel()
    row_upper = data.row_upper.copy()
    row_upper[lay.energy_row0 : lay.energy_row0 + n] = INF  # a minimum may overshoot the need
    start, index, value = matrix(inst, data)
    h = new_highs(max(0.05, min(time_limit_s, TIME_LIMIT_S)))
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("mip_rel_gap", 1e-4)
    lp = highspy.HighsLp()
    lp.num_col_ = lay.n_cols
    lp.num_row_ = lay.n_rows
    lp.col_cost_ = data.cost
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = data.row_lower
    lp.row_upper_ = row_upper
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = lay.n_cols
    lp.a_matrix_.num_row_ = lay.n_rows
    lp.a_matrix_.start_ = start.astype(np.int32)
    lp.a_matrix_.index_ = index.astype(np.int32)
    lp.a_matrix_.value_ = value
    integrality = np.zeros(lay.n_cols, dtype=np.uint8)
    integrality[: lay.n_x] = np.where(semi.ravel(), int(highspy.HighsVarType.kSemiContinuous), 0)
    lp.integrality_ = [highspy.HighsVarType(int(v)) for v in integrality]
    try:
        h.passModel(lp)
        h.run()
        info = h.getInfo()
        if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
            return None, (time.perf_counter() - t0) * 1e3
        vals = np.asarray(h.getSolution().col_value, dtype=np.float64)
    except Exception:  # an exact attempt that fails changes nothing
        return None, (time.perf_counter() - t0) * 1e3
    return vals[: lay.n_x].reshape(n, t), (time.perf_counter() - t0) * 1e3
