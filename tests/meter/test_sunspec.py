"""SunSpec discovery and models 203/213 against hand-written dumps (fake reads, no I/O)."""

from __future__ import annotations

import pytest

from controller.meter.errors import DiscoveryFailed, ExceptionResponse
from controller.meter.reading import decode_registers
from controller.meter.sunspec import discover
from tests.meter import dumps
from tests.meter.test_decode import _assert_values


@pytest.mark.parametrize("name", ["sunspec-203", "sunspec-213-base0"])
async def test_discovery_and_decode(name: str) -> None:
    dump = dumps.load(name)
    model, register_map = await discover(dump.read)
    assert (model.id, model.address) == (dump.data["model"], dump.data["model_address"])
    raw = {}
    for block in register_map.blocks():
        assert block.count <= 125
        for i, w in enumerate(await dump.read(block.address, block.count)):
            raw[(block.function, block.address + i)] = w
    _assert_values(decode_registers(register_map, raw), dump.expect)


async def test_not_implemented_scale_factor_makes_values_unavailable() -> None:
    dump = dumps.load("sunspec-203")
    dump.words[40076] = 0x8000  # A_SF not implemented
    _model, register_map = await discover(dump.read)
    raw = {("holding", a): dump.words.get(a, 0) for a in range(40000, 40179)}
    values = decode_registers(register_map, raw)
    assert values["current_l1_a"] is None
    assert values["voltage_l1_v"] == pytest.approx(230.1)


async def test_no_marker_anywhere() -> None:
    async def read(address: int, count: int) -> list[int]:
        if address == 0:
            return [0, 0]
        raise ExceptionResponse(2)

    with pytest.raises(DiscoveryFailed, match="no SunSpec marker"):
        await discover(read)


async def test_chain_without_meter_model() -> None:
    words = {40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 66, 40070: 0xFFFF, 40071: 0}

    async def read(address: int, count: int) -> list[int]:
        return [words.get(a, 0) for a in range(address, address + count)]

    with pytest.raises(DiscoveryFailed, match="models 1"):
        await discover(read)


async def test_endless_chain_is_bounded() -> None:
    async def read(address: int, count: int) -> list[int]:
        if address == 40000:
            return [0x5375, 0x6E53]
        return [1, 0]  # model 1 of length 0, forever

    with pytest.raises(DiscoveryFailed):
        await discover(read)
