"""The price of each plan slot: the daily tariff in site-local wall-clock time (DST change days),
dated prices winning where they cover, and what fills the gaps. Checked against a brute-force
reading of the same rules (the price in force every 10 s of the slot, averaged)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from controller.model import Control, TariffStep
from controller.planner.prices import daily_steps, dated_steps, slot_prices
from controller.planner.slots import SlotGrid, build_slots

BERLIN = ZoneInfo("Europe/Berlin")
CONTROL = Control(plan_every_s=15.0, horizon_h=24.0, slot_min=15)


def grid(now: datetime, hours: float) -> SlotGrid:
    return build_slots(now, now + timedelta(seconds=15), now + timedelta(hours=hours), CONTROL)


def wall_clock_price(t: datetime, steps: tuple[TariffStep, ...]) -> float:
    """The daily step in force at ``t`` as a clock on the site's wall reads it."""
    local = t.astimezone(BERLIN).time()
    ordered = sorted(steps, key=lambda s: s.at)
    price = ordered[-1].price_per_kwh
    for s in ordered:
        if local >= s.at:
            price = s.price_per_kwh
    return price


def brute_force(g: SlotGrid, price_at: object) -> list[float]:
    out = []
    for a, b in zip(g.starts_s.tolist(), g.ends_s.tolist(), strict=True):
        samples = np.arange(a + 5.0, b, 10.0)
        out.append(float(np.mean([price_at(datetime.fromtimestamp(float(u), tz=UTC)) for u in samples])))  # type: ignore[operator]
    return out


def prices_of(g: SlotGrid, steps: tuple[TariffStep, ...], dated: object = None) -> list[float]:
    daily = daily_steps(steps, BERLIN, float(g.starts_s[0]), float(g.ends_s[-1]))
    got = slot_prices(g.starts_s, g.ends_s, daily, dated)  # type: ignore[arg-type]
    assert got is not None
    return [float(v) for v in got]


def test_spring_forward_a_step_in_the_skipped_hour_starts_when_the_clock_jumps() -> None:
    # Sunday 2026-03-29, Berlin: at 01:00 UTC the clock jumps from 02:00 to 03:00 (CET -> CEST)
    steps = (TariffStep(time(0), 0.18), TariffStep(time(2, 30), 0.25), TariffStep(time(7), 0.31),
             TariffStep(time(22), 0.18))
    now = datetime(2026, 3, 28, 22, 50, 0, tzinfo=UTC)  # 23:50 CET on Saturday
    g = grid(now, 12.0)
    got = prices_of(g, steps)
    assert got == pytest.approx(brute_force(g, lambda t: wall_clock_price(t, steps)), abs=1e-9)
    by_start = {datetime.fromtimestamp(float(s), tz=UTC): p for s, p in zip(g.starts_s, got, strict=True)}
    assert by_start[datetime(2026, 3, 29, 0, 45, tzinfo=UTC)] == pytest.approx(0.18)  # 01:45 CET
    assert by_start[datetime(2026, 3, 29, 1, 0, tzinfo=UTC)] == pytest.approx(0.25)  # 03:00 CEST: past 02:30
    assert by_start[datetime(2026, 3, 29, 5, 0, tzinfo=UTC)] == pytest.approx(0.31)  # 07:00 CEST


def test_fall_back_the_repeated_hour_repeats_its_steps() -> None:
    # Sunday 2026-10-25, Berlin: at 01:00 UTC the clock goes back from 03:00 to 02:00 (CEST -> CET)
    steps = (TariffStep(time(0), 0.18), TariffStep(time(2, 30), 0.40), TariffStep(time(3), 0.20))
    now = datetime(2026, 10, 24, 23, 0, 0, tzinfo=UTC)  # 01:00 CEST
    g = grid(now, 6.0)
    got = prices_of(g, steps)
    assert got == pytest.approx(brute_force(g, lambda t: wall_clock_price(t, steps)), abs=1e-9)
    by_start = {datetime.fromtimestamp(float(s), tz=UTC): p for s, p in zip(g.starts_s, got, strict=True)}
    expect = {  # UTC slot start -> price, the wall clock reading 02:00, 02:30, then 02:00, 02:30 again
        datetime(2026, 10, 25, 0, 0, tzinfo=UTC): 0.18, datetime(2026, 10, 25, 0, 30, tzinfo=UTC): 0.40,
        datetime(2026, 10, 25, 1, 0, tzinfo=UTC): 0.18, datetime(2026, 10, 25, 1, 30, tzinfo=UTC): 0.40,
        datetime(2026, 10, 25, 2, 0, tzinfo=UTC): 0.20,
    }
    for start, price in expect.items():
        assert by_start[start] == pytest.approx(price), start


def test_dated_prices_win_where_they_cover_and_the_last_lasts_to_the_end_of_its_hour() -> None:
    steps = (TariffStep(time(7), 0.31), TariffStep(time(22), 0.18))
    now = datetime(2026, 11, 26, 16, 0, 7, tzinfo=UTC)  # Thursday, 17:00 CET
    g = grid(now, 10.0)
    start = datetime(2026, 11, 26, 18, 0, tzinfo=UTC)  # 19:00 CET
    dated_in = tuple((start + timedelta(minutes=15 * k), 0.05 + 0.01 * k) for k in range(6))  # to 19:30 UTC
    warnings: list[str] = []
    dated = dated_steps(dated_in, BERLIN, warnings)
    assert dated is not None and warnings == []
    covered_until = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # the last step (19:15) lasts to 20:00 UTC

    def reference(t: datetime) -> float:
        if start <= t < covered_until:
            return [p for at, p in dated_in if at <= t][-1]
        return wall_clock_price(t, steps)

    got = prices_of(g, steps, dated)
    assert got == pytest.approx(brute_force(g, reference), abs=1e-9)
    by_start = {datetime.fromtimestamp(float(s), tz=UTC): p for s, p in zip(g.starts_s, got, strict=True)}
    assert by_start[datetime(2026, 11, 26, 17, 45, tzinfo=UTC)] == pytest.approx(0.31)  # the daily tariff
    assert by_start[datetime(2026, 11, 26, 18, 15, tzinfo=UTC)] == pytest.approx(0.06)  # dated
    assert by_start[datetime(2026, 11, 26, 19, 15, tzinfo=UTC)] == pytest.approx(0.10)  # the last, to 20:00
    assert by_start[datetime(2026, 11, 26, 20, 0, tzinfo=UTC)] == pytest.approx(0.31)  # the daily again


def test_dated_prices_alone_fill_what_they_do_not_cover_with_their_mean_and_bad_entries_are_left_out() -> None:
    now = datetime(2026, 11, 26, 16, 0, 7, tzinfo=UTC)
    g = grid(now, 6.0)
    start = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)
    warnings: list[str] = []
    dated = dated_steps(
        ((start, 0.10), (start + timedelta(hours=1), 0.30), (datetime(2026, 11, 26, 17, 30), 9.9),
         (start + timedelta(minutes=90), math.nan)),
        BERLIN, warnings,
    )
    assert dated is not None
    assert warnings == ["prices: 2 unusable entries left out"]  # a time without a zone, a NaN
    got = slot_prices(g.starts_s, g.ends_s, None, dated)
    assert got is not None
    mean = (0.10 * (3600 - 7) + 0.30 * 3600) / (7200 - 7)  # over the part of the horizon they cover
    assert got[0] == pytest.approx(0.10)
    assert got[-1] == pytest.approx(mean)  # 21:00 UTC: past their end
    assert daily_steps((), BERLIN, 0.0, 1.0) is None
    assert slot_prices(g.starts_s, g.ends_s, None, None) is None
