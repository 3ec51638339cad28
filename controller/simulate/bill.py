"""The depot's bill in a simulation: energy price, grid import, the demand peak and PV.

Each engine step the grid meter sees the site's consumption (the base load's real power plus what
the chargers draw from the grid) less the PV output. What is left, when positive, is **import**:
it costs the price in force at the step's start (dated ``prices`` where they cover it, else the
site's daily ``tariff.energy`` steps, else 0) for the step's length. A negative remainder is
**export**: it earns nothing and imports nothing; the PV that covered consumption is
``pv_used_kwh``.

The demand charge prices the highest ``window_min`` average of import (``tariff.demand``; 15 min
without one): windows aligned to the site-local clock (:00, :15, …), each average the import energy
in it over the part of it the scenario covers. ``cost_demand`` is ``price_per_kw`` × that peak (the
scenario stands for the billing period).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.model.site import Tariff

DEFAULT_WINDOW_MIN = 15


def window_min(tariff: Tariff) -> int:
    """The averaging window of the peak: the demand charge's, else 15 min."""
    return tariff.demand.window_min if tariff.demand is not None else DEFAULT_WINDOW_MIN


def window_start(t: datetime, minutes: int) -> datetime:
    """Start of the clock-aligned window holding ``t`` (aware): aligned in site-local time, so an
    hour's windows start at :00 in every time zone (``t`` carries the site's offset)."""
    offset = t.utcoffset() or timedelta(0)
    local_s = (t.timestamp() + offset.total_seconds()) % (minutes * 60)
    return (t.astimezone(UTC) - timedelta(seconds=local_s)).astimezone(t.tzinfo)


def daily_price(tariff: Tariff, local: datetime) -> float:
    """The daily step in force at site-local ``local`` (before the day's first: yesterday's last)."""
    steps = tariff.energy
    if not steps:
        return 0.0
    price = steps[-1].price_per_kwh
    tod = local.time()
    for step in steps:
        if step.at <= tod:
            price = step.price_per_kwh
    return price


def dated_price(prices: tuple[tuple[datetime, float], ...], t: datetime) -> float | None:
    """The dated price covering ``t``: each step until the next, the last until the end of its hour."""
    if not prices:
        return None
    k = bisect.bisect_right([p[0] for p in prices], t) - 1
    if k < 0:
        return None
    at, price = prices[k]
    if k == len(prices) - 1:
        hour_end = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        if t >= hour_end:
            return None
    return price


def price_at(tariff: Tariff, prices: tuple[tuple[datetime, float], ...], t: datetime, local: datetime) -> float:
    """Price per kWh at ``t`` (``local``: the same moment in site-local naive time)."""
    dated = dated_price(prices, t)
    return dated if dated is not None else daily_price(tariff, local)


def price_change_points(
    tariff: Tariff, prices: tuple[tuple[datetime, float], ...], start: datetime, end: datetime, tz: Any
) -> list[datetime]:
    """Moments in [start, end) where the price may change (aware, ``start``'s zone)."""
    points: set[datetime] = set()
    for at, _ in prices:
        hour_end = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        points.update(p for p in (at, hour_end) if start <= p < end)
    if tariff.energy:
        day = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        last = end.astimezone(tz).replace(tzinfo=None)
        while day <= last:
            for step in tariff.energy:
                local = datetime.combine(day.date(), step.at)
                p = local.replace(tzinfo=tz).astimezone(start.tzinfo)
                if start <= p < end:
                    points.add(p)
            day += timedelta(days=1)
    return sorted(points)


def window_starts(start: datetime, end: datetime, minutes: int, tz: Any) -> list[datetime]:
    """Clock-aligned window boundaries in (start, end) (aware, ``start``'s zone). A window divides
    the hour, so a daylight-saving change keeps the alignment."""
    out = []
    step = timedelta(minutes=minutes)
    t = window_start(start.astimezone(tz), minutes).astimezone(UTC) + step
    while t < end:
        out.append(t.astimezone(start.tzinfo))
        t += step
    return out


@dataclass(frozen=True)
class Bill:
    """What the scenario cost and how high its peak was (JSON: :meth:`to_json`)."""

    currency: str
    cost_energy: float
    cost_demand: float
    peak_kw: float
    peak_window_min: int
    peak_at: datetime | None  # start of the window with the peak
    import_kwh: float
    pv_kwh: float
    pv_used_kwh: float

    @property
    def cost_total(self) -> float:
        return self.cost_energy + self.cost_demand

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "cost_energy": round(self.cost_energy, 4),
            "cost_demand": round(self.cost_demand, 4),
            "cost_total": round(self.cost_total, 4),
            "peak_kw": round(self.peak_kw, 3),
            "peak_window_min": self.peak_window_min,
            "peak_at": None if self.peak_at is None else self.peak_at.isoformat(),
            "import_kwh": round(self.import_kwh, 3),
            "pv_kwh": round(self.pv_kwh, 3),
            "pv_used_kwh": round(self.pv_used_kwh, 3),
        }


@dataclass
class BillMeter:
    """Accumulates the bill step by step (the engine's grid meter with a tariff attached)."""

    tariff: Tariff
    prices: tuple[tuple[datetime, float], ...]
    tz: Any
    cost_energy: float = 0.0
    import_kwh: float = 0.0
    pv_kwh: float = 0.0
    pv_used_kwh: float = 0.0
    peak_kw: float = 0.0
    peak_at: datetime | None = None
    _window: datetime | None = None
    _window_kwh: float = 0.0
    _window_h: float = 0.0
    _completed_peak: float | None = None
    series: dict[str, list[Any]] = field(default_factory=lambda: {"import_kw": [], "price": []})

    @property
    def window_min(self) -> int:
        return window_min(self.tariff)

    def add(self, t: datetime, dt_s: float, consumption_kw: float, pv_kw: float, *, keep: bool = False) -> None:
        """One step from ``t`` of ``dt_s`` at ``consumption_kw`` (base load + chargers, real power)
        with ``pv_kw`` produced."""
        local_t = t.astimezone(self.tz)
        hours = dt_s / 3600.0
        import_kw = max(0.0, consumption_kw - pv_kw)
        price = price_at(self.tariff, self.prices, t, local_t.replace(tzinfo=None))
        self.cost_energy += import_kw * hours * price
        self.import_kwh += import_kw * hours
        self.pv_kwh += pv_kw * hours
        self.pv_used_kwh += min(pv_kw, max(0.0, consumption_kw)) * hours
        start = window_start(local_t, self.window_min)
        if self._window is None or start != self._window:
            self._close()
            self._window, self._window_kwh, self._window_h = start, 0.0, 0.0
        self._window_kwh += import_kw * hours
        self._window_h += hours
        if keep:
            self.series["import_kw"].append(import_kw)
            self.series["price"].append(price)

    def _close(self) -> None:
        if self._window is None or self._window_h <= 0:
            return
        avg = self._window_kwh / self._window_h
        self._completed_peak = avg if self._completed_peak is None else max(self._completed_peak, avg)
        if self.peak_at is None or avg > self.peak_kw:
            self.peak_kw, self.peak_at = avg, self._window

    @property
    def peak_so_far_kw(self) -> float | None:
        """The highest average of the windows completed so far (``Snapshot.demand_peak_kw``)."""
        return self._completed_peak

    def bill(self) -> Bill:
        """The bill with the current (last) window counted."""
        self._close()
        self._window = None
        demand = self.tariff.demand
        return Bill(
            currency=self.tariff.currency,
            cost_energy=self.cost_energy,
            cost_demand=demand.price_per_kw * self.peak_kw if demand is not None else 0.0,
            peak_kw=self.peak_kw,
            peak_window_min=self.window_min,
            peak_at=self.peak_at,
            import_kwh=self.import_kwh,
            pv_kwh=self.pv_kwh,
            pv_used_kwh=self.pv_used_kwh,
        )
