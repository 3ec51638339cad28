"""One accepted meter reading, and how raw registers become one. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.meter.decode import decode_sunssf, decode_value
from controller.meter.registers import Function, RegisterMap

PhaseValues = tuple[float, float, float]
"""One value per grid phase L1, L2, L3."""

RawRegisters = Mapping[tuple[Function, int], int]
"""Words read from a meter, keyed by (function, address)."""

Values = Mapping[str, float | None]
"""Decoded values by name (``current_l1_a`` …); ``None`` = the meter says "not available"."""


@dataclass(frozen=True)
class MeterReading:
    """What one meter measured at ``read_at_s``. Sign: power import from the grid is positive.

    ``current_a`` is always present (a reading without currents is rejected, never zero-filled)
    and holds the magnitude |I| of each phase current: what every limit is compared with, whether
    the meter signs its currents or not. ``current_signed_a`` keeps the direction for a meter that
    reports signed currents (import positive, export negative, after ``invert``); ``None`` when the
    meter does not sign them (the direction is unknown, not "import").
    The other values are ``None`` when the meter's map lacks them or the meter reports them as not
    available. ``total_power_w`` is the meter's own total, else the sum of the phase powers.
    ``read_at_s`` is on the reader's clock (monotonic seconds).
    """

    meter_id: str
    read_at_s: float
    current_a: PhaseValues
    voltage_v: PhaseValues | None = None
    power_w: PhaseValues | None = None
    total_power_w: float | None = None
    import_kwh: float | None = None
    export_kwh: float | None = None
    current_signed_a: PhaseValues | None = None

    def __post_init__(self) -> None:
        if any(a < 0 for a in self.current_a):
            raise ValueError(f"meter {self.meter_id}: current_a holds magnitudes, got {self.current_a}")


def decode_registers(register_map: RegisterMap, raw: RawRegisters) -> dict[str, float | None]:
    """Every value of ``register_map`` from ``raw``. Raises ``KeyError`` when a word is missing."""
    out: dict[str, float | None] = {}
    for f in register_map.fields:
        words = [raw[(f.function, f.address + i)] for i in range(f.count)]
        exponent = 0
        if f.scale_factor_address is not None:
            sf = decode_sunssf(raw[(f.function, f.scale_factor_address)])
            if sf is None:
                out[f.name] = None
                continue
            exponent = sf
        out[f.name] = decode_value(words, f.type, f.word_order, f.scale, f.na, exponent)
    return out


def _phases(values: Values, prefix: str, unit: str) -> PhaseValues | None:
    got = [values.get(f"{prefix}_l{i}_{unit}") for i in (1, 2, 3)]
    if any(v is None for v in got):
        return None
    a, b, c = (float(v) for v in got if v is not None)
    return (a, b, c)


def build_reading(
    meter_id: str, read_at_s: float, values: Values, invert: bool = False, signed_currents: bool = False
) -> MeterReading | None:
    """A reading from decoded values; ``None`` when any phase current is missing.

    The one place readings are made: ``current_a`` gets |I| per phase. With ``signed_currents``
    the signed values are kept in ``current_signed_a``; without it a negative current is an error
    (``ValueError``: :func:`controller.meter.plausibility.check_values` refuses such values first).
    ``invert`` (a meter mounted the other way round) flips the sign of every power and of signed
    currents and swaps the import and export counters; magnitudes and voltages stay as they are.
    """
    current = _phases(values, "current", "a")
    if current is None:
        return None
    if not signed_currents and any(a < 0 for a in current):
        raise ValueError(f"meter {meter_id}: negative phase current {current} from a meter not declared signed")
    signed: PhaseValues | None = None
    if signed_currents:
        signed = (-current[0], -current[1], -current[2]) if invert else current
    current = (abs(current[0]), abs(current[1]), abs(current[2]))  # also turns -0.0 into 0.0
    power = _phases(values, "power", "w")
    total = values.get("power_w")
    if total is None and power is not None:
        total = sum(power)
    imported, exported = values.get("import_kwh"), values.get("export_kwh")
    if invert:
        power = None if power is None else (-power[0], -power[1], -power[2])
        total = None if total is None else -total
        imported, exported = exported, imported
    return MeterReading(
        meter_id=meter_id,
        read_at_s=read_at_s,
        current_a=current,
        voltage_v=_phases(values, "voltage", "v"),
        power_w=power,
        total_power_w=total,
        import_kwh=imported,
        export_kwh=exported,
        current_signed_a=signed,
    )
