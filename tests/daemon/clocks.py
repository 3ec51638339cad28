"""Clocks for tests of the daemon and the API: fixed instants that run at the monotonic clock's
pace, never the wall clock (a test's outcome must not depend on the day or the hour it runs).

:data:`INSTANTS` are the site-local moments (the demo site's Europe/Amsterdam) at which the
date-sensitive cases run: an ordinary weekday afternoon, Monday 00:30 (today's weekday departures
still ahead), and both 2026 DST change days shortly before the change (a departure ahead lies on
the other side of it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Amsterdam")  # the demo site's
PINNED_AT = datetime(2026, 12, 9, 14, 0, tzinfo=TZ)
"""A Wednesday afternoon, after every weekday departure in the demo site, far from a DST change."""
MONDAY_0030 = datetime(2026, 12, 7, 0, 30, tzinfo=TZ)
DST_SPRING = datetime(2026, 3, 29, 1, 30, tzinfo=TZ)
"""Sunday; at 02:00 CET the clocks jump to 03:00 CEST (+01:00 → +02:00)."""
DST_AUTUMN = datetime(2026, 10, 25, 1, 30, tzinfo=TZ)
"""Sunday; at 03:00 CEST the clocks go back to 02:00 CET (+02:00 → +01:00)."""
INSTANTS: dict[str, datetime] = {
    "wednesday-1400": PINNED_AT,
    "monday-0030": MONDAY_0030,
    "dst-spring-0130": DST_SPRING,
    "dst-autumn-0130": DST_AUTUMN,
}

Clock = Callable[[], datetime]


def pinned_clock(start: datetime = PINNED_AT, monotonic: Callable[[], float] = time.monotonic) -> Clock:
    """A clock that starts at ``start`` and runs at the pace of ``monotonic`` (never the wall clock)."""
    t0 = monotonic()
    start_utc = start.astimezone(UTC)
    return lambda: start_utc + timedelta(seconds=monotonic() - t0)


def local_iso(at: datetime) -> str:
    """``YYYY-MM-DDTHH:MM``, site-local, without offset (how a fleet manager types a departure)."""
    return at.astimezone(TZ).strftime("%Y-%m-%dT%H:%M")


def next_at(now: datetime, hh: int, mm: int = 0) -> datetime:
    """The next site-local ``hh:mm`` after ``now`` (today if still ahead, else tomorrow), as the
    fleet book reads a wall time: one inside a DST gap is moved forward by the gap."""
    local = now.astimezone(TZ)
    for day in (local.date(), local.date() + timedelta(days=1)):
        at = datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ).astimezone(UTC).astimezone(TZ)
        if at > local:
            return at
    raise AssertionError("unreachable: tomorrow's is always ahead")


def tomorrow_at(hh: int, mm: int = 0, now: datetime = PINNED_AT) -> str:
    """Site-local ISO date-time of the day after ``now`` at ``hh:mm`` (always ahead, within 7 days)."""
    day = now.astimezone(TZ).date() + timedelta(days=1)
    return f"{day.isoformat()}T{hh:02d}:{mm:02d}"
