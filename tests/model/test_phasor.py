"""Line phasors per node (controller/model/phasor.py): hand-computed cases and the polygon's bound."""

from __future__ import annotations

import cmath
import math
import random

import pytest

from controller.model.phasor import (
    SQRT3,
    charger_phasors,
    draw,
    facet_coefficient,
    facets,
    node_line_currents_a,
    node_ln_voltage_v,
    node_service,
)
from controller.model.site import Charger, Circuit, Grid, Site, SiteInfo, Transformer


def us_site() -> Site:
    """480Y/277 service; a delta-wye 480→208Y/120 transformer; a split-phase 480→240/120 one."""
    return Site(
        site=SiteInfo("t", "America/Chicago", 277.0, "wye"),
        grid=Grid(400.0),
        circuits=(
            Circuit("t1", 100.0, transformer=Transformer("delta-wye", 480.0 / 208.0)),
            Circuit("sp", 50.0, transformer=Transformer("split-phase", 2.0, "L2-L3")),
            Circuit("panel", 80.0, parent="t1"),
        ),
        chargers=(
            Charger("ab", "panel", "ac", 1, "L1-L2", max_a=32.0),
            Charger("bc", "panel", "ac", 1, "L2-L3", max_a=32.0),
            Charger("ca", "panel", "ac", 1, "L3-L1", max_a=32.0),
            Charger("a", "t1", "ac", 1, "L1", max_a=16.0),
            Charger("three", "t1", "ac", 3, "L1-L2-L3", max_a=32.0),
            Charger("dc", "grid", "dc", 3, "L1-L2-L3", max_kw=150.0),
            Charger("s", "sp", "ac", 1, "L1-L2", max_a=40.0),
        ),
    )


def test_bus_voltages_and_services() -> None:
    s = us_site()
    assert node_service(s, "grid") == "wye" and node_service(s, "panel") == "wye"
    assert node_service(s, "sp") == "split-phase"
    assert node_ln_voltage_v(s, "grid") == pytest.approx(277.0)
    assert node_ln_voltage_v(s, "panel") == pytest.approx(277.0 * 208.0 / 480.0)  # 120 V
    assert node_ln_voltage_v(s, "sp") == pytest.approx(277.0 * SQRT3 / 2.0 / 2.0)  # 480/2/2 = 120 V
    delta = Site(site=SiteInfo("d", "UTC", 240.0, "delta"), grid=Grid(100.0))
    assert node_ln_voltage_v(delta, "grid") == pytest.approx(240.0 / SQRT3)


def test_power_per_amp() -> None:
    s = us_site()
    assert draw(s, s.charger("ab")).volts_v == pytest.approx(208.0, rel=1e-3)  # line to line
    assert draw(s, s.charger("a")).volts_v == pytest.approx(120.0, rel=1e-3)
    assert draw(s, s.charger("three")).volts_v == pytest.approx(360.0, rel=1e-3)
    assert draw(s, s.charger("three"), 1).lines == (0,)  # a 1-phase car on a 3-phase charger
    assert draw(s, s.charger("s")).volts_v == pytest.approx(240.0, rel=1e-3)
    delta = Site(site=SiteInfo("d", "UTC", 240.0, "delta"), grid=Grid(100.0),
                 chargers=(Charger("c", "grid", "ac", 3, "L1-L2-L3", max_a=32.0),))
    one = draw(delta, delta.charger("c"), 1)  # no neutral: a 1-phase car draws between two lines
    assert one.line_to_line and one.lines == (0, 1) and one.volts_v == pytest.approx(240.0)


def test_balanced_line_to_line_load_is_root_three_not_two() -> None:
    """Three 10 A chargers L1-L2, L2-L3, L3-L1: each line carries √3 × 10 A, not 20 A; the
    transformer's 480 V primary carries the same power: 3 × 10 A × 208 V / (√3 × 480 V) = 7.5 A."""
    s = us_site()
    loads = [(s.charger(c), None, 10.0) for c in ("ab", "bc", "ca")]
    amps = node_line_currents_a(s, loads)
    for ln in range(3):
        assert amps["panel"][ln] == pytest.approx(10.0 * SQRT3)
        assert amps["t1"][ln] == pytest.approx(3 * 10.0 * 208.0 / (SQRT3 * 480.0))
        assert amps["grid"][ln] == pytest.approx(amps["t1"][ln])
    assert amps["sp"] == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("group", ["Dyn1", "Dyn11"])
def test_one_line_to_line_charger_through_a_delta_wye_transformer(group: str) -> None:
    """An L1-L2 load I on the secondary (I_a = I, I_b = −I, I_c = 0), |k| = 1 / (√3 ratio).
    Dyn1 (ANSI): I_A = (I_a − I_b)k, I_B = (I_b − I_c)k, I_C = (I_c − I_a)k → 2, 1, 1 × |I|k.
    Dyn11: I_A = (I_a − I_c)k, I_B = (I_b − I_a)k, I_C = (I_c − I_b)k → 1, 2, 1 × |I|k."""
    base = us_site()
    t1 = Circuit("t1", 100.0, transformer=Transformer("delta-wye", 480.0 / 208.0, vector_group=group))  # type: ignore[arg-type]
    s = Site(site=base.site, grid=base.grid, circuits=(t1, *base.circuits[1:]), chargers=base.chargers)
    k = 30.0 / (SQRT3 * 480.0 / 208.0)
    amps = node_line_currents_a(s, [(s.charger("ab"), None, 30.0)])
    assert amps["panel"] == pytest.approx((30.0, 30.0, 0.0))
    assert amps["t1"] == pytest.approx((2 * k, k, k) if group == "Dyn1" else (k, 2 * k, k))
    # balanced: the same either way, and in phase with the primary voltages
    balanced = node_line_currents_a(s, [(s.charger(c), None, 10.0) for c in ("ab", "bc", "ca")])
    assert balanced["t1"] == pytest.approx((3 * 10.0 * 208.0 / (SQRT3 * 480.0),) * 3)


def test_split_phase_transformer_across_two_primary_lines() -> None:
    s = us_site()
    amps = node_line_currents_a(s, [(s.charger("s"), None, 40.0)])
    assert amps["sp"] == pytest.approx((0.0, 20.0, 20.0))  # 40 A at 240 V = 20 A at 480 V
    assert amps["grid"] == pytest.approx((0.0, 20.0, 20.0))


def test_european_site_is_arithmetic() -> None:
    """Line-to-neutral and three-phase loads on a wye site sit at their line's angle: phasor = sum."""
    s = Site(site=SiteInfo("eu", "Europe/Amsterdam"), grid=Grid(100.0),
             chargers=(Charger("a", "grid", "ac", 3, "L1-L2-L3", max_a=32.0),
                       Charger("b", "grid", "ac", 1, "L2", max_a=32.0)))
    amps = node_line_currents_a(s, [(s.charger("a"), None, 16.0), (s.charger("b"), None, 10.0)])
    assert amps["grid"] == pytest.approx((16.0, 26.0, 16.0))
    assert all(len(facets([v[ln] for v in charger_phasors(s, s.charger("a")).values()])) == 1 for ln in range(3))


@pytest.mark.parametrize("seed", range(20))
def test_polygon_is_inside_the_circle_and_close_to_it(seed: int) -> None:
    """Any non-negative combination that satisfies every facet row has magnitude <= room, and the
    largest one along any direction in the arc reaches at least cos(step/2) of it."""
    rng = random.Random(seed)
    spread = rng.choice([0.0, 30.0, 60.0, 120.0, 170.0, 300.0])
    base = rng.uniform(0, 360)
    coefs = [cmath.rect(rng.uniform(0.2, 2.0), math.radians(base + rng.uniform(0, spread))) for _ in range(6)]
    rows = facets(coefs, 15.0)
    for _ in range(200):
        x = [rng.uniform(0, 1) for _ in coefs]
        z = sum(c * v for c, v in zip(coefs, x, strict=True))
        load = max(sum(facet_coefficient(c, f) * v for c, v in zip(coefs, x, strict=True)) / f.scale for f in rows)
        # scale x so the tightest row is exactly at room 1: the phasor must be within the circle
        assert abs(z) / load <= 1.0 + 1e-9
    if spread < 180.0:
        assert all(f.scale >= math.cos(math.radians(7.5)) - 1e-12 for f in rows)


def test_wye_wye_primary_with_and_without_its_neutral() -> None:
    """10 A line-to-neutral on secondary L1, ratio 2. Star point tied (YNyn): 5 A on primary L1 only.
    Floating (Yyn): the zero-sequence part I0 = 10/3 A cannot flow on the primary, whose lines carry
    (I − I0) / 2: 3.33 A on L1 and 1.67 A on L2 and L3."""
    for tied, expected in ((True, (5.0, 0.0, 0.0)), (False, (10.0 / 3.0, 5.0 / 3.0, 5.0 / 3.0))):
        s = Site(
            site=SiteInfo("t", "UTC", 230.0), grid=Grid(400.0),
            circuits=(Circuit("t1", 100.0, transformer=Transformer("wye-wye", 2.0, primary_neutral=tied)),),
            chargers=(Charger("a", "t1", "ac", 1, "L1", max_a=16.0),),
        )
        assert node_line_currents_a(s, [(s.charger("a"), None, 10.0)])["t1"] == pytest.approx(expected)
