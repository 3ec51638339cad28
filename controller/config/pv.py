"""``pv:`` — on-site production, measured by a meter of its own.

The PV meter must be one of ``meters:`` and must measure power: every shipped preset does (a test
keeps :data:`POWER_PRESETS` equal to the preset files); a custom map needs ``power_w`` or all
three phase powers. It must measure the PV output alone, so it cannot be the grid's meter or a
circuit's (those measure load, from which the base load is derived).
"""

from __future__ import annotations

from collections.abc import Callable

from controller.config.schema import MeterSection, SiteFile
from controller.config.yaml_source import Path
from controller.model import site as m
from controller.model.presets import PRESET_NAMES

Report = Callable[[Path, str], None]

POWER_PRESETS: tuple[str, ...] = PRESET_NAMES
"""Presets whose register maps include the total power (``power_w``)."""
PHASE_POWERS: tuple[str, ...] = ("power_l1_w", "power_l2_w", "power_l3_w")


def measures_power(meter: MeterSection) -> bool:
    """Whether the meter's readings carry a total power (its own, or the sum of its phase powers)."""
    if meter.preset is not None:
        return meter.preset in POWER_PRESETS
    registers = meter.registers or {}
    return "power_w" in registers or all(name in registers for name in PHASE_POWERS)


def check_pv(sf: SiteFile, error: Report) -> None:
    if sf.pv is None:
        return
    path: Path = ("pv", "meter")
    name = sf.pv.meter
    meters = {x.id: x for x in sf.meters}
    meter = meters.get(name)
    if meter is None:
        error(path, f"unknown meter {name!r}")
        return
    if name == sf.grid.meter:
        error(path, f"{name!r} is the grid meter; `pv.meter` is a meter measuring the PV output alone")
        return
    circuits = [c.id for c in sf.circuits if c.meter == name]
    if circuits:
        alone = "`pv.meter` is a meter measuring the PV output alone"
        error(path, f"{name!r} is the meter of circuit {circuits[0]!r}; {alone}")
        return
    if not measures_power(meter):
        error(
            path,
            f"meter {name!r} measures no power: a PV meter needs `power_w` (or power_l1_w, power_l2_w and "
            "power_l3_w) in its registers",
        )


def pv_model(sf: SiteFile) -> m.Pv | None:
    return None if sf.pv is None else m.Pv(sf.pv.meter)
