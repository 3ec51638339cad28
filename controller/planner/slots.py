"""The horizon and its slot grid: fine near now, coarser later.

Boundaries are aligned to wall-clock multiples (``slot_min`` near now, one hour later on) so that
consecutive cycles see the same slots and the LP keeps its shape between cycles. The first slot
runs from ``now`` to the first aligned boundary at or after the next plan; it is the only slot
whose limits are enforced (the next plan replaces it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from controller.model.site import Control, TariffStep

FINE_HOURS = 3.0
"""Slots are ``slot_min`` long up to this many hours from now, hourly after."""
COARSE_S = 3600.0
MIN_LAST_SLOT_S = 60.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SlotGrid:
    """Slot ``t`` runs from ``starts[t]`` to ``starts[t + 1]`` (``ends[t]``); times in epoch seconds."""

    boundaries_s: FloatArray  # length T + 1

    @property
    def count(self) -> int:
        return len(self.boundaries_s) - 1

    @property
    def starts_s(self) -> FloatArray:
        return self.boundaries_s[:-1]

    @property
    def ends_s(self) -> FloatArray:
        return self.boundaries_s[1:]

    @property
    def hours(self) -> FloatArray:
        return np.diff(self.boundaries_s) / 3600.0

    def start_datetimes(self) -> tuple[datetime, ...]:
        return tuple(datetime.fromtimestamp(float(s), tz=UTC) for s in self.starts_s)

    def presence(self, departure_s: FloatArray) -> FloatArray:
        """Fraction [0..1] of each slot (columns) before each departure (rows)."""
        starts = self.starts_s[None, :]
        length = np.diff(self.boundaries_s)[None, :]
        frac = (departure_s[:, None] - starts) / length
        return np.clip(frac, 0.0, 1.0)


def _ceil_to(t_s: float, step_s: float) -> float:
    return math.ceil(t_s / step_s - 1e-9) * step_s


def build_slots(now: datetime, next_plan_at: datetime, end: datetime, control: Control) -> SlotGrid:
    """Slot grid from ``now`` to ``end`` (``end`` is moved to at least the first boundary)."""
    now_s = now.timestamp()
    plan_s = max(next_plan_at.timestamp(), now_s + 1.0)
    fine_s = max(60.0, float(control.slot_min) * 60.0)
    first = _ceil_to(plan_s, fine_s)
    end_s = max(end.timestamp(), first)
    bounds = [now_s, first]
    fine_until = now_s + FINE_HOURS * 3600.0
    t = first
    while t < end_s - 1e-6:
        step = fine_s if t < fine_until else COARSE_S
        t = min(_ceil_to(t + 1.0, step), end_s)
        bounds.append(t)
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < MIN_LAST_SLOT_S:
        del bounds[-2]
    return SlotGrid(np.asarray(bounds, dtype=np.float64))


def tariff_prices(grid: SlotGrid, tariff: tuple[TariffStep, ...], tz_name: str) -> FloatArray | None:
    """Price per kWh of each slot (time-weighted mean over the slot, the daily steps read in
    site-local wall-clock time), or ``None`` without a tariff."""
    from controller.planner.prices import daily_steps, site_tz, slot_prices

    if not tariff or grid.count == 0:
        return None
    daily = daily_steps(tariff, site_tz(tz_name), float(grid.starts_s[0]), float(grid.ends_s[-1]))
    return slot_prices(grid.starts_s, grid.ends_s, daily, None)


def horizon_end(now: datetime, departures: list[datetime], control: Control) -> datetime:
    cap = now + timedelta(hours=max(control.horizon_h, 0.25))
    if not departures:
        return now
    return min(max(departures), cap)
