"""Is a reading physically believable? Pure checks; each returns a reason or ``None``.

A rejected reading is counted and dropped; it never stands in for the site's load. Currents are
judged by magnitude (a meter declared to sign them may report export as negative); a negative
current from a meter not declared signed is refused (:func:`check_signs`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.model.phasor import node_ln_voltage_v, node_service
from controller.model.site import GRID_ID, Site

NOMINAL_V = 230.0
MIN_V_AT_230 = 180.0
MAX_V_AT_230 = 270.0
CURRENT_FACTOR = 2.0


@dataclass(frozen=True)
class Bounds:
    """What a reading may show: |current| ≤ ``max_current_a``, voltage within [min, max] on the
    lines in ``voltage_lines`` (1-based; a split-phase bus has no L3 voltage to judge)."""

    max_current_a: float
    min_voltage_v: float
    max_voltage_v: float
    voltage_lines: tuple[int, ...] = (1, 2, 3)


def bounds_for(limit_a: float, voltage_v: float = NOMINAL_V, max_voltage_v: float | None = None) -> Bounds:
    """2 × the connection limit; 180–270 V scaled to the nominal voltage (``max_voltage_v``: a
    higher nominal for the top of the range, where a meter may report either of two voltages)."""
    k = voltage_v / NOMINAL_V
    top = (max_voltage_v if max_voltage_v is not None else voltage_v) / NOMINAL_V
    return Bounds(CURRENT_FACTOR * limit_a, MIN_V_AT_230 * k, MAX_V_AT_230 * top)


def site_bounds(site: Site, meter_id: str) -> Bounds:
    """Bounds for a meter: the limit of the node it measures (the grid when it measures none), the
    voltage of the bus it sits on — a transformer node's meter is on its primary (the parent's bus),
    a sub-meter below a transformer on the secondary. A delta bus has no neutral: its meter may
    report line-to-neutral (to a virtual star point) or line-to-line voltages, so both pass; a
    split-phase bus's L3 voltage is not judged."""
    limit = site.grid.limit_a
    node = GRID_ID
    if site.grid.meter != meter_id:
        for circuit in site.circuits:
            if circuit.meter == meter_id:
                limit = circuit.limit_a
                node = circuit.id
                break
    bus = site.circuit(node).parent if node != GRID_ID and site.transformer(node) is not None else node
    ln_v = node_ln_voltage_v(site, bus)
    service = node_service(site, bus)
    if service == "delta":
        return bounds_for(limit, ln_v, ln_v * math.sqrt(3.0))
    bounds = bounds_for(limit, ln_v)
    if service == "split-phase":
        return Bounds(bounds.max_current_a, bounds.min_voltage_v, bounds.max_voltage_v, (1, 2))
    return bounds


def check_finite(values: Mapping[str, float | None]) -> str | None:
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            return f"{name} is {value}"
    return None


def fill_absent_lines(values: Mapping[str, float | None], bounds: Bounds) -> dict[str, float | None]:
    """A split-phase bus has no L3: a meter there may leave L3's current and power unavailable
    (they are 0 A and 0 W, not unknown). Any other line's missing current still rejects the reading."""
    out = dict(values)
    for line in (1, 2, 3):
        if line in bounds.voltage_lines:
            continue
        for name in (f"current_l{line}_a", f"power_l{line}_w"):
            if out.get(name) is None:
                out[name] = 0.0
    return out


def check_required(values: Mapping[str, float | None]) -> str | None:
    for phase in (1, 2, 3):
        if values.get(f"current_l{phase}_a") is None:
            return f"current_l{phase}_a not available"
    return None


def check_ranges(values: Mapping[str, float | None], bounds: Bounds) -> str | None:
    for phase in (1, 2, 3):
        current = values.get(f"current_l{phase}_a")
        if current is not None and abs(current) > bounds.max_current_a:
            return f"current_l{phase}_a {current:.1f} A beyond {bounds.max_current_a:g} A (2 × the limit)"
        voltage = values.get(f"voltage_l{phase}_v") if phase in bounds.voltage_lines else None
        if voltage is not None and not bounds.min_voltage_v <= voltage <= bounds.max_voltage_v:
            return f"voltage_l{phase}_v {voltage:.1f} V outside {bounds.min_voltage_v:.0f}–{bounds.max_voltage_v:.0f} V"
    return None


def check_signs(values: Mapping[str, float | None], *, signed_currents: bool, meter_id: str) -> str | None:
    """A negative phase current from a meter not declared to sign its currents cannot be believed:
    taken as it is it would look like less load than there is, taken as |I| it would hide a
    wrong register map or a meter set up differently from what the site file says."""
    if signed_currents:
        return None
    for phase in (1, 2, 3):
        current = values.get(f"current_l{phase}_a")
        if current is not None and current < 0:
            return (
                f"meter {meter_id} phase L{phase}: current_l{phase}_a is {current:.2f} A, negative, but the meter"
                " is not declared to report signed currents (set `signed_currents: true` under it if it does)"
            )
    return None


def check_values(
    values: Mapping[str, float | None],
    bounds: Bounds,
    *,
    signed_currents: bool = False,
    meter_id: str = "?",
) -> str | None:
    """The first reason to reject these decoded values, or ``None`` when they are believable.

    ``signed_currents``: the meter may report negative phase currents (else one is refused).
    """
    return (
        check_finite(values)
        or check_required(values)
        or check_ranges(values, bounds)
        or check_signs(values, signed_currents=signed_currents, meter_id=meter_id)
    )


def is_frozen(
    now_s: float,
    raw_changed_at_s: float,
    stale_after_s: float,
    load_changed_at_s: float | None,
) -> bool:
    """Registers unchanged for ``stale_after_s`` while the chargers' own readings moved after the
    last change: the meter (or its gateway) is serving a frozen copy."""
    if load_changed_at_s is None:
        return False
    return now_s - raw_changed_at_s >= stale_after_s and load_changed_at_s > raw_changed_at_s
