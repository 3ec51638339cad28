"""Stage 3 of the planner: the bill — energy cost and demand charge, once departures are safe.

Runs after the energy stage (departures first: stage 2; ``when_short: share``: the one stage)
whenever something is priced that a plan can change (:attr:`Instance.cost_stage`: energy prices
that differ between slots or PV to use, or a demand charge). It holds what that stage decided and
minimises what the depot pays, with the planner's earlier tie-breaks after it:

1. limits, exactly as before (the same line, kW, bound and taper rows and columns);
2. each session's shortfall at most what the held stage left it (+ ``HOLD_TOL`` x max(1, need)
   kWh): no departure it met is missed, no session gets less energy;
3. money, in units of :attr:`Bill.money_unit` (the largest |price|): per slot the price x hours x
   the grid import, and ``demand.price_per_kw`` per kW of each billing period's peak above the
   peak so far;
4. the held stage's own costs (earliness, stability, share-mode fairness) x ``TIE_W``: a tie-break.

Columns and rows it adds (:class:`~controller.planner.lp.Layout` with ``cost``), per slot ``t``:

    ev[t]      EV power at the grid [kW]:   sum_s gkw[s] presence[s,t] x[s,t] - ev[t] = 0
    export[t]  PV not used on site [kW]:    export[t] + ev[t] >= -net[t]
    peak       the period's peak [kW]:      peak - ev[t] >= net_peak[t]      (>= the peak so far)

so the import is ``net[t] + ev[t] + export[t] >= 0`` (exported PV earns nothing). Its cost, price x
hours x (net + ev + export), is linear: the constant ``net`` part is left out, the ``ev`` part sits
on the x columns (so the repair's top-up sees each slot's price), the ``export`` part on its column.
A negative price is real (day-ahead markets): such a slot's export column costs nothing, so there
the whole net import is priced, export included (a convex model cannot price "import only" at a
negative price). ``net`` and ``net_peak`` are :class:`~controller.planner.bill.Bill`'s.

The stage keeps its own HiGHS model between cycles like the others (only changed data sent, hot
started from its last optimum); a cold build starts from the held stage's basis with the new
columns basic. If it fails, the held stage's answer stands (the status says so).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from controller.planner.instance import Instance
from controller.planner.lp import (
    INF,
    SEGMENTS,
    Layout,
    LpData,
    LpModel,
    LpResult,
    _kept_or_built,
    resolve_with_pattern,
)

FloatArray = npt.NDArray[np.float64]
TIE_W = 1e-2  # the held stage's costs (earliness, stability) after money: a tie-break
HOLD_W = 1.0  # per kWh of shortfall inside the hold's tolerance, in money units (a price's scale)
HOLD_TOL = 1e-6  # x max(1, need) kWh: how far below the held stage's energy a session may end


def cost_data(inst: Instance, held: LpData, x_held: FloatArray) -> LpData:
    """Stage 3's arrays from the held stage's arrays and answer ``x_held``."""
    bill = inst.bill
    assert bill is not None
    lay0 = held.layout
    lay = replace(lay0, cost=True, peak_split=bill.period_split)
    n, t = lay.n, lay.t
    money = bill.money_unit
    hours = inst.grid.hours
    price = bill.price_per_kwh if bill.price_per_kwh is not None else np.zeros(t)
    ev_kw = inst.grid_kw_per_unit[:, None] * held.presence

    cost = np.zeros(lay.n_cols)
    cost[: lay0.n_cols] = TIE_W * held.cost
    cost[: lay.n_x] += (ev_kw * (price * hours / money)[None, :]).ravel()
    u0 = lay.n_x
    cost[u0 : u0 + n * SEGMENTS] = HOLD_W
    cost[lay.export_col0 : lay.export_col0 + t] = np.maximum(price, 0.0) * hours / money
    cost[lay.peak_col0 : lay.peak_col0 + 2] = bill.demand_price_per_kw / money

    need = held.row_lower[lay.energy_row0 : lay.energy_row0 + n]
    short = np.maximum(need - (held.kwh * x_held).sum(axis=1), 0.0)
    col_lower = np.zeros(lay.n_cols)
    col_lower[lay.peak_col0] = bill.peak_floor_kw
    col_upper = np.concatenate([held.col_upper, np.full(lay.n_cost_cols, INF)])
    col_upper[u0 : u0 + n * SEGMENTS] = np.repeat((short + HOLD_TOL * np.maximum(1.0, need)) / SEGMENTS, SEGMENTS)

    energy_priced = bill.price_per_kwh is not None and price.any()
    export_lo = np.where(energy_priced & (price > 0.0), -bill.net_kw, -INF)
    peak_lo = bill.net_peak_kw if bill.demand_price_per_kw > 0.0 else np.full(t, -INF)
    row_lower = np.concatenate([held.row_lower, np.zeros(t), export_lo, peak_lo])
    row_upper = np.concatenate([held.row_upper, np.zeros(t), np.full(2 * t, INF)])
    return replace(held, layout=lay, col_lower=col_lower, col_upper=col_upper, cost=cost, row_lower=row_lower,
                   row_upper=row_upper, ev_kw=ev_kw, held=held)


def solve_cost(
    inst: Instance, res: LpResult, model: LpModel | None, data: LpData, time_limit_s: float
) -> tuple[LpResult, LpData]:
    """Run the cost stage on the held stage's answer ``res`` (its arrays ``data``, its model
    ``model.for_fixups()``). Returns stage 3's answer and arrays, or the held ones (with the reason
    in the status) when it is not needed or fails. Never raises on solver trouble."""
    if model is None:
        return res, data
    if not inst.cost_stage or not res.ok or inst.n == 0 or data.layout.cost:
        model.stage3 = None
        return res, data
    t0 = time.perf_counter()
    data3 = cost_data(inst, data, res.x)
    kept = model.stage3
    warm = kept is not None and kept.layout == data3.layout
    try:
        m3 = _kept_or_built(inst, data3, kept if warm else None, time_limit_s)
        m3.extra.pop("matrix", None)
        if not warm:
            basis = _extended_basis(model.for_fixups().highs.getBasis(), data.layout, data3.layout)
            if basis is not None:
                m3.highs.setBasis(basis)
        t1 = time.perf_counter()
        m3.highs.run()
        t2 = time.perf_counter()
        status = m3.highs.getModelStatus()
        iters = int(m3.highs.getInfo().simplex_iteration_count)
        ok = status == highspy.HighsModelStatus.kOptimal
        if ok:
            lay = data3.layout
            vals = np.asarray(m3.highs.getSolution().col_value[: lay.n_x], dtype=np.float64)
            x3 = vals.reshape(lay.n, lay.t)
        reason = m3.highs.modelStatusToString(status)
    except Exception as exc:  # the held stage's answer stands
        ok, iters, reason = False, 0, f"{type(exc).__name__}"
        t1 = t2 = time.perf_counter()
    if not ok:
        model.stage3 = None  # rebuilt next cycle
        return replace(res, status=f"{res.status}; cost stage failed ({reason}), energy plan kept"), data
    model.stage3 = m3
    return LpResult(x3, res.status, True, res.build_ms + (t1 - t0) * 1e3, res.solve_ms + (t2 - t1) * 1e3,
                    res.iterations + iters, res.warm, res.variables, res.constraints), data3


def _extended_basis(held: Any, lay0: Layout, lay: Layout) -> Any | None:
    """The held stage's optimal basis with the cost stage's columns ev and export basic, the peaks
    at their lower bound, the ev and export rows tight and the peak rows basic — nonsingular (block
    triangular: the new columns meet only the new rows), a hot start rather than a cold one."""
    try:
        cols = list(held.col_status)
        rows = list(held.row_status)
        if len(cols) != lay0.n_cols or len(rows) != lay0.n_rows:
            return None
        basic, lower = highspy.HighsBasisStatus.kBasic, highspy.HighsBasisStatus.kLower
        t = lay.t
        b = highspy.HighsBasis()
        b.col_status = cols + [basic] * (2 * t) + [lower, lower]
        b.row_status = rows + [lower] * (2 * t) + [basic] * t
        b.valid = True
        return b
    except Exception:  # no hot start then
        return None


def resolve_pattern(
    model: LpModel, data: LpData, x_lo: FloatArray, x_up: FloatArray
) -> tuple[FloatArray | None, float]:
    """The fix-up's re-plan around the min-current repair's pattern (``x_lo``..``x_up`` on the x
    columns), in the objective's order: the energy stage re-plans energy
    (:func:`~controller.planner.lp.resolve_with_pattern`); when the plan came from the cost stage,
    that stage then re-plans the cost around the same pattern, holding each session's shortfall at
    most the energy re-plan's."""
    held = data.held if data.held is not None else data
    x2, ms = resolve_with_pattern(model.for_fixups(), held, x_lo, x_up)
    m3 = model.stage3
    if x2 is None or m3 is None or not data.layout.cost:
        return x2, ms
    x3, ms3 = _resolve_cost(m3, data, x_lo, x_up, x2)
    return (x3 if x3 is not None else x2), ms + ms3


def _resolve_cost(
    model: LpModel, data: LpData, x_lo: FloatArray, x_up: FloatArray, x_energy: FloatArray
) -> tuple[FloatArray | None, float]:
    lay = data.layout
    n = lay.n
    h = model.highs
    ex = model.extra
    t0 = time.perf_counter()
    try:
        lo, up = x_lo.ravel(), x_up.ravel()
        cur_lo = ex.get("x_lo", ex["col_lower"][: lay.n_x])
        cur_up = ex.get("x_up", ex["col_upper"][: lay.n_x])
        changed = np.nonzero((lo != cur_lo) | (up != cur_up))[0].astype(np.int32)
        if len(changed):
            h.changeColsBounds(len(changed), changed, lo[changed], up[changed])
        ex["x_lo"], ex["x_up"] = lo, up
        need = data.row_lower[lay.energy_row0 : lay.energy_row0 + n]
        energy = (data.kwh * x_energy).sum(axis=1)
        # hold the energy re-plan's shortfall; it may deliver a little more than the need (a
        # minimum current: the car stops when full), so may this stage, no more
        u0 = lay.n_x
        u_up = np.repeat((np.maximum(need - energy, 0.0) + HOLD_TOL * np.maximum(1.0, need)) / SEGMENTS, SEGMENTS)
        cols = np.arange(u0, u0 + n * SEGMENTS, dtype=np.int32)
        h.changeColsBounds(len(cols), cols, np.zeros(len(cols)), u_up)
        col_upper = ex["col_upper"].copy()
        col_upper[u0 : u0 + n * SEGMENTS] = u_up
        ex["col_upper"] = col_upper
        rows = np.arange(lay.energy_row0, lay.energy_row0 + n, dtype=np.int32)
        top = np.maximum(need, energy)
        h.changeRowsBounds(n, rows, need, top)
        row_upper = ex["row_upper"].copy()
        row_upper[lay.energy_row0 : lay.energy_row0 + n] = top
        ex["row_upper"] = row_upper
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, (time.perf_counter() - t0) * 1e3
        vals = np.asarray(h.getSolution().col_value[: lay.n_x], dtype=np.float64)
    except Exception:  # the energy re-plan stands
        return None, (time.perf_counter() - t0) * 1e3
    return vals.reshape(n, lay.t), (time.perf_counter() - t0) * 1e3
