"""The capacity constraints as a small dense matrix, for repair, fallback, checks and reporting.

Row q: ``sum_s a[q, s] * x[s, t] <= cap_t[q, t]``. ``cap`` is the room left by the measured base
load (held over the horizon); ``cap_t`` is that, or per slot what a day-ahead forecast leaves
(never more than ``cap`` within the next hour). Rows are the (node, phase) pairs that some session loads, in tree
order (parents before children), then ``grid kW`` if set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.model.site import GRID_ID, PHASES
from controller.planner.instance import Instance

FloatArray = npt.NDArray[np.float64]
TOL_A = 1e-6


@dataclass(frozen=True)
class Rows:
    a: FloatArray  # (q, n)
    cap: FloatArray  # (q,) from the measured base load
    labels: tuple[str, ...]
    overloaded: tuple[bool, ...]
    cap_t: FloatArray  # (q, slots): with the forecast where there is one

    def cap_at(self, t: int) -> FloatArray:
        return self.cap_t[:, t] if t < self.cap_t.shape[1] else self.cap

    def load(self, x: FloatArray) -> FloatArray:
        """Load per row for ``x`` of shape (n,) or (n, t)."""
        return self.a @ x

    def violations(self, x: FloatArray, tol: float = TOL_A) -> npt.NDArray[np.bool_]:
        """Boolean (q, ...) where a row is over its capacity."""
        if x.ndim == 1:
            cap = self.cap_at(0)
        else:
            cap = self.cap_t[:, : x.shape[1]] if self.cap_t.shape[1] >= x.shape[1] else self.cap[:, None]
        over: npt.NDArray[np.bool_] = self.a @ x > cap + tol
        return over


def node_label(node: str, phase: int) -> str:
    return f"grid {PHASES[phase]}" if node == GRID_ID else f"circuit {node} {PHASES[phase]}"


def build_rows(inst: Instance) -> Rows:
    pairs, session_pairs = inst.node_pairs
    q = len(pairs) + (1 if inst.grid_kw_cap is not None else 0)
    a = np.zeros((q, inst.n))
    counts = [len(sp) for sp in session_pairs]
    if sum(counts):
        cols = np.repeat(np.arange(inst.n), counts)
        a[np.fromiter((i for sp in session_pairs for i in sp), dtype=np.int64, count=len(cols)), cols] = \
            inst.amps_per_unit[cols]
    cap = [inst.cap_a[node][ph] for node, ph in pairs]
    labels = [node_label(node, ph) for node, ph in pairs]
    over_prefix = {o.split(":")[0] for o in inst.overloads}
    overloaded = [lbl in over_prefix for lbl in labels]
    if inst.grid_kw_cap is not None:
        a[-1, :] = inst.grid_kw_per_unit
        cap.append(inst.grid_kw_cap)
        labels.append("grid kW")
        overloaded.append("grid kW" in over_prefix)
    cap_arr = np.asarray(cap, dtype=np.float64)
    cap_t = np.repeat(cap_arr[:, None], inst.grid.count, axis=1)
    for i, (node, ph) in enumerate(pairs):
        cap_t[i] = inst.slot_caps_a(node, ph)
    return Rows(a=a, cap=cap_arr, labels=tuple(labels), overloaded=tuple(overloaded), cap_t=cap_t)
