"""The price at an instant: dated steps win where they cover it, the daily tariff elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from controller.energy.price import covering, daily_price, dated_price, hour_end, price_at
from controller.model.site import TariffStep

AMS = ZoneInfo("Europe/Amsterdam")
KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30: a local hour is not a UTC hour
DAILY = (TariffStep(time(7), 0.31), TariffStep(time(0), 0.18), TariffStep(time(22), 0.20))  # any order


def local(d: int, h: int, mi: int = 0, tz: ZoneInfo = AMS) -> datetime:
    return datetime(2026, 3, d, h, mi, tzinfo=tz)


STEPS = ((local(28, 13, 15).astimezone(UTC), 0.40), (local(28, 14).astimezone(UTC), 0.10))


def test_dated_steps_hold_until_the_next_the_last_until_the_end_of_its_hour() -> None:
    assert dated_price(STEPS, local(28, 13, 14), AMS) is None
    assert dated_price(STEPS, local(28, 13, 15), AMS) == 0.40
    assert dated_price(STEPS, local(28, 13, 59), AMS) == 0.40
    assert dated_price(STEPS, local(28, 14, 59), AMS) == 0.10
    assert dated_price(STEPS, local(28, 15, 0), AMS) is None
    last = ((local(28, 13, 15, KOLKATA).astimezone(UTC), 0.5),)
    assert hour_end(last[0][0], KOLKATA) == local(28, 14, 0, KOLKATA)
    assert dated_price(last, local(28, 13, 59, KOLKATA), KOLKATA) == 0.5
    assert dated_price(last, local(28, 14, 0, KOLKATA), KOLKATA) is None


def test_the_daily_tariff_wraps_past_midnight_on_the_local_clock() -> None:
    assert daily_price(DAILY, local(28, 6, 59), AMS) == 0.18
    assert daily_price(DAILY, local(28, 7), AMS) == 0.31
    assert daily_price(DAILY, local(29, 23, 30), AMS) == 0.20  # CEST evening: local time, not UTC
    assert daily_price((TariffStep(time(6), 0.3), TariffStep(time(22), 0.1)), local(29, 1), AMS) == 0.1
    assert daily_price((), local(28, 12), AMS) is None


def test_dated_prices_win_where_they_cover() -> None:
    assert price_at(STEPS, DAILY, local(28, 13, 30), AMS) == (0.40, "prices file")
    assert price_at(STEPS, DAILY, local(28, 12, 0), AMS) == (0.31, "tariff")
    assert price_at(STEPS, DAILY, local(28, 15, 0), AMS) == (0.31, "tariff")
    assert price_at((), (), local(28, 15, 0), AMS) is None


def test_the_steps_a_horizon_needs() -> None:
    assert covering(STEPS, local(28, 13, 30), local(28, 20), AMS) == STEPS
    assert covering(STEPS, local(28, 12), local(28, 13, 15), AMS) == ()  # ends where the first begins
    assert covering(STEPS, local(28, 12), local(28, 13, 16), AMS) == STEPS[:1]
    assert covering(STEPS, local(28, 14, 30), local(29, 14), AMS) == STEPS[1:]
    assert covering(STEPS, local(28, 15, 0), local(29, 14), AMS) == ()  # the last one's hour is over
