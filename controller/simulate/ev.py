"""A vehicle's battery as the simulator and the rig see it: what it accepts at a state of charge.

An AC vehicle draws at most ``max_a`` per phase on the phases it uses (1 or 3), pauses when
offered less than its minimum (6 A), tapers linearly above ``taper_from_soc_pct`` and stops when
full; a DC-charged battery takes full power up to its taper point, then falls linearly to a floor
share at 100 % (constant current, then constant voltage). Units: A per phase, kWh, %, seconds.

This is the product's model (``depotctl simulate`` uses it, :mod:`controller.simulate.vehicles`);
the test rig's EV (``hil/ev.py``: the reaction delay, time stepping) builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvParams:
    max_a: float = 16.0
    phases: int = 3
    battery_kwh: float = 60.0
    voltage_v: float = 230.0
    min_a: float = 6.0
    taper_from_soc_pct: float = 80.0
    reaction_s: float = 3.0


def ev_max_a(p: EvParams, soc_pct: float) -> float:
    """The EV's own limit at this state of charge (linear taper to 0 at 100 %)."""
    if soc_pct >= 100.0:
        return 0.0
    if soc_pct <= p.taper_from_soc_pct:
        return p.max_a
    frac = (100.0 - soc_pct) / (100.0 - p.taper_from_soc_pct)
    return max(p.min_a, p.max_a * frac)



def dc_max_kw(max_kw: float, soc_pct: float, taper_from_soc_pct: float = 80.0, floor_share: float = 0.1) -> float:
    """A DC-charged battery's acceptance [kW]: full power up to ``taper_from_soc_pct``, then
    falling linearly to ``floor_share`` of it at 100 % (constant current, then constant voltage)."""
    if soc_pct >= 100.0:
        return 0.0
    if soc_pct <= taper_from_soc_pct:
        return max_kw
    frac = 1.0 - (1.0 - floor_share) * (soc_pct - taper_from_soc_pct) / (100.0 - taper_from_soc_pct)
    return max_kw * max(floor_share, frac)
