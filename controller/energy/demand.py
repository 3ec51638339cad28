"""The demand charge's billing-period peak: clock-aligned averages of grid import. Pure.

**Windows.** Grid import [kW] is averaged over ``window_min``-minute windows aligned to the
site-local clock (:00, :15, :30, :45 for 15 minutes; :func:`~.intervals.local_floor`), each window
an instant span (the hour the clocks repeat has its windows twice). A window's average is its
import energy over the time its readings cover (:mod:`.intervals`): a window with missing readings
averages what it has and says so (:attr:`DemandWindow.coverage`, :attr:`DemandWindow.partial`).
Import is ``max(0, grid power)``: export is not demand.

**Period.** The billing period is the site-local calendar month (``period: month``), from the 1st
at 00:00 to the next 1st at 00:00 (so a month with a DST change is an hour shorter or longer). A
window belongs to the period it starts in; since the month starts on a window boundary, the
window that ends at 00:00 on the 1st is the old month's last (closed into it — recorded, and part
of that month's final peak) and the new month starts with no peak and an empty window. Nothing of
a window is lost across the boundary; the new period's peak starts at none (0).

**Peak so far** (:meth:`PeakTracker.peak_kw`): the highest average of the period's closed windows,
and the *committed* part of the window in progress — its import energy so far over the whole
window length, the least its average can end at (import is never negative) — whichever is higher.
So a high window in progress counts at once, and a peak is never lowered by a window that has not
ended yet.

The tracker is fed readings with their times (the daemon's clock) and restored from stored windows
(:meth:`PeakTracker.restore`); it keeps only the period's peak and the open window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controller.energy.intervals import MAX_GAP_S, Coverage, local_floor, split

FULL_COVERAGE = 0.98
"""A window whose readings cover less than this share of it is *partial* (missing readings)."""


@dataclass(frozen=True)
class DemandWindow:
    """One averaging window [``start``, ``end``): import energy and the time readings covered."""

    start: datetime
    end: datetime
    energy_kwh: float = 0.0
    covered_s: float = 0.0

    @property
    def length_s(self) -> float:
        return (self.end - self.start).total_seconds()

    @property
    def average_kw(self) -> float | None:
        """Import energy over covered time [kW]; None when nothing was covered."""
        return None if self.covered_s <= 0 else self.energy_kwh * 3600.0 / self.covered_s

    @property
    def committed_kw(self) -> float:
        """Import energy over the whole window [kW]: the least its average can end at."""
        return self.energy_kwh * 3600.0 / self.length_s if self.length_s > 0 else 0.0

    @property
    def coverage(self) -> float:
        """Share of the window its readings cover, 0..1."""
        return min(1.0, self.covered_s / self.length_s) if self.length_s > 0 else 0.0

    @property
    def partial(self) -> bool:
        return self.coverage < FULL_COVERAGE


def period_start(at: datetime, tz: ZoneInfo) -> datetime:
    """The start of the billing period (site-local month) ``at`` lies in, as an instant (UTC)."""
    local = at.astimezone(tz)
    return datetime.combine(local.date().replace(day=1), time(0), tz).astimezone(UTC)


def next_period_start(at: datetime, tz: ZoneInfo) -> datetime:
    """The start of the billing period after the one ``at`` lies in (UTC)."""
    first = at.astimezone(tz).date().replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(following, time(0), tz).astimezone(UTC)


class PeakTracker:
    """The billing period's peak and the window in progress (see the module docstring)."""

    def __init__(self, tz: ZoneInfo, window_min: int = 15, max_gap_s: float = MAX_GAP_S) -> None:
        if window_min <= 0:
            raise ValueError(f"window_min must be positive, got {window_min}")
        self.tz = tz
        self.window_min = window_min
        self._coverage = Coverage(max_gap_s)
        self._period: datetime | None = None  # start of the period the peak belongs to
        self._peak: DemandWindow | None = None  # the period's highest closed window
        self.current: DemandWindow | None = None  # the window in progress

    # --- geometry -------------------------------------------------------------------------------
    def window_at(self, at: datetime) -> tuple[datetime, datetime]:
        """The window ``at`` lies in: (start, end), instants (UTC)."""
        start = local_floor(at, self.tz, self.window_min)
        return start, start + timedelta(minutes=self.window_min)

    def _window_end(self, t: datetime) -> datetime:
        return self.window_at(t)[1]

    # --- feeding --------------------------------------------------------------------------------
    def observe(self, at: datetime, import_kw: float | None) -> list[DemandWindow]:
        """A reading of grid import [kW] at ``at`` (None: no reading this cycle). Returns the
        windows it closed (at most a few: the one in progress, once ``at`` reaches its end)."""
        closed: list[DemandWindow] = []
        span = self._coverage.cover(at, import_kw is not None)
        kw = max(0.0, import_kw or 0.0)
        for t0, t1 in split(span, self._window_end) if span is not None else ():
            start, end = self.window_at(t0)
            w = self.current
            if w is None or w.start != start:
                if w is not None and w.start > start:
                    continue  # the clock stepped back into a closed window: not counted twice
                if w is not None:
                    closed.append(self._close(w))
                w = DemandWindow(start, end)
            seconds = (t1 - t0).total_seconds()
            self.current = replace(w, energy_kwh=w.energy_kwh + kw * seconds / 3600.0, covered_s=w.covered_s + seconds)
        closed.extend(self._close_due(at))
        return closed

    def _close_due(self, now: datetime) -> list[DemandWindow]:
        w = self.current
        if w is None or now < w.end:
            return []
        return [self._close(w)]

    def _close(self, w: DemandWindow) -> DemandWindow:
        if self.current is w:
            self.current = None
        self._note(w)
        return w

    def _note(self, w: DemandWindow) -> None:
        """A closed window: the period's peak if it is the highest of its period so far."""
        ps = period_start(w.start, self.tz)
        if self._period is None or ps > self._period:
            self._period, self._peak = ps, None
        if ps != self._period or w.average_kw is None:
            return
        if self._peak is None or w.average_kw > (self._peak.average_kw or 0.0):
            self._peak = w

    def _roll(self, now: datetime) -> None:
        ps = period_start(now, self.tz)
        if self._period is None or ps > self._period:
            self._period, self._peak = ps, None

    # --- restore --------------------------------------------------------------------------------
    def restore(self, now: datetime, windows: Iterable[DemandWindow]) -> None:
        """Start from stored windows (any order; windows of other periods are ignored): the one
        ``now`` lies in continues, the others are closed into the period's peak."""
        self._roll(now)
        now_window = self.window_at(now)
        for w in sorted(windows, key=lambda w: w.start):
            if w.start > now:
                continue
            if (w.start, w.end) == now_window:
                self.current = w
            else:  # ended, or of another window length (a reload changed it): closed as it stands
                self._note(w)
        self._roll(now)

    # --- reading --------------------------------------------------------------------------------
    def peak(self, now: datetime) -> DemandWindow | None:
        """The period's highest closed window (None: none yet)."""
        self._roll(now)
        return self._peak

    def peak_kw(self, now: datetime) -> float | None:
        """The peak so far [kW]: the closed windows' highest average, or the window in progress's
        committed part if higher (None: nothing recorded in the period yet)."""
        peak = self.peak(now)
        best = None if peak is None else peak.average_kw
        w = self.current
        if w is not None and w.covered_s > 0 and self._period is not None and (
            period_start(w.start, self.tz) == self._period and now < w.end
        ):
            best = w.committed_kw if best is None else max(best, w.committed_kw)
        return best

    def period_start(self, now: datetime) -> datetime:
        return period_start(now, self.tz)
