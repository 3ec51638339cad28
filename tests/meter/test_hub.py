"""Hub connection handling with an injected fake client (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest
from pymodbus.exceptions import ConnectionException, ModbusIOException

from controller.meter.errors import ConnectFailed, LinkError, ReadTimeout
from controller.meter.hub import ModbusHub
from controller.model.site import ModbusLink
from tests.meter.conftest import ManualClock


class Response:
    def __init__(self, registers: list[int]) -> None:
        self.registers = registers

    def isError(self) -> bool:
        return False


class FakeClient:
    """Answers from a script: a list of register lists or exceptions, one per request."""

    def __init__(self, script: list[Any], connect_ok: bool = True) -> None:
        self.script = script
        self.connect_ok = connect_ok
        self.is_open = False
        self.closed = 0

    @property
    def connected(self) -> bool:
        return self.is_open

    async def connect(self) -> bool:
        self.is_open = self.connect_ok
        return self.connect_ok

    def close(self) -> None:
        self.is_open = False
        self.closed += 1

    async def _answer(self) -> Any:
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if item == "hang":
            await asyncio.sleep(10)
        return Response(item)

    def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Awaitable[Any]:
        return self._answer()

    def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> Awaitable[Any]:
        return self._answer()


def hub_with(script: list[Any], link: ModbusLink, clock: ManualClock) -> tuple[ModbusHub, list[FakeClient]]:
    made: list[FakeClient] = []

    def factory(_link: ModbusLink) -> FakeClient:
        made.append(FakeClient(script))
        return made[-1]

    return ModbusHub(link, clock=clock, client_factory=factory, diagnose=False), made


TCP = ModbusLink(host="h", timeout_s=0.05)
RTU = ModbusLink(host="h", framer="rtu", timeout_s=0.05)


async def test_tcp_keeps_the_connection_until_three_timeouts_in_a_row(clock: ManualClock) -> None:
    io = ModbusIOException("no response")
    hub, made = hub_with([io, io, [1], io, io, io, [2]], TCP, clock)
    for expected in (ReadTimeout, ReadTimeout):
        with pytest.raises(expected):
            await hub.read(1, "holding", 0, 1)
    assert await hub.read(1, "holding", 0, 1) == [1]
    for _ in range(3):
        with pytest.raises(ReadTimeout):
            await hub.read(1, "holding", 0, 1)
    assert len(made) == 1 and made[0].closed == 1
    assert await hub.read(1, "holding", 0, 1) == [2]
    assert len(made) == 2


async def test_rtu_starts_clean_after_every_timeout(clock: ManualClock) -> None:
    hub, made = hub_with(["hang", [7]], RTU, clock)
    with pytest.raises(ReadTimeout):
        await hub.read(1, "input", 0, 1)  # outer guard: the fake ignores the timeout
    assert await hub.read(1, "input", 0, 1) == [7]
    assert len(made) == 2


async def test_connection_exception_is_a_link_error(clock: ManualClock) -> None:
    hub, made = hub_with([ConnectionException("gone"), [3]], TCP, clock)
    with pytest.raises(LinkError, match="connection lost"):
        await hub.read(1, "holding", 0, 1)
    assert await hub.read(1, "holding", 0, 1) == [3]
    assert len(made) == 2


async def test_short_answer_is_a_link_error(clock: ManualClock) -> None:
    hub, _ = hub_with([[1]], TCP, clock)
    with pytest.raises(LinkError, match="asked unit 1 for 2 registers"):
        await hub.read(1, "holding", 0, 2)


async def test_failed_connect_without_diagnosis(clock: ManualClock) -> None:
    hub = ModbusHub(TCP, clock=clock, client_factory=lambda _l: FakeClient([], connect_ok=False), diagnose=False)
    with pytest.raises(ConnectFailed, match="cannot connect to h:502"):
        await hub.read(1, "holding", 0, 1)
    serial = ModbusHub(ModbusLink(serial="/dev/ttyNOPE"), clock=clock)  # the real pymodbus serial client
    with pytest.raises(ConnectFailed, match="cannot open serial port /dev/ttyNOPE"):
        await serial.read(1, "holding", 0, 1)


class HangingConnect(FakeClient):
    async def connect(self) -> bool:
        await asyncio.sleep(10)
        return True


async def test_connect_timeout_is_named_and_bounded(clock: ManualClock) -> None:
    hub = ModbusHub(TCP, clock=clock, client_factory=lambda _l: HangingConnect([]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ConnectFailed, match=r"connect to h:502 timed out after 0\.05 s"):
        await hub.read(1, "holding", 0, 1)
    assert loop.time() - started < 0.05 + 0.5 + 0.2  # no second wait to diagnose


async def test_client_that_cannot_be_made_is_a_connect_failure(clock: ManualClock) -> None:
    def broken(_link: ModbusLink) -> FakeClient:
        raise RuntimeError("pyserial missing")

    hub = ModbusHub(TCP, clock=clock, client_factory=broken)
    with pytest.raises(ConnectFailed, match="cannot create a Modbus client: pyserial missing"):
        await hub.read(1, "holding", 0, 1)


async def test_reader_survives_an_unexpected_error(clock: ManualClock) -> None:
    from controller.meter.plausibility import bounds_for
    from controller.meter.reader import MeterReader
    from controller.model.site import Meter

    hub, _ = hub_with([RuntimeError("library bug"), [0x4366, 0x0000]], TCP, clock)
    r = MeterReader(Meter(id="x", modbus=TCP, preset="eastron-sdm630"), hub, bounds_for(10))
    result = await r.poll()
    assert result.error is not None and "unexpected RuntimeError: library bug" in str(result.error)
    result = await r.poll()  # an answer of the wrong length: counted, not raised
    assert result.error is not None and r.failed == 2
