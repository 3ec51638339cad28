from __future__ import annotations

import pytest

from controller.config import load_site_text
from controller.shed import ChargerDraw, shed

SITE = load_site_text(
    """site: {name: T, timezone: UTC}
grid: {limit_a: 100, margin_a: 5}
ocpp: {security_profile: 0}
circuits: [{id: f, limit_a: 50, margin_a: 2}]
chargers:
  - {id: A, circuit: f, phases: 3, max_a: 32}
  - {id: B, circuit: f, phases: 1, phase_rotation: L2, max_a: 32}
  - {id: C, phases: 3, max_a: 32}
  - {id: DC, kind: dc, max_kw: 50, efficiency: 1.0, power_factor: 1.0}
"""
).site


def test_nothing_happens_below_the_usable_limit() -> None:
    draws = [ChargerDraw("a", "A", 16, (16.0, 16.0, 16.0))]
    assert shed(SITE, {"grid": (95.0, 95.0, 95.0), "f": (48.0, 48.0, 48.0)}, draws) == ({}, [])


def test_overloaded_feeder_scales_only_its_chargers_on_that_phase() -> None:
    draws = [
        ChargerDraw("a", "A", 20, (20.0, 20.0, 20.0)),
        ChargerDraw("b", "B", 20, (0.0, 20.0, 0.0)),
        ChargerDraw("c", "C", 20, (20.0, 20.0, 20.0)),
    ]
    # feeder f: L2 carries 10 base + 40 EV = 50 > 48 usable → 2 A too much on L2
    limits, events = shed(SITE, {"grid": (60.0, 80.0, 60.0), "f": (30.0, 50.0, 30.0)}, draws)
    assert [e.label for e in events] == ["f L2"]
    assert set(limits) == {"a", "b"}  # C is not under f
    assert limits["a"] == pytest.approx(19.0) and limits["b"] == pytest.approx(19.0)


def test_shed_below_minimum_pauses_ac_and_cuts_dc_power() -> None:
    per_kw = 1000 / (3 * 230)
    draws = [
        ChargerDraw("c", "C", 8, (8.0, 8.0, 8.0)),
        ChargerDraw("dc", "DC", 50, (50 * per_kw, 50 * per_kw, 50 * per_kw)),
    ]
    load = 8.0 + 50 * per_kw + 60.0
    limits, events = shed(SITE, {"grid": (load, load, load)}, draws)
    assert len(events) == 3
    excess = load - 95.0
    keep = 1 - excess / (8.0 + 50 * per_kw)
    assert limits["c"] == 0.0  # 8 A × keep < 6 A → pause
    assert limits["dc"] == pytest.approx(int(50 * keep * 10) / 10)


def test_measured_base_alone_over_the_limit_stops_every_charger_below() -> None:
    draws = [ChargerDraw("a", "A", 16, (16.0, 16.0, 16.0)), ChargerDraw("b", "B", 16, (0.0, 16.0, 0.0))]
    # non-EV load alone (measured − EV draw) is over the 48 A usable on every phase
    limits, _ = shed(SITE, {"f": (70.0, 82.0, 70.0)}, draws)
    assert limits == {"a": 0.0, "b": 0.0}


def test_the_grid_kw_contract_is_shed_in_the_fast_loop() -> None:
    """Issue 12: ``grid.limit_kw`` was enforced by the plan only. 110 kW measured on a 105 kW
    contract: the grid's usable current per phase shrinks by the power's ratio, the chargers shed."""
    from controller.config.loader import load_site
    from controller.model.site import GRID_ID
    from controller.shed import KW_MARGIN, kw_usable_a

    site = load_site("config/demo-site.yaml").site
    assert site.grid.limit_kw == 105
    grid = (150.0, 150.0, 150.0)  # under the 156 A usable of the breaker …
    assert kw_usable_a(site, grid, 100_000.0) == {}  # … and under the contract: nothing tighter
    tight = kw_usable_a(site, grid, 110_000.0)
    ratio = 105_000.0 * (1 - KW_MARGIN) / 110_000.0
    assert tight == {GRID_ID: (150.0 * ratio, 150.0 * ratio, 150.0 * ratio)}
    draws = [ChargerDraw("CP07:1", "CP07", 32.0, (32.0, 32.0, 32.0))]
    assert shed(site, {GRID_ID: grid}, draws) == ({}, [])  # the breaker alone sees no overload
    limits, events = shed(site, {GRID_ID: grid}, draws, tight)
    assert events and limits["CP07:1"] < 32.0 - (150.0 - 150.0 * ratio) + 0.1
