"""The depot's electrical coupling, as pure functions: who loads which node on which line.

Every node of the circuit tree carries its own non-EV (base) load, the totals of its child
circuits and the draws of the chargers wired to it. A charger's draw is given on the charger's own
phases L1..L3 and lands on the grid lines its ``phase_rotation`` names (``Charger.grid_phases``):
a 1-phase charger wired to L3 puts its L1 current on grid L3; a 3-phase charger wired L2-L3-L1
puts its L1 on grid L2; a line-to-line charger wired L1-L2 (208/240 V) carries one current out on
grid L1 and back on grid L2 (its simulation reports it on its own L1 and L2). Current on a charger
phase that is not wired (L2/L3 of a 1-phase charger) goes nowhere. A DC charger is fed from all
three phases: the rig's simulation gives its grid-side current per phase (see :mod:`hil.rig.rig`),
mapped like an AC 3-phase charger.

**Node loads are phasor sums** (:func:`node_phasors`, :func:`node_loads`): what a breaker, a cable
or a transformer sees is the magnitude of each line's current, the phasor sum of the loads behind
it (:mod:`controller.model.phasor`): a line-to-line load sits 30° off each of its lines, a
delta-wye transformer's primary line currents are differences of secondary ones, a split-phase
transformer's primary winding sits across two parent lines. A base load is taken in phase with
its line's voltage to neutral (unity power factor) on the bus of its own node. On a European wye
site of line-to-neutral loads the phasor sum equals the arithmetic one.

Units: A per phase throughout; phases are indexed 0, 1, 2 for L1, L2, L3.

**DC chargers** are simulated as 3-phase AC sims whose "voltage" is the nominal voltage ×
efficiency × power factor (:func:`dc_sim_voltage_v`). With that one substitution everything lines
up: a W limit the controller sends (DC output power) becomes, in the sim, the per-phase current
``W / (3 × V_eff)`` = :func:`~controller.model.site.dc_phase_current_a` — the grid current of a
converter delivering that power; the EV's energy ``3 × I × V_eff × t`` is the DC energy into the
battery; the per-phase currents the sim reports are the grid-side currents. What it leaves out:
the converter's own losses at part load, reactive power, and the DC voltage of the battery.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Mapping
from dataclasses import replace

from controller.model.phasor import (
    Vec3,
    draw,
    lift,
    line_angles_deg,
    node_ln_voltage_v,
    node_service,
    signature,
)
from controller.model.site import GRID_ID, Charger, Site, dc_phase_current_a
from hil.ev import EvParams

Phase3 = tuple[float, float, float]
ZERO: Phase3 = (0.0, 0.0, 0.0)
ZERO3: Vec3 = (0j, 0j, 0j)


def add(a: Phase3, b: Phase3) -> Phase3:
    """Phase-wise sum [A]."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def charger_grid_currents(charger: Charger, draw_a: Phase3) -> Phase3:
    """A charger's draw on its own L1..L3 [A] → the current it puts on grid L1..L3 [A]."""
    out = [0.0, 0.0, 0.0]
    for own, grid_phase in enumerate(charger.grid_phases):
        out[grid_phase] += draw_a[own]
    return (out[0], out[1], out[2])


def line_units(site: Site, node_id: str) -> Vec3:
    """Unit phasor of each line's voltage to neutral on ``node_id``'s bus (its own frame)."""
    a = [cmath.rect(1.0, math.radians(deg)) for deg in line_angles_deg(node_service(site, node_id))]
    return (a[0], a[1], a[2])


def measuring_frame(site: Site, node_id: str) -> str:
    """The bus whose frame a node's load (its limit, its meter) is expressed in: the parent's (a
    transformer node is limited and metered on its primary), the grid's own for the grid."""
    return GRID_ID if node_id == GRID_ID else site.circuit(node_id).parent


def charger_phasors_a(site: Site, charger: Charger, draw_a: Phase3) -> dict[str, Vec3]:
    """The line phasors [A] a charger drawing ``draw_a`` on its own L1..L3 puts on every node from
    its circuit up to the grid (a transformer node: on its primary).

    A line-to-line charger's current is its L1's (its L2 carries the same current back) at the
    angle of its line-to-line voltage; a single-phase EV on a three-phase charger of a delta
    service (no neutral) draws between the charger's first two lines; every other current is in
    phase with its grid line's voltage to neutral, phase by phase as drawn.
    """
    if max(draw_a) <= 0.0:
        return {}
    used = sum(1 for a in draw_a[: max(1, charger.phases)] if a > 0.0)
    d = draw(site, charger, used if charger.kind == "ac" else None)
    if d.line_to_line:
        amps = draw_a[0] if charger.line_to_line else max(draw_a)
        sig = signature(site, charger, used if charger.kind == "ac" else None)
        return lift(site, charger.circuit, (sig[0] * amps, sig[1] * amps, sig[2] * amps))
    u = line_units(site, charger.circuit)
    out = [0j, 0j, 0j]
    for own, line in enumerate(charger.grid_phases):
        out[line] += u[line] * draw_a[own]
    return lift(site, charger.circuit, (out[0], out[1], out[2]))


def node_phasors(
    site: Site, own_base_a: Mapping[str, Phase3], charger_draws: Mapping[str, Phase3]
) -> dict[str, Vec3]:
    """Line current phasors per node [A], each in its measuring frame (:func:`measuring_frame`):
    own base loads (in phase with their lines, on their node's bus) + children's + chargers'.

    ``own_base_a``: node id → that node's OWN non-EV load on its bus's L1..L3 (not including its
    children); nodes left out carry none. ``charger_draws``: charger id → current on the
    charger's L1..L3; chargers left out draw nothing. Raises ``KeyError`` for an unknown node or
    charger id.
    """
    nodes = site.node_ids()
    totals: dict[str, list[complex]] = {n: [0j, 0j, 0j] for n in nodes}

    def spread(per_node: Mapping[str, Vec3]) -> None:
        for n, vec in per_node.items():
            acc = totals[n]
            for p in range(3):
                acc[p] += vec[p]

    for node, currents in own_base_a.items():
        if node not in totals:
            raise KeyError(f"unknown node {node!r} in base load (nodes: {', '.join(nodes)})")
        u = line_units(site, node)
        spread(lift(site, node, (u[0] * currents[0], u[1] * currents[1], u[2] * currents[2])))
    chargers = {ch.id: ch for ch in site.chargers}
    for charger_id, drawn in charger_draws.items():
        charger = chargers.get(charger_id)
        if charger is None:
            raise KeyError(f"unknown charger {charger_id!r}")
        spread(charger_phasors_a(site, charger, drawn))
    return {n: (t[0], t[1], t[2]) for n, t in totals.items()}


def magnitudes(vec: Vec3) -> Phase3:
    """|I| of each line [A], to 1 nA (a sum of unit phasors at ±120° is exact to that, not to the last bit)."""
    return (round(abs(vec[0]), 9), round(abs(vec[1]), 9), round(abs(vec[2]), 9))


def node_loads(site: Site, own_base_a: Mapping[str, Phase3], charger_draws: Mapping[str, Phase3]) -> dict[str, Phase3]:
    """Total current per node and line [A]: the magnitudes of :func:`node_phasors` — own base +
    children's totals + own chargers' draws, summed as phasors (what the breaker sees).

    ``own_base_a``: node id → that node's OWN non-EV load on grid L1..L3 (not including its
    children); nodes left out carry none. ``charger_draws``: charger id → current on the
    charger's L1..L3; chargers left out draw nothing. Raises ``KeyError`` for an unknown node or
    charger id.
    """
    return {n: magnitudes(v) for n, v in node_phasors(site, own_base_a, charger_draws).items()}


def power_factors(site: Site, node_id: str, currents: Vec3) -> Phase3:
    """Per line, cos of the angle between its current and its voltage to neutral in the node's
    measuring frame (what a meter there multiplies V × |I| by for the line's active power; 1 where
    no current flows)."""
    u = line_units(site, measuring_frame(site, node_id))
    out = [1.0, 1.0, 1.0]
    for p in range(3):
        if abs(currents[p]) > 1e-9:
            out[p] = (currents[p] * u[p].conjugate()).real / abs(currents[p])
    return (out[0], out[1], out[2])


def meter_voltage_v(site: Site, node_id: str) -> float:
    """Voltage to neutral [V] a meter on ``node_id`` sees: its measuring frame's bus (a meter on a
    transformer node sits on the primary)."""
    return node_ln_voltage_v(site, measuring_frame(site, node_id))


def meter_voltages_v(site: Site, node_id: str) -> Phase3:
    """Each line's voltage to neutral [V] a meter on ``node_id`` reports: :func:`meter_voltage_v`
    on every line a split-phase bus has (L1, L2; its L3 reads 0 V), on all three elsewhere."""
    v = meter_voltage_v(site, node_id)
    split = node_service(site, measuring_frame(site, node_id)) == "split-phase"
    return (v, v, 0.0 if split else v)


def meter_nodes(site: Site) -> dict[str, str]:
    """Meter id → the node it measures: ``grid.meter`` sees the grid, a circuit's ``meter`` that circuit."""
    out: dict[str, str] = {}
    if site.grid.meter is not None:
        out[site.grid.meter] = GRID_ID
    for c in site.circuits:
        if c.meter is not None:
            out[c.meter] = c.id
    return out


def meter_currents(site: Site, loads: Mapping[str, Phase3]) -> dict[str, Phase3]:
    """Meter id → the current it reads [A per grid phase], for every meter placed on a node.

    Meters of the site file not attached to any node are left out (they read no load).
    """
    return {meter_id: loads[node] for meter_id, node in meter_nodes(site).items()}


def utilisation(site: Site, loads: Mapping[str, Phase3]) -> dict[str, float]:
    """Node id → the highest phase load divided by the node's rated ``limit_a`` (no margin)."""
    return {n: max(loads[n]) / site.node_limit_a(n) for n in site.node_ids()}


DC_EV_MIN_A = 0.5
"""A DC-charged EV keeps charging down to this grid-side current per phase [A] (≈ 0.3 kW)."""


def dc_sim_voltage_v(site: Site, charger: Charger) -> float:
    """The per-phase voltage [V] a DC charger's 3-phase simulation uses: its bus's voltage to
    neutral (behind a transformer, the secondary's) × η × PF."""
    return node_ln_voltage_v(site, charger.circuit) * charger.efficiency * charger.power_factor


def sim_voltage_v(site: Site, charger: Charger) -> float:
    """The voltage [V] of the charger's simulation: for AC the W per A per phase of its bus (a
    line-to-line charger: the line-to-line voltage, 208 or 240 V; line-to-neutral: its bus's
    voltage to neutral, behind a transformer the secondary's); :func:`dc_sim_voltage_v` for DC."""
    if charger.kind == "dc":
        return dc_sim_voltage_v(site, charger)
    if charger.line_to_line:
        return draw(site, charger).volts_v
    return node_ln_voltage_v(site, charger.circuit)


def dc_a_per_kw(site: Site, charger: Charger) -> float:
    """Grid current per line [A] per kW a DC charger delivers (its bus's voltage to neutral on each
    wired line, η and PF)."""
    lines = len(draw(site, charger).lines)
    ln_v = node_ln_voltage_v(site, charger.circuit)
    return dc_phase_current_a(1.0, ln_v, charger.efficiency, charger.power_factor) * (3.0 / lines)


def sim_max_a(site: Site, charger: Charger) -> float:
    """The charger's hardware limit in the simulation [A per phase].

    AC: ``max_a`` (else ``max_kw`` over the charger's W per A, else 32 A). DC: the grid current per
    line at ``max_kw`` (:func:`dc_a_per_kw`).
    """
    if charger.kind == "dc":
        kw = charger.max_kw if charger.max_kw is not None else 50.0
        return kw * dc_a_per_kw(site, charger)
    if charger.max_a is not None:
        return charger.max_a
    if charger.max_kw is not None:
        return charger.max_kw * 1000.0 / draw(site, charger).volts_v
    return 32.0


def sim_phases(charger: Charger) -> int:
    """Phases of the charger's simulation: the wired phases for AC (1 for a line-to-line charger),
    always 3 for DC."""
    return 3 if charger.kind == "dc" else charger.phases


def sim_ev(site: Site, charger: Charger, ev: EvParams, ev_max_kw: float | None = None) -> EvParams:
    """The EV as the charger's simulation runs it.

    AC: ``ev`` on at most the charger's wired phases (a 3-phase EV on a 1-phase or line-to-line
    charger draws one current), at :func:`sim_voltage_v`. DC: a 3-phase load at
    :func:`dc_sim_voltage_v` whose maximum is the grid current per phase at ``ev_max_kw`` [kW]
    (default: the charger's ``max_kw``); battery, taper and reaction time come from ``ev``; it
    charges down to :data:`DC_EV_MIN_A`.
    """
    if charger.kind == "dc":
        kw = ev_max_kw if ev_max_kw is not None else (charger.max_kw if charger.max_kw is not None else 50.0)
        max_a = kw * dc_a_per_kw(site, charger)
        return replace(ev, max_a=max_a, phases=3, voltage_v=dc_sim_voltage_v(site, charger), min_a=DC_EV_MIN_A)
    return replace(ev, phases=min(ev.phases, charger.phases), voltage_v=sim_voltage_v(site, charger))


def max_power_kw(site: Site, charger: Charger, ev: EvParams, ev_max_kw: float | None = None) -> float:
    """The most the EV can take on this charger [kW] (DC: into the battery), ignoring site limits and taper."""
    p = sim_ev(site, charger, ev, ev_max_kw)
    return min(p.max_a, sim_max_a(site, charger)) * p.phases * p.voltage_v / 1000.0


class GroundTruth:
    """What really happened at every node: time above the rated limit, peak load and utilisation.

    Feed it the loads that held over each interval (:meth:`hold`) and each new instant's loads
    (:meth:`observe`). Exceedance is judged against the node's rated ``limit_a`` — not limit
    minus margin: the margin is the controller's business, the breaker trips at the rating.
    """

    def __init__(self, site: Site) -> None:
        self.site = site
        self.limits = {n: site.node_limit_a(n) for n in site.node_ids()}
        self.exceeded_s: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in self.limits}
        self.max_load_a: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in self.limits}
        self.max_utilisation: dict[str, float] = dict.fromkeys(self.limits, 0.0)
        self.over: dict[tuple[str, int], float] = {}
        """(node, phase) currently above its limit → since when [s]."""

    def hold(self, loads: Mapping[str, Phase3], dt_s: float) -> None:
        """``loads`` [A] held for ``dt_s`` [s]: add to the time above the limit."""
        for n, limit in self.limits.items():
            for p in range(3):
                if loads[n][p] > limit:
                    self.exceeded_s[n][p] += dt_s

    def observe(self, loads: Mapping[str, Phase3], t_s: float) -> list[tuple[str, int, bool, float]]:
        """New loads at ``t_s``: update the peaks; return (node, phase, now_over, since_s) for every
        node phase that crossed its limit (``since_s``: when the ending excursion began)."""
        changes: list[tuple[str, int, bool, float]] = []
        for n, limit in self.limits.items():
            for p in range(3):
                a = loads[n][p]
                self.max_load_a[n][p] = max(self.max_load_a[n][p], a)
                over = a > limit
                key = (n, p)
                if over and key not in self.over:
                    self.over[key] = t_s
                    changes.append((n, p, True, t_s))
                elif not over and key in self.over:
                    changes.append((n, p, False, self.over.pop(key)))
            self.max_utilisation[n] = max(self.max_utilisation[n], max(loads[n]) / limit)
        return changes

    def exceeded(self) -> dict[str, Phase3]:
        """Node → seconds above the rated limit on L1, L2, L3."""
        return {n: (v[0], v[1], v[2]) for n, v in self.exceeded_s.items()}

    def peaks(self) -> dict[str, Phase3]:
        """Node → highest load seen on L1, L2, L3 [A]."""
        return {n: (v[0], v[1], v[2]) for n, v in self.max_load_a.items()}
