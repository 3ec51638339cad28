"""Register maps: where each value lives on a meter, as data.

One type, :class:`RegisterMap`, whether it comes from a preset file (``presets/NAME.yaml``), from a
custom ``registers:`` block in the site file, or from SunSpec discovery (:mod:`.sunspec`). A map
also knows how to cover its values with as few Modbus requests as possible (:meth:`blocks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

import yaml

from controller.meter.decode import WORDS, DataType, WordOrder
from controller.model.presets import PRESET_NAMES
from controller.model.site import REGISTER_VALUES, Meter, RegisterSpec

Function = Literal["holding", "input"]
FUNCTION_CODES: Mapping[str, int] = {"holding": 3, "input": 4}
MAX_REGISTERS_PER_READ = 125

VALUE_NAMES: tuple[str, ...] = REGISTER_VALUES
"""Every value a map may hold."""

SUNSPEC = "sunspec"


class RegisterMapError(ValueError):
    """A preset or custom map is malformed."""


@dataclass(frozen=True)
class FieldSpec:
    """One value: function, address, type, word order, scale and "not available" sentinels.

    ``scale_factor_address`` names a SunSpec ``sunssf`` register (same function) whose value
    ``sf`` multiplies the value by ``10**sf``.
    """

    name: str
    address: int
    function: Function = "holding"
    type: DataType = "float32"
    word_order: WordOrder = "big"
    scale: float = 1.0
    na: tuple[int, ...] = ()
    scale_factor_address: int | None = None

    @property
    def count(self) -> int:
        """Registers the value occupies."""
        return WORDS[self.type]

    def spans(self) -> tuple[tuple[int, int], ...]:
        """(address, count) of every register range the value needs, its scale factor included."""
        own = ((self.address, self.count),)
        return own if self.scale_factor_address is None else (*own, (self.scale_factor_address, 1))


@dataclass(frozen=True)
class Block:
    """One read request: ``count`` registers from ``address`` with one function code."""

    function: Function
    address: int
    count: int

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(frozen=True)
class RegisterMap:
    """A meter's values. ``max_gap``: unused registers a single request may span between values.

    ``signed_currents``: the meter model may report a phase current as negative (export on that
    phase, or a CT mounted the other way); the site file's ``signed_currents`` overrides it.
    """

    name: str
    fields: tuple[FieldSpec, ...]
    max_gap: int = 0
    description: str = ""
    signed_currents: bool = False

    def field(self, name: str) -> FieldSpec | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def blocks(self) -> tuple[Block, ...]:
        return plan_blocks(self.fields, self.max_gap)


def plan_blocks(fields: Iterable[FieldSpec], max_gap: int = 0) -> tuple[Block, ...]:
    """Cover every field's registers with few requests of at most 125 registers each.

    Ranges of one function code are merged when the hole between them is at most ``max_gap``
    registers and the merged request stays within 125 registers.
    """
    out: list[Block] = []
    functions: tuple[Function, ...] = ("holding", "input")
    for function in functions:
        spans = sorted(s for f in fields if f.function == function for s in f.spans())
        start: int | None = None
        end = 0
        for address, count in spans:
            if start is None:
                start, end = address, address + count
                continue
            new_end = max(end, address + count)
            if address - end <= max_gap and new_end - start <= MAX_REGISTERS_PER_READ:
                end = new_end
            else:
                out.append(Block(function, start, end - start))
                start, end = address, address + count
        if start is not None:
            out.append(Block(function, start, end - start))
    return tuple(out)


# --- loading --------------------------------------------------------------------------------


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegisterMapError(f"{where}: expected an integer, got {value!r}")
    return value


def _field(name: str, spec: Mapping[str, Any], defaults: Mapping[str, Any], where: str) -> FieldSpec:
    if name not in VALUE_NAMES:
        raise RegisterMapError(f"{where}: unknown value {name!r}")
    merged = {**defaults, **spec}
    unknown = set(merged) - {"address", "function", "type", "word_order", "scale", "na", "scale_factor_address"}
    if unknown:
        raise RegisterMapError(f"{where}: unknown key(s) {sorted(unknown)}")
    na_raw = merged.get("na", ())
    na = tuple(_int(v, where) for v in (na_raw if isinstance(na_raw, list | tuple) else (na_raw,)))
    function = merged.get("function", "holding")
    data_type = merged.get("type", "float32")
    word_order = merged.get("word_order", "big")
    if function not in FUNCTION_CODES:
        raise RegisterMapError(f"{where}: function must be holding or input, got {function!r}")
    if data_type not in WORDS:
        raise RegisterMapError(f"{where}: unknown type {data_type!r}")
    if word_order not in ("big", "little"):
        raise RegisterMapError(f"{where}: word_order must be big or little, got {word_order!r}")
    address = _int(merged.get("address"), where)
    if not 0 <= address <= 0xFFFF - WORDS[data_type] + 1:
        raise RegisterMapError(f"{where}: address {address} out of range")
    sf = merged.get("scale_factor_address")
    return FieldSpec(
        name=name,
        address=address,
        function=function,
        type=data_type,
        word_order=word_order,
        scale=float(merged.get("scale", 1.0)),
        na=na,
        scale_factor_address=None if sf is None else _int(sf, where),
    )


def map_from_data(name: str, data: Mapping[str, Any]) -> RegisterMap:
    """A map from a preset file's parsed YAML (``defaults``, ``values``, ``max_gap``)."""
    values = data.get("values")
    if not isinstance(values, dict) or not values:
        raise RegisterMapError(f"preset {name}: `values` must be a non-empty mapping")
    defaults = data.get("defaults") or {}
    fields = tuple(_field(k, v, defaults, f"preset {name}, {k}") for k, v in values.items())
    return RegisterMap(
        name,
        fields,
        _int(data.get("max_gap", 0), f"preset {name}"),
        str(data.get("description", "")),
        preset_signs_currents(name, data),
    )


def preset_signs_currents(name: str, data: Mapping[str, Any] | None = None) -> bool:
    """Whether the preset file says its meters may report negative phase currents."""
    value = (preset_data(name) if data is None else data).get("signed_currents", False)
    if not isinstance(value, bool):
        raise RegisterMapError(f"preset {name}: `signed_currents` must be true or false, got {value!r}")
    return value


@cache
def preset_data(name: str) -> Mapping[str, Any]:
    """The parsed YAML of a shipped preset file."""
    if name not in PRESET_NAMES:
        raise RegisterMapError(f"unknown preset {name!r}; known: {', '.join(PRESET_NAMES)}")
    text = resources.files("controller.meter").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RegisterMapError(f"preset {name}: not a mapping")
    return cast(Mapping[str, Any], data)


def load_preset(name: str) -> RegisterMap:
    """The fixed map of a preset (not ``sunspec``, whose map is discovered: see :mod:`.sunspec`)."""
    if name == SUNSPEC:
        raise RegisterMapError("the sunspec map is discovered at run time (controller.meter.sunspec)")
    return map_from_data(name, preset_data(name))


def map_from_specs(specs: Iterable[tuple[str, RegisterSpec]], name: str = "custom") -> RegisterMap:
    """A map from a site file's ``registers:`` block. Only adjacent registers share a request."""
    fields = tuple(
        FieldSpec(
            name=k,
            address=s.address,
            function=s.function,
            type=s.type,
            word_order=s.word_order,
            scale=s.scale,
            na=() if s.na is None else (s.na,),
        )
        for k, s in specs
    )
    for f in fields:
        if f.name not in VALUE_NAMES:
            raise RegisterMapError(f"{name}: unknown value {f.name!r}")
    return RegisterMap(name, fields, 0, "custom register map")


def signs_currents(meter: Meter, register_map: RegisterMap) -> bool:
    """Whether ``meter``'s phase currents carry a sign: the site file's word, else its map's."""
    return register_map.signed_currents if meter.signed_currents is None else meter.signed_currents


def static_map_for(meter: Meter) -> RegisterMap | None:
    """The meter's map when it is known without asking the meter; ``None`` for SunSpec."""
    if meter.preset == SUNSPEC:
        return None
    if meter.preset is not None:
        return load_preset(meter.preset)
    return map_from_specs(meter.registers, f"{meter.id} registers")
