"""An EV on an AC charger, as a pure step function with time as an argument (the test rig's EV).

The EV draws ``min(offered limit, its own maximum)`` per phase on the phases it uses (1 or 3),
reacts to a change of the offered limit after ``reaction_s`` (IEC 61851 allows a few seconds),
pauses when offered less than its minimum (6 A), tapers above ``taper_from_soc_pct`` and stops
when full. Units: A per phase, kWh, %, seconds. The battery model (:class:`EvParams`, the taper)
is the product's, :mod:`controller.simulate.ev`; this module adds the rig's time stepping.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from controller.simulate.ev import EvParams, dc_max_kw, ev_max_a

__all__ = ["EvParams", "EvState", "dc_max_kw", "ev_max_a", "grid_currents", "step"]


@dataclass(frozen=True)
class EvState:
    t_s: float
    soc_pct: float
    draw_a: float = 0.0
    """Current per used phase being drawn now [A]."""
    offered_a: float | None = None
    """The last offered limit the EV saw (``None``: not yet)."""
    applied_a: float | None = None
    """The offered limit the EV acts on (``offered_a`` after the reaction delay)."""
    pending: tuple[tuple[float, float | None], ...] = ()
    """(time, offered) changes the EV has seen but not yet acted upon."""
    energy_kwh: float = 0.0


def _draw(p: EvParams, offered: float | None, soc_pct: float) -> float:
    if offered is None:
        return 0.0
    want = min(offered, ev_max_a(p, soc_pct))
    return 0.0 if want < p.min_a else want


def _advance(p: EvParams, s: EvState, until: float) -> EvState:
    """Integrate energy at a constant draw from ``s.t_s`` to ``until``."""
    dt = max(0.0, until - s.t_s)
    if dt == 0:
        return s
    kwh = s.draw_a * p.phases * p.voltage_v * dt / 3_600_000.0
    room = p.battery_kwh * (100.0 - s.soc_pct) / 100.0
    kwh = min(kwh, max(0.0, room))
    soc = min(100.0, s.soc_pct + 100.0 * kwh / p.battery_kwh)
    return replace(s, t_s=until, soc_pct=soc, energy_kwh=s.energy_kwh + kwh)


def step(p: EvParams, s: EvState, t_s: float, offered_a: float | None) -> EvState:
    """Advance the EV to time ``t_s`` [s]; ``offered_a`` is the limit the charger offers from now."""
    pending = list(s.pending)
    state = s
    while pending and pending[0][0] <= t_s:
        at, value = pending.pop(0)
        state = _advance(p, state, at)
        state = replace(state, applied_a=value, draw_a=_draw(p, value, state.soc_pct))
    state = _advance(p, state, t_s)
    state = replace(state, draw_a=_draw(p, state.applied_a, state.soc_pct))  # taper / full: at once
    if offered_a != state.offered_a:
        pending.append((t_s + p.reaction_s, offered_a))
        state = replace(state, offered_a=offered_a)
    return replace(state, pending=tuple(pending))


def grid_currents(p: EvParams, s: EvState) -> tuple[float, float, float]:
    """Per-phase current on the charger's L1..L3 (an EV on n phases uses L1..Ln: a 1-phase EV L1)."""
    n = max(1, min(3, p.phases))
    return (s.draw_a, s.draw_a if n >= 2 else 0.0, s.draw_a if n >= 3 else 0.0)
