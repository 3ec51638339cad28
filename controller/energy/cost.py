"""What grid import costs: import energy × the price in force, per site-local day and in total. Pure.

Fed the grid meter's import [kW] every reading (:mod:`.intervals`: each reading stands for the
time since the one before) and a price function; the covered time is split at site-local midnight
(a day is 23 h or 25 h on DST days) and each piece is priced at its middle. Energy without a price
(no tariff covers it) is counted but not priced (``priced_kwh`` tells how much was). Export costs
and earns nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from controller.energy.intervals import MAX_GAP_S, Coverage, next_day_start, split


@dataclass(frozen=True)
class EnergyDay:
    """One site-local day's grid import and its cost so far."""

    day: date
    import_kwh: float = 0.0
    priced_kwh: float = 0.0
    cost: float = 0.0

    @property
    def priced(self) -> bool:
        """Whether any of the day's import had a price (else its cost is unknown, not 0)."""
        return self.priced_kwh > 0.0


class CostMeter:
    """Today's import and cost, and the running total cost (a counter: it only grows)."""

    def __init__(self, tz: ZoneInfo, max_gap_s: float = MAX_GAP_S) -> None:
        self.tz = tz
        self._coverage = Coverage(max_gap_s)
        self.today: EnergyDay | None = None
        self.total_cost = 0.0  # every day before ``today`` and ``today`` itself

    def restore(self, today: EnergyDay | None, cost_before: float) -> None:
        """Start from the store: the current day so far and the cost of every day before it."""
        self.today = today
        self.total_cost = cost_before + (today.cost if today is not None else 0.0)

    def observe(
        self, at: datetime, import_kw: float | None, price_at: Callable[[datetime], float | None]
    ) -> list[EnergyDay]:
        """A reading of grid import [kW] at ``at`` (None: none this cycle); returns the days it ended
        (their final figures)."""
        ended: list[EnergyDay] = []
        span = self._coverage.cover(at, import_kw is not None)
        kw = max(0.0, import_kw or 0.0)
        for t0, t1 in split(span, lambda t: next_day_start(t, self.tz)) if span is not None else ():
            piece_day = t0.astimezone(self.tz).date()  # (t0, t1] lies within t0's day
            ended.extend(self._roll(piece_day))
            d = self.today
            if d is None or d.day != piece_day:
                continue  # the clock stepped back over midnight: that day is closed
            kwh = kw * (t1 - t0).total_seconds() / 3600.0
            price = price_at(t0 + (t1 - t0) / 2)
            if price is None:
                self.today = replace(d, import_kwh=d.import_kwh + kwh)
            else:
                self.today = replace(
                    d, import_kwh=d.import_kwh + kwh, priced_kwh=d.priced_kwh + kwh, cost=d.cost + kwh * price
                )
                self.total_cost += kwh * price
        ended.extend(self._roll(at.astimezone(self.tz).date()))
        return ended

    def _roll(self, day: date) -> list[EnergyDay]:
        """Make ``day`` the current one if it is later; returns the day it ended."""
        if self.today is None:
            self.today = EnergyDay(day)
        elif self.today.day < day:
            ended, self.today = self.today, EnergyDay(day)
            return [ended]
        return []
