"""Register dumps written by hand from the meters' datasheets (tests/meter/dumps/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.meter.errors import ExceptionResponse
from controller.meter.reading import RawRegisters

DUMPS = Path(__file__).parent / "dumps"


@dataclass(frozen=True)
class Dump:
    name: str
    preset: str
    function: str
    words: dict[int, int]
    expect: dict[str, float | None]
    readable: tuple[tuple[int, int], ...]
    data: dict[str, Any]

    def raw(self) -> RawRegisters:
        return {(self.function, a): w for a, w in self.words.items()}  # type: ignore[misc]

    def runs(self) -> list[tuple[int, list[int]]]:
        return [(int(row[0]), [int(w) for w in row[1:]]) for row in self.data["registers"]]

    async def read(self, address: int, count: int) -> list[int]:
        """A fake holding-register read: unknown addresses inside ``readable`` read 0."""
        if not any(lo <= address and address + count <= hi for lo, hi in self.readable):
            raise ExceptionResponse(2, f"{address}+{count}")
        return [self.words.get(a, 0) for a in range(address, address + count)]


def load(name: str) -> Dump:
    data = yaml.safe_load((DUMPS / f"{name}.yaml").read_text(encoding="utf-8"))
    words: dict[int, int] = {}
    for row in data["registers"]:
        start = int(row[0])
        for i, w in enumerate(row[1:]):
            assert 0 <= w <= 0xFFFF, (name, start + i, w)
            assert start + i not in words, f"{name}: address {start + i} given twice"
            words[start + i] = int(w)
    readable = tuple((int(lo), int(hi)) for lo, hi in data.get("readable", []))
    return Dump(name, data["preset"], data["function"], words, data["expect"], readable, data)


def names() -> list[str]:
    return sorted(p.stem for p in DUMPS.glob("*.yaml"))
