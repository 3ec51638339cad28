"""Pure plausibility checks."""

from __future__ import annotations

import math

import pytest

from controller.config import load_site
from controller.meter.plausibility import bounds_for, check_values, is_frozen, site_bounds

GOOD = {
    "current_l1_a": 10.0,
    "current_l2_a": 20.0,
    "current_l3_a": 0.0,
    "voltage_l1_v": 231.0,
    "voltage_l2_v": 229.0,
    "voltage_l3_v": 230.0,
    "power_w": 6900.0,
    "import_kwh": None,
}


def test_good_values_pass() -> None:
    assert check_values(GOOD, bounds_for(63)) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"current_l2_a": math.nan}, "current_l2_a is nan"),
        ({"power_w": math.inf}, "power_w is inf"),
        ({"current_l3_a": None}, "current_l3_a not available"),
        ({"current_l1_a": 126.1}, "beyond 126 A"),
        ({"current_l1_a": -126.1}, "beyond 126 A"),
        ({"voltage_l2_v": 179.9}, "outside 180–270 V"),
        ({"voltage_l3_v": 270.1}, "outside 180–270 V"),
        ({"voltage_l1_v": 0.0}, "outside"),
    ],
)
def test_rejections(change: dict[str, float | None], reason: str) -> None:
    got = check_values({**GOOD, **change}, bounds_for(63))
    assert got is not None and reason in got


def test_edges_are_allowed() -> None:
    edges = {**GOOD, "current_l1_a": 126.0, "voltage_l1_v": 180.0, "voltage_l2_v": 270.0}
    assert check_values(edges, bounds_for(63)) is None


def test_voltage_range_follows_nominal_voltage() -> None:
    b = bounds_for(100, 120.0)
    assert (round(b.min_voltage_v, 1), round(b.max_voltage_v, 1)) == (93.9, 140.9)


def test_site_bounds_use_the_measured_node() -> None:
    site = load_site("config/bus-depot.yaml").site
    assert site_bounds(site, "grid-meter").max_current_a == 2 * site.grid.limit_a
    assert site_bounds(site, "yard-meter").max_current_a == 2 * 630


def test_frozen_needs_time_and_moving_chargers() -> None:
    assert not is_frozen(now_s=100, raw_changed_at_s=90, stale_after_s=5, load_changed_at_s=None)
    assert not is_frozen(now_s=100, raw_changed_at_s=90, stale_after_s=5, load_changed_at_s=89)
    assert not is_frozen(now_s=100, raw_changed_at_s=96, stale_after_s=5, load_changed_at_s=99)
    assert is_frozen(now_s=100, raw_changed_at_s=95, stale_after_s=5, load_changed_at_s=97)
