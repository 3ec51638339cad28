"""How much one connector may be offered now without any node above it going over its usable limit.

Pure: a commissioning run (:mod:`.commission`) asks it before every limit it offers a charger
that the plan has left to it. Everything else is taken as last measured: the fast loop's
:class:`~.ports.Observation` (``loads_a``: each node's line currents as its limit sees them —
a meter's reading, or the sum of the chargers below it, those whose draw is not measured at their
worst case) and, where the grid has a kW contract, the grid meter's power — except what may draw
more than it was measured at: other chargers a run holds, and chargers whose EVs are still
following a raise, count at their profiles' worst case (:func:`with_others`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from controller.daemon.sessions import budget_grid_a
from controller.model.phasor import charger_phasors, draw, node_ln_voltage_v
from controller.model.site import Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_loads import amps_per_kw, charger_lines, collinear_lines
from controller.rules.shed import KW_MARGIN

EPS = 1e-12
RESERVE_A = 1.0
"""Kept free on every line [A]: the offer goes up to the usable limit less this. A run offers on
the load measured now, while the planner plans on the base load held at its peak over a minute:
the rest of a line flickers (and an EV may draw a little above its limit) — an offer that filled
the line to the last tenth of an amp would have the shed act on the next flicker (and end the run)."""


@dataclass(frozen=True)
class OwnDraw:
    """The connector's own current when the loads were measured, on grid L1..L3 [A]: ``draw_a``
    the least it drew then (None: not measured — no reading fresh enough), ``bound_a`` the most it
    may be drawing (its profiles' worst case), ``high_a`` the most it was measured to draw then
    (None: ``draw_a``), and the phases its vehicle uses where known.

    ``draw_a`` is added back to a load that holds it (so it must not be more than the connector
    drew then: a reading from before its EV came down would offer that difference twice);
    ``high_a`` bounds it where it is subtracted (phasor nodes)."""

    draw_a: PhaseCurrents | None
    bound_a: PhaseCurrents
    phases_used: int | None = None
    high_a: PhaseCurrents | None = None


def headroom(
    site: Site,
    charger: Charger,
    loads_a: Mapping[str, PhaseCurrents],
    own: OwnDraw,
    grid_power_w: float | None = None,
) -> float:
    """The most ``charger``'s connector may be offered now [AC: A per phase; DC: kW], so that no
    node on its path (its circuit up to the grid) goes above its usable limit (limit − margin)
    less :data:`RESERVE_A`, everything else as last measured; clamped to [0, the charger's maximum].

    Per node and line the charger's current reaches (its phasors at that node: a single-phase
    charger one line, a line-to-line one two, through a transformer the primary lines it feeds,
    each with its factor per A), with ``load`` the node's measured line current and ``own`` the
    connector's own current on that line now:

    * a node summed arithmetically (``limit_sum: arithmetic``), or a line whose loads all sit at
      one angle (where phasor and arithmetic sums agree): the load is the rest plus the
      connector's own draw, so the room is ``usable − load + own`` — ``own`` the least it drew
      (``draw_a``) where measured (unmeasured: 0, the load already holds whatever it draws);
    * any other (phasor) node: ``|rest + new| ≤ |rest + own| + |own| + |new|`` (the triangle
      inequality), so the room is ``usable − load − own``, safe whatever the angles — ``own`` the
      most it was measured at (``high_a``), where not measured its worst case (``bound_a``);

    and the offer is the room divided by the connector's current per unit offered there, the
    smallest over every node and line. While the vehicle's phases are not known, every phase count
    the charger allows is tried and the smallest answer kept. With a grid ``limit_kw`` and a grid
    power reading, the power room (``limit_kw`` less :data:`~controller.rules.shed.KW_MARGIN`,
    less the power now, plus the connector's own at the least: one line's current at the line
    voltage) bounds it too. A node without a measured load
    (no observation yet, a stale meter) has no room: the answer is 0.
    """
    per_unit = amps_per_kw(site, charger) if charger.kind == "dc" else 1.0
    top = charger.max_kw if charger.kind == "dc" else charger.max_a
    best = math.inf if top is None else float(top)
    counts: tuple[int | None, ...]
    if own.phases_used is not None or charger.kind == "dc":
        counts = (own.phases_used,)
    else:
        counts = (None, *range(1, max(1, charger.phases) + 1))
    for used in counts:
        now_lines = dict(charger_lines(site, charger, own.draw_a, used)) if own.draw_a is not None else {}
        high_lines = dict(charger_lines(site, charger, own.high_a, used)) if own.high_a is not None else now_lines
        bound_lines = dict(charger_lines(site, charger, own.bound_a, used))
        for node, per_a in charger_phasors(site, charger, used).items():
            load = loads_a.get(node)
            if load is None or any(math.isnan(x) for x in load):
                return 0.0
            usable = site.node_limit_a(node) - site.node_margin_a(node) - RESERVE_A
            summed = site.node_limit_sum(node) == "arithmetic"
            flags = collinear_lines(site, node)
            for ln in range(3):
                unit = abs(per_a[ln]) * per_unit
                if unit <= EPS:
                    continue
                if summed or flags[ln]:
                    room = usable - load[ln] + (abs(now_lines[node][ln]) if node in now_lines else 0.0)
                else:
                    most = abs(high_lines[node][ln]) if node in high_lines else abs(bound_lines[node][ln])
                    room = usable - load[ln] - most
                best = min(best, room / unit)
        best = min(best, _power_room(site, charger, own, used, grid_power_w))
    if not math.isfinite(best):
        return 0.0
    return max(0.0, best)


def _power_room(site: Site, charger: Charger, own: OwnDraw, used: int | None, grid_power_w: float | None) -> float:
    """The offer the grid's kW contract leaves (inf without one, or without a power reading:
    then the current limits alone bound it, as the fast loop's shed does)."""
    limit_kw = site.grid.limit_kw
    if limit_kw is None or grid_power_w is None:
        return math.inf
    allowed_w = limit_kw * 1000.0 * (1.0 - KW_MARGIN)
    if charger.kind == "dc":
        eff = charger.efficiency if charger.efficiency > 0 else 1.0
        w_per_unit = 1000.0 / eff
        own_w = max(own.draw_a) / amps_per_kw(site, charger) * w_per_unit if own.draw_a is not None else 0.0
    else:  # what it draws now at the least (one line's worth), what it would draw at the most
        w_per_unit = draw(site, charger, used).volts_v
        own_w = max(own.draw_a) * node_ln_voltage_v(site, charger.circuit) if own.draw_a is not None else 0.0
    return (allowed_w - grid_power_w + own_w) / w_per_unit


def with_others(
    site: Site,
    loads_a: Mapping[str, PhaseCurrents],
    grid_power_w: float | None,
    extra_a: Mapping[str, PhaseCurrents],
) -> tuple[dict[str, PhaseCurrents], float | None]:
    """The loads (and the grid power) with what other chargers may still add to them:
    ``extra_a`` per charger, on its grid lines [A] — what it may draw by its profiles beyond what
    it was measured at. Added by magnitude at every node above the charger (never less than a
    phasor sum would give: the triangle inequality), and to the power at its bus voltage on each
    line (more than a line-to-line or power-factor-corrected draw takes: safe). A node without a
    load stays without one (no room there)."""
    out = {node: [*load] for node, load in loads_a.items()}
    power = grid_power_w
    for cid, extra in extra_a.items():
        if max(extra) <= EPS:
            continue
        ch = site.charger(cid)
        for node, vec in charger_lines(site, ch, extra):
            if node in out:
                for ln in range(3):
                    out[node][ln] += abs(vec[ln])
        if power is not None:
            power += sum(extra) * node_ln_voltage_v(site, ch.circuit)
    return {node: (v[0], v[1], v[2]) for node, v in out.items()}, power


def beyond_a(site: Site, charger: Charger, budget: float, unit: str, drawn_a: PhaseCurrents | None) -> PhaseCurrents:
    """What a charger may draw by its profiles (``budget`` in planner units) beyond ``drawn_a``
    (what it was measured at; None: not measured — all of it), on its grid lines [A]."""
    top = budget_grid_a(site, charger, budget, unit)
    if drawn_a is None:
        return top
    return (max(0.0, top[0] - drawn_a[0]), max(0.0, top[1] - drawn_a[1]), max(0.0, top[2] - drawn_a[2]))
