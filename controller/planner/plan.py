"""The public entry point: ``plan(snapshot, state) -> (Plan, PlannerState)``.

One ordered chain per cycle, read top to bottom:

1. clean inputs into an Instance (bad readings and requests get defined values and a warning);
2. LP: HiGHS (model kept and hot-started between cycles), else CBC on the same arrays, else the
   deterministic proportional heuristic; every solver answer is checked independently;
3. min-current repair: first slot with rotation and hysteresis, later slots lift-or-pause (or
   borrow); on small sites an LP re-plan around the pauses and, if needed, an exact MIP;
4. round to the limit resolution (0.1 A AC, 1 W DC), top up rounding losses, deadband against
   last cycle's limits, zero slots after the need is reached, and a final limit check;
5. report: limit with its binding constraint per session, load and headroom per node and phase,
   solve statistics.

``plan`` never raises: a planner error falls back to the heuristic, then to every session at 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from controller.model.snapshot import (
    Limit,
    LimitUnit,
    NodeLoad,
    Plan,
    SessionPlan,
    Snapshot,
    SolveStats,
)
from controller.planner import repair
from controller.planner.cbc import solve_cbc
from controller.planner.cost import resolve_pattern, solve_cost
from controller.planner.exact import solve_semi_continuous
from controller.planner.fallback import fair_first_slot, proportional_schedule
from controller.planner.instance import Instance, build_instance
from controller.planner.lp import (
    LpData,
    LpModel,
    LpResult,
    layout_for,
    lp_data,
    matrix,
    priority_weights,
    solve,
)
from controller.planner.milp import choose_met
from controller.planner.rows import Rows, build_rows, node_label
from controller.planner.state import PlannerState

FloatArray = npt.NDArray[np.float64]
DEFAULT_SOLVERS: tuple[str, ...] = ("highs", "cbc")
CHECK_TOL = 1e-4
FIXUP_PASSES = 4
FIXUP_MAX_SESSIONS = 8  # above: no LP re-plan after the repair (measured in the simulator: no gain, up to 1 s a cycle)


def _check(x: FloatArray, data: LpData, rows: Rows, need: FloatArray) -> str | None:
    """Independent check of a solver's answer; returns what is wrong, or None."""
    if not np.all(np.isfinite(x)):
        return "non-finite values"
    if (x < -CHECK_TOL).any() or (x > data.col_upper[: x.size].reshape(x.shape) + CHECK_TOL).any():
        return "bounds violated"
    if rows.violations(x, tol=CHECK_TOL).any():
        return "capacity violated"
    if ((data.kwh * x).sum(axis=1) > need + CHECK_TOL * np.maximum(1.0, need)).any():
        return "energy above need"
    return None


def _solve_chain(
    inst: Instance, rows: Rows, state: PlannerState, prev: dict[str, float], solvers: Sequence[str]
) -> tuple[FloatArray, LpData, SolveStats, PlannerState]:
    n, t = inst.n, inst.grid.count
    need = inst.need_kwh
    limit_s = inst.site.control.solver_time_limit_s
    reasons: list[str] = []
    model = state.model
    data: LpData | None = None
    stats: SolveStats | None = None
    x: FloatArray | None = None
    for name in solvers:
        if name == "highs":
            res, model, data = solve(inst, prev, model, limit_s, choose_met)
            problem = _check(res.x, data, rows, need) if res.ok else res.status
            if problem is None and model is not None:
                # stage 3 gets what stages 1-2 left of one time limit (at least a quarter of it):
                # a plan's worst case grows by at most that; a timed-out cost stage keeps stage 2's plan
                left_s = max(limit_s / 4.0, limit_s - (res.build_ms + res.solve_ms) / 1e3)
                res, data = _cost_stage(inst, rows, res, model, data, left_s)
            stats = SolveStats(res.status, "highs", res.build_ms, res.solve_ms, 0.0, res.variables,
                               res.constraints, t, res.warm, res.iterations)
            if problem is None:
                x = res.x
                break
            reasons.append(f"highs: {problem}")
            model = None
        elif name == "cbc":
            t0 = time.perf_counter()
            data = lp_data(inst, layout_for(inst), prev)
            start, index, value = matrix(inst, data)
            t1 = time.perf_counter()
            vals, status = solve_cbc(data, start, index, value, limit_s)
            t2 = time.perf_counter()
            problem = status if vals is None else None
            if vals is not None:
                xc = vals[: n * t].reshape(n, t)
                problem = _check(xc, data, rows, need)
            stats = SolveStats(status, "cbc", (t1 - t0) * 1e3, (t2 - t1) * 1e3, 0.0, len(data.cost),
                               len(data.row_lower), t, False, 0, "; ".join(reasons) or None)
            if problem is None and vals is not None:
                x = xc
                break
            reasons.append(f"cbc: {problem}")
    if data is None:
        data = lp_data(inst, layout_for(inst), prev)
    if x is None:
        t0 = time.perf_counter()
        x = proportional_schedule(inst, rows, data.kwh)
        t1 = time.perf_counter()
        stats = SolveStats("heuristic", "heuristic", 0.0, (t1 - t0) * 1e3, 0.0, 0, 0, t, False, 0,
                           "; ".join(reasons) or "no solver configured")
        model = None
    assert stats is not None
    new_state = PlannerState(model=model)
    return x, data, stats, new_state


def _cost_stage(
    inst: Instance, rows: Rows, res: LpResult, model: LpModel, data: LpData, limit_s: float
) -> tuple[LpResult, LpData]:
    """Stage 3 (the bill) on the energy stage's checked answer; its own answer is checked the
    same way, and where it fails the check the energy stage's stands."""
    res3, data3 = solve_cost(inst, res, model, data, limit_s)
    if data3 is data:
        return res3, data
    problem = _check(res3.x, data3, rows, inst.need_kwh)
    if problem is None:
        return res3, data3
    model.stage3 = None
    return replace(res, status=f"{res.status}; cost stage answer failed the check ({problem}), energy plan kept"), data


def _shortfall_score(inst: Instance, data: LpData, y: FloatArray) -> float:
    need = inst.need_kwh
    weight = priority_weights(list(inst.priorities))
    return float((weight * np.maximum(need - (data.kwh * y).sum(axis=1), 0.0)).sum())


def _newly_short(inst: Instance, data: LpData, y: FloatArray, y_lp: FloatArray) -> bool:
    """Is the repair's loss worth a re-plan? Yes when ``y`` leaves a session short that the LP
    plan ``y_lp`` met, or any session loses more than 2 % of its need against the LP plan
    (beyond what the 0.1 A resolution costs)."""
    need = inst.need_kwh
    tol = 1e-3 * np.maximum(1.0, need)
    e_lp = (data.kwh * y_lp).sum(axis=1)
    e = (data.kwh * y).sum(axis=1)
    step_kwh = (data.kwh * 0.1).sum(axis=1)  # a 0.1 A (0.1 kW) lower limit in every slot
    met_lp = e_lp >= need - tol
    newly = met_lp & (e < need - tol - step_kwh)
    big_loss = e_lp - e > 0.02 * need + step_kwh
    return bool((newly | big_loss).any())


def _repair_variants(
    x: FloatArray, x_lp: FloatArray, inst: Instance, rows: Rows, data: LpData, model: LpModel | None
) -> tuple[FloatArray, FloatArray, float]:
    """Min-current repair of slots 1.. in two ways, pause-only and borrow-from-neighbours; keep
    whichever leaves less priority-weighted shortfall (ties: pause-only). When that still leaves a
    session short which the LP plan met, and the site has at most ``FIXUP_MAX_SESSIONS``
    sessions, let the LP re-plan around each repair (fix-up) and, if still short, try the exact
    MIP on small sites. (On the 1000-session bench instance a re-plan changed delivered energy by
    < 0.01 % and cost a solve per cycle.)"""
    variants = (True,) if inst.n > FIXUP_MAX_SESSIONS else (False, True)
    repaired = [(borrow, repair.repair_later_slots(x, inst, rows, borrow)) for borrow in variants]
    scored = [(_shortfall_score(inst, data, y), k, y, x_lp) for k, (_, y) in enumerate(repaired)]
    best = min(scored, key=lambda c: (c[0], c[1]))
    total_ms = 0.0
    if model is None or inst.n > FIXUP_MAX_SESSIONS or not _newly_short(inst, data, best[2], x_lp):
        return best[2], best[3], total_ms
    for k, (borrow, y) in enumerate(repaired):
        z, z_lp, ms = _fixup(y, x_lp, inst, rows, data, model, borrow)
        total_ms += ms
        score = _shortfall_score(inst, data, z)
        if score < best[0] - 1e-9:
            best = (score, k, z, z_lp)
    if _newly_short(inst, data, best[2], x_lp):
        # the repair lost energy the LP had found: on a small site, plan it exactly
        energy_data = data.held if data.held is not None else data  # exactly: energy, as the stages before cost
        exact, ms = solve_semi_continuous(inst, energy_data, x[:, 0], inst.site.control.solver_time_limit_s)
        total_ms += ms
        if exact is not None:
            exact = np.where(data.presence > 1e-9, repair.snap_to_bounds(exact, inst), 0.0)
            exact[:, 0] = x[:, 0]
            exact = repair.repair_later_slots(exact, inst, rows)  # tolerance-level values only
            score = _shortfall_score(inst, data, exact)
            if score < best[0] - 1e-9:
                best = (score, -1, exact, exact)
    return best[2], best[3], total_ms


def _fixup(
    x: FloatArray, x_lp: FloatArray, inst: Instance, rows: Rows, data: LpData, model: LpModel, borrow: bool
) -> tuple[FloatArray, FloatArray, float]:
    """Let the LP re-plan around the repair's pauses (slot 0 pinned, paused entries held at 0), so
    energy a pause cost is found elsewhere; repair again; repeat while new sub-minimum values
    appear (at most ``FIXUP_PASSES`` hot-started solves). Only when the repair lost energy;
    keeps the pass with the least shortfall."""
    lost = ((x_lp - x) * data.kwh).sum(axis=1)
    if not (lost > 1e-3).any():
        return x, x_lp, 0.0
    is_ac = inst.is_ac[:, None]
    mins = inst.min_unit[:, None]
    x_up0 = data.col_upper[: x.size].reshape(x.shape)
    paused = np.zeros(x.shape, dtype=bool)
    best, best_lp, best_score = x, x_lp, _shortfall_score(inst, data, x)
    total_ms = 0.0
    for k in range(FIXUP_PASSES):
        paused |= is_ac & (x <= repair.EPS) & (x_lp > repair.EPS)
        # first pass keeps running sessions at their minimum (the pattern holds); later passes
        # may also stop them, so a neighbour that cannot wait gets the room
        lo = np.where(is_ac & (x > repair.EPS), np.minimum(mins, x_up0), 0.0) if k == 0 else np.zeros_like(x)
        up = np.where(paused, 0.0, x_up0)
        lo[:, 0] = x[:, 0]
        up[:, 0] = x[:, 0]
        new, ms = resolve_pattern(model, data, lo, up)
        total_ms += ms
        if new is None:
            break
        new = np.where(data.presence > 1e-9, repair.snap_to_bounds(new, inst), 0.0)
        new[:, 0] = x[:, 0]
        x_lp = new
        x = repair.repair_later_slots(new, inst, rows, borrow)
        score = _shortfall_score(inst, data, x)
        if score < best_score - 1e-9:
            best, best_lp, best_score = x, x_lp, score
        if np.array_equal(x, new):
            break
    return best, best_lp, total_ms


def _peak_binds_now(inst: Instance, x: FloatArray) -> bool:
    """Whether the first slot's grid import is at the plan's billing peak (or the peak so far) under
    a demand charge: more now would raise what the demand charge bills. Read from the cost stage's
    schedule ``x`` (before the repair's rounding)."""
    bill = inst.bill
    if bill is None or bill.demand_price_per_kw <= 0.0 or not inst.cost_stage or x.shape[1] == 0:
        return False
    presence = inst.grid.presence(inst.departure_s) if inst.n else np.zeros((0, x.shape[1]))
    load = bill.net_peak_kw + (inst.grid_kw_per_unit[:, None] * presence * x).sum(axis=0)
    split = min(max(bill.period_split, 1), len(load))
    peak = max(bill.peak_floor_kw, float(load[:split].max()))
    return bool(load[0] >= peak - 1e-3 * max(1.0, peak))


def _within_caps(x: FloatArray, inst: Instance) -> FloatArray:
    """Every slot at most its outside cap (``SessionState.cap``), on the limit resolution; an AC
    value that a cap cuts below the minimum current is 0."""
    if inst.outside_caps is None or x.size == 0:
        return x
    step = repair.steps(inst)[:, None]
    top = np.floor(inst.slot_max[:, : x.shape[1]] / step + 1e-7) * step
    y = np.minimum(x, top)
    low = inst.is_ac[:, None] & (y > 0.0) & (y < inst.min_unit[:, None] - 1e-9)
    return np.where(low, 0.0, y)


def _bindings(
    inst: Instance, rows: Rows, x0: FloatArray, energy: FloatArray, paused: set[int], peak_now: bool = False
) -> list[str]:
    """The constraint that holds each session's first-slot limit where it is (vectorised)."""
    n = inst.n
    if n == 0:
        return []
    a = rows.a
    residual = rows.cap_at(0) - a @ x0
    uses = a > 0
    mins = inst.min_unit
    want = np.where(x0 <= 0, np.maximum(0.1, mins - x0), 0.1)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(uses, residual[:, None] / np.where(uses, a, 1.0), np.inf)
    # among tight rows the smallest room wins; ties go to the deepest node (largest row index)
    q_idx = np.arange(a.shape[0], dtype=np.float64)[:, None]
    best = np.argmin(room - 1e-9 * q_idx, axis=0) if a.shape[0] else np.zeros(n, dtype=np.int64)
    best_room = room[best, np.arange(n)] if a.shape[0] else np.full(n, np.inf)
    over_rows = np.array(rows.overloaded, dtype=bool)
    over_q = np.where(uses & over_rows[:, None], q_idx, -1.0).max(axis=0) if a.shape[0] else np.full(n, -1.0)
    need, maxs = inst.need_kwh, inst.max_unit
    is_paused = np.zeros(n, dtype=bool)
    is_paused[sorted(paused)] = True
    cap0 = inst.slot_max[:, 0] if inst.grid.count else maxs
    capped = (cap0 < maxs - 1e-9) & (x0 >= cap0 - 0.1)
    # the first that applies, in this order
    code = np.select(
        [
            need <= 1e-9,
            is_paused,
            over_q >= 0,
            capped,
            (maxs <= 0) | (x0 >= maxs - 0.1),
            best_room < want + 1e-6,
            (x0 > 0) & (energy >= need - 1e-3 * np.fmax(1.0, need)),
        ],
        [0, 1, 2, 7, 3, 4, 5], 6,
    ).tolist()
    if peak_now:
        held = "demand charge"
    elif inst.prices is not None:  # the cost stage, or the price as the tie-break of stages 1-2
        held = "tariff"
    else:
        held = "schedule"
    fixed = ("departure met", "min current: paused", "", "", "", "departure met", held, "csms cap")
    labels, over_l, best_l = rows.labels, over_q.tolist(), np.asarray(best).tolist()
    out: list[str] = []
    for s, c in enumerate(code):
        if c == 2:
            out.append(f"overload {labels[int(over_l[s])]}")
        elif c == 3:
            out.append(inst.sessions[s].max_source)
        elif c == 4:
            out.append(labels[int(best_l[s])])
        else:
            out.append(fixed[c])
    return out


def _line_loads_a(inst: Instance, x0: FloatArray) -> dict[str, tuple[float, float, float]]:
    """Each node's planned EV line currents [A], as phasor magnitudes (as summed under the node's
    ``limit_sum``: an arithmetic node adds magnitudes). A session that may draw otherwise than
    planned (a car whose phase count is unknown) counts at the larger of its draws: per line, the
    largest of the sums with every session at its planned draw and at each alternative."""
    n_var = 1 + max((len(p.alt_phasors) for p in inst.sessions), default=0)
    out: dict[str, list[float]] = {node: [0.0, 0.0, 0.0] for node in inst.node_ids}
    for v in range(n_var):
        sums: dict[str, list[complex]] = {node: [0j, 0j, 0j] for node in inst.node_ids}
        mags: dict[str, list[float]] = {node: [0.0, 0.0, 0.0] for node in inst.node_ids}
        for p, x in zip(inst.sessions, x0.tolist(), strict=True):
            if x <= 0.0:
                continue
            draw = p.alt_phasors[v - 1] if 0 < v <= len(p.alt_phasors) else p.phasors
            for node, vec in draw:
                acc, mag = sums.get(node), mags.get(node)
                if acc is None or mag is None:
                    continue
                for ln in range(3):
                    acc[ln] += vec[ln] * x
                    mag[ln] += abs(vec[ln]) * x
        for node in inst.node_ids:
            arithmetic = inst.site.node_limit_sum(node) == "arithmetic"
            for ln in range(3):
                value = mags[node][ln] if arithmetic else abs(sums[node][ln])
                out[node][ln] = max(out[node][ln], value)
    return {node: (v[0], v[1], v[2]) for node, v in out.items()}


def _schedules(
    starts: tuple[datetime, ...], x: FloatArray, presence: FloatArray
) -> list[tuple[tuple[datetime, float], ...]]:
    """Per session: (start, limit) at slot 0 and wherever the limit changes, up to departure."""
    vals = np.round(x, 3)
    n, t = vals.shape
    here = presence > 0
    here[:, 0] = True
    change = np.ones((n, t), dtype=bool)
    change[:, 1:] = vals[:, 1:] != vals[:, :-1]
    keep = here & change
    last = np.where(here.all(axis=1), t, np.argmin(here, axis=1))
    keep &= np.arange(t)[None, :] < last[:, None]
    slot = np.nonzero(keep)[1].tolist()  # row by row, in slot order
    points = list(zip(map(starts.__getitem__, slot), vals[keep].tolist(), strict=True))
    ends = np.cumsum(keep.sum(axis=1)).tolist()
    return [tuple(points[a:b]) for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def _empty_plan(snapshot: Snapshot, reason: str) -> Plan:
    """Every session at 0 (source ``planner error``): what to send when nothing can be planned."""
    now = snapshot.now
    stats = SolveStats("error", "none", 0.0, 0.0, 0.0, 0, 0, 0, False, 0, reason)
    sessions = []
    try:
        for s in snapshot.sessions:
            need = s.energy_need_kwh if isinstance(s.energy_need_kwh, (int, float)) else 0.0
            sessions.append(SessionPlan(
                session_id=str(s.session_id), charger_id=str(s.charger_id), kind="ac",
                limit=Limit(0.0, "planner error"), schedule=((now, 0.0),), expected_energy_kwh=0.0,
                energy_need_kwh=max(0.0, need) if math.isfinite(need) else 0.0,
                departure_at=s.departure_at or now, grid_phases=(), current_a=(0.0, 0.0, 0.0), paused=True,
            ))
    except Exception:  # even the session list is unusable: report none
        sessions = []
    return Plan(created_at=now, slot_starts=(now,), horizon_end=now, sessions=tuple(sessions), nodes=(),
                stats=stats, warnings=(f"planner error, every session at 0: {reason}",))


def plan(
    snapshot: Snapshot, state: PlannerState | None = None, solvers: Sequence[str] = DEFAULT_SOLVERS
) -> tuple[Plan, PlannerState]:
    """Plan one cycle. Pure apart from the kept HiGHS model inside ``state``; never raises on data.

    ``solvers``: tried in order (``"highs"``, ``"cbc"``); the heuristic runs when all fail.
    """
    t_start = time.perf_counter()
    state = state or PlannerState()
    try:
        inst = build_instance(snapshot)
    except Exception as exc:  # malformed site or snapshot: stay safe, say why
        return _empty_plan(snapshot, f"{type(exc).__name__}: {exc}"), PlannerState()
    try:
        return _plan(snapshot, state, solvers, inst, t_start)
    except Exception as exc:  # a planner bug must not take the control loop down
        reason = f"planner error {type(exc).__name__}: {exc}"
        if solvers:
            try:
                p, st = _plan(snapshot, PlannerState(), (), inst, t_start)
                stats = replace(p.stats, fallback_reason=reason)
                return replace(p, stats=stats, warnings=(*p.warnings, reason)), st
            except Exception as exc2:
                reason += f"; heuristic: {type(exc2).__name__}: {exc2}"
        return _empty_plan(snapshot, reason), PlannerState()


def _plan(
    snapshot: Snapshot, state: PlannerState, solvers: Sequence[str], inst: Instance, t_start: float
) -> tuple[Plan, PlannerState]:
    rows = build_rows(inst)
    ids = list(inst.session_ids)
    prev = {sid: state.limits[sid] for sid in ids if sid in state.limits}
    # LP tie-break target for the first slot: last cycle's limit (stability), except for new
    # sessions and those in min-current rotation, which get their fair share.
    target = {sid: v for sid, v in prev.items() if sid not in state.rotating}
    target.update({sid: v for sid, v in state.rotating.items() if sid in prev})
    if len(target) < len(ids):
        kwh0 = inst.grid.presence(inst.departure_s)[:, :1]
        kwh0 = kwh0 * inst.kwh_per_unit_h[:, None]
        fair = fair_first_slot(inst, rows, kwh0)
        target.update({sid: float(fair[s]) for s, sid in enumerate(ids) if sid not in target})

    x, data, stats, new_state = _solve_chain(inst, rows, state, target, solvers)
    x = np.where(data.presence > 1e-9, repair.snap_to_bounds(x, inst), 0.0)
    x_lp = x.copy()
    peak_now = _peak_binds_now(inst, x) if inst.n and stats.solver == "highs" else False  # the LP's own view
    x_first_lp = x[:, 0].copy()
    caps = data.col_upper[: x.size]
    if data.held is not None:  # the cost stage's bounds, never above the energy stage's caps (a DC
        # session on its exact taper has rows, not caps, there: what it could win back is the caps')
        caps = np.minimum(caps, data.held.col_upper[: x.size])
    givers = repair.can_give(x, caps.reshape(x.shape), data.kwh, inst.need_kwh)
    rep = repair.repair_first_slot(
        x[:, 0], inst, rows, state.paused_since, state.running_since, snapshot.now, givers
    )
    x[:, 0] = rep.x0
    kept = new_state.model if stats.solver == "highs" else None
    x, x_lp, fixup_ms = _repair_variants(x, x_lp, inst, rows, data, kept)
    x = repair.round_to_step(x, inst, rows)
    need = inst.need_kwh.copy()
    lp_energy = (data.kwh * x_lp).sum(axis=1)
    x = repair.top_up(x, inst, rows, data.kwh, need, data.cost[: x.size].reshape(x.shape), lp_energy)
    x[:, 0] = repair.deadband(x[:, 0], prev, inst, rows, rep.paused)
    x[:, 1:] = repair.cap_energy(x, data.kwh, need)[:, 1:]
    x = _within_caps(x, inst)
    x, fixes = repair.enforce_limits(x, inst, rows)
    warnings = list(inst.warnings)
    if fixes:
        warnings.append(f"final limit check reduced {fixes} slot limits")

    starts = inst.grid.start_datetimes()
    tz = snapshot.now.tzinfo or UTC
    starts = tuple(s.astimezone(tz) for s in starts)
    energy = np.minimum((data.kwh * x).sum(axis=1), need) if inst.n else np.zeros(0)
    x0 = x[:, 0] if inst.n else np.zeros(0)
    sessions: list[SessionPlan] = []
    sources = _bindings(inst, rows, x0, energy, rep.paused, peak_now)
    scheds = _schedules(starts, x, data.presence) if inst.n else []
    x0_l, energy_l = x0.tolist(), energy.tolist()
    for s, p in enumerate(inst.sessions):
        x0_s = x0_l[s]
        cur = [0.0, 0.0, 0.0]
        for ph in p.grid_phases:
            cur[ph] = x0_s * p.amps_per_unit
        dc = p.kind == "dc"
        unit: LimitUnit = "kW" if dc else "A"
        sessions.append(SessionPlan(
            session_id=p.session_id, charger_id=p.charger.id, kind="dc" if dc else "ac",
            limit=Limit(round(x0_s, 1 if p.kind == "ac" else 3), sources[s], unit),
            schedule=scheds[s],
            expected_energy_kwh=energy_l[s], energy_need_kwh=float(p.need_kwh),
            departure_at=p.departure, grid_phases=p.grid_phases, current_a=(cur[0], cur[1], cur[2]),
            paused=s in rep.paused,
        ))
    for sess, why in inst.skipped:
        sessions.append(SessionPlan(
            session_id=sess.session_id, charger_id=sess.charger_id, kind="ac", limit=Limit(0.0, why),
            schedule=((snapshot.now, 0.0),), expected_energy_kwh=0.0,
            energy_need_kwh=max(0.0, sess.energy_need_kwh or 0.0),
            departure_at=sess.departure_at or snapshot.now, grid_phases=(), current_a=(0.0, 0.0, 0.0),
        ))
    site = inst.site
    nodes: list[NodeLoad] = []
    over = {o.split(":")[0] for o in inst.overloads}
    ev_load = _line_loads_a(inst, x0)
    for node in inst.node_ids:
        room = site.node_limit_a(node) - site.node_margin_a(node)
        for ph in range(3):
            label = node_label(node, ph)
            nodes.append(NodeLoad(node, ph, inst.base_a[node][ph], ev_load[node][ph], room, label in over))

    total_ms = (time.perf_counter() - t_start) * 1e3
    stats = SolveStats(stats.status, stats.solver, stats.build_ms, stats.solve_ms + fixup_ms, total_ms, stats.variables,
                       stats.constraints, stats.slots, stats.warm, stats.iterations, stats.fallback_reason)
    new_state.limits = dict(zip(ids, x0.tolist(), strict=True))
    new_state.paused_since = rep.paused_since
    new_state.running_since = rep.running_since
    new_state.rotating = {sid: float(x_first_lp[s]) for s, sid in enumerate(ids) if sid in rep.rotating}
    new_state.last_plan_at = snapshot.now
    result = Plan(
        created_at=snapshot.now, slot_starts=starts,
        horizon_end=datetime.fromtimestamp(float(inst.grid.boundaries_s[-1]), tz=tz),
        sessions=tuple(sessions), nodes=tuple(nodes), stats=stats,
        overloads=tuple(inst.overloads), warnings=tuple(warnings),
    )
    return result, new_state
