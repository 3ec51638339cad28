"""Every preset over real Modbus TCP on loopback against the simulated meter."""

from __future__ import annotations

import pytest

from controller.meter.registers import FieldSpec, RegisterMap
from controller.model.presets import PRESET_NAMES
from hil.meter import MeterSimServer, SimMeter
from tests.meter.conftest import ManualClock
from tests.meter.helpers import meter, reader

BASE = (40.0, 55.5, 12.25)
EV = (16.0, 16.0, 0.0)
VOLTS = (229.4, 231.7, 226.9)


def _tolerance(sim: SimMeter, f: FieldSpec, value: float) -> float:
    """Half a step of the register's resolution; float32 carries ~7 significant digits."""
    if f.type == "float32":
        return abs(value) * 1e-6 + 1e-6
    if f.type == "float64":
        return abs(value) * 1e-12 + 1e-9
    return sim.resolution(f) / 2 + 1e-9


@pytest.mark.parametrize("preset", PRESET_NAMES)
async def test_preset_reads_back_what_the_simulator_was_told(preset: str, clock: ManualClock) -> None:
    sim = SimMeter(7, preset)
    sim.set_load(base_a=BASE, ev_a=EV)
    sim.set_voltage(VOLTS)
    sim.set_energy(import_kwh=5432.1, export_kwh=12.3)
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, unit=7, preset=preset), clock, limit_a=250)
        result = await r.poll()
        await r.hub.close()
    assert result.error is None, result.error
    reading = result.reading
    assert reading is not None
    assert r.register_map is not None
    told = sim.state.values()
    got = result.values
    assert got is not None
    checked = 0
    for f in r.register_map.fields:
        value = got[f.name]
        assert value is not None, f.name
        assert abs(value - told[f.name]) <= _tolerance(sim, f, told[f.name]), (f.name, value, told[f.name])
        checked += 1
    assert checked == 12
    assert reading.current_a == pytest.approx((56.0, 71.5, 12.25), abs=0.01)
    assert reading.voltage_v == pytest.approx(VOLTS, abs=0.06)
    assert reading.total_power_w == pytest.approx(sum(sim.state.power_w), rel=1e-4, abs=1.0)
    assert reading.import_kwh == pytest.approx(5432.1, abs=0.06)
    assert reading.read_at_s == clock.now
    assert r.status().stale is False and r.accepted == 1


async def test_sunspec_model_203_over_tcp(clock: ManualClock) -> None:
    sim = SimMeter(3, "sunspec", sunspec_model=203)
    sim.set_load(base_a=BASE, ev_a=EV)
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, unit=3, preset="sunspec"), clock)
        result = await r.poll()
        await r.hub.close()
    assert result.reading is not None, result.error
    assert r.register_map is not None and "203" in r.register_map.name
    assert result.reading.current_a == pytest.approx((56.0, 71.5, 12.25), abs=0.005)


async def test_custom_register_map_over_tcp(clock: ManualClock) -> None:
    from controller.meter.registers import map_from_specs
    from controller.model.site import Meter, ModbusLink, RegisterSpec

    currents = tuple(
        (f"current_l{i}_a", RegisterSpec(address=100 + 2 * i, function="input", type="uint32", scale=0.01))
        for i in (1, 2, 3)
    )
    specs = (*currents, ("power_w", RegisterSpec(address=200, type="int16", scale=10.0)))
    custom = map_from_specs(specs)
    sim = SimMeter(1, RegisterMap("custom", custom.fields))
    sim.set_load(base_a=(1.234, 2.0, 3.0))
    async with MeterSimServer([sim]) as server:
        link = ModbusLink(host="127.0.0.1", port=server.port, timeout_s=0.3)
        m = Meter(id="custom", modbus=link, registers=specs)
        r = reader(m, clock)
        result = await r.poll()
        await r.hub.close()
    assert result.reading is not None, result.error
    assert result.reading.current_a == pytest.approx((1.23, 2.0, 3.0), abs=0.005)
    assert result.reading.voltage_v is None and result.reading.power_w is None
    assert result.reading.total_power_w == pytest.approx(230 * 6.234, abs=5.0)


async def test_invert_flips_power_and_swaps_energy(clock: ManualClock) -> None:
    sim = SimMeter(1, "janitza-umg96rm")
    sim.set_load(base_a=(10.0, 10.0, 10.0))
    sim.set_energy(import_kwh=100.0, export_kwh=7.0)
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, preset="janitza-umg96rm", invert=True), clock)
        result = await r.poll()
        await r.hub.close()
    reading = result.reading
    assert reading is not None
    assert reading.total_power_w == pytest.approx(-6900.0, rel=1e-5)
    assert reading.power_w is not None and all(p < 0 for p in reading.power_w)
    assert (reading.import_kwh, reading.export_kwh) == (pytest.approx(7.0), pytest.approx(100.0))
    assert reading.current_a == pytest.approx((10.0, 10.0, 10.0))


async def test_gateway_with_several_units_and_rtu_framing(clock: ManualClock) -> None:
    sims = [SimMeter(u, p) for u, p in ((1, "eastron-sdm630"), (2, "carlo-gavazzi-em340"), (3, "abb-b23"))]
    for n, s in enumerate(sims):
        s.set_load(base_a=(n + 1.0, n + 2.0, n + 3.0))
    async with MeterSimServer(sims, framer="rtu") as server:
        from controller.meter.hub import ModbusHub

        first = meter(server.port, 1, "eastron-sdm630", framer="rtu")
        hub = ModbusHub(first.modbus, clock=clock)
        readers = [reader(meter(server.port, s.unit, str(s.preset), framer="rtu"), clock, hub) for s in sims]
        results = [await r.poll() for r in readers]
        await hub.close()
    for n, res in enumerate(results):
        assert res.reading is not None, res.error
        assert res.reading.current_a == pytest.approx((n + 1.0, n + 2.0, n + 3.0), abs=0.01)
    assert hub.connects == 1
