"""Decoding against register dumps written by hand from the datasheets."""

from __future__ import annotations

import math

import pytest

from controller.meter.decode import (
    DecodeError,
    combine_words,
    decode_sunssf,
    decode_value,
    is_not_available,
    raw_number,
)
from controller.meter.reading import decode_registers
from controller.meter.registers import VALUE_NAMES, load_preset
from controller.model.presets import PRESET_NAMES
from tests.meter import dumps

FIXED_DUMPS = [n for n in dumps.names() if not n.startswith("sunspec")]


def _assert_values(got: dict[str, float | None], expect: dict[str, float | None]) -> None:
    for name, want in expect.items():
        value = got[name]
        if want is None:
            assert value is None, f"{name}: expected not available, got {value}"
        elif math.isnan(want):
            assert value is not None and math.isnan(value), f"{name}: expected NaN, got {value}"
        else:
            assert value == pytest.approx(want, rel=1e-6, abs=1e-9), name


@pytest.mark.parametrize("name", FIXED_DUMPS)
def test_preset_decodes_datasheet_dump(name: str) -> None:
    dump = dumps.load(name)
    register_map = load_preset(dump.preset)
    assert {f.function for f in register_map.fields} == {dump.function}
    _assert_values(decode_registers(register_map, dump.raw()), dump.expect)


def test_every_fixed_preset_has_a_full_dump() -> None:
    covered = set()
    for n in FIXED_DUMPS:
        dump = dumps.load(n)
        if set(dump.expect) == set(VALUE_NAMES):
            covered.add(dump.preset)
    assert covered == set(PRESET_NAMES) - {"sunspec"}


def test_float32_big_endian_known_value() -> None:
    assert decode_value([0x4366, 0x199A], "float32") == pytest.approx(230.1, rel=1e-7)


def test_word_order_little_swaps_words_not_bytes() -> None:
    # 100000 = 0x000186A0 sent low word first
    assert raw_number([0x86A0, 0x0001], "int32", "little") == 100000
    assert raw_number([0x0001, 0x86A0], "int32", "big") == 100000
    assert combine_words([0x1234, 0x5678], "little") == 0x56781234


def test_signed_types() -> None:
    assert raw_number([0xFC18], "int16") == -1000
    assert raw_number([0xFC18], "uint16") == 0xFC18
    assert raw_number([0xFFFE, 0x7960], "int32") == -100000
    assert raw_number([0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], "int64") == -2


def test_float64() -> None:
    assert raw_number([0x4132, 0xD644, 0x0000, 0x0000], "float64") == 1234500.0


def test_scale_and_exponent() -> None:
    assert decode_value([0x0640], "uint16", scale=0.01) == pytest.approx(16.0)
    assert decode_value([1600], "int16", scale_exponent=-2) == pytest.approx(16.0)
    assert decode_value([0x0012, 0xD644], "uint32", scale=0.001) == pytest.approx(1234.5)


def test_sentinels_bits_and_signed_spelling() -> None:
    assert decode_value([0x8000], "int16", na=(0x8000,)) is None
    assert decode_value([0x8000], "int16", na=(-32768,)) is None
    assert decode_value([0x7FC0, 0x0000], "float32", na=(0x7FC00000,)) is None
    assert is_not_available([0xFFFF, 0xFFFF], "uint32", "big", (0xFFFFFFFF,))
    assert not is_not_available([0xFFFF, 0xFFFE], "uint32", "big", (0xFFFFFFFF,))


def test_nan_is_passed_through_not_hidden() -> None:
    value = decode_value([0x7FC0, 0x0000], "float32")
    assert value is not None and math.isnan(value)
    inf = decode_value([0x7F80, 0x0000], "float32", scale=1000)
    assert inf == math.inf


def test_sunssf() -> None:
    assert decode_sunssf(0xFFFE) == -2
    assert decode_sunssf(3) == 3
    assert decode_sunssf(0x8000) is None
    assert decode_sunssf(0x0040) is None  # 64: not a scale factor


def test_bad_words_raise() -> None:
    with pytest.raises(DecodeError):
        decode_value([0x4366], "float32")
    with pytest.raises(DecodeError):
        decode_value([0x10000], "uint16")
