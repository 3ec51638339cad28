"""From an LP (or heuristic) schedule to limits a charger can follow, never over a limit.

AC charging is semi-continuous: 0 or [min_a, max_a]. The LP solves the continuous relaxation; this
module lifts values below the minimum to it where every node/phase has headroom, otherwise pauses
the session. In the first slot the choice of whom to lift rotates (longest-waiting first) with
hysteresis (a started session keeps running ``MIN_RUN_S``, a paused one stays paused
``MIN_PAUSE_S``) so nobody starves and nobody toggles every cycle. Later slots use a stateless
greedy. Then limits are rounded down to 0.1, a deadband holds the previous limit when the change
is small and safe, and a last check scales down anything still over a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from controller.planner.fallback import progressive_fill
from controller.planner.instance import Instance
from controller.planner.rows import Rows

FloatArray = npt.NDArray[np.float64]
MIN_RUN_S = 60.0
MIN_PAUSE_S = 45.0
EPS = 1e-6


@dataclass
class FirstSlotRepair:
    x0: FloatArray
    paused: set[int]
    paused_since: dict[str, datetime] = field(default_factory=dict)
    running_since: dict[str, datetime] = field(default_factory=dict)
    rotating: set[str] = field(default_factory=set)


def _arrays(inst: Instance) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_], FloatArray]:
    # copies: callers may change them; the instance's arrays are read-only and shared
    return (inst.min_unit.copy(), inst.max_unit.copy(), inst.is_ac.copy(),
            np.asarray(inst.priorities, dtype=np.float64))


def snap_to_bounds(x: FloatArray, inst: Instance) -> FloatArray:
    """Clip to [0, max]; values a hair below min count as min; tiny values as 0."""
    mins, maxs, is_ac, _ = _arrays(inst)
    shape = (-1,) + (1,) * (x.ndim - 1)
    mins_b, maxs_b, ac_b = mins.reshape(shape), maxs.reshape(shape), is_ac.reshape(shape)
    y = np.clip(x, 0.0, maxs_b)
    y = np.where(y < 1e-4, 0.0, y)
    y = np.where(ac_b & (y < mins_b) & (y >= mins_b - 1e-4), mins_b, y)
    return np.minimum(y, maxs_b)


def _lift(
    rows: Rows, x: FloatArray, s: int, amount: float, residual: FloatArray,
    mins: FloatArray | None = None, donors: npt.NDArray[np.bool_] | None = None,
    pausable: npt.NDArray[np.bool_] | None = None,
) -> bool:
    """Set ``x[s] = amount`` if every row it loads has the headroom (updates ``x``, ``residual``).

    With ``donors``, a row that is short may take current from those sessions above their
    minimum (largest surplus first), or stop ``pausable`` donors altogether (those that leave later
    and can catch up): the current stays the same, it only changes hands. Whether
    that beats pausing ``s`` depends on whether the donor can make its energy up later, so the
    caller compares both (see ``plan._repair_variants``).
    """
    col = rows.a[:, s]
    deficit = col * amount - residual
    if np.all(deficit <= EPS):
        x[s] = amount
        residual -= col * amount
        return True
    if donors is None or mins is None:
        return False
    full = pausable if pausable is not None else np.zeros(len(x), dtype=bool)
    surplus = np.where(donors & full & (x > EPS), x, np.where(donors & (x > mins + EPS), x - mins, 0.0))
    surplus[s] = 0.0
    cut = np.zeros_like(x)
    for q in np.nonzero(deficit > EPS)[0].tolist():
        short = deficit[q] - rows.a[q] @ cut
        if short <= EPS:
            continue
        cands = np.nonzero((rows.a[q] > 0) & (surplus - cut > EPS))[0].tolist()
        cands.sort(key=lambda j: (-(surplus[j] - cut[j]) * rows.a[q, j], j))
        for j in cands:
            take = surplus[j] - cut[j] if full[j] else min(surplus[j] - cut[j], short / rows.a[q, j])
            cut[j] += take
            short -= take * rows.a[q, j]
            if short <= EPS:
                break
        if short > EPS:
            return False
    new_res = residual + rows.a @ cut - col * amount
    if np.any(new_res < -EPS):
        return False
    x -= cut
    x[s] = amount
    residual[:] = new_res
    return True


def can_give(x: FloatArray, x_up: FloatArray, kwh: FloatArray, need: FloatArray) -> npt.NDArray[np.bool_]:
    """Who may give first-slot current to lift a neighbour to its minimum: a session the plan
    ``x`` leaves short of its need anyway, or one that could take all it may give now (down to
    its minimum; conservatively, all of its first slot) in its later slots, where the plan leaves
    it room. A session on course to be met with no room left never gives."""
    planned = (kwh * x).sum(axis=1)
    short = planned < need - 1e-6 * np.maximum(1.0, need)
    room_later = (kwh[:, 1:] * np.maximum(x_up[:, 1:] - x[:, 1:], 0.0)).sum(axis=1)
    return np.asarray(short | (room_later >= kwh[:, 0] * x[:, 0]), dtype=np.bool_)


def repair_first_slot(
    x0: FloatArray, inst: Instance, rows: Rows, paused_since: dict[str, datetime],
    running_since: dict[str, datetime], now: datetime, givers: npt.NDArray[np.bool_] | None = None,
) -> FirstSlotRepair:
    """Semi-continuity of the enforced slot (see the module docstring). ``givers``: the sessions
    that may give current to lift a neighbour of the same or a better priority to its minimum
    (:func:`can_give`); none when None."""
    mins, _, is_ac, prio = _arrays(inst)
    x = x0.copy()
    frac = is_ac & (x > EPS) & (x < mins - EPS)
    residual = rows.cap_at(0) - rows.a @ np.where(frac, 0.0, x)
    ids = inst.session_ids

    def key(s: int) -> tuple[int, float, float, str]:
        sid = ids[s]
        if sid in paused_since:
            waited = (now - paused_since[sid]).total_seconds()
            if waited >= MIN_PAUSE_S:
                return (1, paused_since[sid].timestamp(), prio[s], sid)
            return (3, -waited, prio[s], sid)
        if sid in running_since:
            ran = (now - running_since[sid]).total_seconds()
            if ran < MIN_RUN_S:
                return (0, 0.0, prio[s], sid)
            return (2, -running_since[sid].timestamp(), prio[s], sid)
        return (1, now.timestamp(), prio[s], sid)

    paused: set[int] = set()
    x = np.where(frac, 0.0, x)
    # a session below its minimum is lifted to it, taking the current it lacks from neighbours on
    # the same rows that run above their own minimum (they keep at least that), are not more
    # important and can spare it (``givers``): a sliver of headroom smaller than a minimum is not
    # left unused when a neighbour can give way
    may_give = np.zeros(len(x), dtype=bool) if givers is None else (givers & is_ac)
    for s in sorted(np.nonzero(frac)[0].tolist(), key=key):
        donors = may_give & (x > mins + EPS) & (prio >= prio[s])
        donors[s] = False
        if not _lift(rows, x, s, mins[s], residual, mins, donors if donors.any() else None):
            paused.add(s)
    if paused:
        x = _share_freed(x, x0, inst, rows, paused, residual)
    new_paused: dict[str, datetime] = {}
    new_running: dict[str, datetime] = {}
    for s, sid in enumerate(ids):
        if x[s] > EPS:
            new_running[sid] = running_since.get(sid, now) if sid not in paused_since else now
        elif s in paused or sid in paused_since:
            new_paused[sid] = paused_since.get(sid, now)
    rotating = {ids[s] for s in np.nonzero(frac)[0].tolist()}
    return FirstSlotRepair(x, paused, new_paused, new_running, rotating)


def _share_freed(
    x: FloatArray, x_lp: FloatArray, inst: Instance, rows: Rows, paused: set[int], residual: FloatArray
) -> FloatArray:
    """Give the capacity the LP meant for paused sessions to neighbours on the same rows (in
    proportion to need), so a pause does not leave headroom unused in the first slot. A neighbour
    that was not charging only starts if its share reaches its minimum."""
    idx = sorted(paused)
    freed = rows.a[:, idx] @ x_lp[idx]
    room = np.maximum(residual, 0.0)  # not capped per row by ``freed``: a one-phase neighbour
    # may use on one phase what a paused three-phase car left on three
    shares_row = (rows.a[freed > EPS] > 0).any(axis=0) if (freed > EPS).any() else np.zeros(len(x), dtype=bool)
    mins, _, is_ac, _ = _arrays(inst)
    maxs = inst.slot_max[:, 0].copy()  # the first slot's most: maximum or outside cap
    need = inst.need_kwh
    cand = shares_row & (need > EPS) & (maxs > x + EPS)
    cand[idx] = False
    if not cand.any():
        return x
    extra = progressive_fill(rows.a, room, np.where(cand, need, 0.0), np.where(cand, maxs - x, 0.0))
    starting = is_ac & (x <= EPS) & (extra > EPS)
    too_small = starting & (extra < mins - EPS)
    if too_small.any():  # cannot start below the minimum: drop those, refill among the rest
        cand &= ~too_small
        extra = progressive_fill(rows.a, room, np.where(cand, need, 0.0), np.where(cand, maxs - x, 0.0))
        extra = np.where(is_ac & (x <= EPS) & (extra < mins - EPS), 0.0, extra)
    return x + extra


def repair_later_slots(x: FloatArray, inst: Instance, rows: Rows, borrow: bool = False) -> FloatArray:
    """Stateless lift-or-pause for slots 1..T-1: most important and largest first. With
    ``borrow``, a lift may instead stop sessions on the same rows that leave later (and so can
    catch up); the LP fix-up then re-plans them."""
    mins, _, is_ac, prio = _arrays(inst)
    dep = inst.departure_s
    y = x.copy()
    for t in range(1, y.shape[1]):
        col = y[:, t]
        frac = is_ac & (col > EPS) & (col < mins - EPS)
        if not frac.any():
            continue
        cand = np.nonzero(frac)[0].tolist()
        cand.sort(key=lambda s: (prio[s], -col[s], s))
        col[frac] = 0.0
        residual = rows.cap_at(t) - rows.a @ col
        for s in cand:
            if borrow:
                later = dep > dep[s]  # can catch up after s has left
                _lift(rows, col, s, mins[s], residual, mins, later, later)
            else:
                _lift(rows, col, s, mins[s], residual)
    return y


def steps(inst: Instance) -> FloatArray:
    """Limit resolution per session: 0.1 A for AC (OCPP 1.6 ``multipleOf 0.1``), 1 W for DC (kW)."""
    return np.where(inst.is_ac, 0.1, 0.001)


def round_to_step(x: FloatArray, inst: Instance, rows: Rows) -> FloatArray:
    """Round limits to their resolution: up where every row still fits, else down.

    Rounding up keeps planned energy (the vehicle stops by itself when full); rounding down is
    the safe side. Never below an AC minimum, never above the maximum.
    """
    mins, _, is_ac, _ = _arrays(inst)
    shape = (-1,) + (1,) * (x.ndim - 1)
    step = steps(inst).reshape(shape)
    m = mins.reshape(shape)
    most = inst.slot_max[:, : x.shape[1]] if x.ndim == 2 else inst.slot_max[:, 0] if inst.grid.count else inst.max_unit
    top = np.floor(most / step + 1e-7) * step
    down = np.floor(x / step + 1e-7) * step
    keep_min = is_ac.reshape(shape) & (x >= m - 1e-9) & (down < m)
    down = np.where(keep_min, m, down)
    up = np.minimum(np.maximum(np.ceil(x / step - 1e-7) * step, down), np.maximum(top, down))
    y = up.copy()
    two_d = y.ndim == 2
    yy = y if two_d else y[:, None]
    dd = down if two_d else down[:, None]
    for t in range(yy.shape[1]):
        for _ in range(rows.a.shape[0] + 1):
            over = rows.a @ yy[:, t] > (rows.cap_at(t) if two_d else rows.cap_at(0)) + EPS
            if not over.any():
                break
            hit = (rows.a[over] > 0).any(axis=0) & (yy[:, t] > dd[:, t])
            if not hit.any():
                break
            yy[hit, t] = dd[hit, t]
    # the enforced slot: give back, one session at a time, the rounding that did not fit at once
    uu = up if two_d else up[:, None]
    if yy.shape[1]:
        residual = rows.cap_at(0) - rows.a @ yy[:, 0]
        _, _, _, prio = _arrays(inst)
        for s in sorted(np.nonzero(uu[:, 0] > yy[:, 0] + 1e-12)[0].tolist(), key=lambda k: (prio[k], k)):
            col = rows.a[:, s]
            extra = uu[s, 0] - yy[s, 0]
            if np.all(col * extra <= residual + EPS):
                yy[s, 0] = uu[s, 0]
                residual -= col * extra
    return yy if two_d else yy[:, 0]


def cap_energy(x: FloatArray, kwh: FloatArray, need: FloatArray) -> FloatArray:
    """Zero every slot after the one in which a session's need is reached."""
    cum = np.cumsum(kwh * x, axis=1)
    before = np.concatenate([np.zeros((x.shape[0], 1)), cum[:, :-1]], axis=1)
    done = before >= need[:, None] - 1e-9
    return np.where(done, 0.0, x)


def deadband(
    x0: FloatArray, prev: dict[str, float], inst: Instance, rows: Rows, paused: set[int]
) -> FloatArray:
    """Keep last cycle's limit when the change is under ``control.deadband_a`` and still safe."""
    band_a = max(0.0, inst.site.control.deadband_a)
    if band_a <= 0 or not prev:
        return x0
    mins, is_ac = inst.min_unit, inst.is_ac
    maxs = inst.slot_max[:, 0] if inst.grid.count else inst.max_unit  # an outside cap counts
    # last cycle's limit per session (NaN: none, or not a number: no deadband)
    old = np.array([prev.get(sid, math.nan) for sid in inst.session_ids], dtype=np.float64)
    known = np.isfinite(old)
    if paused:
        known[sorted(paused)] = False
    band = band_a / inst.amps_per_unit
    same_side = (old > EPS) == (x0 > EPS)
    ok_value = (old <= maxs + EPS) & (~is_ac | (old < EPS) | (old >= mins - EPS))
    hold = known & same_side & ok_value & (np.abs(old - x0) < band)
    y = np.where(hold, old, x0)
    for _ in range(len(y) + 1):
        over = rows.violations(y)
        if not over.any():
            break
        touched = (rows.a[over] > 0).any(axis=0) & (y > x0)
        if not touched.any():
            break
        y = np.where(touched, x0, y)
    return y


def enforce_limits(x: FloatArray, inst: Instance, rows: Rows) -> tuple[FloatArray, int]:
    """Last line of defence: reduce sessions (least important first) until no row is over.

    Returns the schedule and how many reductions were needed (0 when the input was safe).
    """
    mins, _, is_ac, prio = _arrays(inst)
    y = x.copy()
    two_d = y.ndim == 2
    yy = y if two_d else y[:, None]
    fixes = 0
    for t in range(yy.shape[1]):
        for _ in range(4 * yy.shape[0] + 4):
            load = rows.a @ yy[:, t]
            cap_now = rows.cap_at(t) if two_d else rows.cap_at(0)
            over = np.nonzero(load > cap_now + EPS)[0]
            if len(over) == 0:
                break
            q = int(over[0])
            excess = load[q] - cap_now[q]
            users = [s for s in np.nonzero((rows.a[q] > 0) & (yy[:, t] > 0))[0].tolist()]
            if not users:
                break
            s = max(users, key=lambda k: (prio[k], k))
            new = yy[s, t] - excess / rows.a[q, s]
            new = math.floor(max(new, 0.0) * 10.0) / 10.0
            if is_ac[s] and new < mins[s]:
                new = 0.0
            yy[s, t] = new
            fixes += 1
    return (yy if two_d else yy[:, 0]), fixes


def top_up(
    x: FloatArray, inst: Instance, rows: Rows, kwh: FloatArray, need: FloatArray, slot_cost: FloatArray,
    lp_energy: FloatArray | None = None,
) -> FloatArray:
    """Give sessions still short of their need more current in slots with spare headroom.

    Rounding to 0.1 and the min-current repair lose a little energy against the LP plan; this puts
    it back where every row still has room: most important session first, its cheapest slots
    first (``slot_cost[s, t]``). Slot 0 is only raised for sessions already charging in it. With
    ``lp_energy``, only sessions that now get less than the LP planned are topped up.
    """
    mins, _, is_ac, prio = _arrays(inst)
    maxs = inst.slot_max[:, : x.shape[1]]  # per slot: maximum or outside cap
    step = steps(inst)
    y = x.copy()
    energy = (kwh * y).sum(axis=1)
    deficit = need - energy
    lost = deficit > 1e-4 * np.maximum(1.0, need)
    if lp_energy is not None:
        # only where rounding / repair cost energy against the LP plan, and either the LP had the
        # need met or the loss is more than rounding (a pause)
        planned_met = lp_energy >= need - 1e-3 * np.maximum(1.0, need)
        lost &= (lp_energy - energy > 1e-6) & (planned_met | (lp_energy - energy > 0.01 * need))
    short = np.nonzero(lost)[0].tolist()
    if not short:
        return y
    load = rows.a @ y  # (q, t)
    for s in sorted(short, key=lambda k: (prio[k], k)):
        col = rows.a[:, s]
        mine = col > 0
        if mine.any():
            room_t = ((rows.cap_t[mine][:, : load.shape[1]] - load[mine, :]) / col[mine, None]).min(axis=0)
        else:
            room_t = np.full(y.shape[1], np.inf)
        room_t = np.floor(np.maximum(np.minimum(room_t, maxs[s] - y[s]), 0.0) / step[s] + 1e-7) * step[s]
        usable = (kwh[s] > 1e-12) & (room_t > 0)
        usable[0] &= y[s, 0] > 0
        if is_ac[s]:
            usable &= (y[s] > 0) | (room_t >= mins[s])
        idx = np.nonzero(usable)[0]
        for t in idx[np.argsort(slot_cost[s, idx], kind="stable")].tolist():
            if deficit[s] <= 1e-6:
                break
            room = float(room_t[t])
            want = math.ceil(deficit[s] / kwh[s, t] / step[s] - 1e-7) * step[s]
            inc = min(room, want)
            if is_ac[s] and y[s, t] <= 0 and inc < mins[s]:
                inc = mins[s]
            y[s, t] += inc
            load[:, t] += col * inc
            deficit[s] -= inc * kwh[s, t]
    return y
