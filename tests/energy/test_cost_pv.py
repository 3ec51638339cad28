"""Import × price per site-local day, and the PV forecast from the last days' slots."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from controller.energy.cost import CostMeter, EnergyDay
from controller.energy.price import daily_price
from controller.energy.pv import SLOT_S, PvHistory, slot_of
from controller.model.site import TariffStep

AMS = ZoneInfo("Europe/Amsterdam")
S = timedelta(seconds=1)
DAILY = (TariffStep(time(0), 0.10), TariffStep(time(7), 0.30))


def local(mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    return datetime(2026, mo, d, h, mi, s, tzinfo=AMS).astimezone(UTC)


def tariff(at: datetime) -> float | None:
    return daily_price(DAILY, at, AMS)


def run(meter: CostMeter, start: datetime, end: datetime, kw: float | None) -> list[EnergyDay]:
    ended: list[EnergyDay] = []
    t = start
    while t <= end:
        ended += meter.observe(t, kw, tariff)
        t += S
    return ended


def test_cost_is_import_times_the_price_in_force_and_days_end_at_local_midnight() -> None:
    m = CostMeter(AMS)
    m.restore(EnergyDay(local(10, 24, 0).astimezone(AMS).date(), 5.0, 5.0, 0.5), cost_before=100.0)
    assert m.total_cost == pytest.approx(100.5)
    # the autumn change night: Saturday 23:00 → Sunday 08:00 at 36 kW (10 Wh a second)
    ended = run(m, local(10, 24, 23, 0), local(10, 25, 8, 0), 36.0)
    assert [d.day.isoformat() for d in ended] == ["2026-10-24"]
    sat = ended[0]
    assert sat.import_kwh == pytest.approx(5.0 + 36.0)  # 23:00–24:00 added to the restored 5 kWh
    assert sat.cost == pytest.approx(0.5 + 36.0 * 0.30)  # Saturday evening: the day price
    assert m.today is not None and m.today.day.isoformat() == "2026-10-25"
    # Sunday 00:00–08:00 local is 9 hours (the clocks went back): 7 at 0.10, 1 at 0.30 (07:00–08:00)
    assert m.today.import_kwh == pytest.approx(36.0 * 9)
    assert m.today.cost == pytest.approx(36.0 * 8 * 0.10 + 36.0 * 0.30)
    assert m.total_cost == pytest.approx(100.0 + sat.cost + m.today.cost)


def test_import_without_a_price_is_counted_not_priced_and_export_is_no_import() -> None:
    m = CostMeter(AMS)
    t0 = local(12, 9, 12)
    for i in range(61):
        m.observe(t0 + i * S, 60.0, lambda _at: None)
    for i in range(61, 121):
        m.observe(t0 + i * S, -20.0, tariff)
    assert m.today is not None
    assert m.today.import_kwh == pytest.approx(1.0) and m.today.priced_kwh == 0.0 and not m.today.priced
    assert m.today.cost == 0.0 and m.total_cost == 0.0


def test_a_missing_reading_leaves_a_gap() -> None:
    m = CostMeter(AMS)
    t0 = local(12, 9, 12)
    m.observe(t0, 36.0, tariff)
    m.observe(t0 + S, 36.0, tariff)
    m.observe(t0 + 2 * S, None, tariff)
    m.observe(t0 + 10 * S, 36.0, tariff)  # covers nothing before it
    m.observe(t0 + 11 * S, 36.0, tariff)
    assert m.today is not None and m.today.import_kwh == pytest.approx(0.02)


def test_the_pv_forecast_is_the_mean_of_the_last_days_same_sun_time() -> None:
    pv = PvHistory(days=3)
    now = local(3, 30, 9, 5)  # Monday after the spring change (CEST)
    noon_slot = slot_of(local(3, 30, 13, 0))
    # seeded history: 24 h (elapsed) before now's slots, and 48 h, 72 h
    pv.seed({noon_slot - 86_400: 6.0, noon_slot - 2 * 86_400: 9.0, noon_slot - 3 * 86_400: 3.0,
             noon_slot - 4 * 86_400: 100.0})  # four days ago: outside the window
    pv.seed({noon_slot - 86_400: 50.0})  # a slot already known is not replaced
    forecast = pv.forecast(now, local(3, 30, 14, 0))
    assert forecast[0] == (now, 0.0)  # nothing known for the morning slots: none counted on
    assert (local(3, 30, 13, 0), 6.0) in forecast  # (6 + 9 + 3) / 3
    assert forecast[-1] == (local(3, 30, 13, 15), 0.0)  # equal neighbours merged: one step per change
    assert [kw for _, kw in forecast] == [0.0, 6.0, 0.0]


def test_pv_readings_fill_slots_and_make_tomorrows_forecast() -> None:
    pv = PvHistory(days=1)
    t = local(6, 10, 12, 0)
    while t <= local(6, 10, 12, 30):
        # a reading stands for the second before it; then standby, which reads slightly negative
        pv.observe(t, 4.0 if t <= local(6, 10, 12, 15) else -0.2)
        t += S
    assert pv.mean_kw(slot_of(local(6, 10, 12, 0))) == pytest.approx(4.0)
    assert pv.mean_kw(slot_of(local(6, 10, 12, 15))) == 0.0
    tomorrow = pv.forecast(local(6, 11, 12, 0), local(6, 11, 12, 30))
    assert tomorrow == ((local(6, 11, 12, 0), 4.0), (local(6, 11, 12, 15), 0.0))
    assert PvHistory().forecast(local(6, 11, 12, 0), local(6, 11, 13, 0)) == ()
    assert SLOT_S == 900
