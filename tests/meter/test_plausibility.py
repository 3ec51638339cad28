"""Pure plausibility checks."""

from __future__ import annotations

import math

import pytest

from controller.config import load_site
from controller.meter.plausibility import bounds_for, check_values, fill_absent_lines, is_frozen, site_bounds

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


def test_site_bounds_take_the_voltage_of_the_bus_the_meter_is_on() -> None:
    """Issue 18: a meter on a transformer node reads its primary (the parent's bus), a sub-meter
    below it the secondary; a delta bus's meter may report line-to-neutral or line-to-line
    voltages; a split-phase bus has no L3 voltage."""
    from controller.config import load_site_text

    us = load_site_text(
        """site: {name: US, timezone: UTC, service: wye, voltage_v: 277}
grid: {limit_a: 600, meter: grid-meter}
ocpp: {security_profile: 0}
meters:
  - {id: grid-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 1}}
  - {id: xf-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 2}}
  - {id: panel-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 3}}
  - {id: sp-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 4}}
circuits:
  - {id: xf, limit_a: 180, meter: xf-meter, transformer: {connection: delta-wye, ratio: 2.31}}
  - {id: panel, parent: xf, limit_a: 400, meter: panel-meter}
  - {id: sp, limit_a: 100, transformer: {connection: split-phase, ratio: 2, primary: L2-L3}}
  - {id: sp-panel, parent: sp, limit_a: 200, meter: sp-meter}
chargers: [{id: L2, circuit: panel, phases: 1, phase_rotation: L1-L2, max_a: 48}]
"""
    ).site
    at_277 = {**GOOD, "voltage_l1_v": 277.0, "voltage_l2_v": 280.0, "voltage_l3_v": 275.0}
    at_120 = {**GOOD, "voltage_l1_v": 120.0, "voltage_l2_v": 121.0, "voltage_l3_v": 119.0}
    xf = site_bounds(us, "xf-meter")
    assert xf.max_current_a == 360 and check_values(at_277, xf) is None and check_values(at_120, xf) is not None
    panel = site_bounds(us, "panel-meter")
    assert check_values(at_120, panel) is None and check_values(at_277, panel) is not None
    sp = site_bounds(us, "sp-meter")
    assert check_values({**at_120, "voltage_l3_v": 0.0}, sp) is None  # no L3 on a split-phase bus
    assert check_values({**at_120, "voltage_l2_v": 0.0}, sp) is not None
    # a split-phase meter may leave L3's current and power unavailable: 0 A there, not unknown
    no_l3 = {**at_120, "current_l3_a": None, "power_l3_w": None, "voltage_l3_v": None}
    assert check_values(no_l3, sp) is not None  # as decoded
    filled = fill_absent_lines(no_l3, sp)
    assert check_values(filled, sp) is None and filled["current_l3_a"] == 0.0
    assert check_values(fill_absent_lines({**no_l3, "current_l2_a": None}, sp), sp) is not None
    assert fill_absent_lines(no_l3, panel)["current_l3_a"] is None  # a three-phase bus: unknown stays unknown

    delta = load_site_text(
        """site: {name: D, timezone: UTC, service: delta, voltage_v: 480}
grid: {limit_a: 600, meter: grid-meter}
ocpp: {security_profile: 0}
meters: [{id: grid-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1}}]
chargers: [{id: X, phases: 3, max_a: 32}]
"""
    ).site
    grid = site_bounds(delta, "grid-meter")
    for v in (277.0, 480.0):  # to a virtual neutral, or line to line
        assert check_values({**GOOD, "voltage_l1_v": v, "voltage_l2_v": v, "voltage_l3_v": v}, grid) is None
    assert check_values({**GOOD, "voltage_l1_v": 120.0, "voltage_l2_v": 120.0, "voltage_l3_v": 120.0}, grid)


def test_a_european_sites_bounds_are_unchanged() -> None:
    site = load_site("config/bus-depot.yaml").site
    b = site_bounds(site, "grid-meter")
    assert (b.min_voltage_v, b.max_voltage_v, b.voltage_lines) == (180.0, 270.0, (1, 2, 3))
