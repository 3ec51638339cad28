"""The energy price of each plan slot: dated prices where they are, else the site's daily tariff.

* ``site.tariff.energy`` — daily steps in site-local wall-clock time: the price in force at an
  instant is the step whose ``at`` is the latest at or before the local time of day then (before
  the day's first step: the day's last). On a DST change day this is the wall clock's reading: a
  step inside the skipped hour starts when the clock jumps past it, the repeated hour repeats its
  steps.
* ``Snapshot.prices`` — dated steps ``(from, price)``, each until the next, the last until the end
  of its (site-local) hour. Where they cover a moment they win over the daily tariff.
* Neither covers a moment (dated prices only, past their end): the time-weighted mean of the dated
  prices over the horizon — a neutral guess, so that the hours after the day-ahead prices are
  neither a bargain nor to be avoided.

A slot's price is the time-weighted mean over the slot (a slot's kW is constant, so this is what
its energy costs). Pure: no I/O, no clock.
"""

from __future__ import annotations

import bisect
import math
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from controller.model.site import TariffStep
from controller.planner.steps import Steps

FloatArray = npt.NDArray[np.float64]
DAY_S = 86400.0


def site_tz(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return UTC


def _sod(local: datetime) -> float:
    return local.hour * 3600.0 + local.minute * 60.0 + local.second + local.microsecond * 1e-6


def _offset_s(t_s: float, tz: tzinfo) -> float:
    off = datetime.fromtimestamp(t_s, tz=tz).utcoffset()
    return 0.0 if off is None else off.total_seconds()


def _transitions(tz: tzinfo, t0_s: float, t1_s: float) -> list[float]:
    """Instants in ``[t0, t1]`` at which the zone's UTC offset changes (to the second)."""
    out: list[float] = []
    step = 3600.0
    prev_t, prev = t0_s, _offset_s(t0_s, tz)
    t = t0_s
    while t < t1_s:
        t = min(t + step, t1_s)
        cur = _offset_s(t, tz)
        if cur != prev:
            lo, hi = prev_t, t  # offset(lo) = prev, offset(hi) = cur
            while hi - lo > 1.0:
                mid = math.floor((lo + hi) / 2.0)
                if _offset_s(mid, tz) == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        prev_t, prev = t, cur
    return out


def daily_steps(steps: tuple[TariffStep, ...], tz: tzinfo, t0_s: float, t1_s: float) -> Steps | None:
    """The daily tariff as dated steps over ``[t0, t1)`` (wall-clock semantics, see above)."""
    if not steps or t1_s <= t0_s:
        return None
    order = sorted(steps, key=lambda s: s.at)
    secs = [s.at.hour * 3600.0 + s.at.minute * 60.0 + s.at.second for s in order]
    prices = [float(s.price_per_kwh) if math.isfinite(s.price_per_kwh) else 0.0 for s in order]
    points = {t0_s, t1_s, *_transitions(tz, t0_s, t1_s)}
    day = datetime.fromtimestamp(t0_s, tz=tz).date() - timedelta(days=1)
    last_day = datetime.fromtimestamp(t1_s, tz=tz).date() + timedelta(days=1)
    while day <= last_day:
        for s in order:
            for fold in (0, 1):  # a repeated wall time happens twice
                u = _local(day, s.at, tz, fold)
                if t0_s < u < t1_s:
                    points.add(u)
        day += timedelta(days=1)
    bounds = sorted(points)
    values = []
    for a, b in pairwise(bounds):
        sod = _sod(datetime.fromtimestamp((a + b) / 2.0, tz=tz))
        k = bisect.bisect_right(secs, sod + 1e-6) - 1
        values.append(prices[k])  # k = -1: before the day's first step, the last one's
    return Steps(np.asarray(bounds, dtype=np.float64), np.asarray(values, dtype=np.float64))


def _local(day: date, at: time, tz: tzinfo, fold: int) -> float:
    return datetime.combine(day, at, tzinfo=tz).replace(fold=fold).timestamp()


def dated_steps(
    prices: tuple[tuple[datetime, float], ...], tz: tzinfo, warnings: list[str]
) -> Steps | None:
    """``Snapshot.prices`` as steps, the last until the end of its site-local hour. Entries without
    a time zone or with a price that is not a finite number are left out (with a warning)."""
    times: list[float] = []
    values: list[float] = []
    bad = 0
    for entry in prices:
        try:
            at, price = entry
            if at.tzinfo is None or at.utcoffset() is None:
                raise ValueError("naive time")
            value = float(price)
            if not math.isfinite(value):
                raise ValueError("not finite")
            times.append(at.timestamp())
            values.append(value)
        except (TypeError, ValueError, AttributeError, OverflowError):
            bad += 1
    if bad:
        warnings.append(f"prices: {bad} unusable entr{'y' if bad == 1 else 'ies'} left out")
    if not times:
        return None
    last = datetime.fromtimestamp(max(times), tz=tz)
    end = last.replace(minute=0, second=0, microsecond=0).timestamp() + 3600.0
    return Steps.from_points(times, values, end)


def slot_prices(
    starts_s: FloatArray, ends_s: FloatArray, daily: Steps | None, dated: Steps | None
) -> FloatArray | None:
    """Price per kWh of each slot (time-weighted mean), or ``None`` when nothing gives a price."""
    if daily is None and dated is None:
        return None
    t0, t1 = float(starts_s[0]), float(ends_s[-1])
    if dated is None:
        assert daily is not None
        return _filled(daily.mean(starts_s, ends_s))
    points = {t0, t1}
    for steps in (dated, daily):
        if steps is not None:
            points.update(float(v) for v in steps.at_s if t0 < v < t1 and math.isfinite(v))
    bounds = np.asarray(sorted(points), dtype=np.float64)
    mids = (bounds[:-1] + bounds[1:]) / 2.0
    merged = _value_at(dated, mids)
    if daily is not None:
        merged = np.where(np.isnan(merged), _value_at(daily, mids), merged)
    if np.isnan(merged).any():
        known = dated.mean(np.array([t0]), np.array([t1]))[0]
        fill = float(known) if math.isfinite(float(known)) else float(np.mean(dated.values))
        merged = np.where(np.isnan(merged), fill, merged)
    return _filled(Steps(bounds, merged).mean(starts_s, ends_s))


def _value_at(steps: Steps, t_s: FloatArray) -> FloatArray:
    k = np.searchsorted(steps.at_s, t_s, side="right") - 1
    ok = (k >= 0) & (k < len(steps.values))
    return np.where(ok, steps.values[np.clip(k, 0, len(steps.values) - 1)], np.nan)


def _filled(prices: FloatArray) -> FloatArray:
    return np.where(np.isfinite(prices), prices, 0.0)
