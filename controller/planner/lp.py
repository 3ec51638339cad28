"""The planning LP as sparse arrays, solved by HiGHS through highspy, with model reuse.

Columns (in this order):
  x[s, t]  decision of session s in slot t: A per used phase (AC) or kW (DC), 0..max
  u[s, k]  shortfall of session s, K pieces of need/K each with growing cost (fairness)
  d+[s], d-[s]  deviation of the first-slot decision from the previous plan (stability)
  z[c]     largest shortfall fraction in priority class c (fairness within a class)
  (cost stage only, :mod:`controller.planner.cost`: ev[t], export[t], peak[2])
Rows:
  line rows   (row, slot): per node-line (and per facet of its phasor polygon, see
              Instance.line_rows) the EV current under the node <= room (limit - margin - base)
  kW rows     (slot): EV grid power <= limit_kw - base power      (only with grid.limit_kw)
  energy rows (session): sum_t kwh[s,t] x[s,t] + sum_k u[s,k] = need
  stab rows   (session): x[s,0] - d+ + d- = previous first-slot decision   (free without one)
  fair rows   (session): sum_k u[s,k] - request[s] z[class(s)] <= 0   (request = delivered + need;
              free for tiny requests)
  (cost stage only: ev rows, export rows, peak rows per slot)

The objective realises the order of the issue with weights: shortfall (by priority rank, convex in
the shortfall fraction so it is shared in proportion to need) >> tariff ~ earliness >> stability.
What a plan costs (energy, demand charge, PV) is minimised by the cost stage
(:mod:`controller.planner.cost`) after these, holding their energy.
With ``control.when_short: complete`` the shortfall cost is linear in each session's shortfall
*fraction* instead (and the fairness rows are off): as many sessions as possible are completed.
Earliness is weighted by laxity (least laxity first) and priority class.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import highspy
import numpy as np
import numpy.typing as npt

from controller.planner.highs import new_highs
from controller.planner.instance import Instance, taper_caps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
INF = highspy.kHighsInf

SEGMENTS = 4
SLOPES = np.array([1.0, 2.0, 4.0, 8.0])
MAX_RANK_RATIO = 30.0
MAX_WEIGHT_RANGE = 1e6
EARLY_W = 0.02
LAXITY_BASE = 0.5  # earliness weight (x EARLY_W) of a session with all the time in the world
TOP_CLASS_EARLY = 3.0  # the most important priority class is served this much earlier
STAB_W = 1e-5
FAIR_W = 0.2  # z cost: this x the class's median need x its shortfall weight
FAIR_MIN_NEED = 0.2  # sessions needing less than this x the class median stay out of z
NEAR_EPS = 0.2  # departures first, stage 2: the unmet closest to their need first, a tie-break
EARLY_MET_W = 0.03  # stage 2: per kWh x priority weight, a met departure's energy at its deadline vs now
MET_TOL = 1e-4  # a departure counts as met in stage 1 with this fraction of its need short
PRICE_EPS = 1e-9  # prices closer than this (relative) are the same price
TARIFF_W = 0.1  # stages 1-2: per kWh x the slot's price scaled to 0..1, below every shortfall cost (>= 1)
# — a tie-break that never trades energy; measured: the same departures met with and without a
# tariff (bench instances, the scenario files, random snapshots), half the simplex iterations where
# the price moves load out of congested hours, and the cost stage starts near its answer


@dataclass(frozen=True)
class Layout:
    """Where everything lives; also the shape key for model reuse."""

    n: int
    t: int
    row_keys: tuple[str, ...]  # line rows (Instance.line_rows): node, line and facet
    kw_rows: bool
    classes: tuple[int, ...]  # per session: index of its priority class (z column)
    n_classes: int
    # the line-row coefficients (a digest of Instance.line_rows.a) and the kW-row ones, which
    # :func:`_update` does not send — a DC session replaced by an AC one on the same nodes must
    # rebuild the model
    row_coef: bytes = b""
    kw_per_unit: tuple[float, ...] = ()
    # the cost stage's columns and rows (:mod:`controller.planner.cost`), after all others:
    # columns ev[t] (EV kW at the grid), export[t], peak (this billing period), peak (the next),
    # then fut[k, t] (the expected arrivals' group k in slot t, kW); rows per slot: ev
    # (definition), export, peak, then one energy row per group; ``peak_split``: first slot of
    # the next period; ``n_fut``: expected arrivals' groups
    cost: bool = False
    peak_split: int = 0
    n_fut: int = 0

    @property
    def n_x(self) -> int:
        return self.n * self.t

    @property
    def n_cost_cols(self) -> int:
        return 2 * self.t + 2 + self.n_fut * self.t if self.cost else 0

    @property
    def fut_col0(self) -> int:
        return self.peak_col0 + 2

    @property
    def n_cols(self) -> int:
        return self.n_x + self.n * SEGMENTS + 2 * self.n + self.n_classes + self.n_cost_cols

    @property
    def ev_col0(self) -> int:
        return self.z_col0 + self.n_classes

    @property
    def export_col0(self) -> int:
        return self.ev_col0 + self.t

    @property
    def peak_col0(self) -> int:
        return self.export_col0 + self.t

    @property
    def z_col0(self) -> int:
        return self.n_x + self.n * SEGMENTS + 2 * self.n

    @property
    def n_node_rows(self) -> int:
        return len(self.row_keys) * self.t

    @property
    def kw_row0(self) -> int:
        return self.n_node_rows

    @property
    def energy_row0(self) -> int:
        return self.n_node_rows + (self.t if self.kw_rows else 0)

    @property
    def stab_row0(self) -> int:
        return self.energy_row0 + self.n

    @property
    def fair_row0(self) -> int:
        return self.stab_row0 + self.n

    @property
    def ev_row0(self) -> int:
        return self.fair_row0 + self.n

    @property
    def export_row0(self) -> int:
        return self.ev_row0 + self.t

    @property
    def peak_row0(self) -> int:
        return self.export_row0 + self.t

    @property
    def fut_row0(self) -> int:
        return self.peak_row0 + self.t

    @property
    def n_rows(self) -> int:
        return self.fair_row0 + self.n + (3 * self.t + self.n_fut if self.cost else 0)


@dataclass
class LpData:
    layout: Layout
    col_lower: FloatArray
    col_upper: FloatArray
    cost: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    kwh: FloatArray  # (n, t) energy per unit decision in each slot
    presence: FloatArray  # (n, t)
    z_coef: FloatArray  # (n,) whole request in the fair rows (z column coefficient, negated)
    ev_kw: FloatArray | None = None  # (n, t) cost stage: grid kW per unit decision (x's coefficient in the ev rows)
    fut_kwh: FloatArray | None = None  # (K, t) cost stage: kWh per unit of an expected group's kW (its energy row)
    held: LpData | None = None  # cost stage: the data of the stage whose energy it holds
    taper: Any = None  # cost stage: controller.planner.taper.TaperRows added after the matrix (or None)


@dataclass
class LpResult:
    x: FloatArray  # (n, t) decisions
    status: str
    ok: bool
    build_ms: float
    solve_ms: float
    iterations: int
    warm: bool
    variables: int
    constraints: int


@dataclass
class LpModel:
    """A live HiGHS model kept between cycles (in the PlannerState) while the shape holds."""

    highs: Any
    layout: Layout
    kwh: FloatArray
    extra: dict[str, Any] = field(default_factory=dict)
    # departures first: the energy stage's own model, hot-started from its own last optimum (from
    # the first stage's basis it took as many iterations as the first stage itself)
    stage2: LpModel | None = None
    # the cost stage's own model (:mod:`controller.planner.cost`), likewise kept
    stage3: LpModel | None = None

    def for_fixups(self) -> LpModel:
        """The model holding the data of the energy stage (what the repair re-plans energy on)."""
        return self.stage2 if self.stage2 is not None else self


def layout_for(inst: Instance) -> Layout:
    lr = inst.line_rows
    prios = inst.priorities
    ranks = sorted(set(prios))
    rank = {pr: i for i, pr in enumerate(ranks)}
    return Layout(
        n=inst.n, t=inst.grid.count, row_keys=lr.keys,
        kw_rows=inst.grid_kw_cap is not None,
        classes=tuple([rank[pr] for pr in prios]), n_classes=len(ranks),
        row_coef=hashlib.blake2b(np.ascontiguousarray(lr.a).tobytes(), digest_size=16).digest(),
        kw_per_unit=tuple(inst.grid_kw_per_unit.tolist()),
    )


def priority_weights(priorities: list[int]) -> FloatArray:
    """Shortfall weight per session: each better priority rank dominates the next."""
    ranks = sorted(set(priorities))
    if not ranks:
        return np.zeros(0)
    r = len(ranks)
    ratio = MAX_RANK_RATIO if r <= 1 else min(MAX_RANK_RATIO, MAX_WEIGHT_RANGE ** (1.0 / (r - 1)))
    by_rank = {p: ratio ** (r - 1 - i) for i, p in enumerate(ranks)}
    return np.array([by_rank[p] for p in priorities], dtype=np.float64)


def lp_data(inst: Instance, layout: Layout, prev: dict[str, float]) -> LpData:
    n, t = layout.n, layout.t
    g = inst.grid
    ss = inst.sessions
    hours = g.hours
    dep = inst.departure_s
    presence = g.presence(dep) if n else np.zeros((0, t))
    kwh_h = inst.kwh_per_unit_h
    kwh = kwh_h[:, None] * hours[None, :] * presence
    max_u = inst.max_unit
    need = inst.need_kwh
    total = need + inst.delivered_kwh  # the whole request
    amps = inst.amps_per_unit

    x_up = np.where(presence > 1e-9, max_u[:, None], 0.0)
    for i, p in enumerate(ss):
        if p.soc_pct is None or p.battery_kwh is None:
            continue  # no taper known (taper_caps says None)
        caps = taper_caps(p, g)
        if caps is not None:
            x_up[i] *= caps
            if p.kind == "ac":  # an AC charger cannot offer less than its minimum: 0 or min
                x_up[i] = np.where(x_up[i] < p.min_unit, np.where(x_up[i] > 0, p.min_unit, 0.0), x_up[i])
    if inst.outside_caps is not None:  # SessionState.cap (an AC cap below the minimum is 0 already)
        x_up = np.minimum(x_up, inst.outside_caps)
    x_up = np.where(need[:, None] > 1e-9, x_up, 0.0)

    per_kwh = earliness_per_kwh(inst, layout, inst.now.timestamp())
    if inst.prices is not None and len(inst.prices):  # the bill as a tie-break (see TARIFF_W)
        lo, hi = float(inst.prices.min()), float(inst.prices.max())
        if hi - lo > PRICE_EPS * max(abs(hi), abs(lo)):  # a flat price (up to rounding) is no tie-break
            per_kwh = per_kwh + TARIFF_W * ((inst.prices - lo) / (hi - lo))[None, :]
    cost_x = (kwh * per_kwh).ravel()
    w = priority_weights(list(inst.priorities))
    cost_d = np.concatenate([STAB_W * amps, STAB_W * amps])
    classes = np.array(layout.classes, dtype=np.int64)
    cost_z = np.zeros(layout.n_classes)
    fair_on = np.zeros(n, dtype=bool)
    if inst.site.control.when_short == "complete":
        # a shortfall costs its fraction of the *remaining* need, linearly: the LP leaves short
        # the sessions whose kWh buy the least completion (the largest remaining needs) and
        # completes the rest — fractional knapsack, smallest remaining needs first, which keeps
        # a session that got ahead ahead from one plan to the next; ties by departure, then
        # input order, so equal needs do not trade places each cycle; no fairness rows
        remaining = np.maximum(need, 1e-3)
        biggest = np.zeros(n)
        for c in range(layout.n_classes):
            members = classes == c
            if members.any():
                biggest[members] = float(np.max(remaining[members]))
        order = np.lexsort((np.arange(n), dep))  # earliest departure first
        tie = np.empty(n)
        tie[order] = 1.0 + 1e-3 * (n - np.arange(n)) / max(n, 1)
        per_kwh_short = w * biggest / remaining * tie
        cost_u = np.repeat(per_kwh_short, SEGMENTS) * SLOPES[0]
    else:
        cost_u = (w[:, None] * SLOPES[None, :]).ravel()
        for c in range(layout.n_classes):
            members = (classes == c) & (need > 1e-6)
            if members.any():
                med = float(np.median(total[members]))
                cost_z[c] = FAIR_W * med * float(w[classes == c][0])
                fair_on |= members & (total >= FAIR_MIN_NEED * med)

    col_lower = np.zeros(layout.n_cols)
    col_upper = np.concatenate([
        x_up.ravel(), np.repeat(total / SEGMENTS, SEGMENTS), np.full(2 * n, INF), np.ones(layout.n_classes),
    ])
    cost = np.concatenate([cost_x, cost_u, cost_d, cost_z])

    row_lower = np.full(layout.n_rows, -INF)
    row_upper = np.full(layout.n_rows, INF)
    if layout.row_keys:
        row_upper[: layout.n_node_rows] = inst.row_caps()[1].ravel()
    if layout.kw_rows:
        row_upper[layout.kw_row0 : layout.kw_row0 + t] = float(inst.grid_kw_cap or 0.0)
    e0 = layout.energy_row0
    row_lower[e0 : e0 + n] = need
    row_upper[e0 : e0 + n] = need
    s0 = layout.stab_row0
    if prev:
        hit = [(i, prev[sid]) for i, sid in enumerate(inst.session_ids) if sid in prev]
        if hit:
            at = np.array([i for i, _ in hit], dtype=np.int64)
            v = np.array([pv for _, pv in hit], dtype=np.float64)
            v = np.where(v < 0.0, 0.0, v)  # min(max(v, 0), max_u) as Python's min/max (NaN stays)
            v = np.where(max_u[at] < v, max_u[at], v)
            row_lower[s0 + at] = v
            row_upper[s0 + at] = v
    f0 = layout.fair_row0
    row_upper[f0 : f0 + n] = np.where(fair_on, 0.0, INF)
    return LpData(layout, col_lower, col_upper, cost, row_lower, row_upper, kwh, presence, np.maximum(total, 1e-3))


def earliness_per_kwh(inst: Instance, layout: Layout, now_s: float, tight_step: float = 0.0) -> FloatArray:
    """(n, t) the earliness cost per kWh of each session-slot, seen from ``now_s``: later slots
    cost more, least laxity first (the share of its remaining time a session needs at full rate),
    so nobody is put off until it cannot catch up, and the most important priority class ahead of
    the rest. ``tight_step`` > 0 rounds the laxity term to that step (the cost stage's tie-break:
    costs that do not move every cycle keep its hot start short)."""
    n = layout.n
    g = inst.grid
    dep = inst.departure_s
    mids = (g.starts_s + g.ends_s) / 2.0
    span = np.maximum(dep - now_s, 3600.0)
    early = np.clip((mids[None, :] - now_s) / span[:, None], 0.0, 1.0)
    rate = np.maximum(inst.max_unit * inst.kwh_per_unit_h, 1e-6)
    tight = np.clip(inst.need_kwh / (rate * np.maximum(dep - now_s, 60.0) / 3600.0), 0.0, 2.0)
    if tight_step > 0.0:
        tight = np.round(tight / tight_step) * tight_step
    rank = np.array(layout.classes, dtype=np.float64)  # 0 = most important class
    first = np.where(rank == 0, TOP_CLASS_EARLY, 1.0) if layout.n_classes > 1 else np.ones(n)
    out: FloatArray = EARLY_W * early * ((LAXITY_BASE + tight) * first)[:, None]
    return out


def met_earliness(inst: Instance, met: npt.NDArray[np.bool_], kwh: FloatArray, now_s: float) -> FloatArray:
    """(n, t) stage 2's cost for lateness of the departures held met (earliest first), per
    session-slot: weighted by the least important class's weight, so that a better class's
    earliness never outweighs a kWh for anyone (energy comes before earliness)."""
    g = inst.grid
    w = priority_weights(list(inst.priorities))
    mids = (g.starts_s + g.ends_s) / 2.0
    early = np.clip((mids[None, :] - now_s) / np.maximum(inst.departure_s - now_s, 60.0)[:, None], 0.0, 1.0)
    out: FloatArray = np.where(met[:, None], EARLY_MET_W * float(w.min()) * early * kwh, 0.0)
    return out


def matrix(inst: Instance, data: LpData) -> tuple[IntArray, IntArray, FloatArray]:
    """Column-wise sparse matrix (start, index, value); row indices ascend within each column."""
    lay = data.layout
    n, t = lay.n, lay.t
    at = inst.line_rows.a.T  # (n, q)
    nz = at > 0.0
    per = nz.sum(axis=1)
    pmax = int(per.max()) if n and at.shape[1] else 0
    m = pmax + (4 if lay.cost else 3)
    rows = np.zeros((n, t, m), dtype=np.int64)
    vals = np.zeros((n, t, m), dtype=np.float64)
    mask = np.zeros((n, t, m), dtype=bool)
    tt = np.arange(t, dtype=np.int64)
    row_idx = np.full((n, max(pmax, 1)), -1, dtype=np.int64)
    coef = np.zeros((n, max(pmax, 1)), dtype=np.float64)
    if pmax:
        sess_i, row_q = np.nonzero(nz)  # row-major: by session, rows ascending
        slot = np.arange(len(sess_i)) - np.repeat(np.cumsum(per) - per, per)
        row_idx[sess_i, slot] = row_q
        coef[sess_i, slot] = at[sess_i, row_q]
    if pmax:
        valid = row_idx[:, :pmax] >= 0
        rows[:, :, :pmax] = row_idx[:, None, :pmax] * t + tt[None, :, None]
        vals[:, :, :pmax] = coef[:, None, :pmax]
        mask[:, :, :pmax] = valid[:, None, :]
    if lay.kw_rows:
        kw = inst.grid_kw_per_unit
        rows[:, :, pmax] = lay.kw_row0 + tt[None, :]
        vals[:, :, pmax] = kw[:, None]
        mask[:, :, pmax] = True
    rows[:, :, pmax + 1] = lay.energy_row0 + np.arange(n)[:, None]
    vals[:, :, pmax + 1] = data.kwh
    mask[:, :, pmax + 1] = True
    if t:
        rows[:, 0, pmax + 2] = lay.stab_row0 + np.arange(n)
        vals[:, 0, pmax + 2] = 1.0
        mask[:, 0, pmax + 2] = True
    if lay.cost:  # the cost stage: each x in its slot's ev row (grid kW)
        assert data.ev_kw is not None
        rows[:, :, pmax + 3] = lay.ev_row0 + tt[None, :]
        vals[:, :, pmax + 3] = data.ev_kw
        mask[:, :, pmax + 3] = True
    counts_x = mask.sum(axis=2).ravel()
    idx_x = rows[mask]
    val_x = vals[mask]
    # u columns: one entry in the energy row; d+ / d- one entry in the stab row
    # u columns: energy row and fair row; d+ / d-: stab row; z[c]: the fair rows of class c
    sess = np.arange(n)
    idx_u = np.stack([np.repeat(lay.energy_row0 + sess, SEGMENTS), np.repeat(lay.fair_row0 + sess, SEGMENTS)],
                     axis=1).ravel()
    idx_d = np.concatenate([lay.stab_row0 + sess, lay.stab_row0 + sess])
    val_d = np.concatenate([-np.ones(n), np.ones(n)])
    classes = np.array(lay.classes, dtype=np.int64)
    order = np.argsort(classes, kind="stable")
    idx_z = lay.fair_row0 + order
    val_z = -data.z_coef[order]
    counts = np.concatenate([
        counts_x, np.full(n * SEGMENTS, 2, dtype=np.int64), np.ones(2 * n, dtype=np.int64),
        np.bincount(classes, minlength=lay.n_classes).astype(np.int64),
    ])
    index = np.concatenate([idx_x, idx_u, idx_d, idx_z])
    value = np.concatenate([val_x, np.ones(2 * n * SEGMENTS), val_d, val_z])
    if lay.cost:
        c_counts, c_index, c_value = _cost_columns(lay, data.fut_kwh)
        counts = np.concatenate([counts, c_counts])
        index = np.concatenate([index, c_index])
        value = np.concatenate([value, c_value])
    start = np.zeros(lay.n_cols + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return start, index, value


def _cost_columns(lay: Layout, fut_kwh: FloatArray | None) -> tuple[IntArray, IntArray, FloatArray]:
    """The cost stage's columns: ev[t] (-1 in its ev row, +1 in its export row, -1 in its peak
    row), export[t] (+1 in its export row), the two peaks (+1 in the peak rows of their period),
    fut[k, t] (-1 in its slot's peak row, ``fut_kwh[k, t]`` in its group's energy row)."""
    t = lay.t
    tt = np.arange(t, dtype=np.int64)
    ev_idx = np.stack([lay.ev_row0 + tt, lay.export_row0 + tt, lay.peak_row0 + tt], axis=1).ravel()
    ev_val = np.tile(np.array([-1.0, 1.0, -1.0]), t)
    split = min(max(lay.peak_split, 0), t)
    k = lay.n_fut
    coef = fut_kwh if fut_kwh is not None and k else np.zeros((k, t))
    fut_idx = np.stack([np.tile(lay.peak_row0 + tt, k), np.repeat(lay.fut_row0 + np.arange(k, dtype=np.int64), t)],
                       axis=1).ravel()
    fut_val = np.stack([np.full(k * t, -1.0), coef.ravel()], axis=1).ravel()
    counts = np.concatenate([np.full(t, 3, dtype=np.int64), np.ones(t, dtype=np.int64),
                             np.array([split, t - split], dtype=np.int64), np.full(k * t, 2, dtype=np.int64)])
    index = np.concatenate([ev_idx, lay.export_row0 + tt, lay.peak_row0 + tt, fut_idx])
    value = np.concatenate([ev_val, np.ones(t), np.ones(t), fut_val])
    return counts, index, value


def _new_highs(time_limit_s: float) -> Any:
    h = new_highs(max(0.001, time_limit_s))
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("presolve", "off")  # measured: presolve costs more than it saves here
    return h


def _pass(h: Any, data: LpData, start: IntArray, index: IntArray, value: FloatArray) -> None:
    """Hand the model to HiGHS as arrays (highspy's array overload: no per-element conversion — the
    ``HighsLp`` attribute route cost 3 ms per pass at 100 sessions)."""
    lay = data.layout
    h.passModel(
        lay.n_cols, lay.n_rows, len(index), int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize),
        0.0, np.ascontiguousarray(data.cost, dtype=np.float64),
        np.ascontiguousarray(data.col_lower, dtype=np.float64), np.ascontiguousarray(data.col_upper, dtype=np.float64),
        np.ascontiguousarray(data.row_lower, dtype=np.float64), np.ascontiguousarray(data.row_upper, dtype=np.float64),
        start[:-1].astype(np.int32), index.astype(np.int32), np.ascontiguousarray(value, dtype=np.float64),
        np.zeros(lay.n_cols, dtype=np.int32),  # all continuous (an empty array is read as garbage)
    )


def _changed(old: FloatArray | None, new: FloatArray) -> npt.NDArray[np.int32]:
    if old is None or old.shape != new.shape:
        return np.arange(len(new), dtype=np.int32)
    return np.nonzero(old != new)[0].astype(np.int32)


def _changed2(
    old_lo: FloatArray | None, new_lo: FloatArray, old_up: FloatArray | None, new_up: FloatArray
) -> npt.NDArray[np.int32]:
    """Indices where either bound changed (a mask, not a sorted union: cheaper at 40 000 columns)."""
    if old_lo is None or old_up is None or old_lo.shape != new_lo.shape or old_up.shape != new_up.shape:
        return np.arange(len(new_lo), dtype=np.int32)
    return np.nonzero((old_lo != new_lo) | (old_up != new_up))[0].astype(np.int32)


def _update(model: LpModel, data: LpData) -> None:
    """Bring the kept model to this cycle's data, sending only what changed."""
    h = model.highs
    lay = data.layout
    ex = model.extra
    cl = ex.get("col_lower")
    cu = ex.get("col_upper")
    if "x_lo" in ex:  # a fix-up pass changed x bounds after the last full update
        cl = cl.copy() if cl is not None else None
        cu = cu.copy() if cu is not None else None
        if cl is not None and cu is not None:
            cl[: lay.n_x] = ex.pop("x_lo")
            cu[: lay.n_x] = ex.pop("x_up")
    cols = _changed2(cl, data.col_lower, cu, data.col_upper)
    if len(cols):
        h.changeColsBounds(len(cols), cols, data.col_lower[cols], data.col_upper[cols])
    cols = _changed(ex.get("cost"), data.cost)
    if len(cols):
        h.changeColsCost(len(cols), cols, data.cost[cols])
    rows = _changed2(ex.get("row_lower"), data.row_lower, ex.get("row_upper"), data.row_upper)
    if len(rows):
        h.changeRowsBounds(len(rows), rows, data.row_lower[rows], data.row_upper[rows])
    change = h.changeCoeff
    t = lay.t
    _send_coeffs(change, model.kwh, data.kwh, lambda s, k: lay.energy_row0 + s, lambda s, k: s * t + k)
    model.kwh = data.kwh
    if lay.cost and data.ev_kw is not None:
        _send_coeffs(change, ex.get("ev_kw"), data.ev_kw, lambda s, k: lay.ev_row0 + k, lambda s, k: s * t + k)
    if lay.cost and lay.n_fut and data.fut_kwh is not None:  # the slots' hours move with now
        _send_coeffs(change, ex.get("fut_kwh"), data.fut_kwh, lambda g, k: lay.fut_row0 + g,
                     lambda g, k: lay.fut_col0 + g * t + k)
    old_z = ex.get("z_coef")
    z_sess = np.arange(lay.n) if old_z is None else np.nonzero(np.abs(old_z - data.z_coef) > 1e-12)[0]
    f0 = lay.fair_row0
    fair_free = bool((data.row_upper[f0 : f0 + lay.n] >= INF).all() and (data.row_lower[f0 : f0 + lay.n] <= -INF).all())
    z_now = data.z_coef
    if fair_free and old_z is not None:
        # every fair row is free (departures first): its coefficients change nothing; they are
        # sent when a fair row next binds (``z_coef`` remembers what the model holds)
        z_sess, z_now = z_sess[:0], old_z
    if len(z_sess):
        classes = np.asarray(lay.classes, dtype=np.int64)
        row_idx = (lay.fair_row0 + z_sess).tolist()
        col_idx = (lay.z_col0 + classes[z_sess]).tolist()
        for r, c, v in zip(row_idx, col_idx, (-data.z_coef[z_sess]).tolist(), strict=True):
            change(r, c, v)
    _remember(model, data)
    model.extra["z_coef"] = z_now


def _send_coeffs(
    change: Callable[[int, int, float], Any], old: FloatArray | None, new: FloatArray,
    row_of: Callable[[IntArray, IntArray], IntArray], col_of: Callable[[IntArray, IntArray], IntArray],
) -> None:
    """Send the entries of a coefficient block ``new`` (entry ``[i, j]`` at row ``row_of(i, j)``,
    column ``col_of(i, j)``) that differ from ``old``, the block the model holds (all without one)."""
    i, j = np.nonzero(np.ones_like(new, dtype=bool) if old is None else np.abs(old - new) > 1e-12)
    for r, c, v in zip(row_of(i, j).tolist(), col_of(i, j).tolist(), new[i, j].tolist(), strict=True):
        change(r, c, v)


def _remember(model: LpModel, data: LpData) -> None:
    model.extra.update(
        z_coef=data.z_coef, col_lower=data.col_lower, col_upper=data.col_upper, cost=data.cost,
        row_lower=data.row_lower, row_upper=data.row_upper, ev_kw=data.ev_kw, fut_kwh=data.fut_kwh,
    )
    model.extra.pop("x_lo", None)
    model.extra.pop("x_up", None)


MetChooser = Callable[[Instance, "LpData", FloatArray], tuple[FloatArray, str]]


def solve(
    inst: Instance, prev: dict[str, float], model: LpModel | None, time_limit_s: float,
    choose_met: MetChooser | None = None,
) -> tuple[LpResult, LpModel | None, LpData]:
    """Build (or update the kept model) and solve. Never raises on solver trouble.

    With ``when_short: complete`` (departures first) two hot-started solves: the first chooses
    which departures to meet (fractional knapsack), the second maximises energy with those held
    met (see :func:`energy_stage`). When the second fails, the first's answer stands.
    ``choose_met(inst, data, x)``: may replace the knapsack's schedule ``x`` by one meeting more
    departures (the MILP on small instances, :func:`controller.planner.milp.choose_met`); returns
    the schedule whose met set stage 2 holds and a note for the status ("" when unchanged)."""
    res, model, data = _solve_once(inst, prev, model, time_limit_s)
    if inst.site.control.when_short != "complete" or not res.ok or model is None or inst.n == 0:
        if model is not None:
            model.stage2 = None
            model.extra.pop("matrix", None)
        return res, model, data
    t0 = time.perf_counter()
    x_met, how = res.x, ""
    if choose_met is not None:
        try:
            x_met, how = choose_met(inst, data, res.x)
        except Exception as exc:  # the knapsack's met set stands
            x_met, how = res.x, f"met set: MILP failed ({type(exc).__name__}), knapsack's kept"
    data2 = energy_stage(inst, data, x_met)
    try:
        kept2 = _kept_or_built(inst, data2, model.stage2, time_limit_s, basis_from=model)
        t1 = time.perf_counter()
        kept2.highs.run()
        t2 = time.perf_counter()
        ok = kept2.highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        iters = int(kept2.highs.getInfo().simplex_iteration_count)
        if ok:
            lay = data2.layout
            vals = np.asarray(kept2.highs.getSolution().col_value[: lay.n_x], dtype=np.float64)
            x2 = vals.reshape(lay.n, lay.t)
    except Exception:  # keep the first stage's answer
        ok, iters = False, 0
        t1 = t2 = time.perf_counter()
    model.extra.pop("matrix", None)  # only the cold stage 2 right after a cold stage 1 uses it
    if not ok:
        model.stage2 = None  # rebuilt next cycle; the first stage's answer stands
        return res, model, data
    model.stage2 = kept2
    status = f"{res.status}; {how}" if how else res.status
    res2 = LpResult(x2, status, True, res.build_ms + (t1 - t0) * 1e3, res.solve_ms + (t2 - t1) * 1e3,
                    res.iterations + iters, res.warm, res.variables, res.constraints)
    return res2, model, data2


def met_tolerance(need: FloatArray) -> FloatArray:
    """Shortfall up to which a session counts as met."""
    return MET_TOL * np.maximum(1.0, need)


def met_mask(need: FloatArray, short: FloatArray) -> npt.NDArray[np.bool_]:
    """The one rule for "met" in the LP's model: a need (> 1e-9 kWh), short by at most
    :func:`met_tolerance` (stage 2 holds these; the MILP counts them)."""
    return np.asarray((need > 1e-9) & (short <= met_tolerance(need)), dtype=np.bool_)


def energy_stage(inst: Instance, data: LpData, x: FloatArray) -> LpData:
    """Stage 2 of departures first: the departures ``x`` meets are held met (their shortfall
    columns capped at what ``x`` left, a tolerance), and the shortfall of the rest costs its
    priority weight per kWh — so total energy is maximised — and, at equal energy, the unmet
    closest to their need come first (``NEAR_EPS``; measured against sharing the shortfall in
    proportion to need as the tie-break: fewer departures met on five of eight ACN days)."""
    lay = data.layout
    n = lay.n
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + n]
    short = np.maximum(need - (data.kwh * x).sum(axis=1), 0.0)
    met = met_mask(need, short)
    w = priority_weights(list(inst.priorities))
    u0 = lay.n_x
    cost = data.cost.copy()
    # among the unmet, at equal energy: the closest to its need first (stage 1's order), so the
    # next cycle can complete it, rather than everyone a little
    rem = np.maximum(short, 1e-3)
    near = np.zeros(n)
    classes = np.array(lay.classes, dtype=np.int64)
    for c in range(lay.n_classes):
        members = classes == c
        near[members] = float(np.min(rem[members])) / rem[members]
    cost[u0 : u0 + n * SEGMENTS] = np.repeat(w * (1.0 + NEAR_EPS * near), SEGMENTS)
    # the departures held met are served early (earliest first): what is delivered is not at risk
    # from a driver who leaves before the estimate, and next cycle's stage 1 finds the same set
    # ahead (it prefers the smallest remaining needs) instead of trading places with the rest
    cost[: lay.n_x] += met_earliness(inst, met, data.kwh, inst.now.timestamp()).ravel()
    col_upper = data.col_upper.copy()
    u_up = col_upper[u0 : u0 + n * SEGMENTS].reshape(n, SEGMENTS)
    u_up[met] = (short[met] / SEGMENTS + 1e-9)[:, None]
    return replace(data, cost=cost, col_upper=col_upper)


def _kept_or_built(
    inst: Instance, data: LpData, kept: LpModel | None, time_limit_s: float, basis_from: LpModel | None = None
) -> LpModel:
    """The kept model brought to ``data`` (only what changed is sent) when its shape still fits,
    else a new one (hot-started from ``basis_from``'s basis when given: same shape)."""
    if kept is not None and kept.layout == data.layout:
        _update(kept, data)
        kept.highs.setOptionValue("time_limit", float(max(0.001, time_limit_s)))
        return kept
    same = basis_from is not None and basis_from.layout == data.layout
    built_with = basis_from.extra.pop("matrix", None) if basis_from is not None else None
    if same and built_with is not None and built_with[0] is data.kwh:
        start, index, value = built_with[1:]  # the stage the basis comes from was just built cold
    else:
        start, index, value = matrix(inst, data)
    h = _new_highs(time_limit_s)
    _pass(h, data, start, index, value)
    if same and basis_from is not None:
        h.setBasis(basis_from.highs.getBasis())
    built = LpModel(h, data.layout, data.kwh)
    _remember(built, data)
    if basis_from is None:
        built.extra["matrix"] = (data.kwh, start, index, value)  # for the next stage's cold build
    return built


def _solve_once(
    inst: Instance, prev: dict[str, float], model: LpModel | None, time_limit_s: float
) -> tuple[LpResult, LpModel | None, LpData]:
    t0 = time.perf_counter()
    layout = layout_for(inst)
    data = lp_data(inst, layout, prev)
    warm = model is not None and model.layout == layout
    try:
        model = _kept_or_built(inst, data, model, time_limit_s)
        t1 = time.perf_counter()
        model.highs.run()
        t2 = time.perf_counter()
        status = model.highs.getModelStatus()
        status_s = model.highs.modelStatusToString(status)
        ok = status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kModelEmpty)
        info = model.highs.getInfo()
        iters = int(info.simplex_iteration_count)
        x = np.zeros((layout.n, layout.t))
        if ok and layout.n_x:
            vals = np.asarray(model.highs.getSolution().col_value[: layout.n_x], dtype=np.float64)
            x = vals.reshape(layout.n, layout.t)
        else:
            model = None  # do not hot-start from a failed solve
    except Exception as exc:  # solver trouble must never take the controller down
        t1 = t2 = time.perf_counter()
        return (
            LpResult(np.zeros((layout.n, layout.t)), f"error: {exc}", False, (t1 - t0) * 1e3, 0.0, 0,
                     warm, layout.n_cols, layout.n_rows),
            None, data,
        )
    res = LpResult(x, status_s, ok, (t1 - t0) * 1e3, (t2 - t1) * 1e3, iters, warm, layout.n_cols, layout.n_rows)
    return res, model, data


def resolve_with_pattern(
    model: LpModel, data: LpData, x_lo: FloatArray, x_up: FloatArray
) -> tuple[FloatArray | None, float]:
    """Re-solve the kept model with new bounds on the x columns (hot start). Used after the
    min-current repair to let the LP re-plan around the fixed on/off pattern. Only changed bounds
    are sent. Returns the new decisions (or None when not optimal) and the solve time in ms."""
    lay = data.layout
    h = model.highs
    cur_lo = model.extra.get("x_lo", data.col_lower[: lay.n_x])
    cur_up = model.extra.get("x_up", data.col_upper[: lay.n_x])
    lo, up = x_lo.ravel(), x_up.ravel()
    changed = np.nonzero((lo != cur_lo) | (up != cur_up))[0].astype(np.int32)
    t0 = time.perf_counter()
    try:
        if len(changed):
            h.changeColsBounds(len(changed), changed, lo[changed], up[changed])
        model.extra["x_lo"], model.extra["x_up"] = lo, up
        row_upper = model.extra["row_upper"]
        e0 = lay.energy_row0
        if np.any(row_upper[e0 : e0 + lay.n] < INF):
            # a minimum current may deliver a little more than the need (the car stops when full)
            rows = np.arange(e0, e0 + lay.n, dtype=np.int32)
            h.changeRowsBounds(lay.n, rows, data.row_lower[e0 : e0 + lay.n], np.full(lay.n, INF))
            relaxed = row_upper.copy()
            relaxed[e0 : e0 + lay.n] = INF
            model.extra["row_upper"] = relaxed
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, (time.perf_counter() - t0) * 1e3
        vals = np.asarray(h.getSolution().col_value, dtype=np.float64)
    except Exception:  # keep the repaired plan
        return None, (time.perf_counter() - t0) * 1e3
    return vals[: lay.n_x].reshape(lay.n, lay.t), (time.perf_counter() - t0) * 1e3
