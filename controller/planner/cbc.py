"""Fallback solver: the same LP (same arrays) through PuLP and CBC, used when HiGHS fails.

PuLP is imported on first use: a fall-back that most processes never take should not cost each
of them its ~3 MB (the daemon and its planner worker both carry this module)."""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt

from controller.planner.lp import INF, IntArray, LpData

FloatArray = npt.NDArray[np.float64]


def _bound(v: float) -> float | None:
    return None if abs(v) >= INF else float(v)


def solve_cbc(
    data: LpData, start: IntArray, index: IntArray, value: FloatArray, time_limit_s: float
) -> tuple[FloatArray | None, str]:
    """Solve with CBC; returns the column values (or ``None``) and a status string."""
    with warnings.catch_warnings():  # PuLP 3.3 announces its 4.0 API on every variable
        warnings.simplefilter("ignore", DeprecationWarning)
        return _solve_cbc(data, start, index, value, time_limit_s)


def _solve_cbc(
    data: LpData, start: IntArray, index: IntArray, value: FloatArray, time_limit_s: float
) -> tuple[FloatArray | None, str]:
    import pulp  # the fall-back's own dependency, loaded when it runs

    n_cols = len(data.cost)
    cols = [
        pulp.LpVariable(f"c{j}", lowBound=_bound(data.col_lower[j]), upBound=_bound(data.col_upper[j]))
        for j in range(n_cols)
    ]
    counts = np.diff(start)
    col_of = np.repeat(np.arange(n_cols), counts)
    order = np.argsort(index, kind="stable")
    r_sorted, c_sorted, v_sorted = index[order], col_of[order], value[order]
    bounds = np.searchsorted(r_sorted, np.arange(len(data.row_lower) + 1))
    prob = pulp.LpProblem("depotctl_plan", pulp.LpMinimize)
    nz = np.nonzero(data.cost)[0].tolist()
    prob += pulp.LpAffineExpression([(cols[j], float(data.cost[j])) for j in nz])
    for r in range(len(data.row_lower)):
        lo, up = data.row_lower[r], data.row_upper[r]
        a, b = bounds[r], bounds[r + 1]
        if a == b or (lo <= -INF and up >= INF):
            continue
        expr = pulp.LpAffineExpression(
            [(cols[c], float(v)) for c, v in zip(c_sorted[a:b].tolist(), v_sorted[a:b].tolist(), strict=True)]
        )
        if lo > -INF and up < INF and lo == up:
            prob += expr == float(lo), f"r{r}"
        else:
            if up < INF:
                prob += expr <= float(up), f"u{r}"
            if lo > -INF:
                prob += expr >= float(lo), f"l{r}"
    try:
        prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1.0, time_limit_s)))
    except Exception as exc:  # a missing or crashing CBC binary is a solver failure, not ours
        return None, f"cbc error: {exc}"
    status = pulp.LpStatus.get(prob.status, str(prob.status))
    if prob.status != pulp.LpStatusOptimal:
        return None, f"cbc {status}"
    vals = np.array([c.varValue if c.varValue is not None else 0.0 for c in cols], dtype=np.float64)
    return vals, "Optimal"
