"""Building meters and readers against a simulated server."""

from __future__ import annotations

from collections.abc import Callable

from controller.meter.hub import ModbusHub
from controller.meter.plausibility import bounds_for
from controller.meter.reader import MeterReader
from controller.model.site import Meter, ModbusLink


def meter(
    port: int,
    unit: int = 1,
    preset: str = "eastron-sdm630",
    *,
    timeout_s: float = 0.3,
    stale_after_s: float = 5.0,
    framer: str = "tcp",
    invert: bool = False,
    signed_currents: bool | None = None,
) -> Meter:
    link = ModbusLink(unit=unit, host="127.0.0.1", port=port, timeout_s=timeout_s, framer=framer)  # type: ignore[arg-type]
    return Meter(
        id=f"m{unit}",
        modbus=link,
        preset=preset,
        poll_s=0.1,
        stale_after_s=stale_after_s,
        invert=invert,
        signed_currents=signed_currents,
    )


def reader(m: Meter, clock: Callable[[], float], hub: ModbusHub | None = None, limit_a: float = 100.0) -> MeterReader:
    hub = hub or ModbusHub(m.modbus, clock=clock, backoff_initial_s=0.5, backoff_max_s=2.0)
    return MeterReader(m, hub, bounds_for(limit_a), clock=clock)
