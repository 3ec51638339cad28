"""The horizon's slot grid and tariff lookup."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import numpy as np

from controller.model import Control, TariffStep
from controller.planner.slots import build_slots, horizon_end, tariff_prices

NOW = datetime(2026, 11, 26, 17, 3, 20, tzinfo=UTC)
CONTROL = Control(plan_every_s=15.0, horizon_h=24.0, slot_min=15)


def test_first_slot_runs_to_the_aligned_boundary_after_the_next_plan() -> None:
    g = build_slots(NOW, NOW + timedelta(seconds=15), NOW + timedelta(hours=10), CONTROL)
    starts = g.start_datetimes()
    assert starts[0] == NOW
    assert starts[1] == datetime(2026, 11, 26, 17, 15, tzinfo=UTC)


def test_fine_slots_near_now_then_hourly_until_the_end() -> None:
    end = NOW + timedelta(hours=10)
    g = build_slots(NOW, NOW + timedelta(seconds=15), end, CONTROL)
    lengths = np.diff(g.boundaries_s)
    assert set(np.round(lengths[1:12] / 60).tolist()) == {15.0}
    assert 60.0 in set(np.round(lengths / 60).tolist())
    assert lengths.max() <= 3600.0
    assert g.boundaries_s[-1] == end.timestamp()
    assert np.all(lengths > 0)


def test_full_day_horizon_has_few_slots() -> None:
    end = horizon_end(NOW, [NOW + timedelta(hours=30)], CONTROL)
    assert end == NOW + timedelta(hours=24)
    g = build_slots(NOW, NOW + timedelta(seconds=15), end, CONTROL)
    assert 30 <= g.count <= 40  # 96 quarter hours would be far more expensive


def test_departure_before_the_first_boundary_still_gives_one_slot() -> None:
    g = build_slots(NOW, NOW + timedelta(seconds=15), NOW + timedelta(minutes=1), CONTROL)
    assert g.count == 1


def test_presence_is_the_fraction_of_each_slot_before_departure() -> None:
    g = build_slots(NOW, NOW + timedelta(seconds=15), NOW + timedelta(hours=2), CONTROL)
    dep = datetime(2026, 11, 26, 17, 37, 30, tzinfo=UTC).timestamp()
    frac = g.presence(np.array([dep]))[0]
    assert frac[0] == 1.0
    assert frac[1] == 1.0  # 17:15-17:30
    assert abs(frac[2] - 0.5) < 1e-9  # 17:30-17:45, gone at 17:37:30
    assert frac[3:].sum() == 0.0


def test_tariff_uses_site_local_time() -> None:
    tariff = (TariffStep(at=time(7, 0), price_per_kwh=0.30), TariffStep(at=time(22, 0), price_per_kwh=0.10))
    g = build_slots(NOW, NOW + timedelta(seconds=15), NOW + timedelta(hours=12), CONTROL)
    prices = tariff_prices(g, tariff, "Europe/Amsterdam")
    assert prices is not None
    starts = g.start_datetimes()
    for start, price in zip(starts, prices, strict=True):
        local_hour = (start + timedelta(hours=1)).hour  # Amsterdam is UTC+1 in November
        if 7 <= local_hour < 22 and start.minute == 0:
            assert price == 0.30
        if local_hour >= 22 or local_hour < 7:
            assert price == 0.10
    assert tariff_prices(g, (), "UTC") is None
