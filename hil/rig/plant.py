"""The depot's electrical coupling, as pure functions: who loads which node on which phase.

Every node of the circuit tree carries its own non-EV (base) load, the totals of its child
circuits and the draws of the chargers wired to it. A charger's draw is given on the charger's own
phases L1..L3 and lands on the grid phases its ``phase_rotation`` names (``Charger.grid_phases``):
a 1-phase charger wired to L3 puts its L1 current on grid L3; a 3-phase charger wired L2-L3-L1
puts its L1 on grid L2. Current on a charger phase that is not wired (L2/L3 of a 1-phase charger)
goes nowhere. A DC charger is fed from all three phases: the rig's simulation gives its grid-side
current per phase (see :mod:`hil.rig.rig`), mapped like an AC 3-phase charger.

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

from collections.abc import Mapping
from dataclasses import replace

from controller.model.site import GRID_ID, Charger, Site, dc_phase_current_a
from hil.ev import EvParams

Phase3 = tuple[float, float, float]
ZERO: Phase3 = (0.0, 0.0, 0.0)


def add(a: Phase3, b: Phase3) -> Phase3:
    """Phase-wise sum [A]."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def charger_grid_currents(charger: Charger, draw_a: Phase3) -> Phase3:
    """A charger's draw on its own L1..L3 [A] → the current it puts on grid L1..L3 [A]."""
    out = [0.0, 0.0, 0.0]
    for own, grid_phase in enumerate(charger.grid_phases):
        out[grid_phase] += draw_a[own]
    return (out[0], out[1], out[2])


def node_loads(site: Site, own_base_a: Mapping[str, Phase3], charger_draws: Mapping[str, Phase3]) -> dict[str, Phase3]:
    """Total current per node and grid phase [A]: own base + children's totals + own chargers' draws.

    ``own_base_a``: node id → that node's OWN non-EV load on grid L1..L3 (not including its
    children); nodes left out carry none. ``charger_draws``: charger id → current on the
    charger's L1..L3; chargers left out draw nothing. Raises ``KeyError`` for an unknown node or
    charger id.
    """
    nodes = site.node_ids()
    totals: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in nodes}

    def spread(node: str, currents: Phase3) -> None:
        for n in site.ancestors(node):
            for p in range(3):
                totals[n][p] += currents[p]

    for node, currents in own_base_a.items():
        if node not in totals:
            raise KeyError(f"unknown node {node!r} in base load (nodes: {', '.join(nodes)})")
        spread(node, currents)
    chargers = {ch.id: ch for ch in site.chargers}
    for charger_id, draw in charger_draws.items():
        charger = chargers.get(charger_id)
        if charger is None:
            raise KeyError(f"unknown charger {charger_id!r}")
        spread(charger.circuit, charger_grid_currents(charger, draw))
    return {n: (t[0], t[1], t[2]) for n, t in totals.items()}


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
    """The per-phase voltage [V] a DC charger's 3-phase simulation uses (nominal × η × PF)."""
    return site.site.voltage_v * charger.efficiency * charger.power_factor


def sim_voltage_v(site: Site, charger: Charger) -> float:
    """The voltage [V] of the charger's simulation: nominal for AC, :func:`dc_sim_voltage_v` for DC."""
    return dc_sim_voltage_v(site, charger) if charger.kind == "dc" else site.site.voltage_v


def sim_max_a(site: Site, charger: Charger) -> float:
    """The charger's hardware limit in the simulation [A per phase].

    AC: ``max_a`` (else ``max_kw`` over the wired phases, else 32 A). DC: the grid current per
    phase at ``max_kw`` (:func:`~controller.model.site.dc_phase_current_a`).
    """
    v = site.site.voltage_v
    if charger.kind == "dc":
        kw = charger.max_kw if charger.max_kw is not None else 50.0
        return dc_phase_current_a(kw, v, charger.efficiency, charger.power_factor)
    if charger.max_a is not None:
        return charger.max_a
    if charger.max_kw is not None:
        return charger.max_kw * 1000.0 / (v * charger.phases)
    return 32.0


def sim_phases(charger: Charger) -> int:
    """Phases of the charger's simulation: the wired phases for AC, always 3 for DC."""
    return 3 if charger.kind == "dc" else charger.phases


def sim_ev(site: Site, charger: Charger, ev: EvParams, ev_max_kw: float | None = None) -> EvParams:
    """The EV as the charger's simulation runs it.

    AC: ``ev`` on at most the charger's wired phases (a 3-phase EV on a 1-phase charger draws one
    phase), at the site voltage. DC: a 3-phase load at :func:`dc_sim_voltage_v` whose maximum is the
    grid current per phase at ``ev_max_kw`` [kW] (default: the charger's ``max_kw``); battery,
    taper and reaction time come from ``ev``; it charges down to :data:`DC_EV_MIN_A`.
    """
    if charger.kind == "dc":
        kw = ev_max_kw if ev_max_kw is not None else (charger.max_kw if charger.max_kw is not None else 50.0)
        max_a = dc_phase_current_a(kw, site.site.voltage_v, charger.efficiency, charger.power_factor)
        return replace(ev, max_a=max_a, phases=3, voltage_v=dc_sim_voltage_v(site, charger), min_a=DC_EV_MIN_A)
    return replace(ev, phases=min(ev.phases, charger.phases), voltage_v=site.site.voltage_v)


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
