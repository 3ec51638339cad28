"""From readings to covered time. Pure.

A meter is read every second; a reading at ``t`` stands for the time since the reading before it,
at most :data:`MAX_GAP_S` (a longer gap is missing readings, not load). A cycle without a reading
ends the run: the next reading covers nothing before it (the time between is *missing*, and the
averages built on it say how much they cover). Covered time is split at the boundaries of whatever
it is summed into (demand windows, site-local days, forecast slots) by :func:`split`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_GAP_S = 5.0
"""A reading stands for at most this long before it [s]."""

Span = tuple[datetime, datetime]
"""``(from, to)``: the time a reading covers, ``from`` excluded, ``to`` included."""


class Coverage:
    """Which time each reading covers (see the module docstring)."""

    def __init__(self, max_gap_s: float = MAX_GAP_S) -> None:
        self.max_gap = timedelta(seconds=max_gap_s)
        self._last: datetime | None = None

    def cover(self, at: datetime, read: bool) -> Span | None:
        """The span a reading at ``at`` covers (``read`` False: there was none; None: covers nothing)."""
        last = self._last
        self._last = at if read else None
        if not read or last is None or at <= last:
            return None
        return max(last, at - self.max_gap), at


def split(span: Span, boundary_after: Callable[[datetime], datetime]) -> Iterator[Span]:
    """``span`` cut where ``boundary_after(t)`` (the end of the period ``t`` starts in, > ``t``) falls."""
    t, end = span
    while t < end:
        b = boundary_after(t)
        if b <= t:
            raise ValueError(f"boundary_after({t.isoformat()}) = {b.isoformat()} is not after it")
        stop = min(end, b)
        yield t, stop
        t = stop


def local_floor(at: datetime, tz: ZoneInfo, step_min: int) -> datetime:
    """The start of the site-local clock window of ``step_min`` minutes ``at`` lies in (:00, :15 …),
    as an instant (UTC). Aligned on the local wall clock of ``at``'s own UTC offset, so the hour
    the clocks repeat in autumn has its windows twice, each its own instant."""
    offset = at.astimezone(tz).utcoffset() or timedelta(0)
    step_s = step_min * 60
    local_s = at.timestamp() + offset.total_seconds()
    floor_s = local_s - (local_s % step_s)
    return datetime.fromtimestamp(floor_s - offset.total_seconds(), UTC)


def day_start(at: datetime, tz: ZoneInfo) -> datetime:
    """The site-local midnight that starts ``at``'s day (where midnight does not exist, the instant
    the clocks jump), as an instant (UTC)."""
    local = at.astimezone(tz)
    return datetime.combine(local.date(), time(0), tz).astimezone(UTC)


def next_day_start(at: datetime, tz: ZoneInfo) -> datetime:
    """The site-local midnight that ends ``at``'s day, as an instant (UTC)."""
    local = at.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tz).astimezone(UTC)
