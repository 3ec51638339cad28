"""The meters' side of a fast cycle: each meter's reading as the site's loads need it, metrics and
history of it, and what tells a frozen meter apart (pure but for the metrics and the recorder).

* :func:`read_meters` — every meter's usable reading (A per line) and active power
  (:func:`active_power_w`), each metered node's in-phase part (where the meter gives power and
  voltage), the grid meter's reading and health;
* :func:`note_load_changes` — tell each meter when the chargers below it moved;
* :func:`observe_measured` — circuit load and headroom metrics from what is measured.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from controller.daemon.ports import Monotonic, Recorder
from controller.meter.errors import Implausible
from controller.meter.reader import MeterReader, PollResult
from controller.meter.reading import MeterReading
from controller.metrics import DepotMetrics, observe_grid, observe_meter
from controller.model.site import PHASES, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_base import in_phase_a
from controller.rules.loads import node_meters
from controller.store import MeterSample

LOAD_CHANGE_A = 2.0  # the chargers' summed draw moving this much tells a frozen meter apart

GridReading = tuple[PhaseCurrents | None, float | None]
"""The grid meter's current per line and its power [W] (None: not known)."""


def active_power_w(site: Site, reading: MeterReading) -> float:
    """A reading's active power [W], import positive: the meter's own total (or the sum of its phase
    powers); a meter that gives no power, the sum of V × I per line — its voltages, else the site's
    nominal voltage to neutral — with the current's sign where the meter signs it (else as import).
    That is the apparent power, an upper bound of the active one (power factor unknown)."""
    if reading.total_power_w is not None:
        return reading.total_power_w
    currents = reading.current_signed_a or reading.current_a
    nominal = site.site.voltage_v / (math.sqrt(3.0) if site.site.service == "delta" else 1.0)
    volts = reading.voltage_v or (nominal, nominal, nominal)
    return sum(v * i for v, i in zip(volts, currents, strict=True))


@dataclass(frozen=True)
class MeterRound:
    meter_a: dict[str, PhaseCurrents]  # usable readings by meter id (stale meters left out)
    in_phase: dict[str, PhaseCurrents]  # per metered node: each line's current in phase with its voltage
    grid_stale: bool
    grid_implausible: bool
    grid: GridReading
    power_w: dict[str, float] = field(default_factory=dict)  # usable readings' active power by meter id


def read_meters(
    site: Site, readers: Mapping[str, MeterReader], results: list[PollResult], now: datetime, previous: GridReading,
    metrics: DepotMetrics, recorder: Recorder,
) -> MeterRound:
    """Each meter's reading (metrics, history, the in-phase part at its node) and the grid's.
    ``previous``: the grid reading of the last cycle (the power last read stays on show beside a
    current that is unknown now; without a grid meter, both stay)."""
    meter_a: dict[str, PhaseCurrents] = {}
    power_w: dict[str, float] = {}
    in_phase: dict[str, PhaseCurrents] = {}
    node_of = {meter: node for node, meter in node_meters(site).items()}
    grid_implausible = False
    for (mid, reader), res in zip(readers.items(), results, strict=True):
        status = reader.status()
        label = "ok" if res.reading is not None else (res.error.kind if res.error else "error").replace(" ", "_")
        observe_meter(metrics, mid, label, status.age_s if status.age_s is not None else 1e9)
        if status.usable is not None:
            r = status.usable
            meter_a[mid] = (r.current_a[0], r.current_a[1], r.current_a[2])
            power_w[mid] = active_power_w(site, r)
            recorder.put(MeterSample(mid, now, meter_a[mid], r.total_power_w))
            node = node_of.get(mid)
            got = None if node is None else in_phase_a(site, node, meter_a[mid], r.power_w, r.voltage_v)
            if node is not None and got is not None:
                in_phase[node] = got
        if mid == site.grid.meter and isinstance(res.error, Implausible):
            grid_implausible = True
    grid_meter = site.grid.meter
    grid = previous
    if grid_meter is not None and grid_meter in meter_a:
        reading = readers[grid_meter].status().usable
        grid = (meter_a[grid_meter], reading.total_power_w if reading is not None else None)
        observe_grid(metrics, grid[0], grid[1])
    elif grid_meter is not None:
        grid = (None, previous[1])
    grid_stale = grid_meter is not None and grid_meter not in meter_a
    return MeterRound(meter_a, in_phase, grid_stale, grid_implausible, grid, power_w)


class LoadNotes(Protocol):
    """A meter reader, told when the load below it moved (a frozen meter is told apart by it)."""

    def note_load_change(self, t_s: float) -> None: ...


def observe_measured(metrics: DepotMetrics, site: Site, loads: Mapping[str, PhaseCurrents]) -> None:
    """Circuit load and headroom metrics from what is measured, where it is known (the plan's
    figures stand for the other nodes; called after each plan too, so measured wins)."""
    for node, load in loads.items():
        usable = site.node_limit_a(node) - site.node_margin_a(node)
        for p, phase in enumerate(PHASES):
            metrics.circuit_load.labels(node, phase).set(load[p])
            metrics.circuit_headroom.labels(node, phase).set(usable - load[p])


def note_load_changes(
    site: Site, readers: Mapping[str, LoadNotes], draws: Mapping[str, PhaseCurrents], noted: dict[str, float],
    mono: Monotonic,
) -> None:
    """Tell each meter when the chargers below it moved: a meter frozen while they move is lying.
    ``noted``: per metered node, the chargers' summed draw last told (updated here).

    The chargers' readings lag the meter by up to a sample interval (OCPP meter values against a
    Modbus poll every second): the move is dated that much earlier, so a meter that showed the
    change *before* the chargers reported it is not taken for frozen."""
    lag_s = site.ocpp.meter_sample_s + 1.0
    for node, meter_id in node_meters(site).items():
        total = sum(sum(draws.get(ch.id, (0.0, 0.0, 0.0))) for ch in site.chargers_under(node))
        if abs(total - noted.get(node, 0.0)) > LOAD_CHANGE_A:
            noted[node] = total
            reader = readers.get(meter_id)
            if reader is not None:
                reader.note_load_change(mono() - lag_s)
