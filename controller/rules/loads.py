"""Loads per circuit node from what the daemon measures (pure).

Two questions the control loops ask each meter poll:

* *How much flows through each node now?* (:func:`known_loads`) — a metered node reads its meter;
  an unmetered node is known from below: the phasor sum of the measured currents of the chargers
  below it (down to the first metered node on the way), plus what its metered children and the
  chargers whose draw is only bounded (a budget) carry — those by magnitude, their angle unknown.
  The fast loop sheds on these.
* *How much of it is not EV charging?* (:func:`base_loads`) — a metered node's meter against the
  phasor sum of the measured EV currents below it, bounded from above per line
  (:func:`~controller.rules.line_base.base_line_a`: ``meter − |EV|`` where every load on the line
  sits at one angle, as on a European wye site); an unmetered node carries its children's base.
  Chargers out of contact are added at their worst-case budget (docs/safety.md, hazards 8 and 16) at every node
  above them. The planner takes these as each node's base load.

Currents are A per line (L1, L2, L3) as each node's limit sees them: a transformer node's on its
primary. A node whose limit is ``limit_sum: arithmetic`` adds the chargers' magnitudes instead
of their phasors. A metered node whose meter has no usable reading gets NaN: the planner then
takes that node as full, never as empty.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.model.site import GRID_ID, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_base import base_at
from controller.rules.line_loads import ev_at_nodes, lift_abs, node_line_a

ZERO: PhaseCurrents = (0.0, 0.0, 0.0)
UNKNOWN: PhaseCurrents = (math.nan, math.nan, math.nan)


def node_meters(site: Site) -> dict[str, str]:
    """Node id → the meter that measures it (the grid, and sub-metered circuits)."""
    out = {GRID_ID: site.grid.meter} if site.grid.meter else {}
    out.update({c.id: c.meter for c in site.circuits if c.meter})
    return out


def _add(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def known_loads(
    site: Site,
    meter_a: Mapping[str, PhaseCurrents],
    charger_a: Mapping[str, PhaseCurrents],
    budget_a: Mapping[str, PhaseCurrents] | None = None,
    phases_used: Mapping[str, int | None] | None = None,
) -> dict[str, PhaseCurrents]:
    """Measured current per node and line, for the nodes it is known at.

    ``meter_a``: usable readings by meter id (stale meters left out); ``charger_a``: each
    charger's measured grid current per line (its phasors from the site model:
    :func:`~controller.rules.line_loads.draw_vector`); ``budget_a``: a worst case per line for
    chargers (or the parts of them) whose draw is not known, added by magnitude (the caller's to
    give: a charger in neither counts as 0 here); ``phases_used``: per charger, the phases its
    vehicle draws on where known (it matters only on a delta bus). A metered node without a usable
    reading is not judged itself, and counts at its limit on every line in the unmetered nodes
    above it (full, never empty).
    """
    meters = node_meters(site)
    ev = ev_at_nodes(site, charger_a, phases_used, stop_at=meters)
    own: dict[str, PhaseCurrents] = {}  # by magnitude, on each node's own bus
    for cid, amps in (budget_a or {}).items():
        try:
            circuit = site.charger(cid).circuit
        except KeyError:
            continue
        own[circuit] = _add(own.get(circuit, ZERO), amps)
    out: dict[str, PhaseCurrents] = {}
    carried: dict[str, PhaseCurrents] = {}  # by magnitude: what each node puts on its parent
    for node in reversed(site.node_ids()):  # children before parents
        meter = meters.get(node)
        if meter is not None:
            reading = meter_a.get(meter)
            if reading is not None:
                out[node] = carried[node] = reading
            else:  # not judged itself; its parent counts it as full, never as empty
                limit = site.node_limit_a(node)
                carried[node] = (limit, limit, limit)
            continue
        below = own.get(node, ZERO)
        for k in site.children(node):
            below = _add(below, carried[k.id])
        scalar = lift_abs(site, node, below)
        carried[node] = scalar
        out[node] = _add(node_line_a(site, node, ev[node]), scalar)
    return out


def base_loads(
    site: Site,
    meter_a: Mapping[str, PhaseCurrents],
    charger_a: Mapping[str, PhaseCurrents],
    in_phase_a: Mapping[str, PhaseCurrents] | None = None,
    phases_used: Mapping[str, int | None] | None = None,
    charger_low_a: Mapping[str, PhaseCurrents] | None = None,
) -> dict[str, PhaseCurrents]:
    """Non-EV current per node and line, for the planner's ``Snapshot.base_load_a``.

    ``charger_a``: the measured grid current of the chargers whose sessions are planned (a
    charger drawing outside a planned session stays in the base). ``in_phase_a``: per metered
    node, each line current's component in phase with its voltage where the meter reports its
    power per line (:func:`~controller.rules.line_base.in_phase_a`; it makes the bound exact on
    lines whose loads span an arc of angles). ``charger_low_a``: the same chargers' currents as
    last reported, where ``charger_a`` counts a session whose limit just went up at that limit
    (:func:`~controller.rules.line_base.base_at`).
    """
    meters = node_meters(site)
    ev = ev_at_nodes(site, charger_a, phases_used)
    ev_low = None if charger_low_a is None else ev_at_nodes(site, charger_low_a, phases_used)
    in_phase = in_phase_a or {}
    out: dict[str, PhaseCurrents] = {}
    for node in reversed(site.node_ids()):
        meter = meters.get(node)
        if meter is not None:
            reading = meter_a.get(meter)
            if reading is None:
                out[node] = UNKNOWN
                continue
            low = None if ev_low is None else ev_low[node]
            out[node] = base_at(site, node, reading, ev[node], in_phase.get(node), low)
        else:
            total = ZERO
            for k in site.children(node):
                total = _add(total, out[k.id])
            out[node] = lift_abs(site, node, total)
    return out


def add_budgets(
    site: Site, base_a: Mapping[str, PhaseCurrents], budget_a: Mapping[str, PhaseCurrents]
) -> dict[str, PhaseCurrents]:
    """``base_a`` plus chargers out of contact at their worst-case grid current, at their node and
    every node above it, by magnitude (through a transformer: each primary line by the sum of the
    secondary lines it mixes — never less than the draw's phasors give, whatever its angle). On a
    metered node this may count part of their draw twice — safe, and only while a charger is out
    of contact. Budgets are never held: they follow the links."""
    out = dict(base_a)
    for cid, budget in budget_a.items():
        try:
            path = site.ancestors(site.charger(cid).circuit)
        except KeyError:
            continue
        amps = budget
        for node in path:
            amps = lift_abs(site, node, amps)
            if node in out:
                out[node] = _add(out[node], amps)
    return out


@dataclass
class BaseHold:
    """The recent maximum of each node's base load over ``window_s`` [s] (docs/planner.md, the base load: held
    conservatively). Only known values are held: a node whose meter is unknown *now* is the
    caller's to mark (:func:`with_unknown`), so a meter that comes back is believed at once."""

    window_s: float
    _samples: deque[tuple[float, Mapping[str, PhaseCurrents]]] = field(default_factory=deque)

    def add(self, t_s: float, values: Mapping[str, PhaseCurrents]) -> dict[str, PhaseCurrents]:
        self._samples.append((t_s, {n: v for n, v in values.items() if not any(math.isnan(x) for x in v)}))
        while self._samples and t_s - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        return self.held()

    def held(self) -> dict[str, PhaseCurrents]:
        out: dict[str, list[float]] = {}
        for _, sample in self._samples:
            for node, v in sample.items():
                cur = out.setdefault(node, [0.0, 0.0, 0.0])
                for p in range(3):
                    cur[p] = max(cur[p], v[p])
        return {n: (v[0], v[1], v[2]) for n, v in out.items()}


def with_unknown(held: Mapping[str, PhaseCurrents], now: Mapping[str, PhaseCurrents]) -> dict[str, PhaseCurrents]:
    """``held``, except that a node unknown now (NaN in ``now``) is unknown (the planner then
    takes it as full), and a node nothing is held for yet (its samples all had a draw below it
    not yet reported) takes its value now — which counts that unreported draw as base load:
    conservative, and better than a node taken as full until every charger has reported."""
    out = dict(held)
    for node, v in now.items():
        if any(math.isnan(x) for x in v) or node not in out:
            out[node] = v
    return out


def exceeded(site: Site, loads: Mapping[str, PhaseCurrents]) -> list[tuple[str, int, float]]:
    """(node, phase, amperes over) for every known node carrying more than its rated limit
    (the breaker's ``limit_a``; the margin is the controller's own reserve and does not count)."""
    out = []
    for node, load in loads.items():
        limit = site.node_limit_a(node)
        for p in range(3):
            if load[p] > limit + 1e-9:
                out.append((node, p, load[p] - limit))
    return out
