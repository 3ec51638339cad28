"""Step functions of time, and their mean, least and largest value over each slot.

Prices, the PV forecast, the base-load forecast and outside caps all arrive as steps
``(from, value)``, each until the next. Plan slots are constant within a slot, so what the planner
needs of such a function per slot is its time-weighted mean (energy and its cost), its least value
(PV for the demand charge: the window with the least PV counts) or its largest (a base load).
Times are epoch seconds. Pure: numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Steps:
    """``values[i]`` on ``[at_s[i], at_s[i + 1])``; undefined before ``at_s[0]`` and from
    ``at_s[-1]`` on (which may be ``inf``: the last value holds for ever)."""

    at_s: FloatArray  # (k + 1,) ascending
    values: FloatArray  # (k,)

    @staticmethod
    def from_points(times_s: list[float], values: list[float], end_s: float) -> Steps | None:
        """Steps from ``(time, value)`` points (any order; of equal times the last given wins), the
        last until ``end_s``. ``None`` when there are no points."""
        if not times_s:
            return None
        order = sorted(range(len(times_s)), key=lambda i: (times_s[i], i))
        at: list[float] = []
        vals: list[float] = []
        for i in order:
            if at and at[-1] == times_s[i]:
                vals[-1] = values[i]
            else:
                at.append(times_s[i])
                vals.append(values[i])
        at.append(max(end_s, at[-1]))
        return Steps(np.asarray(at, dtype=np.float64), np.asarray(vals, dtype=np.float64))

    def mean(self, starts: FloatArray, ends: FloatArray) -> FloatArray:
        """Time-weighted mean over the defined part of each interval (NaN where none is)."""
        grid = self.at_s.copy()
        if not math.isfinite(float(grid[-1])):  # the last value holds for ever: integrate far enough
            grid[-1] = max(float(np.max(ends, initial=grid[-2])), float(grid[-2])) + 1.0
        integral = np.concatenate([[0.0], np.cumsum(self.values * np.diff(grid))])
        lo = np.clip(starts, grid[0], grid[-1])
        hi = np.clip(ends, grid[0], grid[-1])
        span = hi - lo
        total = np.interp(hi, grid, integral) - np.interp(lo, grid, integral)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(span > 0, total / np.where(span > 0, span, 1.0), np.nan)
        return np.asarray(out, dtype=np.float64)

    def _reduce(self, starts: FloatArray, ends: FloatArray, largest: bool) -> FloatArray:
        out = np.full(len(starts), np.nan)
        first = np.searchsorted(self.at_s, starts, side="right") - 1  # the step in force at the start
        last = np.searchsorted(self.at_s, ends, side="left") - 1  # the last step beginning before the end
        k = len(self.values)
        for i, (a, b) in enumerate(zip(first.tolist(), last.tolist(), strict=True)):
            a, b = max(a, 0), min(b, k - 1)
            if b < a or ends[i] <= starts[i]:
                continue
            seg = self.values[a : b + 1]
            out[i] = float(seg.max() if largest else seg.min())
        return out

    def minimum(self, starts: FloatArray, ends: FloatArray) -> FloatArray:
        """Least value the steps take in each interval (NaN where they take none)."""
        return self._reduce(starts, ends, largest=False)

    def maximum(self, starts: FloatArray, ends: FloatArray) -> FloatArray:
        """Largest value the steps take in each interval (NaN where they take none)."""
        return self._reduce(starts, ends, largest=True)
