"""Line-to-line chargers in the rig (issue 18): the phasor monitor's arithmetic by hand, the
simulated meter on a transformer's primary, and the simulated charge point between two lines —
its meter values (both lines, ``L1-L2``, L1 only, no phase) and its W → A conversion (208 V, or a
firmware's wrong 120/230 V), over real websockets against a minimal central system."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest

from controller.config.loader import load_site_text
from controller.model.phasor import draw
from controller.model.site import Site
from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from hil.meter import SimMeter
from hil.rig.monitor import SafetyMonitor, Sample
from hil.rig.plant import (
    charger_grid_currents,
    magnitudes,
    meter_voltage_v,
    meter_voltages_v,
    node_loads,
    node_phasors,
    power_factors,
    sim_ev,
    sim_max_a,
    sim_voltage_v,
)
from tests.chargers.conftest import eventually
from tests.hil.central import ManualClock, MiniCentral
from tests.hil.test_hostile import LONG_AGO, control, settle

SQRT3 = math.sqrt(3.0)
RATIO = 2.31  # 480 V → 208 V
DELTA_WYE = f"""\
site: {{name: T, timezone: America/Chicago, service: wye, voltage_v: 277}}
grid: {{limit_a: 100, margin_a: 0}}
ocpp: {{security_profile: 0}}
meters: [{{id: m, preset: carlo-gavazzi-em24, modbus: {{host: 127.0.0.1, port: 15020, unit: 1}}}}]
circuits:
  - {{id: xfmr, limit_a: 18, margin_a: 0, meter: m, transformer: {{connection: delta-wye, ratio: {RATIO}}}}}
  - {{id: panel, parent: xfmr, limit_a: 100, margin_a: 0}}
  - id: split
    limit_a: 30
    margin_a: 0
    transformer: {{connection: split-phase, ratio: 2, primary: L2-L3}}
  - {{id: split-panel, parent: split, limit_a: 100}}
chargers:
  - {{id: A, circuit: panel, phases: 1, phase_rotation: L1-L2, max_a: 48}}
  - {{id: B, circuit: panel, phases: 1, phase_rotation: L2-L3, max_a: 48}}
  - {{id: S, circuit: split, phases: 1, phase_rotation: L1-L2, max_a: 48}}
"""


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site_text(DELTA_WYE, "delta-wye.yaml").site


def test_a_208_v_charger_is_one_current_on_two_lines_at_208_w_per_a(site: Site) -> None:
    a = site.charger("A")
    assert a.line_to_line and a.grid_phases == (0, 1)
    secondary_ll_v = 277.0 / RATIO * SQRT3  # 207.7 V
    assert sim_voltage_v(site, a) == pytest.approx(secondary_ll_v)
    assert draw(site, a).volts_v == pytest.approx(secondary_ll_v)
    assert sim_max_a(site, a) == 48.0
    ev = sim_ev(site, a, EvParams(max_a=32.0, phases=3))
    assert (ev.phases, ev.voltage_v) == (1, pytest.approx(secondary_ll_v))  # a 3-phase car draws one current
    assert charger_grid_currents(a, (30.0, 30.0, 0.0)) == (30.0, 30.0, 0.0)


def test_the_phasor_monitor_on_a_delta_wye_primary_by_hand(site: Site) -> None:
    """A (L1-L2) and B (L2-L3) at 30 A each on the 208 V side of a Dyn1 480 → 208 V transformer.

    Secondary: I_a = 30∠30°, I_b = 30∠−150° + 30∠−90°, I_c = 30∠90° (each 208 V charger's current at
    its line-to-line voltage's angle, out on one line and back on the other). |I_b| = 2·30·cos 30°.
    Primary (Dyn1, the ANSI default): I_A = k(I_a − I_b), I_B = k(I_b − I_c), I_C = k(I_c − I_a),
    |k| = 1/(√3·ratio): |I_a − I_b| = |60∠30° + 30∠90°| = √(60² + 30² + 2·60·30·cos 60°) = √6300,
    |I_b − I_c| = |30∠−150° + 60∠−90°| = √6300, |I_c − I_a| = |30∠90° − 30∠30°| = 30.
    """
    loads = node_loads(site, {}, {"A": (30.0, 30.0, 0.0), "B": (30.0, 30.0, 0.0)})
    assert loads["panel"] == pytest.approx((30.0, 2 * 30 * math.cos(math.radians(30)), 30.0))  # 51.96, not 60
    k = 1 / (SQRT3 * RATIO)
    primary = (math.sqrt(6300) * k, math.sqrt(6300) * k, 30 * k)  # 19.84, 19.84, 7.50 A
    assert loads["xfmr"] == pytest.approx(primary)
    assert loads["grid"] == pytest.approx(primary)
    assert loads["split"] == (0.0, 0.0, 0.0)

    # the 18 A limit: L1 and L2 over it, L3 not — reported once the excursion outlasts the allowance
    monitor = SafetyMonitor(reaction_allowance_s=5.0, grace_s=5.0)
    limits = {n: site.node_limit_a(n) for n in site.node_ids()}
    for t in range(8):
        monitor.observe(Sample(float(t), loads, limits))
    assert sorted((v.where, v.phase) for v in monitor.violations) == [("xfmr", "L1"), ("xfmr", "L2")]
    assert all(v.value_a == pytest.approx(primary[0]) and v.limit_a == 18.0 for v in monitor.violations)
    assert loads["panel"][1] < 30.0 + 30.0  # the breaker sees the phasor sum, not the sum of magnitudes


def test_a_meter_on_the_primary_reads_the_line_magnitudes_and_the_power_the_chargers_draw(site: Site) -> None:
    draws = {"A": (30.0, 30.0, 0.0), "B": (30.0, 30.0, 0.0)}
    total = node_phasors(site, {"xfmr": (2.0, 2.0, 2.0)}, draws)["xfmr"]  # + a 2 A balanced load on the 208 V bus
    base = node_phasors(site, {"xfmr": (2.0, 2.0, 2.0)}, {})["xfmr"]
    meter = SimMeter(1, "carlo-gavazzi-em24")
    meter.set_voltage((meter_voltage_v(site, "xfmr"),) * 3)  # on the 480 V side: 277 V to neutral
    b, t = magnitudes(base), magnitudes(total)
    meter.set_load(base_a=b, ev_a=tuple(t[p] - b[p] for p in range(3)), phase_pf=power_factors(site, "xfmr", total))
    values = meter.state.values()
    assert meter_voltage_v(site, "xfmr") == 277.0
    assert (values["current_l1_a"], values["current_l2_a"], values["current_l3_a"]) == pytest.approx(t)
    # an ideal transformer: the primary's power is what the 208 V loads take (V_LL × I each, 3 × 120 V × 2 A)
    secondary_ln_v = 277.0 / RATIO
    expected_w = 2 * 30.0 * secondary_ln_v * SQRT3 + 3 * secondary_ln_v * 2.0
    assert values["power_w"] == pytest.approx(expected_w, rel=1e-9)


def test_a_split_phase_transformer_across_l2_l3_puts_half_the_240_v_current_on_each(site: Site) -> None:
    s = site.charger("S")
    assert sim_voltage_v(site, s) == pytest.approx(277.0 * SQRT3 / 2)  # 480 V / 2 = 240 V line to line
    loads = node_loads(site, {}, {"S": (40.0, 40.0, 0.0)})
    assert loads["split"] == pytest.approx((0.0, 20.0, 20.0))
    assert loads["grid"] == pytest.approx((0.0, 20.0, 20.0))
    total = node_phasors(site, {}, {"S": (40.0, 40.0, 0.0)})["split"]
    pf = power_factors(site, "split", total)
    assert pf[1] == pytest.approx(math.cos(math.radians(30))) and pf[2] == pytest.approx(pf[1])
    assert 277.0 * 20.0 * (pf[1] + pf[2]) == pytest.approx(40.0 * 277.0 * SQRT3 / 2)
    # a meter on the transformer node sits on the 480 V primary; one below it on the 120/240 V side
    assert meter_voltages_v(site, "split") == (277.0, 277.0, 277.0)
    assert meter_voltages_v(site, "split-panel") == pytest.approx((277.0 * SQRT3 / 4, 277.0 * SQRT3 / 4, 0.0))


# --- the simulated charge point between two lines ---------------------------------------------------

V_LL = 208.0
EV = EvParams(max_a=80.0, phases=1, battery_kwh=80.0, voltage_v=V_LL, reaction_s=0.5)
VERSIONS = ["1.6", "2.0.1"]


@contextlib.asynccontextmanager
async def ll_charger(
    central: MiniCentral, clock: ManualClock, version: str, **options: Any
) -> AsyncIterator[SimCharger]:
    """A connected 208 V line-to-line charger (CP1, 80 A) with a car plugged in on connector 1."""
    o = SimOptions(
        "CP1", version=version, tick_s=0.05, max_a=80.0, phases=1, voltage_v=V_LL, line_to_line=True, **options
    )
    sim = SimCharger(o, clock=clock)
    await sim.connect(central.url)
    try:
        await sim.plug_in(EV, soc_pct=30.0)
        yield sim
    finally:
        await sim.close()


def _currents(central: MiniCentral, version: str) -> list[tuple[str | None, float]] | None:
    """(phase, value) of every Current.Import in the last meter value that has any."""
    action = "MeterValues" if version == "1.6" else "TransactionEvent"
    for p in reversed(central.calls(action)):
        for mv in p.get("meter_value") or []:
            values = mv["sampled_value"]
            cur = [(s.get("phase"), float(s["value"])) for s in values if s.get("measurand") == "Current.Import"]
            if cur:
                return cur
    return None


def _power(central: MiniCentral, version: str) -> float | None:
    action = "MeterValues" if version == "1.6" else "TransactionEvent"
    for p in reversed(central.calls(action)):
        for mv in p.get("meter_value") or []:
            for s in mv["sampled_value"]:
                if s.get("measurand") == "Power.Active.Import" and float(s["value"]) > 0:
                    return float(s["value"])
    return None


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("report", "expected"),
    [
        ("both_lines", [("L1", 20.0), ("L2", 20.0)]),
        ("line_pair", [("L1-L2", 20.0)]),
        ("first_line", [("L1", 20.0)]),
        ("no_phase", [(None, 20.0)]),
    ],
)
async def test_a_line_to_line_charger_reports_its_current_as_chosen_and_draws_it_on_both_lines(
    version: str,
    report: str,
    expected: list[tuple[str | None, float]],
    central: MiniCentral,
    clock: ManualClock,
) -> None:
    async with ll_charger(central, clock, version, ll_current_report=report) as sim:
        sim.config["MeterValuesSampledData"] = "Current.Import,Power.Active.Import"
        sim.o.meter_interval_s = 0.1
        assert await central.set_profile("CP1", 1, control(version, 20.0, LONG_AGO)) == "Accepted"
        assert sim.allowed_a() == (20.0, 20.0, 0.0)  # one current, out on L1 and back on L2
        settle(sim, clock, EV.reaction_s)
        assert sim.draw_a() == (20.0, 20.0, 0.0)
        clock.advance(1.0)
        await eventually(lambda: _currents(central, version) == expected, 3.0, f"meter values {expected}")
        await eventually(lambda: _power(central, version) is not None, 3.0, "a power reading")
        assert _power(central, version) == pytest.approx(20.0 * V_LL, abs=0.01)  # 208 W per A, not 2 × 230
        # energy: an hour at 20 A is 20 × 208 Wh
        before = sim.connectors[1].energy_wh
        settle(sim, clock, 3600.0)
        assert sim.connectors[1].energy_wh - before == pytest.approx(20.0 * V_LL, rel=1e-6)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("w_voltage_v", "expected_a"),
    [
        (None, 30.0),  # 6240 W / 208 V: what the W meant
        (120.0, 52.0),  # divided by the voltage to neutral: 1.73 × the current — the worst the field does
        (230.0, 27.1),  # European firmware: less than meant
    ],
)
async def test_a_w_limit_is_divided_by_the_line_to_line_voltage_unless_the_firmware_gets_it_wrong(
    version: str, w_voltage_v: float | None, expected_a: float, central: MiniCentral, clock: ManualClock
) -> None:
    async with ll_charger(central, clock, version, w_voltage_v=w_voltage_v, quirks=frozenset({"power_only"})) as sim:
        assert await central.set_profile("CP1", 1, control(version, 20.0, LONG_AGO)) == "Rejected"  # W only
        w = control(version, 6240.0, LONG_AGO, unit="W", number_phases=1)
        assert await central.set_profile("CP1", 1, w) == "Accepted"
        allowed = sim.allowed_a()
        assert allowed[0] == pytest.approx(expected_a, abs=0.05) and allowed[1] == allowed[0] and allowed[2] == 0.0
        settle(sim, clock, EV.reaction_s)
        assert sim.draw_a()[0] == pytest.approx(expected_a, abs=0.05)
        # it reports its composite back in W with the voltage it converts with (A to 0.1 A)
        _, in_w = await central.composite("CP1", 1, 60, "W")
        assert in_w[0][1] == pytest.approx(6240.0, abs=0.05 * (w_voltage_v or V_LL))
