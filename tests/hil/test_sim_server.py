"""The simulated meter server itself, read with a plain pymodbus client."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

import pytest
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient

from hil.meter import MeterSimServer, SimMeter


async def test_units_values_writes_and_restart_on_same_port() -> None:
    a, b = SimMeter(1, "eastron-sdm630"), SimMeter(5, "janitza-umg96rm")
    a.set_load(base_a=(1.0, 2.0, 3.0), ev_a=(16.0, 0.0, 0.0))
    b.set_voltage((240.0, 241.0, 242.0))
    server = MeterSimServer([a, b])
    port = await server.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
    try:
        assert await client.connect()
        rr = await client.read_input_registers(6, count=2, device_id=1)
        assert struct.unpack(">f", struct.pack(">HH", *rr.registers))[0] == 17.0
        rr = await client.read_holding_registers(19004, count=2, device_id=5)
        assert struct.unpack(">f", struct.pack(">HH", *rr.registers))[0] == 242.0
        rr = await client.write_register(19004, 1, device_id=5)
        assert rr.isError()  # read-only
        rr = await client.read_holding_registers(30000, count=2, device_id=5)
        assert rr.isError() and rr.exception_code == 2  # outside the map
        assert a.reads >= 1 and b.reads >= 1
        await server.stop()
        client.close()
        assert await server.start() == port
        assert await client.connect()
        rr = await client.read_input_registers(6, count=2, device_id=1)
        assert not rr.isError()
    finally:
        client.close()
        await server.stop()


def test_duplicate_units_rejected() -> None:
    with pytest.raises(ValueError, match="unit 1 given twice"):
        MeterSimServer([SimMeter(1, "abb-b23"), SimMeter(1, "abb-b23")])


async def test_freeze_keeps_serving_the_old_image_until_healed() -> None:
    m = SimMeter(1, "siemens-pac2200")
    m.set_load(base_a=(1.0, 1.0, 1.0))
    before = m.render()
    m.misbehave("freeze")
    m.set_load(base_a=(9.0, 9.0, 9.0))
    served = [0] * len(m.image)
    assert await m.on_read(served, m.image_start) is None
    assert served == before
    m.heal()
    assert await m.on_read(served, m.image_start) is None
    assert served == m.render() != before


async def test_energy_follows_power() -> None:
    m = SimMeter(1, "eastron-sdm630")
    m.set_load(base_a=(10.0, 10.0, 10.0))  # 6.9 kW
    m.state.advance(3600.0)
    assert m.state.import_kwh == pytest.approx(6.9)
    m.state.power_factor = -1.0  # exporting
    m.state.advance(1800.0)
    assert (m.state.import_kwh, m.state.export_kwh) == (pytest.approx(6.9), pytest.approx(3.45))


@pytest.mark.parametrize("own_thread", [True, False])
async def test_a_meter_in_its_own_thread_answers_while_the_rigs_loop_is_held(own_thread: bool) -> None:
    """With ``own_thread`` the meter answers while the loop that started it is busy (a rig of
    hundreds of chargers in a flood of profile calls); without, the answer waits for that loop."""
    m = SimMeter(1, "eastron-sdm630")
    m.set_load(base_a=(10.0, 11.0, 12.0))
    server = MeterSimServer([m], own_thread=own_thread)
    port = await server.start()
    answered = threading.Event()
    currents: list[float] = []

    def read() -> None:
        client = ModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
        try:
            if client.connect():
                rr = client.read_input_registers(6, count=6, device_id=1)
                if not rr.isError():
                    regs = rr.registers
                    currents.extend(struct.unpack(">f", struct.pack(">HH", *regs[i : i + 2]))[0] for i in (0, 2, 4))
                    answered.set()
        finally:
            client.close()

    reader = threading.Thread(target=read)
    try:
        reader.start()
        # this loop is held (as a rig's by a flood), for at most 1.5 s: only a meter in its own
        # thread can answer meanwhile
        in_time = answered.wait(1.5)
        await asyncio.to_thread(reader.join, 5.0)  # the loop free again: the answer comes
        assert in_time is own_thread
        assert answered.is_set() and currents == [10.0, 11.0, 12.0]
    finally:
        await server.stop()
    assert await server.start() == port  # and back on the same port, in a new thread
    await server.stop()


async def test_a_meter_thread_whose_port_is_taken_leaves_no_thread_behind() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        server = MeterSimServer([SimMeter(1, "eastron-sdm630")], port=taken.getsockname()[1], own_thread=True)
        with pytest.raises(Exception):  # noqa: B017 — pymodbus' own error for a port in use
            await server.start()
        await server.stop()
        assert not any(t.name == "meter sim server" and t.is_alive() for t in threading.enumerate())
    finally:
        taken.close()
