"""Overload shedding for the fast loop: scale chargers down at once when a node is over its limit.

Pure: the daemon (each meter poll) and the simulator call it with what they measured. For every
node and phase whose load exceeds ``limit − margin``, every charger drawing on that phase below
the node is scaled by the same factor so the predicted load fits; an AC charger pushed below its
minimum current pauses (0 A). Chargers are never raised here — that is the planner's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.model.site import GRID_ID, PHASES, Site, dc_phase_current_a

PhaseCurrents = tuple[float, float, float]


@dataclass(frozen=True)
class ChargerDraw:
    """What one session is allowed and draws now. ``limit`` is A per phase (AC) or kW (DC)."""

    key: str
    charger_id: str
    limit: float
    draw_a: PhaseCurrents  # measured (or predicted) grid current per phase


@dataclass(frozen=True)
class Shed:
    node_id: str
    phase: int
    load_a: float
    usable_a: float

    @property
    def label(self) -> str:
        return f"{self.node_id} {PHASES[self.phase]}"


def shed(
    site: Site,
    node_load_a: Mapping[str, PhaseCurrents],
    draws: list[ChargerDraw],
    usable_a: Mapping[str, PhaseCurrents] | None = None,
) -> tuple[dict[str, float], list[Shed]]:
    """New limits for the sessions that must come down, and the overloads that caused it.

    ``node_load_a``: total measured current per node (grid, circuits) and phase; nodes absent
    from it are not judged. ``usable_a``: a tighter usable current per node and phase than
    ``limit − margin`` where one applies (the grid's kW contract, :func:`kw_usable_a`).
    """
    factor: dict[str, float] = {}
    events: list[Shed] = []
    for node_id, load in node_load_a.items():
        rated = site.node_limit_a(node_id) - site.node_margin_a(node_id)
        tighter = (usable_a or {}).get(node_id)
        under = {ch.id for ch in site.chargers_under(node_id)}
        for phase in range(3):
            usable = rated if tighter is None else min(rated, tighter[phase])
            excess = load[phase] - usable
            if excess <= 1e-9:
                continue
            events.append(Shed(node_id, phase, load[phase], usable))
            on_phase = [d for d in draws if d.charger_id in under and d.draw_a[phase] > 0]
            ev_total = sum(d.draw_a[phase] for d in on_phase)
            keep = 0.0 if ev_total <= excess else (ev_total - excess) / ev_total
            for d in on_phase:
                factor[d.key] = min(factor.get(d.key, 1.0), keep)
    new_limits: dict[str, float] = {}
    for d in draws:
        if d.key not in factor:
            continue
        charger = site.charger(d.charger_id)
        if charger.kind == "ac":
            drawn = max(d.draw_a)
            target = min(d.limit, drawn * factor[d.key])
            target = int(target * 10) / 10  # down to the 0.1 A OCPP grid, never up
            new_limits[d.key] = target if target >= charger.min_a else 0.0
        else:
            per_kw = dc_phase_current_a(1.0, site.site.voltage_v, charger.efficiency, charger.power_factor)
            drawn_kw = max(d.draw_a) / per_kw
            new_limits[d.key] = int(min(d.limit, drawn_kw * factor[d.key]) * 10) / 10
    return new_limits, events


KW_MARGIN = 0.02
"""The fast loop keeps the grid's power this far (a fraction) under ``grid.limit_kw``."""


def kw_usable_a(site: Site, grid_a: PhaseCurrents, grid_power_w: float | None) -> dict[str, PhaseCurrents]:
    """The grid's ``limit_kw`` as usable current per phase, for :func:`shed`: when the measured
    power is above the contract, every phase may carry only its share of the power allowed
    (``current × allowed / measured``); else nothing tighter than the breaker."""
    limit_kw = site.grid.limit_kw
    if limit_kw is None or grid_power_w is None or grid_power_w <= 0:
        return {}
    allowed_w = limit_kw * 1000.0 * (1.0 - KW_MARGIN)
    if grid_power_w <= allowed_w:
        return {}
    ratio = allowed_w / grid_power_w
    return {GRID_ID: (grid_a[0] * ratio, grid_a[1] * ratio, grid_a[2] * ratio)}
