"""Raw Modbus register words → numbers. Pure functions, no I/O.

A Modbus register is a 16-bit word sent high byte first. Values wider than one register span
2 or 4 consecutive registers; ``word_order="big"`` means the most significant word comes first
(the usual order), ``"little"`` means the least significant word comes first (Carlo Gavazzi).
Bytes within each word are always big-endian.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Literal

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "int64", "uint64"]
WordOrder = Literal["big", "little"]

WORDS: Mapping[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "float32": 2,
    "int64": 4,
    "uint64": 4,
    "float64": 4,
}
_SIGNED = frozenset({"int16", "int32", "int64"})
_FLOAT = {"float32": ">f", "float64": ">d"}


class DecodeError(ValueError):
    """The words do not fit the data type (wrong count or a value outside 0..0xFFFF)."""


def combine_words(words: Sequence[int], word_order: WordOrder = "big") -> int:
    """The unsigned integer formed by ``words``, most significant word first after ordering."""
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise DecodeError(f"register word {w!r} is not a 16-bit value")
    ordered = words if word_order == "big" else tuple(reversed(words))
    value = 0
    for w in ordered:
        value = (value << 16) | w
    return value


def raw_bits(words: Sequence[int], data_type: DataType, word_order: WordOrder = "big") -> int:
    """The value's bit pattern as an unsigned integer (what a "not available" sentinel is compared with)."""
    n = WORDS[data_type]
    if len(words) != n:
        raise DecodeError(f"{data_type} needs {n} register(s), got {len(words)}")
    return combine_words(words, word_order)


def to_signed(bits: int, width_bits: int) -> int:
    """Two's-complement interpretation of an unsigned ``width_bits`` pattern."""
    return bits - (1 << width_bits) if bits & (1 << (width_bits - 1)) else bits


def raw_number(words: Sequence[int], data_type: DataType, word_order: WordOrder = "big") -> int | float:
    """The number the words hold, before any scale: an int, or a float for float32/float64."""
    bits = raw_bits(words, data_type, word_order)
    width = 16 * WORDS[data_type]
    if data_type in _FLOAT:
        packed = bits.to_bytes(width // 8, "big")
        number: float = struct.unpack(_FLOAT[data_type], packed)[0]
        return number
    if data_type in _SIGNED:
        return to_signed(bits, width)
    return bits


def is_not_available(words: Sequence[int], data_type: DataType, word_order: WordOrder, na: Sequence[int]) -> bool:
    """True when the raw value equals one of the sentinels in ``na``.

    A sentinel may be written either as the unsigned bit pattern (``0x8000``, ``0x7FC00000``) or,
    for signed types, as the signed value (``-32768``).
    """
    if not na:
        return False
    bits = raw_bits(words, data_type, word_order)
    if bits in na:
        return True
    return data_type in _SIGNED and to_signed(bits, 16 * WORDS[data_type]) in na


def decode_value(
    words: Sequence[int],
    data_type: DataType,
    word_order: WordOrder = "big",
    scale: float = 1.0,
    na: Sequence[int] = (),
    scale_exponent: int = 0,
) -> float | None:
    """Engineering value of one register value: ``raw × scale × 10**scale_exponent``.

    ``None`` means "not available" (the meter said so with a sentinel). NaN and infinities are
    returned as they are; judging them is :mod:`controller.meter.plausibility`'s job.
    """
    if is_not_available(words, data_type, word_order, na):
        return None
    number = float(raw_number(words, data_type, word_order))
    if math.isnan(number) or math.isinf(number):
        return number
    return number * scale * (10.0**scale_exponent)


def decode_sunssf(word: int) -> int | None:
    """A SunSpec ``sunssf`` scale factor (int16, −10..10); ``None`` when not implemented (0x8000)."""
    if word == 0x8000:
        return None
    value = to_signed(combine_words((word,)), 16)
    if not -10 <= value <= 10:
        return None
    return value
