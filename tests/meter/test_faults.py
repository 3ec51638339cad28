"""Fault cases over real TCP: server gone, exception codes, NaN, frozen registers, slow and silent
meters. Staleness and back-off run on a manual clock; read timeouts are real (and bounded)."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from controller.meter.errors import ConnectFailed, ExceptionResponse, Implausible, NotConnected, ReadTimeout
from controller.meter.hub import ModbusHub
from hil.meter import MeterSimServer, SimMeter
from tests.meter.conftest import ManualClock
from tests.meter.helpers import meter, reader

READER_LOG = "controller.meter.reader"


def _records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == READER_LOG and r.levelno == level]


async def test_server_stops_then_stale_then_recovers(
    sdm: MeterSimServer, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=READER_LOG)
    r = reader(meter(sdm.port, stale_after_s=5.0), clock)
    assert (await r.poll()).reading is not None
    await sdm.stop()

    errors: list[type] = []
    for _ in range(4):  # 4 polls, 1 s apart: not stale yet at 4 s
        clock.advance(1.0)
        result = await r.poll()
        assert result.reading is None and result.error is not None
        errors.append(type(result.error))
        assert r.status().stale is False
    assert ConnectFailed in errors
    assert "connection refused" in (r.status().problem or "")
    clock.advance(1.0)
    status = r.status()
    assert status.stale and status.usable is None and r.latest() is None
    assert status.reading is not None and status.reading.current_a == pytest.approx((26.0, 28.0, 24.0))
    assert status.age_s == pytest.approx(5.0)

    # once loudly, then quietly
    assert len(_records(caplog, logging.ERROR)) == 1
    assert len(_records(caplog, logging.DEBUG)) >= 1

    await sdm.start()  # same port
    clock.advance(2.0)  # past the back-off
    result = await r.poll()
    assert result.reading is not None, result.error
    assert r.status().stale is False and r.status().problem is None
    recovered = [rec for rec in _records(caplog, logging.INFO) if "recovered" in rec.getMessage()]
    assert len(recovered) == 1
    assert r.failed == 4 and r.accepted == 2
    await r.hub.close()


async def test_refused_then_back_off_is_one_problem_not_a_warning_per_poll(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A meter that refuses connections alternates "connection failed" (a connect attempt) and
    "not connected" (back-off until the next one): one problem, logged once, not a warning each poll."""
    caplog.set_level(logging.DEBUG, logger=READER_LOG)
    server = MeterSimServer([SimMeter(1, "eastron-sdm630")])
    port = await server.start()
    await server.stop()  # a port nobody listens on
    r = reader(meter(port), clock)
    kinds = []
    for _ in range(8):
        result = await r.poll()
        assert result.error is not None
        kinds.append(type(result.error))
        clock.advance(0.3)
    assert ConnectFailed in kinds and NotConnected in kinds
    assert len(_records(caplog, logging.ERROR)) == 1
    assert _records(caplog, logging.WARNING) == []
    await r.hub.close()


async def test_back_off_fails_fast_without_touching_the_network(clock: ManualClock) -> None:
    server = MeterSimServer([SimMeter(1, "eastron-sdm630")])
    port = await server.start()
    await server.stop()  # a port nobody listens on
    hub = ModbusHub(meter(port).modbus, clock=clock, backoff_initial_s=1.0, backoff_max_s=4.0)
    with pytest.raises(ConnectFailed, match="connection refused"):
        await hub.read(1, "input", 0, 2)
    started = time.monotonic()
    with pytest.raises(NotConnected, match=r"next attempt in 1\.0 s"):
        await hub.read(1, "input", 0, 2)
    assert time.monotonic() - started < 0.05
    clock.advance(1.0)
    with pytest.raises(ConnectFailed):
        await hub.read(1, "input", 0, 2)
    with pytest.raises(NotConnected, match=r"next attempt in 2\.0 s"):  # doubled
        await hub.read(1, "input", 0, 2)
    for _ in range(3):
        clock.advance(10.0)
        with pytest.raises(ConnectFailed):
            await hub.read(1, "input", 0, 2)
    with pytest.raises(NotConnected, match=r"next attempt in 4\.0 s"):  # capped
        await hub.read(1, "input", 0, 2)


@pytest.mark.parametrize("code", [2, 4, 11])
async def test_exception_response(sdm: MeterSimServer, clock: ManualClock, code: int) -> None:
    r = reader(meter(sdm.port), clock)
    sdm.meter().misbehave("exception", exception_code=code)
    result = await r.poll()
    assert isinstance(result.error, ExceptionResponse) and result.error.code == code
    assert f"exception code {code}" in (r.status().problem or "")
    sdm.meter().heal()
    assert (await r.poll()).reading is not None  # the connection survived
    assert (r.failed, r.accepted, r.hub.connects) == (1, 1, 1)
    await r.hub.close()


@pytest.mark.parametrize(("preset", "why"), [("eastron-sdm630", "is nan"), ("carlo-gavazzi-em24", "beyond")])
async def test_nan_is_rejected_and_counted(clock: ManualClock, preset: str, why: str) -> None:
    sim = SimMeter(1, preset)
    sim.set_load(base_a=(10.0, 10.0, 10.0))
    async with MeterSimServer([sim]) as server:
        r = reader(meter(server.port, preset=preset, stale_after_s=3.0), clock)
        assert (await r.poll()).reading is not None
        sim.misbehave("nan")
        for _ in range(3):
            clock.advance(1.0)
            result = await r.poll()
            assert isinstance(result.error, Implausible) and why in str(result.error)
        await r.hub.close()
    assert (r.accepted, r.rejected) == (1, 3)
    status = r.status()
    assert status.stale and status.usable is None  # never a stand-in value


async def test_implausible_voltage_and_current(sdm: MeterSimServer, clock: ManualClock) -> None:
    r = reader(meter(sdm.port), clock, limit_a=20.0)  # bounds: 40 A
    sdm.meter().set_load(base_a=(10.0, 10.0, 10.0), ev_a=(0, 0, 0))
    assert (await r.poll()).reading is not None
    sdm.meter().set_load(base_a=(41.0, 10.0, 10.0))
    assert "beyond 40 A" in str((await r.poll()).error)
    sdm.meter().set_load(base_a=(10.0, 10.0, 10.0))
    sdm.meter().set_voltage((230.0, 150.0, 230.0))
    assert "voltage_l2_v 150.0 V outside" in str((await r.poll()).error)
    assert (r.accepted, r.rejected) == (1, 2)
    await r.hub.close()


async def test_frozen_registers_while_chargers_move(sdm: MeterSimServer, clock: ManualClock) -> None:
    r = reader(meter(sdm.port, stale_after_s=5.0), clock)
    assert (await r.poll()).reading is not None
    sdm.meter().misbehave("freeze")
    sdm.meter().set_load(ev_a=(0.0, 0.0, 0.0))  # the EVs stopped; the frozen meter does not show it
    clock.advance(2.0)
    r.note_load_change()
    for _ in range(2):  # identical registers for < stale_after_s: still accepted
        clock.advance(1.0)
        assert (await r.poll()).reading is not None
    clock.advance(1.0)  # 5 s since the registers last changed
    result = await r.poll()
    assert isinstance(result.error, Implausible) and "frozen" in str(result.error)
    assert r.status().stale  # frozen data is as old as its last change
    sdm.meter().heal()
    clock.advance(1.0)
    result = await r.poll()
    assert result.reading is not None and result.reading.current_a == pytest.approx((10.0, 12.0, 8.0))
    assert not r.status().stale
    await r.hub.close()


async def test_identical_registers_without_charger_movement_are_fine(sdm: MeterSimServer, clock: ManualClock) -> None:
    r = reader(meter(sdm.port, stale_after_s=2.0), clock)
    for _ in range(5):
        assert (await r.poll()).reading is not None
        clock.advance(1.0)
    assert r.rejected == 0
    await r.hub.close()


@pytest.mark.parametrize("fault", ["slow", "silent"])
async def test_slow_or_silent_meter_read_is_bounded(sdm: MeterSimServer, clock: ManualClock, fault: str) -> None:
    r = reader(meter(sdm.port, timeout_s=0.3), clock)
    assert (await r.poll()).reading is not None
    sdm.meter().misbehave(fault, delay_s=1.0)  # type: ignore[arg-type]
    started = time.monotonic()
    result = await r.poll()
    elapsed = time.monotonic() - started
    assert isinstance(result.error, ReadTimeout)
    assert elapsed < 0.3 + 0.25, elapsed  # the timeout, not pymodbus's 3 s × 4
    sdm.meter().heal()
    await asyncio.sleep(1.0)  # the late answer to the slow request arrives and must be ignored
    sdm.meter().set_load(ev_a=(1.0, 2.0, 3.0))
    result = await r.poll()
    assert result.reading is not None, result.error
    assert result.reading.current_a == pytest.approx((11.0, 14.0, 11.0))
    await r.hub.close()


async def test_one_silent_unit_does_not_blind_the_gateway(clock: ManualClock) -> None:
    sims = [SimMeter(u, "eastron-sdm630") for u in (1, 2, 3)]
    for s in sims:
        s.set_load(base_a=(float(s.unit), 0.0, 0.0))
    async with MeterSimServer(sims) as server:
        hub = ModbusHub(meter(server.port).modbus, clock=clock)
        readers = [reader(meter(server.port, s.unit, timeout_s=0.2), clock, hub) for s in sims]
        sims[1].misbehave("silent")
        for _ in range(4):  # past pymodbus's own "no answer N times → close" and ours
            results = [await r.poll() for r in readers]
            clock.advance(1.0)
            assert results[0].reading is not None and results[2].reading is not None, (results[0], results[2])
            assert isinstance(results[1].error, ReadTimeout)
        await hub.close()
    assert readers[0].status().reading is not None
    assert readers[0].status().reading.current_a[0] == 1.0  # type: ignore[union-attr]
