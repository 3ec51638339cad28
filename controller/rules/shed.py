"""Overload shedding for the fast loop: scale chargers down at once when a node is over its limit.

Pure: the daemon (each meter poll) and the simulator call it with what they measured. For every
node and line whose load exceeds ``limit − margin``, every charger drawing on that line below
the node is scaled by the same factor so the predicted load fits; an AC charger pushed below its
minimum current pauses (0 A). Chargers are never raised here — that is the planner's job.

The prediction uses the same phasor arithmetic as the planner and the base load
(:mod:`controller.rules.line_loads`): the chargers' currents at the node are phasors (a
line-to-line charger 30° off its lines, a transformer node on its primary), the rest of the
line's current is bounded by :func:`~controller.rules.line_base.base_line_a`, and the chargers
keep ``k`` of their draw with ``rest + k·|EV| <= limit − margin`` (``|EV|`` the magnitude of
their phasor sum, or the sum of their magnitudes on a ``limit_sum: arithmetic`` node, where an
unmetered node's load is that sum too and ``rest`` is the load less theirs). Where every load on
the line sits at one angle (a European wye site) that is the old rule: ``rest`` is the load less
the chargers' draw, and the excess comes off their draw one for one. Elsewhere the bound on the
rest may be more than it is (the rest's angle is unknown): the shed then takes a little more
than needed, never less, and the next plan gives it back.

A session that cannot be lowered now (``fixed``: its charger is uncontrolled, or a profile call to
it is stuck — a decrease would wait behind it up to the call timeout) counts as load that stays:
it is part of the rest, and the excess comes off the others. It is still asked for the share it
would have had with every session following (in case it answers after all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.model.site import GRID_ID, PHASES, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_base import base_line_a
from controller.rules.line_loads import (
    amps_per_kw,
    charger_lines,
    collinear_lines,
    is_simple,
    line_units,
)


@dataclass(frozen=True)
class ChargerDraw:
    """What one session is allowed and draws now. ``limit`` is A per phase (AC) or kW (DC)."""

    key: str
    charger_id: str
    limit: float
    draw_a: PhaseCurrents  # measured (or predicted) grid current per line
    phases_used: int | None = None  # phases its vehicle draws on, where known (matters on delta buses)
    fixed: bool = False
    """It cannot be lowered now (uncontrolled, or a call to its charger stuck): its draw stays."""


@dataclass(frozen=True)
class Shed:
    node_id: str
    phase: int
    load_a: float
    usable_a: float

    @property
    def label(self) -> str:
        return f"{self.node_id} {PHASES[self.phase]}"


def usable_line_a(site: Site, node_id: str, line: int, usable_a: Mapping[str, PhaseCurrents] | None) -> float:
    """What ``node_id``'s ``line`` may carry before the shed acts: ``limit − margin``, or a tighter
    usable current where one applies (``usable_a``, the grid's kW contract)."""
    rated = site.node_limit_a(node_id) - site.node_margin_a(node_id)
    tighter = (usable_a or {}).get(node_id)
    return rated if tighter is None else min(rated, tighter[line])


def overloaded(
    site: Site, node_load_a: Mapping[str, PhaseCurrents], usable_a: Mapping[str, PhaseCurrents] | None = None
) -> bool:
    """Whether :func:`shed` has anything to do: some node's line over what it may carry. The fast
    loop asks this every cycle before it gathers the sessions (their draws, their limits) that
    only a shed needs."""
    return any(
        not load[line] - usable_line_a(site, node_id, line, usable_a) <= 1e-9  # as shed() has it, NaN too
        for node_id, load in node_load_a.items()
        for line in range(3)
    )


def shed(
    site: Site,
    node_load_a: Mapping[str, PhaseCurrents],
    draws: list[ChargerDraw],
    usable_a: Mapping[str, PhaseCurrents] | None = None,
    in_phase_a: Mapping[str, PhaseCurrents] | None = None,
) -> tuple[dict[str, float], list[Shed]]:
    """New limits for the sessions that must come down, and the overloads that caused it.

    ``node_load_a``: total measured current per node (grid, circuits) and line; nodes absent
    from it are not judged. ``usable_a``: a tighter usable current per node and line than
    ``limit − margin`` where one applies (the grid's kW contract, :func:`kw_usable_a`).
    ``in_phase_a``: per metered node, each line current's component in phase with its voltage
    (:func:`~controller.rules.line_base.in_phase_a`), which bounds the rest of the line exactly.
    """
    known: list[ChargerDraw] = []
    at_node: dict[str, dict[str, tuple[complex, complex, complex]]] = {}
    done: list[bool] = []

    def phasors() -> None:  # each session's line phasors at every node above it, once, when needed
        if done:
            return
        done.append(True)
        for d in draws:
            try:
                ch = site.charger(d.charger_id)
            except KeyError:  # not in the site file: not shed here
                continue
            known.append(d)
            at_node[d.key] = dict(charger_lines(site, ch, d.draw_a, d.phases_used))

    factor: dict[str, float] = {}
    events: list[Shed] = []
    simple = is_simple(site)
    for node_id, load in node_load_a.items():
        in_phase = (in_phase_a or {}).get(node_id)
        arithmetic = site.node_limit_sum(node_id) == "arithmetic"
        metered = (site.grid.meter if node_id == GRID_ID else site.circuit(node_id).meter) is not None
        flags = collinear_lines(site, node_id)
        units = line_units(site, node_id)
        for line in range(3):
            usable = usable_line_a(site, node_id, line, usable_a)
            excess = load[line] - usable
            if excess <= 1e-9:
                continue
            events.append(Shed(node_id, line, load[line], usable))
            phasors()
            on_line: list[tuple[ChargerDraw, complex, float]] = []
            for d in known:
                vec = at_node[d.key].get(node_id)
                if vec is not None and abs(vec[line]) > 1e-9:
                    # at one angle on this line the magnitude is the draw itself (no rounding)
                    on_line.append((d, vec[line], d.draw_a[line] if simple else abs(vec[line])))
            line_rule = _Line(
                load[line],
                usable,
                exact_rest=flags[line] or (arithmetic and not metered),
                sum_magnitudes=arithmetic or flags[line],
                collinear=flags[line],
                unit=units[line],
                in_phase_a=None if in_phase is None else in_phase[line],
            )
            everyone = line_rule.keep(on_line)  # as if every session followed at once
            if everyone is None:
                continue
            movable = [x for x in on_line if not x[0].fixed]
            # the sessions that can come down take the excess of those that cannot (load that stays)
            others = line_rule.keep(movable) if len(movable) < len(on_line) else everyone
            for d, _, _ in on_line:
                keep = everyone if d.fixed or others is None else others
                factor[d.key] = min(factor.get(d.key, 1.0), keep)
    new_limits: dict[str, float] = {}
    for d in known:
        if d.key not in factor:
            continue
        charger = site.charger(d.charger_id)
        if charger.kind == "ac":
            drawn = max(d.draw_a)
            target = min(d.limit, drawn * factor[d.key])
            target = int(target * 10) / 10  # down to the 0.1 A OCPP grid, never up
            new_limits[d.key] = target if target >= charger.min_a else 0.0
        else:
            drawn_kw = max(d.draw_a) / amps_per_kw(site, charger)
            new_limits[d.key] = int(min(d.limit, drawn_kw * factor[d.key]) * 10) / 10
    return new_limits, events


@dataclass(frozen=True)
class _Line:
    """One overloaded node-line: its load, its usable limit and how its rest is bounded."""

    load_a: float
    usable_a: float
    exact_rest: bool  # the rest is the load less the sessions' draw, exactly
    sum_magnitudes: bool  # the sessions count by the sum of their magnitudes (else their phasor sum's)
    collinear: bool
    unit: complex
    in_phase_a: float | None

    def keep(self, sessions: list[tuple[ChargerDraw, complex, float]]) -> float | None:
        """The share of their draw these sessions keep so the line fits, everything else on it
        staying as it is (``None``: they draw nothing here)."""
        ev = sum((c for _, c, _ in sessions), 0j)
        ev_a = sum(m for _, _, m in sessions) if self.sum_magnitudes else abs(ev)
        if ev_a <= 1e-9:
            return None
        if self.exact_rest:
            rest = max(0.0, self.load_a - ev_a)
        else:  # a meter's magnitude (or a phasor sum): bound what is not these sessions
            rest = base_line_a(self.load_a, ev, collinear=self.collinear, unit=self.unit, in_phase_a=self.in_phase_a)
        return max(0.0, min(1.0, (self.usable_a - rest) / ev_a))


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
