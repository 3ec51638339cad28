"""Line currents as phasors from what the daemon measures: chargers' draws, base-load bounds (pure)."""

from __future__ import annotations

import cmath
import math
import random

import pytest

from controller.config import load_site, load_site_text
from controller.model import phasor
from controller.model.site import Site
from controller.rules import line_base as lb
from controller.rules import line_loads as ll
from controller.rules.loads import add_budgets, base_loads, known_loads

US = load_site_text(
    """site: {name: US, timezone: UTC, service: wye, voltage_v: 277}
grid: {limit_a: 400, margin_a: 4, meter: grid-meter}
ocpp: {security_profile: 0}
meters:
  - {id: grid-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 1}}
  - {id: xf-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, unit: 2}}
circuits:
  - {id: xf, limit_a: 60, margin_a: 2, meter: xf-meter, transformer: {connection: delta-wye, ratio: 2.31}}
  - {id: panel, parent: xf, limit_a: 200, margin_a: 2}
chargers:
  - {id: A, circuit: panel, phases: 1, phase_rotation: L1-L2, max_a: 48}
  - {id: B, circuit: panel, phases: 1, phase_rotation: L2-L3, max_a: 48}
  - {id: C, circuit: panel, phases: 1, phase_rotation: L3-L1, max_a: 48}
  - {id: N1, circuit: panel, phases: 1, phase_rotation: L1, max_a: 16}
  - {id: DC, kind: dc, max_kw: 60, efficiency: 1.0, power_factor: 1.0}
"""
).site
"""A 480Y/277 V service; a 480 → 208Y/120 V delta-wye transformer metered on its primary feeds a
panel of 208 V line-to-line chargers and one 120 V charger; a DC charger on the 480 V bus."""

LL_DRAW = {"A": (16.0, 16.0, 0.0), "B": (0.0, 16.0, 16.0), "C": (16.0, 0.0, 16.0)}


def _deg(z: complex) -> float:
    return round(math.degrees(cmath.phase(z)), 6)


def test_a_line_to_line_charger_draws_30_degrees_off_both_of_its_lines() -> None:
    vec = ll.draw_vector(US, US.charger("A"), (16.0, 16.0, 0.0))
    assert [round(abs(v), 9) for v in vec] == [16.0, 16.0, 0.0]
    assert _deg(vec[0]) == 30.0 and _deg(vec[1]) == -150.0  # V_L1 - V_L2 leads L1 by 30°
    # reported on one line only, or on both: the same current in both lines
    assert ll.draw_vector(US, US.charger("A"), (16.0, 0.0, 0.0)) == pytest.approx(vec)
    # a 120 V charger sits at its line's angle
    assert ll.draw_vector(US, US.charger("N1"), (10.0, 0.0, 0.0)) == pytest.approx((10.0, 0j, 0j))


def test_ev_at_nodes_is_the_phasor_model_of_the_site() -> None:
    """The fast loop's sums agree with controller.model.phasor (what the planner limits)."""
    ev = ll.ev_at_nodes(US, LL_DRAW)
    model = phasor.node_line_currents_a(US, [(US.charger(c), None, 16.0) for c in "ABC"])
    for node in US.node_ids():
        assert ll.node_line_a(US, node, ev[node]) == pytest.approx(model[node])
    # three 208 V chargers, one per pair: 16 A × √3 per panel line, not 32 A
    assert model["panel"] == pytest.approx((16 * math.sqrt(3),) * 3)
    assert ev["panel"].arith == pytest.approx([32.0, 32.0, 32.0])


def test_known_loads_of_an_unmetered_transformer_node_are_on_its_primary() -> None:
    site = _without_meters(US)
    loads = known_loads(site, {}, LL_DRAW)
    model = phasor.node_line_currents_a(site, [(site.charger(c), None, 16.0) for c in "ABC"])
    assert loads["xf"] == pytest.approx(model["xf"])
    assert loads["panel"] == pytest.approx(model["panel"])
    # a budget (a charger out of contact: angle unknown) counts by magnitude, through |M| to the primary
    budgeted = known_loads(site, {}, {}, {"A": (48.0, 48.0, 0.0)})
    assert budgeted["panel"] == pytest.approx((48.0, 48.0, 0.0))
    true = phasor.node_line_currents_a(site, [(site.charger("A"), None, 48.0)])["xf"]
    assert all(budgeted["xf"][ln] >= true[ln] - 1e-9 for ln in range(3))
    assert budgeted["grid"] == pytest.approx(budgeted["xf"])


def test_add_budgets_lifts_a_secondary_budget_onto_every_primary_line_it_reaches() -> None:
    """A budget on the secondary's L1-L2 loads all three primary lines of a delta-wye transformer;
    adding its secondary amperes to primary L1 and L2 only would miss primary L3."""
    base = {"grid": (0.0, 0.0, 0.0), "xf": (0.0, 0.0, 0.0), "panel": (0.0, 0.0, 0.0)}
    out = add_budgets(US, base, {"A": (48.0, 48.0, 0.0)})
    true = phasor.node_line_currents_a(US, [(US.charger("A"), None, 48.0)])
    assert out["panel"] == (48.0, 48.0, 0.0)
    for node in ("xf", "grid"):
        assert all(out[node][ln] >= true[node][ln] - 1e-9 for ln in range(3))
        assert all(v > 0 for v in out[node])


def test_a_european_wye_site_keeps_meter_minus_ev() -> None:
    """Every load on a line of a wye site of line-to-neutral chargers sits at one angle: the base
    is the meter less the EV draw, as it always was."""
    site = load_site("config/demo-site.yaml").site
    for node in site.node_ids():
        assert ll.collinear_lines(site, node) == (True, True, True)
    meters = {"grid-meter": (100.0, 90.0, 80.0), "feeder-b-meter": (40.0, 30.0, 20.0)}
    draws = {"CP07": (30.0, 35.0, 5.0), "CP01": (10.0, 10.0, 10.0)}
    base = base_loads(site, meters, draws, {"grid": (0.0, 0.0, 0.0)})  # a power reading changes nothing here
    assert base["feeder-b"] == (10.0, 0.0, 15.0)
    assert base["grid"] == (60.0, 45.0, 65.0)


def test_lines_with_line_to_line_loads_span_an_arc() -> None:
    assert ll.collinear_lines(US, "panel") == (False, False, False)
    assert ll.collinear_lines(US, "xf") == (False, False, False)
    split = load_site_text(
        """site: {name: S, timezone: UTC, service: split-phase, voltage_v: 120}
grid: {limit_a: 200}
ocpp: {security_profile: 0}
chargers:
  - {id: L2, phases: 1, phase_rotation: L1-L2, max_a: 40}
  - {id: L1, phases: 1, phase_rotation: L1, max_a: 12}
"""
    ).site
    assert ll.collinear_lines(split, "grid") == (True, True, True)  # 240 V and 120 V loads line up


def _truth(rng: random.Random, angle_span_deg: float) -> tuple[complex, complex, complex]:
    """A base phasor within ``angle_span_deg`` of the line voltage (0°), a mix of EV currents at
    ±30° (line-to-line chargers on both pairs of the line) and 0°, and the line's phasor."""
    b = cmath.rect(rng.uniform(0.0, 80.0), math.radians(rng.uniform(-angle_span_deg, angle_span_deg)))
    e = sum(cmath.rect(rng.uniform(0.0, 60.0), math.radians(a)) for a in (30.0, -30.0, 0.0) if rng.random() < 0.7)
    return b, complex(e), b + e


def test_the_naive_base_understates_a_base_at_an_angle_to_the_ev_current() -> None:
    """Why meter − |EV| is not used where loads span an arc: it is a lower bound of |B|."""
    b = cmath.rect(10.0, math.radians(-30.0))  # an inductive base
    e = cmath.rect(20.0, math.radians(30.0))  # 208 V chargers on L1-L2, seen on L1
    m = abs(b + e)
    assert m - abs(e) == pytest.approx(6.46, abs=0.01)  # 3.5 A short of the 10 A there is
    # the planner may turn the mix to the L3-L1 chargers (−30°) at the same 20 A: the line then
    # carries 30 A where meter − |EV| + 20 says 26.5
    assert abs(b + cmath.rect(20.0, math.radians(-30.0))) == pytest.approx(30.0)
    with_power = lb.base_line_a(m, e, collinear=False, in_phase_a=(b + e).real)
    without = lb.base_line_a(m, e, collinear=False)
    assert with_power == pytest.approx(10.0)  # the other phasor consistent with it sits at −60°
    assert 10.0 - 1e-9 <= without < 13.0  # the worst angle within ±45° consistent with 26.5 A
    # EV-dominated: no base at all under 100 A of 208 V chargers is no base, not 100 A
    e = cmath.rect(100.0, math.radians(30.0))
    assert lb.base_line_a(100.0, e, collinear=False, in_phase_a=e.real) == pytest.approx(0.0, abs=1e-6)
    assert lb.base_line_a(100.0, e, collinear=False) == pytest.approx(0.0, abs=1e-6)


def test_the_base_bound_holds_for_every_base_within_its_assumed_angle() -> None:
    rng = random.Random(18)
    for _ in range(3000):
        b, e, line = _truth(rng, lb.BASE_MAX_ANGLE_DEG)
        with_power = lb.base_line_a(abs(line), e, collinear=False, in_phase_a=line.real)
        without = lb.base_line_a(abs(line), e, collinear=False)
        assert with_power >= abs(b) - 1e-6 and without >= abs(b) - 1e-6
        assert with_power <= without + 1e-6  # the power only ever narrows it
        assert with_power >= abs(line) - abs(e) - 1e-9


def test_beyond_the_assumed_angle_the_bound_is_never_below_meter_minus_ev() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        _b, e, line = _truth(rng, 180.0)  # export, capacitive, …: the fast loop's shed covers these
        for in_phase in (line.real, None):
            assert lb.base_line_a(abs(line), e, collinear=False, in_phase_a=in_phase) >= abs(line) - abs(e) - 1e-9


def test_base_loads_on_a_metered_delta_wye_transformer_keep_the_primary_safe() -> None:
    """Base inferred on the transformer's primary from its meter; whatever mix of chargers the
    planner then chooses within ``limit − margin − base`` keeps the primary within the limit."""
    rng = random.Random(4)
    usable = US.node_limit_a("xf") - US.node_margin_a("xf")
    units = ll.line_units(US, "xf")
    for _ in range(300):
        base = [cmath.rect(rng.uniform(0.0, 20.0), math.radians(rng.uniform(-40.0, 40.0))) * u for u in units]
        draws = {c: tuple(v * rng.uniform(0.0, 1.5) for v in LL_DRAW[c]) for c in "ABC"}
        ev = ll.ev_at_nodes(US, draws)["xf"].phasor  # type: ignore[arg-type]
        line = [base[k] + ev[k] for k in range(3)]
        meter = tuple(abs(v) for v in line)
        power_in_phase = tuple((line[k] * units[k].conjugate()).real for k in range(3))
        for in_phase in ({"xf": power_in_phase}, None):
            got = base_loads(US, {"xf-meter": meter, "grid-meter": meter}, draws, in_phase)["xf"]  # type: ignore[arg-type]
            for k in range(3):
                assert got[k] >= abs(base[k]) - 1e-6
            # any other mix within the room the planner is given stays within the limit
            amps = {c: rng.uniform(0.0, 48.0) for c in "ABC"}
            planned = phasor.node_line_currents_a(US, [(US.charger(c), None, a) for c, a in amps.items()])["xf"]
            room = min(usable - got[k] for k in range(3))
            scale = min(1.0, max(0.0, room) / max(planned)) if max(planned) > 0 else 0.0
            phasors: list[complex] = [0j, 0j, 0j]
            for c, a in amps.items():
                vec = dict(ll.lifted(US, US.charger(c), ll.draw_vector(US, US.charger(c), _on_lines(c, a * scale))))
                for k in range(3):
                    phasors[k] += vec["xf"][k]
            for k in range(3):
                assert abs(base[k] + phasors[k]) <= usable + 1e-6


def test_in_phase_from_a_meters_power_and_voltage() -> None:
    got = lb.in_phase_a(US, "xf", (10.0, 10.0, 10.0), (2770.0, -1385.0, 0.0), (277.0, 277.0, 277.0))
    assert got == pytest.approx((10.0, -5.0, 0.0))
    assert lb.in_phase_a(US, "xf", (10.0, 10.0, 10.0), None) is None
    # no voltage reported: the bus's nominal line-to-neutral voltage (the primary's, 277 V)
    assert lb.in_phase_a(US, "xf", (10.0, 10.0, 10.0), (2770.0, 0.0, 0.0)) == pytest.approx((10.0, 0.0, 0.0))
    delta = load_site_text(
        """site: {name: D, timezone: UTC, service: delta, voltage_v: 240}
grid: {limit_a: 200}
ocpp: {security_profile: 0}
chargers: [{id: X, phases: 3, max_a: 32}]
"""
    ).site
    assert lb.in_phase_a(delta, "grid", (10.0, 10.0, 10.0), (1000.0, 1000.0, 1000.0)) is None  # no neutral


def test_dc_amps_per_kw_at_the_bus_voltage() -> None:
    assert ll.amps_per_kw(US, US.charger("DC")) == pytest.approx(1000.0 / (3 * 277.0))


def _on_lines(charger_id: str, amps: float) -> tuple[float, float, float]:
    lines = US.charger(charger_id).grid_phases
    out = [0.0, 0.0, 0.0]
    for ln in lines:
        out[ln] = amps
    return (out[0], out[1], out[2])


def _without_meters(site: Site) -> Site:
    import dataclasses

    return dataclasses.replace(
        site,
        grid=dataclasses.replace(site.grid, meter=None),
        circuits=tuple(dataclasses.replace(c, meter=None) for c in site.circuits),
        meters=(),
    )
