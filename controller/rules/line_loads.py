"""Line currents at every node from what the daemon measures, as phasors (pure).

A breaker sees the magnitude of each line's current: the *phasor* sum of the loads behind it
(:mod:`controller.model.phasor`). The fast loop knows two kinds of figures:

* the chargers' meter values: a current per line, whose angle the site model gives (a
  line-to-neutral load at its line's angle, a line-to-line charger at the angle of its
  line-to-line voltage, 30° off each of its lines on a wye bus) — :func:`draw_vector` turns one
  charger's grid currents into phasors on its bus, :func:`ev_at_nodes` lifts them to every node
  above it (through each transformer: a transformer node's limit and meter are on its primary);
* the site meters: line-current *magnitudes* (and, on most meters, the power per line).

The base load at a metered node — what is not EV charging — is bounded from these in
:mod:`controller.rules.line_base`.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from controller.model import phasor
from controller.model.site import Charger, Service, Site
from controller.model.snapshot import PhaseCurrents

Vec3 = phasor.Vec3
Mat3 = tuple[Vec3, Vec3, Vec3]

SINGLE_LINE_MAX_A = 1.0
"""On a delta bus, a three-phase charger whose third line carries less than this draws between
its first two lines (a single-phase vehicle: there is no neutral)."""
_COLLINEAR_RAD = 1e-6


# --- per-site geometry (cached: the fast loop asks every poll) -------------------------------------
@dataclass(frozen=True)
class _Geometry:
    paths: dict[str, tuple[tuple[str, Mat3 | None], ...]]
    """Per circuit: each node from it up to the grid, with the matrix from the circuit's bus to that
    node's lines (``None``: no transformer on the way, the identity)."""
    units: dict[str, Vec3]
    """Per node: each line's voltage-to-neutral direction in the frame of its limit and meter."""
    bus_units: dict[str, Vec3]
    """Per node: each line's direction on its own bus (where its chargers are)."""
    collinear: dict[str, tuple[bool, bool, bool]]
    """Per node and line: every load that may sit on it sits at one angle."""
    delta_bus: frozenset[str]
    """The nodes whose own bus has no neutral (a delta service above any transformer)."""
    simple: bool
    """No transformer, no line-to-line draw, no delta bus: every current sits at its line's angle
    (a European wye site), and sums of magnitudes are the phasor sums' magnitudes."""


_KEY = ("controller.rules.line_loads", "geometry")


def _geometry(site: Site) -> _Geometry:
    hit = site.derived.get(_KEY)
    if isinstance(hit, _Geometry):
        return hit
    geo = _build(site)
    site.derived[_KEY] = geo
    return geo


def _units(service: Service) -> Vec3:
    a = [math.radians(x) for x in phasor.line_angles_deg(service)]
    return (cmath.rect(1.0, a[0]), cmath.rect(1.0, a[1]), cmath.rect(1.0, a[2]))


def _matmul(a: Mat3, b: Mat3) -> Mat3:
    rows = tuple(tuple(sum(a[r][k] * b[k][c] for k in range(3)) for c in range(3)) for r in range(3))
    return rows  # type: ignore[return-value]


def _apply(m: Mat3 | None, v: Vec3) -> Vec3:
    if m is None:
        return v
    return (
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    )


def frame_node(site: Site, node: str) -> str:
    """The node whose bus a node's limit and meter are on: its parent's for a transformer node."""
    return site.circuit(node).parent if site.transformer(node) is not None else node


def _build(site: Site) -> _Geometry:
    nodes = site.node_ids()
    matrices: dict[str, Mat3 | None] = {}
    for node in nodes:
        tr = site.transformer(node)
        if tr is None:
            matrices[node] = None
            continue
        tm = phasor.transformer_matrix(tr, phasor.node_service(site, site.circuit(node).parent))
        matrices[node] = tm
    paths: dict[str, tuple[tuple[str, Mat3 | None], ...]] = {}
    for start in nodes:
        acc: Mat3 | None = None
        out: list[tuple[str, Mat3 | None]] = []
        for node in site.ancestors(start):
            m = matrices[node]
            if m is not None:
                acc = m if acc is None else _matmul(m, acc)
            out.append((node, acc))
        paths[start] = tuple(out)
    units = {node: _units(phasor.node_service(site, frame_node(site, node))) for node in nodes}
    bus_units = {node: _units(phasor.node_service(site, node)) for node in nodes}
    angles: dict[tuple[str, int], list[float]] = {}
    for ch in site.chargers:
        modes: Iterable[int | None] = (None,) if ch.kind == "dc" else (None, 1, 2, 3)
        for used in modes:
            for node, vec in phasor.charger_phasors(site, ch, used).items():
                for ln in range(3):
                    if abs(vec[ln]) > 1e-12:
                        angles.setdefault((node, ln), []).append(cmath.phase(vec[ln]))
    collinear: dict[str, tuple[bool, bool, bool]] = {}
    for node in nodes:
        flags = []
        for ln in range(3):
            got = angles.get((node, ln), [])
            ref = got[0] if got else 0.0
            flags.append(all(abs(cmath.phase(cmath.rect(1.0, a - ref))) <= _COLLINEAR_RAD for a in got))
        collinear[node] = (flags[0], flags[1], flags[2])
    delta = frozenset(node for node in nodes if phasor.node_service(site, node) == "delta")
    simple = (
        not delta
        and all(m is None for m in matrices.values())
        and not any(ch.line_to_line for ch in site.chargers)
        and all(all(flags) for flags in collinear.values())
    )
    return _Geometry(paths, units, bus_units, collinear, delta, simple)


def line_units(site: Site, node: str) -> Vec3:
    """Direction of each line's voltage to neutral in the frame of the node's limit and meter (a
    transformer node's primary: its parent's bus)."""
    return _geometry(site).units[node]


def collinear_lines(site: Site, node: str) -> tuple[bool, bool, bool]:
    """Per line of ``node``: every load the site may put on it sits at one angle (then phasor and
    arithmetic sums agree, and ``meter − EV`` is a safe base; see the module)."""
    return _geometry(site).collinear[node]


def is_simple(site: Site) -> bool:
    """No transformer, no line-to-line draw, no delta bus: every current at its line's angle."""
    return _geometry(site).simple


def lift_abs(site: Site, node: str, amps: PhaseCurrents) -> PhaseCurrents:
    """Magnitudes on a node's own bus as its limit sees them, at most (a transformer node: each
    primary line bounded by the sum of the secondary lines it mixes)."""
    return phasor.primary_bound_a(site, node, amps)


# --- one charger ------------------------------------------------------------------------------------
def amps_per_kw(site: Site, charger: Charger) -> float:
    """A DC charger's line current per kW it delivers [A/kW]: its bus's voltage
    (:func:`controller.model.phasor.draw`), its efficiency and power factor."""
    eff = charger.efficiency if charger.efficiency > 0 else 1.0
    pf = charger.power_factor if charger.power_factor > 0 else 1.0
    return 1000.0 / (eff * pf * phasor.draw(site, charger).volts_v)


def _pair(geo: _Geometry, charger: Charger, grid_a: PhaseCurrents, phases_used: int | None) -> tuple[int, int] | None:
    """The two lines a charger's AC draw runs between, or None when it draws line to neutral."""
    if charger.line_to_line:
        return charger.grid_phases[0], charger.grid_phases[1]
    if charger.kind != "ac" or charger.circuit not in geo.delta_bus:
        return None
    wired = charger.grid_phases[: max(1, charger.phases)]
    if len(wired) < 2:
        return None
    if phases_used is not None and phases_used >= 1:
        single = phases_used < len(wired)
    else:
        single = len(wired) >= 3 and grid_a[wired[2]] < SINGLE_LINE_MAX_A
    return (wired[0], wired[1]) if single else None


def draw_vector(site: Site, charger: Charger, grid_a: PhaseCurrents, phases_used: int | None = None) -> Vec3:
    """A charger's line currents as phasors on its own bus, from its current per grid line [A].

    A line-to-line draw (a line-to-line charger; a single-phase vehicle on a three-phase charger on
    a delta bus) carries one current through both of its lines: the larger of the two readings
    (chargers report it on one line or on both), at the angle of that line-to-line voltage. Any
    other current sits at its line's angle (a balanced three-phase draw at unity power factor).
    """
    return _draw_vector(_geometry(site), charger, grid_a, phases_used)


def _draw_vector(geo: _Geometry, charger: Charger, grid_a: PhaseCurrents, phases_used: int | None) -> Vec3:
    units = geo.bus_units[charger.circuit]
    pair = _pair(geo, charger, grid_a, phases_used)
    if pair is None:
        return (units[0] * grid_a[0], units[1] * grid_a[1], units[2] * grid_a[2])
    p, q = pair
    amps = max(grid_a[p], grid_a[q])
    d = units[p] - units[q]
    u = d / abs(d)
    out = [0j, 0j, 0j]
    out[p] += u * amps
    out[q] -= u * amps
    for k in range(3):
        if k != p and k != q:
            out[k] += units[k] * grid_a[k]
    return (out[0], out[1], out[2])


def lifted(site: Site, charger: Charger, vec: Vec3) -> tuple[tuple[str, Vec3], ...]:
    """``vec`` (phasors on the charger's bus) at every node from its circuit up to the grid."""
    return _lifted(_geometry(site), charger, vec)


def _lifted(geo: _Geometry, charger: Charger, vec: Vec3) -> tuple[tuple[str, Vec3], ...]:
    return tuple((node, _apply(m, vec)) for node, m in geo.paths[charger.circuit])


def charger_lines(site: Site, charger: Charger, grid_a: PhaseCurrents, phases_used: int | None = None
                  ) -> tuple[tuple[str, Vec3], ...]:
    """:func:`lifted` of :func:`draw_vector`: the charger's line phasors at every node above it."""
    geo = _geometry(site)
    return _lifted(geo, charger, _draw_vector(geo, charger, grid_a, phases_used))


# --- every node -----------------------------------------------------------------------------------
@dataclass
class NodeEv:
    """The EV line currents at one node: their phasor sum and the sum of their magnitudes."""

    phasor: list[complex]
    arith: list[float]

    def magnitude(self, line: int, arithmetic: bool) -> float:
        return self.arith[line] if arithmetic else abs(self.phasor[line])


def ev_at_nodes(
    site: Site,
    charger_a: Mapping[str, PhaseCurrents],
    phases_used: Mapping[str, int | None] | None = None,
    stop_at: Collection[str] = (),
) -> dict[str, NodeEv]:
    """Every node's EV line currents from each charger's grid currents (chargers the site does not
    have are left out; every node is in the answer). A charger counts at the nodes from its
    circuit up to, not including, the first node in ``stop_at`` (a metered node: its meter sees it)."""
    geo = _geometry(site)
    used = phases_used or {}
    if geo.simple:  # every current at its line's angle: add magnitudes, turn them once per node
        sums = {node: [0.0, 0.0, 0.0] for node in site.node_ids()}
        for cid, amps in charger_a.items():
            try:
                ch = site.charger(cid)
            except KeyError:
                continue
            for node, _ in geo.paths[ch.circuit]:
                if node in stop_at:
                    break
                acc_a = sums[node]
                acc_a[0] += amps[0]
                acc_a[1] += amps[1]
                acc_a[2] += amps[2]
        return {
            node: NodeEv([a[ln] * geo.units[node][ln] for ln in range(3)], a) for node, a in sums.items()
        }
    out = {node: NodeEv([0j, 0j, 0j], [0.0, 0.0, 0.0]) for node in site.node_ids()}
    for cid, amps in charger_a.items():
        try:
            ch = site.charger(cid)
        except KeyError:
            continue
        for node, v in _lifted(geo, ch, _draw_vector(geo, ch, amps, used.get(cid))):
            if node in stop_at:
                break
            acc = out[node]
            for ln in range(3):
                acc.phasor[ln] += v[ln]
                acc.arith[ln] += abs(v[ln])
    return out


def node_line_a(site: Site, node: str, ev: NodeEv) -> PhaseCurrents:
    """A node's EV line currents as its limit sums them (phasor magnitude, or the arithmetic sum;
    the same on a line whose loads all sit at one angle, where the sum is taken, exactly)."""
    arithmetic = site.node_limit_sum(node) == "arithmetic"
    flags = _geometry(site).collinear[node]
    return (
        ev.magnitude(0, arithmetic or flags[0]),
        ev.magnitude(1, arithmetic or flags[1]),
        ev.magnitude(2, arithmetic or flags[2]),
    )
