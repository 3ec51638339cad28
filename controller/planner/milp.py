"""The most departures one planning cycle's LP model can meet: a MILP yardstick for stage 1.

Stage 1 of departures first (``when_short: complete``) chooses the met set with a fractional
knapsack LP. :func:`max_met` answers how many departures the *same* model could meet at most:
the same arrays (:func:`~controller.planner.lp.lp_data`, :func:`~controller.planner.lp.matrix`)
plus one binary ``y[s]`` per session with a need, and one row per such session

    sum_k u[s, k] + (need_s - r_s) * y_s <= need_s,    r_s = ROW_TOL_SHARE * MET_TOL * max(1, need_s)

so ``y_s = 1`` forces the shortfall (``sum_k u``, by the energy row) to at most ``r_s``: just inside
the rule stage 1 counts a session met by (shortfall <= ``MET_TOL * max(1, need)``,
:func:`~controller.planner.lp.energy_stage`), so both count the same thing. The 1 % margin is
there because the energy term pushes a met session's shortfall right up to its tolerance: with
``r_s`` at the full tolerance, rounding put some of them 1e-19 kWh beyond it. The margin,
1e-6 x max(1, need), is ten times HiGHS's primal feasibility tolerance (1e-7), and
``mip_feasibility_tolerance`` is 1e-7, so every ``y = 1`` is met by stage 1's own rule; the met
set reported is recounted from the schedule with that rule. The knapsack's answer is the hint
(its met sessions at a vertex are short by ~0, well inside ``r_s``); where a hint session sits in
the last 1 % of its tolerance its y is 0 in the hint, and the answer falls back to the hint itself
if the MILP ends lexicographically below it.

Objective, in order: (1) priority classes lexicographically — one departure of a better class beats
any number of the next's. This is guaranteed by solving per class, best first (classes ordered by
:func:`~controller.planner.lp.priority_weights`; its magnitudes, 30x per rank, are *not* used, as
30 would not outweigh 31 departures of the next class): stage c maximises class c's count with a
row holding every better class at the count it reached; (2) within each stage, energy: the LP's
own shortfall costs, scaled so their largest possible total is ``ENERGY_SPAN`` (< 1/2 of one
departure). With that scaling an absolute MIP gap below ``1 - ENERGY_SPAN`` proves the count, so
HiGHS is stopped at ``mip_abs_gap`` = 0.5 — the count is proven, the energy term only improved.

Pure: no I/O, no clock besides measuring its own time; HiGHS time-limited over all stages.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from controller.planner.highs import new_highs
from controller.planner.instance import Instance
from controller.planner.lp import INF, SEGMENTS, LpData, matrix, met_mask, met_tolerance, priority_weights

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ENERGY_SPAN = 0.25  # the energy term's largest total, in departures (must stay below 1/2)
ABS_GAP = 0.5  # with ENERGY_SPAN 0.25, any gap below 0.75 proves the count
NEED_MIN_KWH = 1e-9  # sessions needing less have no binary (stage 1's rule)
MIP_FEAS_TOL = 1e-7
ROW_TOL_SHARE = 0.99  # the met rows' tolerance, as a share of stage 1's (see above)


@dataclass(frozen=True)
class MetAnswer:
    met: BoolArray  # per session: met within the LP's model (shortfall <= MET_TOL * max(1, need))
    count: int
    proven: bool  # the count is the maximum (lexicographically over classes), proven by HiGHS
    status: str  # HiGHS's model status of the last stage run (or why none ran)
    solve_ms: float
    mip_gap: float  # largest absolute gap of the stages, in departures (0 when every stage closed)
    per_class: tuple[int, ...] = ()  # met per priority class, best class first
    bound: int | None = None  # the proven upper bound on the total count when not proven (else count)
    hint_count: int | None = None  # the hint's count (the knapsack's), when one was given
    x: FloatArray | None = None  # (n, t) the schedule found


def met_of(data: LpData, x: FloatArray) -> BoolArray:
    """Which sessions the schedule ``x`` meets within the LP's model (stage 1's rule)."""
    lay = data.layout
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    short = np.maximum(need - (data.kwh * x).sum(axis=1), 0.0)
    return met_mask(need, short)


def class_order(inst: Instance, data: LpData) -> list[int]:
    """The layout's priority classes, best (largest :func:`priority_weights`) first."""
    lay = data.layout
    w = priority_weights(list(inst.priorities))
    best = {c: 0.0 for c in range(lay.n_classes)}
    for s, c in enumerate(lay.classes):
        best[c] = max(best[c], float(w[s]))
    return sorted(best, key=lambda c: (-best[c], c))


def _model(inst: Instance, data: LpData, judged: npt.NDArray[np.int64], u_cost: FloatArray) -> Any:
    """The LP's arrays plus a binary per judged session and its met row; no objective on y yet."""
    lay = data.layout
    n_lp, m_lp = lay.n_cols, lay.n_rows
    k = len(judged)
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    tol = ROW_TOL_SHARE * met_tolerance(need)
    start, index, value = matrix(inst, data)
    # y columns: one entry each, in its own met row (rows after the LP's)
    start_all = np.concatenate([start, start[-1] + np.arange(1, k + 1, dtype=np.int64)])
    index_all = np.concatenate([index, m_lp + np.arange(k, dtype=np.int64)])
    value_all = np.concatenate([value, need[judged] - tol[judged]])
    # the u columns' entries in the met rows: u[s, k] sits at column n_x + s*SEGMENTS + k; append
    # as rows (addRows) to keep the column-wise arrays simple
    cost = np.zeros(n_lp + k)
    u0 = lay.n_x
    cost[u0 : u0 + lay.n * SEGMENTS] = u_cost
    lp = highspy.HighsLp()
    lp.num_col_ = n_lp + k
    lp.num_row_ = m_lp + k
    lp.col_cost_ = cost
    lp.col_lower_ = np.concatenate([data.col_lower, np.zeros(k)])
    lp.col_upper_ = np.concatenate([data.col_upper, np.ones(k)])
    lp.row_lower_ = np.concatenate([data.row_lower, np.full(k, -INF)])
    lp.row_upper_ = np.concatenate([data.row_upper, need[judged]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_lp + k
    lp.a_matrix_.num_row_ = m_lp + k
    # u entries in met rows: rebuild those k*SEGMENTS columns' entries with one more row each
    start_f, index_f, value_f = _with_met_rows(start_all, index_all, value_all, lay.n_x, judged, m_lp)
    lp.a_matrix_.start_ = start_f.astype(np.int32)
    lp.a_matrix_.index_ = index_f.astype(np.int32)
    lp.a_matrix_.value_ = value_f
    lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_lp + [highspy.HighsVarType.kInteger] * k
    return lp


def _with_met_rows(
    start: npt.NDArray[np.int64], index: npt.NDArray[np.int64], value: FloatArray, u0: int,
    judged: npt.NDArray[np.int64], row0: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], FloatArray]:
    """Add entry (met row of s, u[s, k]) = 1 to every u column of a judged session; the met rows
    come after every LP row, so appending at the column's end keeps row indices ascending."""
    n_cols = len(start) - 1
    extra = np.zeros(n_cols, dtype=np.int64)
    extra_row = np.full(n_cols, -1, dtype=np.int64)
    for j, s in enumerate(judged.tolist()):
        cols = u0 + s * SEGMENTS + np.arange(SEGMENTS)
        extra[cols] = 1
        extra_row[cols] = row0 + j
    counts = np.diff(start) + extra
    new_start = np.zeros(n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=new_start[1:])
    new_index = np.empty(int(new_start[-1]), dtype=np.int64)
    new_value = np.empty(int(new_start[-1]), dtype=np.float64)
    # old entries go to new_start[c] + (i - start[c])
    col_of = np.repeat(np.arange(n_cols), np.diff(start))
    pos = new_start[col_of] + (np.arange(len(index)) - start[col_of])
    new_index[pos] = index
    new_value[pos] = value
    tail = np.nonzero(extra)[0]
    new_index[new_start[tail + 1] - 1] = extra_row[tail]
    new_value[new_start[tail + 1] - 1] = 1.0
    return new_start, new_index, new_value


def _energy_costs(data: LpData) -> FloatArray:
    """The LP's shortfall costs scaled so their largest possible total is ``ENERGY_SPAN``."""
    lay = data.layout
    u0 = lay.n_x
    c = np.maximum(data.cost[u0 : u0 + lay.n * SEGMENTS], 0.0)
    ub = data.col_upper[u0 : u0 + lay.n * SEGMENTS]
    top = float((c * np.where(np.isfinite(ub), ub, 0.0)).sum())
    return c * (ENERGY_SPAN / top) if top > 0 else c


def _complete_hint(
    h: Any, data: LpData, judged: npt.NDArray[np.int64], hint_met: BoolArray | None, hint_x: FloatArray | None,
    time_limit_s: float,
) -> FloatArray | None:
    """A full MILP point from the knapsack's answer: the LP with ``x`` fixed to ``hint_x`` (or, with
    only a met set, with the met set's y fixed at 1) and every y relaxed, solved on the MILP's own
    model (same rows, same energy costs); y then set to what the point meets. None when infeasible."""
    lay = data.layout
    n_lp = lay.n_cols
    k = len(judged)
    lower = np.concatenate([data.col_lower, np.zeros(k)])
    upper = np.concatenate([data.col_upper, np.ones(k)])
    if hint_x is not None:
        lower[: lay.n_x] = np.clip(hint_x.ravel(), data.col_lower[: lay.n_x], data.col_upper[: lay.n_x])
        upper[: lay.n_x] = lower[: lay.n_x]
        upper[n_lp:] = 0.0  # y free to be set after (the met rows only bound u then)
    elif hint_met is not None:
        lower[n_lp:] = hint_met[judged].astype(np.float64)
    probe = new_highs(max(0.001, time_limit_s))
    probe.setOptionValue("presolve", "off")
    lp = h.getLp()
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.integrality_ = []
    probe.passModel(lp)
    probe.run()
    if probe.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    vals = np.asarray(probe.getSolution().col_value, dtype=np.float64)
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    short = need - (data.kwh * vals[: lay.n_x].reshape(lay.n, lay.t)).sum(axis=1)
    vals[n_lp:] = (short[judged] <= ROW_TOL_SHARE * met_tolerance(need[judged])).astype(np.float64)
    return vals


def max_met(
    inst: Instance, data: LpData, time_limit_s: float, hint_met: BoolArray | None = None,
    hint_x: FloatArray | None = None,
) -> MetAnswer:
    """The most departures the LP model in ``data`` can meet, classes lexicographically, then energy.

    ``hint_met`` / ``hint_x``: the knapsack's met set and schedule (stage 1's answer); its point is
    given to HiGHS as the starting incumbent, so the answer is never worse than the hint's. The whole
    call (hint completion included) is limited to ``time_limit_s`` of HiGHS time; not proven then.
    Never raises on solver trouble (the status says what happened)."""
    t0 = time.perf_counter()
    lay = data.layout
    n_lp = lay.n_cols
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    judged = np.nonzero(need > NEED_MIN_KWH)[0].astype(np.int64)
    classes = np.array(lay.classes, dtype=np.int64)
    order = [c for c in class_order(inst, data) if (classes[judged] == c).any()]
    if len(judged) == 0:
        met0 = np.zeros(lay.n, dtype=np.bool_)
        return MetAnswer(met0, 0, True, "no departures to meet", _ms(t0), 0.0, (), 0, None,
                         np.zeros((lay.n, lay.t)))
    h = new_highs(max(0.001, time_limit_s))
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", ABS_GAP)
    h.setOptionValue("mip_feasibility_tolerance", MIP_FEAS_TOL)
    h.passModel(_model(inst, data, judged, _energy_costs(data)))
    hint_vals: FloatArray | None = None
    hint_count: int | None = None
    if hint_met is not None or hint_x is not None:
        hint_vals = _complete_hint(h, data, judged, hint_met, hint_x, _left(t0, time_limit_s))
        if hint_vals is not None:
            hint_count = int(hint_vals[n_lp:].round().sum())
    base_cost = np.asarray(h.getLp().col_cost_, dtype=np.float64)
    best = hint_vals
    gaps: list[float] = []
    status = "not run"
    proven = True
    bound_total = 0
    for stage, c in enumerate(order):
        left = _left(t0, time_limit_s)
        mine = np.nonzero(classes[judged] == c)[0]
        if left <= 0.0 or (best is None and stage > 0):
            proven = False
            status = "time limit reached before this class" if left <= 0.0 else status
            gaps.append(math.inf)
            bound_total += len(mine)
            continue
        cost = base_cost.copy()
        cost[n_lp + mine] = -1.0
        h.changeColsCost(len(cost), np.arange(len(cost), dtype=np.int32), cost)
        h.setOptionValue("time_limit", float(max(0.001, left)))
        if best is not None:
            h.setSolution(_solution(best))
        h.run()
        model_status = h.getModelStatus()
        status = h.modelStatusToString(model_status)
        info = h.getInfo()
        if info.primal_solution_status == int(highspy.SolutionStatus.kSolutionStatusFeasible):
            best = np.asarray(h.getSolution().col_value, dtype=np.float64)
        if best is None:  # nothing feasible found, not even the hint: later classes cannot run
            proven = False
            gaps.append(math.inf)
            bound_total += len(mine)
            continue
        found = int(np.round(best[n_lp + mine]).sum())
        dual = float(info.mip_dual_bound)
        # every point has -count_c + energy >= dual and energy <= ENERGY_SPAN
        upper = min(len(mine), math.floor(ENERGY_SPAN - dual + 1e-9)) if math.isfinite(dual) else len(mine)
        upper = max(upper, found)
        closed = model_status == highspy.HighsModelStatus.kOptimal or upper == found
        gaps.append(0.0 if closed else float(upper - found))
        proven = proven and closed
        bound_total += upper
        if stage + 1 < len(order):  # later classes keep this one at what it reached
            row_idx = (n_lp + mine).astype(np.int32)
            h.addRow(float(found), INF, len(row_idx), row_idx, np.ones(len(row_idx)))
    met, x = _met_and_x(data, best)
    if hint_x is not None or hint_met is not None:
        # never worse than the hint, lexicographically over classes (a stage cut short may be)
        judged_mask = need > NEED_MIN_KWH
        h_met = met_of(data, hint_x) if hint_x is not None else np.asarray(hint_met, dtype=np.bool_) & judged_mask
        if _per_class(h_met, classes, order) > _per_class(met, classes, order):
            met, x = np.asarray(h_met, dtype=np.bool_), hint_x
    count = int(met.sum())
    per_class = tuple(_per_class(met, classes, order))
    bound = count if proven else max(bound_total, count)
    return MetAnswer(met, count, proven, status, _ms(t0), max(gaps, default=0.0), per_class, bound, hint_count, x)


def _met_and_x(data: LpData, vals: FloatArray | None) -> tuple[BoolArray, FloatArray | None]:
    lay = data.layout
    if vals is None:
        return np.zeros(lay.n, dtype=np.bool_), None
    x = vals[: lay.n_x].reshape(lay.n, lay.t)
    return met_of(data, x), x  # every y = 1 is met by this rule (the rows' margin)


def _per_class(met: BoolArray, classes: npt.NDArray[np.int64], order: list[int]) -> list[int]:
    return [int(met[classes == c].sum()) for c in order]


def _solution(vals: FloatArray) -> Any:
    sol = highspy.HighsSolution()
    sol.col_value = vals.tolist()
    sol.value_valid = True
    return sol


def _left(t0: float, limit_s: float) -> float:
    return limit_s - (time.perf_counter() - t0)


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1e3


MILP_MAX_SESSIONS = 40  # above: the knapsack's met set stands (the MILP's time grows with the sessions)
MILP_TIME_SHARE = 0.25  # of control.solver_time_limit_s, at most MILP_MAX_S
MILP_MAX_S = 0.5


def choose_met(inst: Instance, data: LpData, x: FloatArray) -> tuple[FloatArray, str]:
    """Stage 1's met set, or the MILP's where it meets more (classes lexicographically): on
    instances of at most ``MILP_MAX_SESSIONS`` sessions, time-limited, hinted with the knapsack's
    answer so it is never worse. Returns the schedule whose met set stage 2 holds and a note for
    the plan's status ("" when the knapsack's answer stands)."""
    if not 0 < inst.n <= MILP_MAX_SESSIONS:
        return x, ""
    hint = met_of(data, x)
    lay = data.layout
    if hint.sum() >= int((data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n] > NEED_MIN_KWH).sum()):
        return x, ""  # every departure is met already: nothing to choose
    limit_s = min(MILP_MAX_S, MILP_TIME_SHARE * inst.site.control.solver_time_limit_s)
    ans = max_met(inst, data, limit_s, hint_met=hint, hint_x=x)
    if ans.x is None or not _better(ans, hint, inst, data):
        return x, ""
    proof = "proven" if ans.proven else "not proven"
    return ans.x, f"met set from the MILP: {ans.count} > {int(hint.sum())} ({proof})"


def _better(ans: MetAnswer, hint: BoolArray, inst: Instance, data: LpData) -> bool:
    """Does the MILP's met set beat the hint's, class by class, best class first?"""
    classes = np.array(data.layout.classes, dtype=np.int64)
    for c in class_order(inst, data):
        mine, theirs = int((ans.met & (classes == c)).sum()), int((hint & (classes == c)).sum())
        if mine != theirs:
            return mine > theirs
    return False
