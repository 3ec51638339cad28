"""Numbers → register words, for the simulated meter. Pure.

Written independently of :mod:`controller.meter.decode` (``struct`` packing, then splitting into
words); the decode tests check both against hand-written datasheet dumps.
"""

from __future__ import annotations

import math
import struct
from typing import Literal

DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "int64", "uint64"]

_FORMATS: dict[str, str] = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "int64": ">q",
    "uint64": ">Q",
    "float32": ">f",
    "float64": ">d",
}
_LIMITS: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}


def _split(packed: bytes, word_order: str) -> list[int]:
    words = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    return words if word_order == "big" else words[::-1]


def encode(
    value: float, data_type: DataType, word_order: str = "big", scale: float = 1.0, scale_exponent: int = 0
) -> list[int]:
    """Words a meter would send for ``value`` given the register's scale (value = raw × scale × 10**exp).

    Integers are rounded to the nearest step and clamped to the type's range; a NaN for an
    integer type becomes the type's largest value (no meter can mean it).
    """
    step = scale * (10.0**scale_exponent)
    raw = value / step
    fmt = _FORMATS[data_type]
    if data_type.startswith("float"):
        return _split(struct.pack(fmt, raw), word_order)
    lo, hi = _LIMITS[data_type]
    number = hi if math.isnan(raw) or math.isinf(raw) else max(lo, min(hi, round(raw)))
    return _split(struct.pack(fmt, number), word_order)


def nan_words(data_type: DataType, word_order: str = "big") -> list[int]:
    """Words for "garbage": a quiet NaN for floats, the largest positive value for integers."""
    if data_type.startswith("float"):
        return _split(struct.pack(_FORMATS[data_type], math.nan), word_order)
    return encode(math.nan, data_type, word_order)
