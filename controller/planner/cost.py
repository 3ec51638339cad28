"""Stage 3 of the planner: the bill — energy cost and demand charge, once departures are safe.

Runs after the energy stage (departures first: stage 2; ``when_short: share``: the one stage)
whenever something is priced that a plan can change (:attr:`Instance.cost_stage`: energy prices
that differ between slots or PV to use, or a demand charge). It holds what that stage decided and
minimises what the depot pays, with the planner's earlier tie-breaks after it:

1. limits, exactly as before (the same line, kW, bound, taper and outside-cap rows and columns);
2. each session's energy at least what the held stage gives it (- ``HOLD_TOL`` x max(1, need)
   kWh), as the bounds of its energy row (the shortfall columns are fixed at 0): no departure it
   met is missed, no session gets less energy (a DC session on its exact taper: at most what the
   curve takes before its buffer, where the fastest charge's caps promised a little more);
3. money, in units of :attr:`Bill.money_unit` (the largest |price|): per slot the price x hours x
   the grid import, and ``demand.price_per_kw`` per kW of each billing period's peak above the
   peak so far;
4. the held stage's earliness (and share-mode fairness) x ``TIE_W``, and its stability term as it
   is (already far below a price): a tie-break.

Columns and rows it adds (:class:`~controller.planner.lp.Layout` with ``cost``), per slot ``t``
(kW here in units of a power of two near the site's import / ``KW_REF``, for HiGHS's scaling):

    ev[t]      EV power at the grid [kW]:   sum_s gkw[s] presence[s,t] x[s,t] - ev[t] = 0
    export[t]  PV not used on site [kW]:    export[t] + ev[t] >= -net[t]
    peak       the period's peak [kW]:      peak - ev[t] - sum_k fut[k,t] >= net_peak[t]
               (>= the peak so far; a second peak column, from 0, for the next billing period)
    fut[k,t]   the expected arrivals' group k [kW], at most its Bill.expected_kw[k,t], priced at the
               slot's price:                sum_t hours[t] fut[k,t] = Bill.expected_kwh[k]

and, for a DC session whose state of charge is known and that is not tight, its taper as rows
(:mod:`controller.planner.taper`, added to the built model: such a model is rebuilt every cycle)
in place of the fastest charge's caps; so the import is ``net[t] + ev[t] + export[t] >= 0``
(exported PV earns nothing). Its cost, price x
hours x (net + ev + export), is linear: the constant ``net`` part is left out, the ``ev`` part sits
on the x columns (so the repair's top-up sees each slot's price), the ``export`` part on its column.
A negative price is real (day-ahead markets): such a slot's export column costs nothing, so there
the whole net import is priced, export included (a convex model cannot price "import only" at a
negative price). ``net`` and ``net_peak`` are :class:`~controller.planner.bill.Bill`'s.

The stage keeps its own HiGHS model between cycles like the others (only changed data sent, hot
started from its last optimum). A cold build is solved from scratch: measured at 1 000 sessions
(bench/planner.py's instance, 2026-12-07), from scratch 2 827 dual simplex iterations in ~190 ms,
from the held stage's basis extended by the new columns 1 780 in ~195 ms (the basis round trip
through Python alone ~23 ms), with presolve 3 706 in ~390 ms. If it fails, the held stage's
answer stands (the status says so).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace

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
    earliness_per_kwh,
    met_earliness,
    met_mask,
    resolve_with_pattern,
)
from controller.planner.taper import fastest_kwh, taper_rows, taper_sessions

FloatArray = npt.NDArray[np.float64]
TIE_W = 1e-2  # the held stage's costs (earliness, stability) after money: a tie-break
HOLD_TOL = 1e-6  # x max(1, need) kWh: how far below the held stage's energy a session may end
KW_REF = 100.0  # the cost columns' unit: a power of two of kW that keeps their rows near this
COST_MARGIN_SHARE = 0.25
"""The cost stage may move a session's energy later, but not into the last this share of its
dwell (arrival to departure): that time stays a buffer for what the plan cannot know."""
SLACK_W = 0.1  # the exact sessions' slack tie-break per kWh (x TIE_W): above the held stage's earliness
BUFFER_COST = 1000.0  # money units (the largest price) per kWh a tapering DC session draws in its buffer
TIE_REF_S = 3600.0  # the tie-break's earliness is seen from the start of the current hour
TIE_TIGHT_STEP = 0.125  # and its laxity term rounded to this step


def cost_data(inst: Instance, held: LpData, x_held: FloatArray, taper: bool = True) -> LpData:
    """Stage 3's arrays from the held stage's arrays and answer ``x_held``."""
    bill = inst.bill
    assert bill is not None
    lay0 = held.layout
    k = int(bill.expected_kwh.shape[0]) if bill.demand_price_per_kw > 0.0 else 0
    lay = replace(lay0, cost=True, peak_split=bill.period_split, n_fut=k)
    n, t = lay.n, lay.t
    money = bill.money_unit
    hours = inst.grid.hours
    price = bill.price_per_kwh if bill.price_per_kwh is not None else np.zeros(t)
    # the ev, export and peak columns count in units of ``unit`` kW, a power of two that keeps their
    # rows' magnitudes near KW_REF (a depot's import of 20 MW in kW made HiGHS clean up every solve)
    top = max(float(np.max(np.abs(bill.net_peak_kw), initial=0.0)), float(np.max(np.abs(bill.net_kw), initial=0.0)),
              bill.peak_floor_kw, 1.0)
    unit = float(2.0 ** max(0, math.ceil(math.log2(top / KW_REF)))) if KW_REF > 0 else 1.0
    ev_kw = inst.grid_kw_per_unit[:, None] * held.presence / unit

    need = held.row_lower[lay.energy_row0 : lay.energy_row0 + n]
    short = np.maximum(need - (held.kwh * x_held).sum(axis=1), 0.0)
    cost = np.zeros(lay.n_cols)
    cost[: lay0.n_cols] = TIE_W * held.cost  # share-mode fairness, scaled like the earliness
    cost[: lay.n_x] = TIE_W * _tie(inst, lay0, held.kwh, met_mask(need, short)).ravel()
    d0 = lay.n_x + n * SEGMENTS
    cost[d0 : d0 + 2 * n] = held.cost[d0 : d0 + 2 * n]  # stability as it is (1e-5 per A: already tiny)
    cost[: lay.n_x] += (ev_kw * unit * (price * hours / money)[None, :]).ravel()
    u0 = lay.n_x
    cost[lay.export_col0 : lay.export_col0 + t] = np.maximum(price, 0.0) * hours / money * unit
    cost[lay.peak_col0 : lay.peak_col0 + 2] = bill.demand_price_per_kw / money * unit
    # the vehicles still to come, each group's energy where it costs least (the same money as a
    # present vehicle's: its slot's price, and the peak it makes)
    fut_kwh = np.tile(hours * unit, (k, 1))
    cost[lay.fut_col0 : lay.fut_col0 + k * t] = np.tile(price * hours / money * unit, k)

    col_lower = np.zeros(lay.n_cols)
    col_lower[lay.peak_col0] = bill.peak_floor_kw / unit
    col_upper = np.concatenate([held.col_upper, np.full(lay.n_cost_cols, INF)])
    col_upper[lay.fut_col0 : lay.fut_col0 + k * t] = (bill.expected_kw[:k] / unit).ravel()
    col_upper[u0 : u0 + n * SEGMENTS] = 0.0  # the shortfall is held in the energy rows' bounds instead

    x_lo, x_up = col_lower[: lay.n_x].reshape(n, t), col_upper[: lay.n_x].reshape(n, t)
    exact = taper_sessions(inst) if taper else np.zeros(n, dtype=bool)
    if exact.any():  # the taper as rows (controller.planner.taper): not the fastest charge's caps
        open_up = inst.max_unit[:, None] * (held.presence > 1e-9)
        if inst.outside_caps is not None:
            open_up = np.minimum(open_up, inst.outside_caps)
        x_up[exact] = np.where(x_up[exact] > 0.0, np.maximum(x_up[exact], open_up[exact]), 0.0)
    tight, reach = _robust(inst, held.kwh, x_held, x_lo, x_up, exact, ~met_mask(need, short))
    rows_for = exact & ~tight
    if rows_for.any():
        xc = cost[: lay.n_x].reshape(n, t)
        deadline = _deadline(inst)
        # the buffer at a price far above any money the plan can save
        late = rows_for[:, None] & (inst.grid.starts_s[None, :] >= deadline[:, None])
        xc[late] += BUFFER_COST * held.kwh[late]
        # the tie-break's laxity on the exact curve: the share of what it could take before its buffer
        # that it needs (a bus that must also taper to full has less slack than its need at full
        # power says) — so among plans of the same money the least slack charges first, and the
        # vehicles with room are the ones left for later
        xc[rows_for] += TIE_W * held.kwh[rows_for] * _slack_earliness(inst, deadline, need, reach)[rows_for]
    rows = taper_rows(inst, held.kwh, x_up, rows_for) if rows_for.any() else None

    energy_priced = bill.price_per_kwh is not None and price.any()
    # export rows only where PV may exceed the rest of the load (else export is 0 whatever the EVs do)
    export_lo = np.where(energy_priced & (price > 0.0) & (bill.net_kw < 0.0), -bill.net_kw / unit, -INF)
    peak_lo = bill.net_peak_kw / unit if bill.demand_price_per_kw > 0.0 else np.full(t, -INF)
    row_lower = np.concatenate([held.row_lower, np.zeros(t), export_lo, peak_lo, bill.expected_kwh[:k]])
    # each session's energy at least what the held stage gives it (its shortfall at most the held
    # one, + HOLD_TOL), at most its need
    held_kwh = need - short
    if rows is not None:  # the exact curve may take a little less than the Euler caps promised
        held_kwh = np.where(rows_for, np.minimum(held_kwh, reach), held_kwh)
    row_lower[lay.energy_row0 : lay.energy_row0 + n] = np.maximum(held_kwh - HOLD_TOL * np.maximum(1.0, need), 0.0)
    row_upper = np.concatenate([held.row_upper, np.zeros(t), np.full(2 * t, INF), bill.expected_kwh[:k]])
    return replace(held, layout=lay, col_lower=col_lower, col_upper=col_upper, cost=cost, row_lower=row_lower,
                   row_upper=row_upper, ev_kw=ev_kw, fut_kwh=fut_kwh, held=held, taper=rows)


def _robust(
    inst: Instance, kwh: FloatArray, x_held: FloatArray, x_lo: FloatArray, x_up: FloatArray,
    exact: npt.NDArray[np.bool_], unmet: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    """Departures come first, also against what the plan cannot know: a driver who leaves before
    the estimate, a taper or an efficiency the model does not have, a vehicle arriving later that
    needs the room, an EV that turns out to draw one phase of three. Measured in the simulator with
    the cost stage free to move energy up to each departure: 29 fewer departures met of 702 over
    the repo's scenarios with a tariff (buses a few kWh short after their charge was put off to
    the last hours). So the last :data:`COST_MARGIN_SHARE` of each session's dwell stays a buffer:
    there the cost stage plans at most what the held stage gives the session there — its energy
    may move out of the buffer, never into it. A session the held stage leaves short of its need
    (``unmet``) keeps the held schedule (*tight*): it already gets what the limits spare, and put
    off it meets the vehicles still to come (measured: without that, staggered-evening met 2 of 16
    instead of 4). Not a DC session on its exact curve (below): frozen when short in the held stage
    — whose caps along the fastest charge are not its curve — a bus missed its departure on
    bus-depot-demand-charge planned every 5 min without the arrival forecast. A session whose
    phases are not known yet keeps its first slot (it must draw to show them; measured: at its
    minimum only, 14 departures fewer over the repo's scenarios). ``x_lo``/``x_up`` are views of
    the x columns' bounds, changed in place; the held answer stays feasible.

    (Until 2026-12-07 a session was tight whenever the held schedule drew anything in its buffer —
    and stages 1–2's price tie-break puts a little there for nearly every session, so on
    feeder-limited every session was frozen and the stage changed nothing: lp's peak 164.7 kW
    against edf's 156.8; now 126.4.)

    A DC session whose state of charge is known (``exact``: its taper is the cost stage's rows,
    :mod:`controller.planner.taper`, not the fastest charge's caps) is *tight* also when even the
    fastest charge along the exact curve misses its need (less ``HOLD_TOL``) before the buffer
    (``reach``: what that charge takes before it); one that is not may still use its buffer, at
    :data:`BUFFER_COST` per kWh — a last resort far above any money a plan can save, taken only
    when the vehicles together need it (the held stage shares the limits among them; each one's
    reach is its own, and a hard buffer made the stage infeasible). Tight sessions keep the held
    schedule. (Measured on the repo's scenarios, 2026-12-07: a tight bus planned on the exact curve
    instead — never less now than the held stage gives it — lowered bus-depot-demand-charge's peak
    from 671 to 641 kW but met 56 of 60 on bus-depot-overnight, where frozen meets 58.)
    Returns ``tight`` and ``reach`` (0 where not ``exact``)."""
    n, t = x_held.shape
    reach = np.zeros(n)
    if n == 0 or t == 0:
        return np.zeros(n, dtype=bool), reach
    g = inst.grid
    deadline = _deadline(inst)
    length = np.maximum(g.ends_s - g.starts_s, 1e-9)
    need = inst.need_kwh
    tight = unmet & ~exact  # an exact DC session: tight by its curve (below)
    for i in np.nonzero(exact)[0].tolist():
        before = np.clip((deadline[i] - g.starts_s) / length, 0.0, 1.0)
        reach[i] = fastest_kwh(inst, i, kwh[i], before)
        tight[i] = reach[i] < need[i] - HOLD_TOL * max(1.0, float(need[i]))
    # in its buffer a session may draw what the held stage gives it there, no more: its energy may
    # move out of the buffer, never into it (the held answer stays feasible)
    late = ~exact[:, None] & (g.starts_s[None, :] >= deadline[:, None])
    x_up[late] = np.minimum(x_up[late], x_held[late])
    x_lo[tight] = x_held[tight]
    x_up[tight] = x_held[tight]
    unknown = np.array([bool(p.alt_phasors) for p in inst.sessions], dtype=bool)
    if unknown.any():
        x_lo[unknown, 0] = np.minimum(x_held[unknown, 0], x_up[unknown, 0])
    return tight, reach


def _slack_earliness(inst: Instance, deadline: FloatArray, need: FloatArray, reach: FloatArray) -> FloatArray:
    """(n, t) per kWh: lateness towards the buffer x how little slack the exact curve leaves
    (need / reach, at most 2), seen from the current hour like :func:`_tie`."""
    g = inst.grid
    ref_s = float(np.floor(inst.now.timestamp() / TIE_REF_S) * TIE_REF_S)
    mids = (g.starts_s + g.ends_s) / 2.0
    span = np.maximum(deadline - ref_s, 3600.0)
    early = np.clip((mids[None, :] - ref_s) / span[:, None], 0.0, 1.0)
    share = np.clip(need / np.maximum(reach, 1e-6), 0.0, 2.0)
    share = np.round(share / TIE_TIGHT_STEP) * TIE_TIGHT_STEP
    out: FloatArray = SLACK_W * early * share[:, None]
    return out


def _deadline(inst: Instance, share: float = COST_MARGIN_SHARE) -> FloatArray:
    """Per session, the start of its buffer: the last ``share`` of its dwell."""
    now_s = inst.now.timestamp()
    dep = inst.departure_s
    arrived = np.array([now_s if p.arrived_s is None else min(p.arrived_s, now_s) for p in inst.sessions])
    return np.asarray(dep - share * np.maximum(dep - arrived, 0.0), dtype=np.float64)


def _tie(inst: Instance, lay: Layout, kwh: FloatArray, met: npt.NDArray[np.bool_]) -> FloatArray:
    """The held stages' earliness (least laxity first; the departures held met earliest), seen
    from the start of the current ``TIE_REF_S`` period rather than from now and with the laxity
    rounded: the same order, but costs that stay put from one cycle to the next, so the kept model
    re-plans only what changed (measured: a tie-break seen from now moved every cost every cycle
    and took ~300 simplex iterations per warm cycle at 1 000 sessions)."""
    ref_s = float(np.floor(inst.now.timestamp() / TIE_REF_S) * TIE_REF_S)
    per_kwh = earliness_per_kwh(inst, lay, ref_s, TIE_TIGHT_STEP)
    out: FloatArray = kwh * per_kwh
    if inst.site.control.when_short == "complete":
        out = out + met_earliness(inst, met, kwh, ref_s)
    return out


def solve_cost(
    inst: Instance, res: LpResult, model: LpModel | None, data: LpData, time_limit_s: float, _no_rows: bool = False
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
    data3 = cost_data(inst, data, res.x, taper=not _no_rows)
    kept = model.stage3
    rows = data3.taper
    # taper rows change every cycle (the state of charge moves): such a model is built anew
    warm = kept is not None and kept.layout == data3.layout and rows is None and not kept.extra.get("taper")
    try:
        m3 = _kept_or_built(inst, data3, kept if warm else None, time_limit_s)
        m3.extra.pop("matrix", None)
        if rows is not None:
            m3.highs.addRows(rows.count, np.full(rows.count, -INF), rows.upper, len(rows.index), rows.start[:-1],
                             rows.index, rows.value)
            m3.extra["taper"] = True
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
    if not ok and data3.taper is not None and not _no_rows and reason == "Infeasible":
        # the taper rows and the hold did not fit together (the held stage's caps promise a little
        # more than the exact curve): the stage as it is without them, in the time left
        model.stage3 = None
        left_s = time_limit_s - (time.perf_counter() - t0)
        if left_s > 0.001:
            return solve_cost(inst, res, model, data, left_s, _no_rows=True)
    if not ok:
        model.stage3 = None  # rebuilt next cycle
        return replace(res, status=f"{res.status}; cost stage failed ({reason}), energy plan kept"), data
    model.stage3 = m3
    return LpResult(x3, res.status, True, res.build_ms + (t1 - t0) * 1e3, res.solve_ms + (t2 - t1) * 1e3,
                    res.iterations + iters, res.warm, res.variables, res.constraints), data3


def resolve_pattern(
    model: LpModel, data: LpData, x_lo: FloatArray, x_up: FloatArray
) -> tuple[FloatArray | None, float]:
    """The fix-up's re-plan around the min-current repair's pattern (``x_lo``..``x_up`` on the x
    columns), in the objective's order: the energy stage re-plans energy
    (:func:`~controller.planner.lp.resolve_with_pattern`); when the plan came from the cost stage,
    that stage then re-plans the cost around the same pattern, holding each session's shortfall at
    most the energy re-plan's."""
    held = data.held if data.held is not None else data
    if data.taper is not None:
        # the energy stage has the fastest charge's caps, not the cost stage's taper rows: never above them
        x_up = np.minimum(x_up, held.col_upper[: x_up.size].reshape(x_up.shape))
        x_lo = np.minimum(x_lo, x_up)
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
        need = (data.held if data.held is not None else data).row_lower[lay.energy_row0 : lay.energy_row0 + n]
        energy = (data.kwh * x_energy).sum(axis=1)
        # hold the energy re-plan's energy; it may deliver a little more than the need (a minimum
        # current: the car stops when full), so may this stage, no more
        top = np.maximum(need, energy)
        lower = np.maximum(np.minimum(energy, need) - HOLD_TOL * np.maximum(1.0, need), 0.0)
        rows = np.arange(lay.energy_row0, lay.energy_row0 + n, dtype=np.int32)
        h.changeRowsBounds(n, rows, lower, top)
        row_lower = ex["row_lower"].copy()
        row_lower[lay.energy_row0 : lay.energy_row0 + n] = lower
        ex["row_lower"] = row_lower
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
