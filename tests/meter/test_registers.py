"""Preset files and custom maps → one register-map type; request planning."""

from __future__ import annotations

from importlib import resources

import pytest

from controller.config.schema import REGISTER_VALUES
from controller.meter.registers import (
    MAX_REGISTERS_PER_READ,
    VALUE_NAMES,
    Block,
    FieldSpec,
    RegisterMapError,
    load_preset,
    map_from_data,
    map_from_specs,
    plan_blocks,
    static_map_for,
)
from controller.model.presets import PRESET_NAMES
from controller.model.site import Meter, ModbusLink, RegisterSpec


def test_value_names_match_the_site_schema() -> None:
    assert VALUE_NAMES == REGISTER_VALUES


def test_one_data_file_per_preset() -> None:
    files = {p.name for p in resources.files("controller.meter").joinpath("presets").iterdir()}
    assert files == {f"{n}.yaml" for n in PRESET_NAMES}


@pytest.mark.parametrize("name", [n for n in PRESET_NAMES if n != "sunspec"])
def test_presets_have_every_value_and_fit_requests(name: str) -> None:
    m = load_preset(name)
    assert {f.name for f in m.fields} == set(VALUE_NAMES)
    blocks = m.blocks()
    assert all(1 <= b.count <= MAX_REGISTERS_PER_READ for b in blocks)
    for f in m.fields:  # every register of every value is covered by exactly one request
        for a in range(f.address, f.address + f.count):
            assert sum(b.function == f.function and b.address <= a < b.end for b in blocks) == 1


def test_known_addresses() -> None:
    sdm = load_preset("eastron-sdm630")
    assert (sdm.field("current_l2_a"), sdm.field("power_w")) == (
        FieldSpec("current_l2_a", 0x08, "input", "float32", "big"),
        FieldSpec("power_w", 0x34, "input", "float32", "big"),
    )
    em24 = load_preset("carlo-gavazzi-em24")
    current = em24.field("current_l1_a")
    assert current is not None and (current.word_order, current.scale, current.type) == ("little", 0.001, "int32")
    iem = load_preset("schneider-iem3000")
    energy = iem.field("import_kwh")
    assert energy is not None and (energy.address, energy.type, energy.scale) == (3203, "int64", 0.001)


def test_plan_blocks_merges_within_gap_and_splits_at_125() -> None:
    fields = [
        FieldSpec("current_l1_a", 0, "input"),
        FieldSpec("current_l2_a", 4, "input"),  # gap of 2 after 0..1
        FieldSpec("current_l3_a", 200, "input"),
        FieldSpec("voltage_l1_v", 0, "holding", "uint16"),
    ]
    assert plan_blocks(fields, max_gap=0) == (
        Block("holding", 0, 1),
        Block("input", 0, 2),
        Block("input", 4, 2),
        Block("input", 200, 2),
    )
    assert plan_blocks(fields, max_gap=2) == (Block("holding", 0, 1), Block("input", 0, 6), Block("input", 200, 2))
    wide = [FieldSpec("current_l1_a", 0), FieldSpec("current_l2_a", 124)]
    assert plan_blocks(wide, max_gap=200) == (Block("holding", 0, 2), Block("holding", 124, 2))


def test_custom_map_from_site_specs() -> None:
    specs = (
        ("current_l1_a", RegisterSpec(address=10, function="input", type="int32", word_order="little", scale=0.001)),
        ("current_l2_a", RegisterSpec(address=12, function="input", type="int32", word_order="little", scale=0.001)),
        ("current_l3_a", RegisterSpec(address=14, function="input", type="int32", word_order="little", na=-1)),
    )
    m = map_from_specs(specs)
    assert m.blocks() == (Block("input", 10, 6),)
    l3 = m.field("current_l3_a")
    assert l3 is not None and l3.na == (-1,)
    meter = Meter(id="x", modbus=ModbusLink(host="h"), registers=specs)
    custom = static_map_for(meter)
    assert custom is not None and custom.fields == m.fields
    assert static_map_for(Meter(id="s", modbus=ModbusLink(host="h"), preset="sunspec")) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"values": {}}, "non-empty"),
        ({"values": {"current_l9_a": {"address": 1}}}, "unknown value"),
        ({"values": {"current_l1_a": {"address": 1, "type": "int8"}}}, "unknown type"),
        ({"values": {"current_l1_a": {"address": 1, "function": "coil"}}}, "holding or input"),
        ({"values": {"current_l1_a": {"address": 70000}}}, "out of range"),
        ({"values": {"current_l1_a": {"address": 1, "bogus": 1}}}, "unknown key"),
    ],
)
def test_bad_preset_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(RegisterMapError, match=message):
        map_from_data("t", data)


def test_unknown_preset() -> None:
    with pytest.raises(RegisterMapError, match="unknown preset"):
        load_preset("acme-9000")
