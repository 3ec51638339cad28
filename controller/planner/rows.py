"""The capacity constraints as a small dense matrix, for repair, fallback, checks and reporting.

Row q: ``sum_s a[q, s] * x[s, t] <= cap_t[q, t]``. ``cap`` is the room left by the measured base
load (held over the horizon); ``cap_t`` is that, or per slot what a day-ahead forecast leaves
(never more than ``cap`` within the next hour). Rows are the line rows of :attr:`Instance.line_rows`
(per node-line some session loads, one per facet of the phasor polygon; in tree order), the
site's explicit constraints, then ``grid kW`` if set. Every coefficient is >= 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from controller.planner.instance import Instance, node_label

__all__ = ["Rows", "build_rows", "node_label"]

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


def build_rows(inst: Instance) -> Rows:
    lr = inst.line_rows
    cap_l, cap_t_l = inst.row_caps()
    a = lr.a
    cap = cap_l.tolist()
    labels = list(lr.labels)
    cap_t = cap_t_l
    if inst.grid_kw_cap is not None:
        a = np.vstack([a, inst.grid_kw_per_unit[None, :]])
        cap.append(inst.grid_kw_cap)
        labels.append("grid kW")
        cap_t = np.vstack([cap_t, np.full((1, inst.grid.count), inst.grid_kw_cap)])
    over_prefix = {o.split(":")[0] for o in inst.overloads}
    overloaded = [lbl in over_prefix for lbl in labels]
    return Rows(
        a=np.array(a, dtype=np.float64), cap=np.asarray(cap, dtype=np.float64), labels=tuple(labels),
        overloaded=tuple(overloaded), cap_t=np.array(cap_t, dtype=np.float64),
    )
