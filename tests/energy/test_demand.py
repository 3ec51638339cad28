"""The billing-period peak: clock-aligned windows, missing readings, the month boundary in DST months.

The tracker is fed readings each second at pinned instants (the daemon's clock in production).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.energy.demand import DemandWindow, PeakTracker, next_period_start, period_start

AMS = ZoneInfo("Europe/Amsterdam")
S = timedelta(seconds=1)


def local(mo: int, d: int, h: int, mi: int = 0, s: int = 0, *, fold: int = 0) -> datetime:
    """A site-local wall time as an instant (UTC): arithmetic on it is elapsed time, and it compares
    by instant even in the hour the clocks repeat."""
    return datetime(2026, mo, d, h, mi, s, tzinfo=AMS, fold=fold).astimezone(UTC)


def seconds(start: datetime, end: datetime, step: timedelta = S) -> Iterator[datetime]:
    t = start.astimezone(UTC)
    while t <= end:
        yield t
        t += step


def feed(tr: PeakTracker, start: datetime, end: datetime, kw: float) -> list[DemandWindow]:
    closed: list[DemandWindow] = []
    for t in seconds(start, end):
        closed += tr.observe(t, kw)
    return closed


def test_windows_align_to_the_quarter_hours_of_the_local_clock() -> None:
    tr = PeakTracker(AMS, 15)
    closed = feed(tr, local(12, 9, 10, 7), local(12, 9, 10, 31), 40.0)
    assert [(w.start, w.end) for w in closed] == [
        (local(12, 9, 10, 0), local(12, 9, 10, 15)),
        (local(12, 9, 10, 15), local(12, 9, 10, 30)),
    ]
    first, second = closed
    assert first.covered_s == 8 * 60 and first.partial and first.coverage == pytest.approx(8 / 15)
    assert first.average_kw == pytest.approx(40.0)  # what it has: 8 minutes at 40 kW
    assert second.covered_s == 900 and not second.partial and second.average_kw == pytest.approx(40.0)
    assert tr.current is not None and tr.current.start == local(12, 9, 10, 30) and tr.current.covered_s == 60
    assert tr.window_at(local(12, 9, 10, 44, 59)) == (local(12, 9, 10, 30), local(12, 9, 10, 45))


def test_a_reading_across_a_boundary_is_split_and_missing_readings_are_not_load() -> None:
    tr = PeakTracker(AMS, 15)
    assert tr.observe(local(12, 9, 10, 14, 57), 30.0) == []  # the first reading covers nothing before it
    (closed_10,) = tr.observe(local(12, 9, 10, 15, 2), 60.0)  # covers 10:14:57–10:15:02: 3 s before, 2 s after
    assert closed_10.start == local(12, 9, 10, 0) and closed_10.covered_s == 3.0
    assert closed_10.average_kw == pytest.approx(60.0) and closed_10.partial
    assert tr.current is not None and tr.current.covered_s == 2.0
    tr.observe(local(12, 9, 10, 20), None)  # the meter went stale: that gap is missing
    tr.observe(local(12, 9, 10, 25), 90.0)  # covers nothing before it
    closed = tr.observe(local(12, 9, 10, 30), None)
    assert len(closed) == 1
    w = closed[0]
    assert w.covered_s == 2.0 and w.energy_kwh == pytest.approx(60.0 * 2 / 3600)
    assert w.average_kw == pytest.approx(60.0)


def test_a_gap_longer_than_the_max_counts_only_the_max() -> None:
    tr = PeakTracker(AMS, 15, max_gap_s=5.0)
    tr.observe(local(12, 9, 10, 1), 10.0)
    tr.observe(local(12, 9, 10, 2), 10.0)  # 60 s later: covers only 5 s
    assert tr.current is not None and tr.current.covered_s == 5.0


def test_the_window_in_progress_counts_with_what_it_has_committed() -> None:
    tr = PeakTracker(AMS, 15)
    feed(tr, local(12, 9, 9, 0), local(12, 9, 9, 15), 30.0)  # a closed window at 30 kW
    assert tr.peak_kw(local(12, 9, 9, 15)) == pytest.approx(30.0)
    feed(tr, local(12, 9, 9, 15, 1), local(12, 9, 9, 25), 60.0)  # 10 min at 60 kW: at least 40 kW whatever comes
    assert tr.peak_kw(local(12, 9, 9, 25)) == pytest.approx(40.0, rel=1e-3)
    peak = tr.peak(local(12, 9, 9, 25))
    assert peak is not None and peak.start == local(12, 9, 9, 0)  # the closed peak is still the 09:00 one
    closed = feed(tr, local(12, 9, 9, 25, 1), local(12, 9, 9, 30), 0.0)
    assert [w.average_kw for w in closed] == [pytest.approx(40.0, rel=1e-3)]
    assert tr.peak_kw(local(12, 9, 9, 31)) == pytest.approx(40.0, rel=1e-3)
    assert tr.observe(local(12, 9, 9, 31), -25.0) == []  # export is not negative demand
    assert tr.current is not None and tr.current.energy_kwh == 0.0


@pytest.mark.parametrize(
    ("last_evening", "boundary_utc"),
    [
        (local(3, 31, 23, 40), datetime(2026, 3, 31, 22, 0, tzinfo=UTC)),  # April starts in CEST (+02:00)
        (local(10, 31, 23, 40), datetime(2026, 10, 31, 23, 0, tzinfo=UTC)),  # November starts in CET (+01:00)
    ],
)
def test_the_period_resets_at_local_midnight_on_the_first(last_evening: datetime, boundary_utc: datetime) -> None:
    tr = PeakTracker(AMS, 15)
    assert period_start(last_evening, AMS) == datetime(2026, last_evening.month, 1, tzinfo=AMS).astimezone(UTC)
    assert next_period_start(last_evening, AMS) == boundary_utc
    # the old month's evening: 80 kW; its last window ends exactly at the boundary
    closed = feed(tr, last_evening, boundary_utc, 80.0)
    assert closed[-1].end == boundary_utc and closed[-1].average_kw == pytest.approx(80.0)  # closed into the old month
    assert tr.peak_kw(boundary_utc - S) == pytest.approx(80.0)
    assert tr.peak_kw(boundary_utc) is None  # just after midnight on the 1st: a new period, nothing yet
    feed(tr, boundary_utc + S, boundary_utc + timedelta(seconds=30), 20.0)
    assert tr.peak(boundary_utc + timedelta(seconds=30)) is None
    assert tr.peak_kw(boundary_utc + timedelta(seconds=30)) == pytest.approx(20.0 * 30 / 900)  # committed only
    closed = feed(tr, boundary_utc + timedelta(seconds=31), boundary_utc + timedelta(minutes=15), 20.0)
    assert [w.start for w in closed] == [boundary_utc] and closed[0].average_kw == pytest.approx(20.0)
    assert tr.peak_kw(boundary_utc + timedelta(minutes=15)) == pytest.approx(20.0)


def test_the_repeated_autumn_hour_has_its_windows_twice() -> None:
    tr = PeakTracker(AMS, 15)
    first = local(10, 25, 2, 5, fold=0)  # CEST
    second = local(10, 25, 2, 5, fold=1)  # CET, an hour later
    assert tr.window_at(first)[0] == local(10, 25, 2, 0, fold=0)
    assert tr.window_at(second)[0] == local(10, 25, 2, 0, fold=1)
    assert (second - first) == timedelta(hours=1)  # aware arithmetic across the fold is by UTC
    closed = feed(tr, local(10, 25, 1, 59, fold=0), local(10, 25, 3, 1, fold=1), 10.0)
    # 01:45 CEST, then 02:00–02:45 in CEST and again in CET: nine windows of 15 minutes, none merged
    assert len(closed) == 9 and len({w.start for w in closed}) == 9
    assert [w.start.astimezone(AMS).strftime("%H:%M%z") for w in closed[4:6]] == ["02:45+0200", "02:00+0100"]
    assert all(w.length_s == 900 and not w.partial for w in closed[1:])


def test_the_spring_hour_that_does_not_exist_has_no_windows() -> None:
    tr = PeakTracker(AMS, 15)
    closed = feed(tr, local(3, 29, 1, 44), local(3, 29, 3, 16), 10.0)
    assert [w.start.astimezone(AMS).strftime("%H:%M") for w in closed] == ["01:30", "01:45", "03:00"]
    assert closed[1].end == local(3, 29, 3, 0) and closed[1].length_s == 900


def test_restore_keeps_the_peak_and_continues_the_window() -> None:
    tr = PeakTracker(AMS, 15)
    now = local(12, 9, 10, 7)
    stored = [
        DemandWindow(local(11, 30, 23, 45), local(12, 1, 0, 0), 50.0, 900.0),  # November's: not this period
        DemandWindow(local(12, 1, 8, 0), local(12, 1, 8, 15), 10.0, 900.0),  # 40 kW
        DemandWindow(local(12, 3, 8, 0), local(12, 3, 8, 15), 5.0, 450.0),  # 40 kW too, partial: the first wins
        DemandWindow(local(12, 9, 10, 0), local(12, 9, 10, 15), 2.0, 400.0),  # the one now is in
    ]
    tr.restore(now, stored)
    peak = tr.peak(now)
    assert peak is not None and peak.start == local(12, 1, 8, 0)
    assert tr.current == stored[-1]
    tr.observe(now, 18.0)
    tr.observe(now + S, 18.0)
    assert tr.current is not None and tr.current.covered_s == 401.0
    assert tr.peak_kw(now + S) == pytest.approx(40.0)
