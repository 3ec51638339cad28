"""The base load on a node's lines: an upper bound of what is not EV charging (pure).

What is not EV charging at a metered node — its *base* load — is only known in magnitude up to an
angle: the meter gives the line current's magnitude, the chargers' draws are phasors
(:mod:`controller.rules.line_loads`). :func:`base_line_a` bounds it from above, which is what the
planner needs (it plans ``|EV'| <= limit - margin - base``, so the line's current
``|B + EV'| <= |B| + |EV'|`` stays in the limit exactly when ``base >= |B|``):

* a node-line whose loads all sit at one angle (every line of a European wye site, a split-phase
  panel): ``meter − |EV|``. Not an upper bound of ``|B|`` in general, but safe there: with every
  future EV current ``E' = k·E`` on the same ray, ``|B + kE| − k|E|`` never grows with ``k``, so
  raising the EVs from what was measured keeps ``|B + E'| <= base + |E'|``; lowering them does not
  raise the line above what the meter read as long as the base draws power (its current within
  90° of the EVs'). This is the rule the controller always had: unchanged on such sites.
* a node-line whose loads span an arc (line-to-line chargers beside line-to-neutral loads, a
  delta-wye transformer's primary): the EV mix may turn, and ``meter − |EV|`` (a *lower* bound of
  ``|B|``, by the triangle inequality) can understate the base by a third of it (10 A of
  inductive base beside 20 A of 208 V chargers on L1-L2 reads as 6.5 A; the same 20 A moved to
  the L3-L1 chargers makes the line 30 A, not 26.5). A magnitude alone cannot bound ``|B|`` (a
  base opposite the EV current is consistent with any meter reading up to ``meter + |EV|``), so
  one assumption is made, the one real loads keep: the base current lies within
  :data:`BASE_MAX_ANGLE_DEG` of its line's voltage (a power factor of 0.71 or better, leading or
  lagging). The bound is the largest ``|B|`` consistent with the meter and that angle. With the
  meter's power on the line (a bus with a neutral: power per line / voltage = the line current's
  in-phase part) ``B`` is one of two phasors (the quadrature part's sign is unknown): the
  larger of those within the angle, or of both when neither is. Without it: the worst angle in
  the range consistent with the magnitude.

Every result is at least ``meter − |EV|`` and at least 0. The clamp is the safe side: a
negative difference (the chargers' readings lag the meter's, or a base exporting against them)
would hand the planner more room than the limit itself, room that lasts only as long as that
export or that stale reading. What the assumption leaves open (a base beyond the angle on a line
whose EV mix then turns; a meter whose power per line is wrong) is the fast loop's to catch: it
sheds on the meter's magnitude every poll, whatever the base.
"""

from __future__ import annotations

import cmath
import math

from controller.model import phasor
from controller.model.site import Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_loads import NodeEv, collinear_lines, frame_node, line_units

BASE_MAX_ANGLE_DEG = 45.0
"""The base current is assumed within this angle of its line's voltage (|power factor| >= 0.71)
when bounding it on a node-line whose loads span an arc of angles."""
_SWEEP_STEP_DEG = 1.0


def base_line_a(
    meter_a: float, ev: complex, *, collinear: bool, unit: complex = 1.0 + 0j, in_phase_a: float | None = None
) -> float:
    """An upper bound of the non-EV current's magnitude on one node-line (see the module).

    ``meter_a``: the line current's magnitude; ``ev``: the EV currents' phasor sum on that line;
    ``collinear``: every load that may sit on the line sits at one angle; ``unit``: the line
    voltage's direction; ``in_phase_a``: the line current's component in phase with that voltage
    (the meter's power on the line / its voltage), when known.
    """
    m = max(0.0, meter_a)
    floor = max(0.0, m - abs(ev))
    if collinear or abs(ev) <= 1e-9:
        return floor
    e = ev * unit.conjugate()  # in the line voltage's frame
    limit = math.radians(BASE_MAX_ANGLE_DEG) + 1e-9
    if in_phase_a is not None and math.isfinite(in_phase_a):
        mp = min(m, max(-m, in_phase_a))
        mq = math.sqrt(max(0.0, m * m - mp * mp))
        both = [complex(mp - e.real, sign * mq - e.imag) for sign in (1.0, -1.0)]
        inside = [b for b in both if abs(b) <= 1e-9 or abs(cmath.phase(b)) <= limit]
        return max(floor, *(abs(b) for b in (inside or both)))
    best = floor
    steps = round(2 * BASE_MAX_ANGLE_DEG / _SWEEP_STEP_DEG)
    for i in range(steps + 1):
        beta = math.radians(-BASE_MAX_ANGLE_DEG + i * _SWEEP_STEP_DEG)
        w = e * cmath.rect(1.0, -beta)  # the EV current against the base's direction
        disc = m * m - w.imag * w.imag
        if disc >= 0.0:
            best = max(best, -w.real + math.sqrt(disc))
    return best


def in_phase_a(
    site: Site,
    node: str,
    current_a: PhaseCurrents,
    power_w: PhaseCurrents | None,
    voltage_v: PhaseCurrents | None = None,
) -> PhaseCurrents | None:
    """Each line current's component in phase with its voltage to neutral [A] (signed: export is
    negative), from a meter's power and voltage per line; None without the power, or on a bus
    without a neutral (a delta service: a three-wire meter's per-line powers are not that)."""
    if power_w is None:
        return None
    frame = frame_node(site, node)
    if phasor.node_service(site, frame) == "delta":
        return None
    nominal = phasor.node_ln_voltage_v(site, frame)
    out = []
    for ln in range(3):
        v = voltage_v[ln] if voltage_v is not None and voltage_v[ln] > 0.5 * nominal else nominal
        p = power_w[ln]
        if not math.isfinite(p) or v <= 0:
            return None
        out.append(max(-current_a[ln], min(current_a[ln], p / v)))
    return (out[0], out[1], out[2])


LAG_SAMPLES = (0.0, 0.25, 0.5, 0.75, 1.0)


def base_at(
    site: Site, node: str, meter_a: PhaseCurrents, ev: NodeEv, in_phase: PhaseCurrents | None = None,
    ev_low: NodeEv | None = None,
) -> PhaseCurrents:
    """A metered node's base load per line: :func:`base_line_a` on each of its lines.

    ``ev_low``: the EV currents as last reported, where ``ev`` counts sessions whose limit just
    went up at their new limit (their draw is somewhere between the two until a newer reading
    comes). On a line whose loads sit at one angle ``meter − EV`` is then taken at the larger EV,
    the lower of the two possible bases; on a line of several angles the same rule is the least
    bound along the way from one EV to the other — taking the larger EV alone would read the part
    of it not drawn yet as a base load of that size in the opposite direction, held for the base
    window (measured on a delta-wye primary: 0 → 14.5 A after each raise)."""
    flags = collinear_lines(site, node)
    units = line_units(site, node)
    out = []
    for ln in range(3):
        if flags[ln]:
            out.append(max(0.0, meter_a[ln] - ev.arith[ln]))
            continue
        phase_a = None if in_phase is None else in_phase[ln]
        high = ev.phasor[ln]
        low = high if ev_low is None else ev_low.phasor[ln]
        out.append(min(
            base_line_a(meter_a[ln], low + t * (high - low), collinear=False, unit=units[ln], in_phase_a=phase_a)
            for t in (LAG_SAMPLES if low != high else (1.0,))
        ))
    return (out[0], out[1], out[2])

