"""A DC battery's taper as rows of the cost stage: what it accepts depends on when it was charged.

Stages 1-2 cap each slot at what the battery takes along the *fastest* charge from now
(:func:`~controller.planner.instance.taper_caps`): safe for a plan that charges early, but a plan
that waits sees the battery "already full-ish" in later slots and cannot wait. The cost stage
waits on purpose (cheap hours, a flat peak), so for a DC session whose state of charge and battery
size are known it replaces those caps by rows in its own schedule's energy:

    the battery takes full power up to ``TAPER_FROM_SOC_PCT``, then its acceptance falls linearly to
    ``TAPER_FLOOR`` of it at 100 %: with ``u = 1 - c (soc - knee)`` (``c = (1 - floor) / (1 - knee)``)
    ``du/dt = -lam u``, ``lam = c P / B``. Charging at its acceptance from the start of slot k, the
    slot takes at most ``g_k u_k`` kWh, ``g_k = (B / c) (1 - exp(-lam h_k))``, where ``u_k`` is
    linear in the energy before the slot:

        e_k + g_k c / B * sum_{j<k} e_j  <=  g_k (1 - c (soc0 - knee))

together with ``e_k <= P h_k`` (the column bound). Below the knee the row is slack; in the taper
it is exact; across the knee the lesser of the two is a little optimistic (at most one slot).
``P`` is the session's maximum now (:func:`_params`), ``h_k`` the hours it is plugged in during
slot k.

:func:`fastest_kwh` is the most the battery can take from now to a deadline (the exact curve):
the cost stage holds at most that much of the energy stage's answer (whose Euler caps promise a
little more in the taper) and calls a session *tight* when even that misses its need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.planner.instance import TAPER_FLOOR, TAPER_FROM_SOC_PCT, Instance

FloatArray = npt.NDArray[np.float64]
KNEE = TAPER_FROM_SOC_PCT / 100.0
SLOPE = (1.0 - TAPER_FLOOR) / (1.0 - KNEE)  # c: acceptance share lost per unit of state of charge


@dataclass(frozen=True)
class TaperRows:
    """Rows over the x columns (session-major, ``n x t``), for :meth:`highspy.Highs.addRows`."""

    upper: FloatArray  # (rows,)
    start: npt.NDArray[np.int32]  # (rows + 1,) row-wise
    index: npt.NDArray[np.int32]
    value: FloatArray

    @property
    def count(self) -> int:
        return len(self.upper)


def taper_sessions(inst: Instance) -> npt.NDArray[np.bool_]:
    """DC sessions whose state of charge and battery size the planner knows."""
    return np.array(
        [p.kind == "dc" and p.soc_pct is not None and p.battery_kwh is not None and p.battery_kwh > 0
         and p.max_unit > 0 for p in inst.sessions], dtype=bool)


def _params(inst: Instance, i: int) -> tuple[float, float, float]:
    """State of charge (0..1), battery kWh and the curve's full power ``P`` [battery kW]: the
    session's maximum now. A maximum learnt from the draw in the taper is the tapered draw, so
    the curve then tapers twice — pessimistic: the session looks tight sooner and keeps the energy
    stage's schedule. (Recovering the battery's own power from it over-promised where the maximum
    is the vehicle's own: a 50 kW bus on a 150 kW charger planned 4.8 kWh more than it takes.)"""
    p = inst.sessions[i]
    assert p.soc_pct is not None and p.battery_kwh is not None
    return p.soc_pct / 100.0, float(p.battery_kwh), max(p.max_unit * p.kwh_per_unit_h, 1e-6)


def fastest_kwh(inst: Instance, i: int, kwh: FloatArray, until: FloatArray) -> float:
    """The most session ``i`` can take in the slots where ``until`` (its share of each slot, 0..1)
    is positive, charging at its acceptance all the way (``kwh``: its energy per unit per slot)."""
    soc, b, p_kw = _params(inst, i)
    rate = inst.sessions[i].kwh_per_unit_h
    total = 0.0
    lam = SLOPE * p_kw / b
    for k in range(len(kwh)):
        h = float(kwh[k]) / rate * float(until[k]) if rate > 0 else 0.0
        if h <= 0.0 or soc >= 1.0:
            continue
        e = 0.0
        if soc < KNEE:
            t_knee = (KNEE - soc) * b / p_kw
            if t_knee >= h:
                e, h = p_kw * h, 0.0
            else:
                e, h = (KNEE - soc) * b, h - t_knee
        if h > 0.0:
            u = 1.0 - SLOPE * (max(soc, KNEE) - KNEE)
            e += (b / SLOPE) * u * (1.0 - math.exp(-lam * h))
        e = min(e, (1.0 - soc) * b)
        total += e
        soc += e / b
    return total


def taper_rows(
    inst: Instance, kwh: FloatArray, x_up: FloatArray, which: npt.NDArray[np.bool_]
) -> TaperRows | None:
    """The rows of the module docstring for the sessions in ``which``, over slots where the column
    can be positive (``x_up > 0``); ``None`` when there are none."""
    t = kwh.shape[1]
    ups: list[float] = []
    starts: list[int] = [0]
    idx: list[npt.NDArray[np.int64]] = []
    vals: list[FloatArray] = []
    for i in np.nonzero(which)[0].tolist():
        soc, b, p_kw = _params(inst, i)
        rate = inst.sessions[i].kwh_per_unit_h
        if rate <= 0.0:
            continue
        lam = SLOPE * p_kw / b
        live = np.nonzero((x_up[i] > 0) & (kwh[i] > 0))[0]
        if not len(live):
            continue
        for pos, k in enumerate(live.tolist()):
            h = float(kwh[i, k]) / rate
            g = (b / SLOPE) * (1.0 - math.exp(-lam * h))
            before = live[:pos]
            cols = np.concatenate([i * t + before, [i * t + k]]).astype(np.int64)
            coef = np.concatenate([g * SLOPE / b * kwh[i, before], [kwh[i, k]]])
            idx.append(cols)
            vals.append(coef)
            ups.append(g * (1.0 - SLOPE * (soc - KNEE)))
            starts.append(starts[-1] + len(cols))
    if not ups:
        return None
    return TaperRows(np.array(ups), np.array(starts, dtype=np.int32), np.concatenate(idx).astype(np.int32),
                     np.concatenate(vals))
