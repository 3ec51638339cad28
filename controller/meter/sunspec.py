"""SunSpec meters: find the "SunS" marker, walk the model chain, build the register map.

The model tables (offsets, types, scale-factor registers) are data in ``presets/sunspec.yaml``.
:func:`discover` takes the read function by injection, so it runs against a fake in tests and
against a :class:`~controller.meter.hub.ModbusHub` in service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.meter.errors import DiscoveryFailed, ExceptionResponse
from controller.meter.registers import (
    MAX_REGISTERS_PER_READ,
    SUNSPEC,
    FieldSpec,
    RegisterMap,
    RegisterMapError,
    preset_data,
    preset_signs_currents,
)

ReadHolding = Callable[[int, int], Awaitable[list[int]]]
"""``await read(address, count)`` → holding-register words."""

END_OF_CHAIN = 0xFFFF
MAX_MODELS = 64


@dataclass(frozen=True)
class SunSpecModel:
    """One block of the chain: model ``id`` at ``address`` (its ID register), ``length`` after (ID, L)."""

    id: int
    address: int
    length: int


def _config() -> Mapping[str, Any]:
    return preset_data(SUNSPEC)


def bases() -> tuple[int, ...]:
    return tuple(int(b) for b in _config()["bases"])


def marker() -> tuple[int, int]:
    a, b = _config()["marker"]
    return int(a), int(b)


def supported_models() -> tuple[int, ...]:
    """Meter models in order of preference (the file's order)."""
    return tuple(int(m) for m in _config()["models"])


def model_map(model: SunSpecModel) -> RegisterMap:
    """The register map of a supported meter model found at ``model.address``."""
    models = _config()["models"]
    spec = models.get(model.id)
    if spec is None:
        raise RegisterMapError(f"SunSpec model {model.id} is not supported")
    defaults = spec.get("defaults", {})
    fields: list[FieldSpec] = []
    for name, raw in spec["values"].items():
        merged = {**defaults, **raw}
        na = merged.get("na", ())
        sf = merged.get("scale_factor")
        fields.append(
            FieldSpec(
                name=name,
                address=model.address + int(merged["offset"]),
                function="holding",
                type=merged["type"],
                word_order=merged.get("word_order", "big"),
                scale=float(merged.get("scale", 1.0)),
                na=tuple(na) if isinstance(na, list) else (int(na),),
                scale_factor_address=None if sf is None else model.address + int(sf),
            )
        )
    # every register inside a model block is defined, so one request may span any hole
    return RegisterMap(
        f"sunspec model {model.id} @ {model.address}",
        tuple(fields),
        max_gap=MAX_REGISTERS_PER_READ,
        signed_currents=preset_signs_currents(SUNSPEC),
    )


def choose_model(models: tuple[SunSpecModel, ...]) -> SunSpecModel | None:
    """The preferred supported meter model among those found."""
    for wanted in supported_models():
        for m in models:
            if m.id == wanted:
                return m
    return None


async def walk_chain(read: ReadHolding, base: int) -> tuple[SunSpecModel, ...]:
    """Models after the marker at ``base``, up to the end marker (bounded)."""
    found: list[SunSpecModel] = []
    address = base + 2
    for _ in range(MAX_MODELS):
        model_id, length = await read(address, 2)
        if model_id == END_OF_CHAIN:
            return tuple(found)
        found.append(SunSpecModel(model_id, address, length))
        address += length + 2
        if address > 0xFFFF:
            break
    raise DiscoveryFailed(f"SunSpec model chain from {base} does not end within {MAX_MODELS} models")


async def discover(read: ReadHolding) -> tuple[SunSpecModel, RegisterMap]:
    """Scan the bases for "SunS", walk the chain and return the chosen meter model and its map."""
    tried: list[str] = []
    for base in bases():
        try:
            words = await read(base, 2)
        except ExceptionResponse as exc:
            tried.append(f"{base}: {exc}")
            continue
        if tuple(words) != marker():
            tried.append(f"{base}: no SunS marker")
            continue
        models = await walk_chain(read, base)
        chosen = choose_model(models)
        if chosen is None:
            ids = ", ".join(str(m.id) for m in models) or "none"
            want = "/".join(str(m) for m in supported_models())
            raise DiscoveryFailed(f"SunSpec at {base}: models {ids}; no meter model {want}")
        return chosen, model_map(chosen)
    raise DiscoveryFailed("no SunSpec marker found (" + "; ".join(tried) + ")")
