"""Line currents as phasors: who loads which line of which node, at what angle. Pure, stdlib only.

A breaker, a cable and a transformer see the magnitude of each line's current, which is the
*phasor* sum of the loads behind it. On a European wye site of line-to-neutral chargers every load
on a line sits at that line's angle, so the phasor sum equals the arithmetic one. A charger between
two lines (208/240 V) draws its current at the angle of that line-to-line voltage — 30° off each
of its lines — and a delta-wye transformer's primary line currents are differences of secondary
ones: there the arithmetic sum overstates the load (wasting capacity) or, for a limit on a
transformer's primary, cannot express it at all.

Conventions: lines are 0, 1, 2 (L1, L2, L3); angles in degrees, positive sequence L1 0°, L2 −120°,
L3 +120° (split-phase: L1 0°, L2 180°). Every node has a *frame*: the grid's, or below a
transformer its secondary's. A charger's current is "per A of its line current" (per A per phase
for a three-phase charger); a three-phase charger's draw is taken as balanced and in phase with
the voltage (power factor close to 1, as EV chargers are).
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.model.site import GRID_ID, PHASES, Charger, Service, Site, Transformer

Vec3 = tuple[complex, complex, complex]
ZERO3: Vec3 = (0j, 0j, 0j)
SQRT3 = math.sqrt(3.0)
FACET_STEP_DEG = 15.0
"""Angular step of the inner polygon that keeps a phasor limit linear: a node-line whose loads
span an arc of w degrees gets ceil(w / step) rows, and gives up at most 1 − cos(step/2) of its
limit (0.86 % at 15°). Loads at one angle need one exact row (the arithmetic case)."""


def line_angles_deg(service: Service) -> tuple[float, float, float]:
    """Angle of each line's voltage to neutral in a frame of this service (L3 unused on split-phase)."""
    return (0.0, 180.0, 0.0) if service == "split-phase" else (0.0, -120.0, 120.0)


def _unit(deg: float) -> complex:
    return cmath.rect(1.0, math.radians(deg))


def _line_voltage(service: Service, p: int) -> complex:
    return _unit(line_angles_deg(service)[p])


def node_service(site: Site, node_id: str) -> Service:
    """The supply system of a node's bus: the site's, or below a transformer its secondary's."""
    at = node_id
    while at != GRID_ID:
        circ = site.circuit(at)
        if circ.transformer is not None:
            return "split-phase" if circ.transformer.connection == "split-phase" else "wye"
        at = circ.parent
    return site.site.service


def node_ln_voltage_v(site: Site, node_id: str) -> float:
    """Line-to-neutral voltage of a node's bus (for a delta service: line-to-line / √3)."""
    if node_id == GRID_ID:
        v = site.site.voltage_v
        return v / SQRT3 if site.site.service == "delta" else v
    circ = site.circuit(node_id)
    parent_v = node_ln_voltage_v(site, circ.parent)
    tr = circ.transformer
    if tr is None:
        return parent_v
    ratio = tr.ratio if tr.ratio > 0 else 1.0
    if tr.connection == "split-phase":
        parent_ll = parent_v * (2.0 if node_service(site, circ.parent) == "split-phase" else SQRT3)
        return parent_ll / ratio / 2.0
    return parent_v / ratio


@dataclass(frozen=True)
class Draw:
    """How a charger, with a vehicle on ``phases_used`` of its phases, loads its bus."""

    lines: tuple[int, ...]
    line_to_line: bool
    volts_v: float
    """Power per A of line current [W/A]: line-to-neutral voltage × lines, or the line-to-line voltage."""


def draw(site: Site, charger: Charger, phases_used: int | None = None) -> Draw:
    """The lines a charger's session draws from and the power per A (AC: per A per phase).

    A DC charger draws from every wired line. An AC vehicle on fewer phases than the charger has
    draws from the charger's first ones; on a delta service (no neutral) a single-phase vehicle on
    a three-phase charger draws between the charger's first two lines. Once per site, charger and
    phase count.
    """
    key = ("draw", charger, phases_used)
    memo = site.derived
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = _draw(site, charger, phases_used)
    return hit  # type: ignore[return-value]


def _draw(site: Site, charger: Charger, phases_used: int | None) -> Draw:
    service = node_service(site, charger.circuit)
    ln_v = node_ln_voltage_v(site, charger.circuit)
    wired = charger.grid_phases if charger.line_to_line else charger.grid_phases[: max(1, charger.phases)]
    wired = wired or (0,)
    if charger.line_to_line:
        return Draw(wired, True, ln_v * _ll_factor(service))
    if charger.kind == "ac" and phases_used is not None and 1 <= phases_used < len(wired):
        if service == "delta":
            return Draw(wired[:2], True, ln_v * SQRT3)
        wired = wired[:phases_used]
    return Draw(wired, False, ln_v * len(wired))


def _ll_factor(service: Service) -> float:
    return 2.0 if service == "split-phase" else SQRT3


def pair_signature(site: Site, circuit_id: str, p: int, q: int) -> Vec3:
    """Line phasors per A of a current drawn between lines ``p`` and ``q`` of a circuit's bus."""
    service = node_service(site, circuit_id)
    v = _line_voltage(service, p) - _line_voltage(service, q)
    u = v / abs(v)
    out = [0j, 0j, 0j]
    out[p] += u
    out[q] -= u
    return (out[0], out[1], out[2])


def signature(site: Site, charger: Charger, phases_used: int | None = None) -> Vec3:
    """Line current phasors per A of the charger's line current, in the frame of its own bus."""
    d = draw(site, charger, phases_used)
    if d.line_to_line:
        return pair_signature(site, charger.circuit, d.lines[0], d.lines[1])
    service = node_service(site, charger.circuit)
    out = [0j, 0j, 0j]
    for p in d.lines:
        out[p] += _line_voltage(service, p)
    return (out[0], out[1], out[2])


def transformer_matrix(tr: Transformer, parent_service: Service) -> tuple[Vec3, Vec3, Vec3]:
    """Rows of M with primary line currents = M · secondary line currents, in the parent's frame.

    Chosen so that a balanced, unity-power-factor secondary load draws a balanced primary current
    in phase with the primary voltages (the transformer's own 30° shift is absorbed in the frame).
    """
    ratio = tr.ratio if tr.ratio > 0 else 1.0
    if tr.connection == "wye-wye" and tr.primary_neutral:  # YNyn: I / ratio
        w = complex(1.0 / ratio)
        return ((w, 0j, 0j), (0j, w, 0j), (0j, 0j, w))
    if tr.connection == "wye-wye":  # Yyn, floating primary star: (I − I0) / ratio, I0 = (Ia+Ib+Ic)/3
        d, o = complex(2.0 / (3.0 * ratio)), complex(-1.0 / (3.0 * ratio))
        return ((d, o, o), (o, d, o), (o, o, d))
    if tr.connection == "delta-wye" and tr.vector_group == "Dyn11":  # A winding on leg a: I_A = I_a − I_c
        k = _unit(30.0) / (SQRT3 * ratio)
        return ((k, 0j, -k), (-k, k, 0j), (0j, -k, k))
    if tr.connection == "delta-wye":  # Dyn1: the A–C winding on leg a: I_A = I_a − I_b
        k = _unit(-30.0) / (SQRT3 * ratio)
        return ((k, -k, 0j), (0j, k, -k), (-k, 0j, k))
    # split-phase: winding across parent lines p, q; secondary L1 at the angle of V_pq, L2 opposite
    p, q = (PHASES.index(x) for x in tr.primary.split("-"))
    v = _line_voltage(parent_service, p) - _line_voltage(parent_service, q)
    s = (v / abs(v)) / (2.0 * ratio)
    rows = [[0j, 0j, 0j] for _ in range(3)]
    rows[p][0], rows[p][1] = s, -s
    rows[q][0], rows[q][1] = -s, s
    return (
        (rows[0][0], rows[0][1], rows[0][2]),
        (rows[1][0], rows[1][1], rows[1][2]),
        (rows[2][0], rows[2][1], rows[2][2]),
    )


def _apply(m: tuple[Vec3, Vec3, Vec3], v: Vec3) -> Vec3:
    return (
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    )


def primary_bound_a(site: Site, node_id: str, amps: tuple[float, float, float]) -> tuple[float, float, float]:
    """Line-current magnitudes on ``node_id``'s secondary bus as the node's limit (its primary, if
    it has a transformer) carries them, at most: each primary line is bounded by the sum of the
    magnitudes of the secondary lines it mixes. Without a transformer: ``amps`` as they are."""
    tr = site.transformer(node_id)
    if tr is None:
        return amps
    key = ("primary_abs", node_id)
    m = site.derived.get(key)
    if m is None:
        full = transformer_matrix(tr, node_service(site, site.circuit(node_id).parent))
        m = site.derived[key] = tuple(tuple(abs(x) for x in row) for row in full)
    rows: tuple[tuple[float, float, float], ...] = m  # type: ignore[assignment]
    a, b, c = (row[0] * amps[0] + row[1] * amps[1] + row[2] * amps[2] for row in rows)
    return (a, b, c)


def lift(site: Site, circuit_id: str, sig: Vec3) -> dict[str, Vec3]:
    """Line phasors at every node from ``circuit_id`` up to the grid, for phasors ``sig`` on the
    bus of ``circuit_id`` (through each transformer on the way; a transformer node's own limit is
    on its primary)."""
    out: dict[str, Vec3] = {}
    v = sig
    for node in site.ancestors(circuit_id):
        tr = site.transformer(node)
        if tr is not None:
            v = _apply(transformer_matrix(tr, node_service(site, site.circuit(node).parent)), v)
        out[node] = v
    return out


def charger_phasors(site: Site, charger: Charger, phases_used: int | None = None) -> dict[str, Vec3]:
    """Per A of the charger's line current: the line phasors it adds at each node above it.
    Computed once per site, charger and phase count (do not change the answer)."""
    key = ("charger_phasors", charger, phases_used)
    memo = site.derived
    hit = memo.get(key)
    if hit is None:
        hit = memo[key] = lift(site, charger.circuit, signature(site, charger, phases_used))
    return hit  # type: ignore[return-value]


def node_line_currents_a(
    site: Site, loads: Iterable[tuple[Charger, int | None, float]]
) -> dict[str, tuple[float, float, float]]:
    """Magnitude of each node's line currents [A] for ``(charger, phases used, A per line)`` loads.

    Every node of the tree is in the answer (0 A where nothing loads it).
    """
    sums: dict[str, list[complex]] = {node: [0j, 0j, 0j] for node in site.node_ids()}
    cache: dict[tuple[str, int | None], dict[str, Vec3]] = {}
    for ch, used, amps in loads:
        key = (ch.id, used)
        per = cache.get(key)
        if per is None:
            per = cache[key] = charger_phasors(site, ch, used)
        for node, vec in per.items():
            acc = sums[node]
            for ln in range(3):
                acc[ln] += vec[ln] * amps
    return {node: (abs(v[0]), abs(v[1]), abs(v[2])) for node, v in sums.items()}


def arithmetic_line_currents_a(
    site: Site, loads: Iterable[tuple[Charger, int | None, float]]
) -> dict[str, tuple[float, float, float]]:
    """As :func:`node_line_currents_a` but summing magnitudes (what ``limit_sum: arithmetic`` limits)."""
    sums: dict[str, list[float]] = {node: [0.0, 0.0, 0.0] for node in site.node_ids()}
    for ch, used, amps in loads:
        for node, vec in charger_phasors(site, ch, used).items():
            for ln in range(3):
                sums[node][ln] += abs(vec[ln]) * amps
    return {node: (v[0], v[1], v[2]) for node, v in sums.items()}


@dataclass(frozen=True)
class Facet:
    """One row of the inner polygon: ``sum max(0, Re(c · conj(direction))) x <= scale · room``."""

    direction: complex
    scale: float


def facets(coefs: Sequence[complex], step_deg: float | None = None) -> tuple[Facet, ...]:
    """The rows that keep ``|sum c_s x_s| <= room`` (every ``x_s >= 0``) inside the circle.

    The sum lies in the arc spanned by the coefficients' angles. Its chords from vertex to vertex
    on the circle (at most ``step_deg`` apart) bound a polygon inside the disk; with all
    coefficients at one angle that is one exact row. An arc of 180° or more takes the whole
    polygon. A coefficient pointing away from a chord's direction is counted as 0 there (never
    negative), which keeps each row monotone in every session and only ever more conservative.
    """
    raw = sorted({round(math.degrees(cmath.phase(c)) % 360.0, 9) % 360.0 for c in coefs if abs(c) > 1e-12})
    angles = [a for i, a in enumerate(raw) if i == 0 or a - raw[i - 1] > 1e-7]
    if len(angles) > 1 and angles[0] + 360.0 - angles[-1] <= 1e-7:
        angles.pop()  # 359.99999999° is 0°
    if not angles:
        return ()
    step = min(max(FACET_STEP_DEG if step_deg is None else step_deg, 0.5), 90.0)
    gaps = [(angles[(i + 1) % len(angles)] - a) % 360.0 for i, a in enumerate(angles)]
    if len(angles) == 1:
        gaps = [360.0]
    widest = max(range(len(gaps)), key=lambda i: gaps[i])
    width = 360.0 - gaps[widest]
    if width <= 1e-6:
        return (Facet(_unit(angles[0]), 1.0),)
    if width >= 180.0:
        count = max(3, math.ceil(360.0 / step))
        half = 180.0 / count
        return tuple(Facet(_unit(k * 360.0 / count), math.cos(math.radians(half))) for k in range(count))
    start = angles[(widest + 1) % len(angles)]
    count = max(1, math.ceil(width / step - 1e-9))
    chord = width / count
    scale = math.cos(math.radians(chord / 2.0))
    return tuple(Facet(_unit(start + (k + 0.5) * chord), scale) for k in range(count))


def facet_coefficient(c: complex, facet: Facet, spread_rad: float = 0.0) -> float:
    """The largest projection on the facet's direction of ``c`` turned by up to ±``spread_rad``
    (a load whose current may sit up to acos(power factor) off its voltage), never negative."""
    if spread_rad <= 0.0:
        return max(0.0, (c * facet.direction.conjugate()).real)
    off = abs(cmath.phase(c * facet.direction.conjugate()))
    return abs(c) * max(0.0, math.cos(max(0.0, off - spread_rad)))


def spread_ends(c: complex, spread_rad: float) -> tuple[complex, ...]:
    """``c`` and its two extreme turns: what the facets' arc must hold for a load of that spread."""
    if spread_rad <= 0.0:
        return (c,)
    return (c * cmath.rect(1.0, -spread_rad), c, c * cmath.rect(1.0, spread_rad))


def describe_node_limit(site: Site, node_id: str) -> str:
    """One line for ``check-config``: what a node's limit applies to, and how it is summed."""
    service = node_service(site, node_id)
    tr = site.transformer(node_id)
    how = "phasor sum" if site.node_limit_sum(node_id) == "phasor" else "arithmetic sum"
    where = "line currents"
    if tr is not None:
        extra = (
            f" across {tr.primary}" if tr.connection == "split-phase"
            else f" {tr.vector_group}" if tr.connection == "delta-wye" else ""
        )
        where = f"primary line currents of a {tr.connection} transformer{extra} (ratio {tr.ratio:g})"
        service_text = f"secondary {service} {node_ln_voltage_v(site, node_id):.0f} V to neutral"
    else:
        service_text = f"{service} {node_ln_voltage_v(site, node_id):.0f} V to neutral"
    return f"{where}, {how}; bus: {service_text}"


def constraint_phasors(site: Site, charger_ids: Mapping[str, Charger]) -> dict[str, dict[str, complex]]:
    """Per explicit constraint: its coefficient per charger id (only chargers the site has)."""
    return {
        c.id: {cid: coef for cid, coef in c.terms if cid in charger_ids} for c in site.constraints
    }
