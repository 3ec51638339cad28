"""Deterministic heuristic for when no solver answers: capacity shared in proportion to need.

Slot by slot, priority class by priority class (1 first), a progressive fill gives every session
``lambda * remaining_need`` until it reaches its maximum, its remaining need for the slot, or a
node/phase (or grid kW) row runs out; then the next class gets what is left. Respects every limit;
the min-current repair runs afterwards as for the LP.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from controller.planner.instance import Instance
from controller.planner.rows import Rows

FloatArray = npt.NDArray[np.float64]
EPS = 1e-9


def progressive_fill(a: FloatArray, residual: FloatArray, weight: FloatArray, upper: FloatArray) -> FloatArray:
    """Max-min fair progressive filling: alloc = lambda * weight, frozen at upper or a full row."""
    n = len(weight)
    alloc = np.zeros(n)
    active = (weight > EPS) & (upper > EPS)
    res = residual.copy()
    for _ in range(n + len(res) + 1):
        if not active.any():
            break
        w = np.where(active, weight, 0.0)
        rate = a @ w  # load per unit lambda on each row
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_rows = np.where(rate > EPS, res / rate, np.inf)
            lam_sess = np.where(active, (upper - alloc) / np.maximum(w, EPS), np.inf)
        lam = float(min(lam_rows.min(initial=np.inf), lam_sess.min(initial=np.inf)))
        if not np.isfinite(lam):
            break
        lam = max(lam, 0.0)
        alloc = alloc + lam * w
        res = res - lam * rate
        full_rows = (rate > EPS) & (res <= EPS * (1.0 + np.abs(residual)))
        blocked = (a[full_rows] > 0).any(axis=0) if full_rows.any() else np.zeros(n, dtype=bool)
        at_upper = alloc >= upper - 1e-9
        active = active & ~blocked & ~at_upper
    return np.minimum(alloc, upper)


def proportional_schedule(inst: Instance, rows: Rows, kwh: FloatArray) -> FloatArray:
    """Schedule (n, t) in decision units; ``kwh[s, t]`` is energy per unit in slot t."""
    n, t = kwh.shape
    x = np.zeros((n, t))
    if n == 0:
        return x
    remaining, prio = inst.need_kwh, np.asarray(inst.priorities)
    most = inst.slot_max  # per slot: maximum or outside cap
    classes = sorted(set(prio.tolist()))
    for k in range(t):
        residual = np.maximum(rows.cap_at(k).copy(), 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            need_cap = np.where(kwh[:, k] > EPS, remaining / kwh[:, k], 0.0)
        upper = np.minimum(most[:, k], need_cap)
        for c in classes:
            members = prio == c
            weight = np.where(members & (kwh[:, k] > EPS), remaining, 0.0)
            alloc = progressive_fill(rows.a, residual, weight, np.where(members, upper, 0.0))
            x[:, k] += alloc
            residual = np.maximum(residual - rows.a @ alloc, 0.0)
        remaining = np.maximum(remaining - kwh[:, k] * x[:, k], 0.0)
    return x


def fair_first_slot(inst: Instance, rows: Rows, kwh: FloatArray) -> FloatArray:
    """Slot-0 shares in proportion to need, by priority class: the LP's tie-break target when a
    session has no previous limit (equal sessions then get equal limits, not an arbitrary vertex)."""
    if inst.n == 0 or kwh.shape[1] == 0:
        return np.zeros(inst.n)
    need, prio = inst.need_kwh, np.asarray(inst.priorities)
    upper = np.where(kwh[:, 0] > EPS, inst.slot_max[:, 0], 0.0)
    residual = np.maximum(rows.cap_at(0).copy(), 0.0)
    x = np.zeros(inst.n)
    for c in sorted(set(prio.tolist())):
        members = prio == c
        weight = np.where(members & (upper > 0), need, 0.0)
        alloc = progressive_fill(rows.a, residual, weight, np.where(members, upper, 0.0))
        x += alloc
        residual = np.maximum(residual - rows.a @ alloc, 0.0)
    return x
