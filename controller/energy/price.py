"""The price of energy at an instant, and the dated steps a planning horizon needs. Pure.

Two sources, as :class:`~controller.model.site.Tariff` says: dated steps (the prices file,
:mod:`.prices`) win where they cover the instant — each step until the next, the last one until
the end of its site-local hour — and elsewhere the site's daily ``tariff.energy`` steps (site-local
time of day; before the day's first step, the previous day's last one holds).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from controller.energy.prices import PriceStep
from controller.model.site import TariffStep

PriceSource = Literal["prices file", "tariff"]


def hour_end(start: datetime, tz: ZoneInfo) -> datetime:
    """The end of the site-local hour ``start`` lies in (an instant, UTC)."""
    local = start.astimezone(tz)
    floor = local - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    return floor.astimezone(UTC) + timedelta(hours=1)


def _start(step: PriceStep) -> datetime:
    return step[0]


def _index(steps: Sequence[PriceStep], at: datetime) -> int:
    """Index of the last step starting at or before ``at`` (-1: none)."""
    return bisect.bisect_right(steps, at, key=_start) - 1


def dated_price(steps: Sequence[PriceStep], at: datetime, tz: ZoneInfo) -> float | None:
    """The dated price at ``at``; None where the steps do not cover it."""
    i = _index(steps, at)
    if i < 0:
        return None
    start, price = steps[i]
    if i == len(steps) - 1 and at >= hour_end(start, tz):
        return None
    return price


def daily_price(energy: Sequence[TariffStep], at: datetime, tz: ZoneInfo) -> float | None:
    """The daily tariff's price at ``at`` (site-local time of day); None without steps."""
    if not energy:
        return None
    steps = sorted(energy, key=lambda s: s.at)
    local = at.astimezone(tz).time().replace(tzinfo=None)
    price = steps[-1].price_per_kwh  # before the day's first step: yesterday's last
    for step in steps:
        if local >= step.at:
            price = step.price_per_kwh
    return price


def price_at(
    dated: Sequence[PriceStep], energy: Sequence[TariffStep], at: datetime, tz: ZoneInfo
) -> tuple[float, PriceSource] | None:
    """The price per kWh at ``at`` and where it came from; None when neither source has one."""
    p = dated_price(dated, at, tz)
    if p is not None:
        return p, "prices file"
    d = daily_price(energy, at, tz)
    return None if d is None else (d, "tariff")


def covering(steps: Sequence[PriceStep], start: datetime, end: datetime, tz: ZoneInfo) -> tuple[PriceStep, ...]:
    """The dated steps that cover any of [``start``, ``end``): the one in force at ``start`` (if it
    still covers it) and every later one starting before ``end`` — what ``Snapshot.prices`` holds."""
    i = _index(steps, start)
    first = max(i, 0)
    if i >= 0 and i == len(steps) - 1 and start >= hour_end(steps[i][0], tz):
        return ()
    j = bisect.bisect_left(steps, end, key=_start)
    return tuple(steps[first:j])
