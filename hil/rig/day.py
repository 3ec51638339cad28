"""What the rig plays: base load over time and vehicle visits, as plain data (times in seconds
after the rig's ``start()``).

* Base load: ``BaseStep(t_s, node, a)`` sets the node's OWN non-EV load (not its children's) on
  grid L1..L3 [A] from ``t_s`` until the node's next step — piecewise constant, 0 before the first.
* Visits: a vehicle arrives at a charger connector at ``arrive_s``, plugs in with ``id_tag`` at
  ``soc_pct``, and leaves at ``depart_s``; it needs ``need_kwh`` by then (the ground truth the
  summary measures against). The EV model is :class:`hil.ev.EvParams`; on a DC charger its AC
  fields are replaced by ``ev_max_kw`` (see :func:`hil.rig.plant.sim_ev`). ``announce``: what the
  vehicle tells a 2.0.1 charger (NotifyEVChargingNeeds: departure and energy); 1.6 chargers cannot
  pass it on.
* ``versions``: which chargers speak OCPP 2.0.1 (the rest 1.6J).

:func:`demo_day` builds the compressed demo day for any site (tuned for ``config/demo-site.yaml``).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.model.phasor import draw
from controller.model.site import GRID_ID, Charger, Site, Vehicle
from hil.ev import EvParams
from hil.rig.plant import ZERO, Phase3, max_power_kw, meter_nodes, sim_voltage_v

VERSION_16 = "1.6"
VERSION_201 = "2.0.1"


@dataclass(frozen=True)
class BaseStep:
    """From ``t_s`` [s] on, ``node``'s own non-EV load is ``a`` [A on grid L1, L2, L3]."""

    t_s: float
    node: str
    a: Phase3
    note: str = ""


@dataclass(frozen=True)
class Announce:
    """What the EV announces over ISO 15118 → OCPP 2.0.1 NotifyEVChargingNeeds."""

    departure_s: float
    """Departure [s after the rig's start]."""
    energy_kwh: float
    """Energy it asks for [kWh]."""


@dataclass(frozen=True)
class Visit:
    """One vehicle's stay at one connector."""

    charger_id: str
    arrive_s: float
    depart_s: float
    ev: EvParams
    need_kwh: float
    """Energy it needs by ``depart_s`` [kWh] (what 'met' is judged against)."""
    soc_pct: float = 30.0
    id_tag: str = "TAG"
    connector: int = 1
    ev_max_kw: float | None = None
    """DC chargers only: the battery's acceptance [kW] (default: the charger's ``max_kw``)."""
    vehicle_id: str | None = None
    """The site file's vehicle whose tag it carries (display only)."""
    announce: Announce | None = None

    @property
    def label(self) -> str:
        who = self.vehicle_id or self.id_tag
        return f"{who}@{self.charger_id}" + (f"/{self.connector}" if self.connector != 1 else "")


@dataclass(frozen=True)
class RigDay:
    """A scenario for the rig. ``duration_s`` is how long it lasts [s]."""

    duration_s: float
    base: tuple[BaseStep, ...] = ()
    visits: tuple[Visit, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    """Charger id → ``"1.6"`` or ``"2.0.1"``; chargers left out speak 1.6."""

    def version(self, charger_id: str) -> str:
        return self.versions.get(charger_id, VERSION_16)

    def steps_at(self, t_s: float) -> dict[str, BaseStep]:
        """Node → the step in force at ``t_s`` (its last at or before ``t_s``); nodes without one left out."""
        out: dict[str, BaseStep] = {}
        for step in self.base:
            if step.t_s <= t_s and (step.node not in out or step.t_s >= out[step.node].t_s):
                out[step.node] = step
        return out

    def base_at(self, t_s: float) -> dict[str, Phase3]:
        """Node → own base load [A] at ``t_s`` (nodes without a step yet are left out: 0)."""
        return {node: step.a for node, step in self.steps_at(t_s).items()}

    def validate(self, site: Site) -> None:
        """Raise ``ValueError`` for unknown nodes/chargers/connectors or overlapping visits."""
        nodes = set(site.node_ids())
        problems = [f"base step at {s.t_s:g} s: unknown node {s.node!r}" for s in self.base if s.node not in nodes]
        chargers = {ch.id: ch for ch in site.chargers}
        by_connector: dict[tuple[str, int], list[Visit]] = {}
        for v in self.visits:
            ch = chargers.get(v.charger_id)
            if ch is None:
                problems.append(f"visit {v.label}: unknown charger {v.charger_id!r}")
                continue
            if not 1 <= v.connector <= ch.connectors:
                problems.append(f"visit {v.label}: charger has connectors 1..{ch.connectors}")
            if v.depart_s <= v.arrive_s:
                problems.append(f"visit {v.label}: departs ({v.depart_s:g} s) before it arrives ({v.arrive_s:g} s)")
            by_connector.setdefault((v.charger_id, v.connector), []).append(v)
        for (cid, conn), visits in by_connector.items():
            visits.sort(key=lambda v: v.arrive_s)
            for a, b in itertools.pairwise(visits):
                if b.arrive_s < a.depart_s:
                    problems.append(f"{cid} connector {conn}: visits {a.label} and {b.label} overlap")
        if problems:
            raise ValueError("; ".join(problems))


def max_energy_kwh(site: Site, visit: Visit) -> float:
    """What the visit could take at full power for its whole stay [kWh], ignoring every site limit."""
    charger = site.charger(visit.charger_id)
    kw = max_power_kw(site, charger, visit.ev, visit.ev_max_kw)
    room = visit.ev.battery_kwh * (100.0 - visit.soc_pct) / 100.0
    return min(room, kw * (visit.depart_s - visit.arrive_s) / 3600.0)


# --- the demo day --------------------------------------------------------------------------------

GRID_BASE_LOW = 0.10
"""Grid's own base at the start and end of the day, as a share of the grid limit."""
GRID_BASE_HIGH = 0.20
"""…and at its midday peak."""
CIRCUIT_BASE = 0.04
"""Each circuit's own base, as a share of its limit."""
STEP_AT, STEP_UNTIL = 0.45, 0.72
"""The feeder step, as shares of the window."""
STEP_TO = 0.5
"""The stepped node's base (its whole subtree's) rises to this share of its limit."""
NEED_SHARE = (0.25, 0.6)
"""Needs: this share of what each visit could take alone at full power…"""
IMPOSSIBLE_SHARE = 1.25
"""…except one visit, which needs more than its charger can give in its stay."""


def _grid_profile(site: Site, t_s: float, duration_s: float) -> Phase3:
    shape = math.sin(math.pi * min(1.0, max(0.0, t_s / duration_s)))
    level = site.grid.limit_a * (GRID_BASE_LOW + (GRID_BASE_HIGH - GRID_BASE_LOW) * shape)
    return (round(level, 1), round(level * 0.9, 1), round(level * 0.8, 1))


def step_node(site: Site) -> str:
    """Where the demo's overload step goes: the first metered circuit, else the grid."""
    metered = set(meter_nodes(site).values()) - {GRID_ID}
    for c in site.walk_circuits():
        if c.id in metered:
            return c.id
    return GRID_ID


def _demo_base(site: Site, duration_s: float) -> tuple[BaseStep, ...]:
    steps_n = 12
    times = [duration_s * k / steps_n for k in range(steps_n)]
    own: dict[str, list[tuple[float, Phase3]]] = {GRID_ID: []}
    for t in times:  # sampled mid-interval, so the first and last steps are equal
        own[GRID_ID].append((t, _grid_profile(site, t + duration_s / steps_n / 2, duration_s)))
    for c in site.circuits:
        lim = c.limit_a * CIRCUIT_BASE
        own[c.id] = [(0.0, (round(lim, 1), round(lim * 0.8, 1), round(lim * 0.9, 1)))]

    node = step_node(site)
    t_on, t_off = round(duration_s * STEP_AT, 1), round(duration_s * STEP_UNTIL, 1)

    def own_at(n: str, t: float) -> Phase3:
        current = ZERO
        for at, a in own[n]:
            if at <= t:
                current = a
        return current

    subtree = [n for n in site.node_ids() if node in site.ancestors(n)]
    base_then = max(sum(own_at(n, t_on)[p] for n in subtree) for p in range(3))
    step_a = round(max(0.0, STEP_TO * site.node_limit_a(node) - base_then), 1)
    out: list[BaseStep] = []
    for n, points in own.items():
        if n != node:
            out += [BaseStep(t, n, a) for t, a in points]
            continue
        changes = sorted({*(t for t, _ in points), t_on, t_off})
        for t in changes:
            a = own_at(n, t)
            note = ""
            if t_on <= t < t_off:
                a = (round(a[0] + step_a, 1), round(a[1] + step_a, 1), round(a[2] + step_a, 1))
                note = f"overload step +{step_a:g} A on {node}" if t == t_on else note
            elif t == t_off:
                note = f"overload step on {node} removed"
            out.append(BaseStep(t, n, a, note))
    return tuple(sorted(out, key=lambda s: (s.t_s, s.node)))


def _tagged_vehicles(site: Site) -> list[Vehicle]:
    return [v for v in site.vehicles if v.id_tags]


def _ac_ev(site: Site, charger: Charger, vehicle: Vehicle | None, rng: random.Random, one_phase: bool) -> EvParams:
    """An AC car for ``charger``: a registered vehicle's maximum power in A at the charger's own
    W per A (a 208 V line-to-line charger: 208 W per A), at the charger's voltage."""
    phases = 1 if one_phase else 3
    used = min(phases, max(1, charger.phases))
    v = sim_voltage_v(site, charger)
    if vehicle is not None and vehicle.max_a is not None:
        max_a = vehicle.max_a
    elif vehicle is not None and vehicle.max_kw is not None:
        max_a = vehicle.max_kw * 1000.0 / draw(site, charger, used).volts_v
    else:
        max_a = rng.choice((16.0, 32.0, 32.0))
    battery = vehicle.battery_kwh if vehicle is not None and vehicle.battery_kwh else rng.choice((60.0, 75.0, 90.0))
    return EvParams(
        max_a=round(min(max_a, 32.0), 1),
        phases=phases,
        battery_kwh=battery,
        voltage_v=v,
        reaction_s=round(rng.uniform(1.0, 3.0), 1),
    )


def _assign(site: Site, chargers: list[Charger], rng: random.Random) -> dict[str, Vehicle]:
    """Charger id → the site vehicle whose tag it gets: the most powerful vehicle above AC power
    on each DC charger, the others on AC chargers in random order."""
    vehicles = _tagged_vehicles(site)
    out: dict[str, Vehicle] = {}
    dc = [ch for ch in chargers if ch.kind == "dc"]
    fast = sorted((v for v in vehicles if (v.max_kw or 0.0) > 22.0), key=lambda v: -(v.max_kw or 0.0))
    for ch, v in zip(dc, fast, strict=False):
        out[ch.id] = v
    rest = [v for v in vehicles if v not in out.values()]
    ac = [ch for ch in chargers if ch.kind == "ac"]
    rng.shuffle(ac)
    for ch, v in zip(ac, rest, strict=False):
        out[ch.id] = v
    return out


def demo_day(site: Site, duration_s: float = 180.0, *, seed: int = 7) -> RigDay:
    """A compressed depot day in ``duration_s`` [s]: deterministic for a given site and ``seed``.

    Base load on the grid rises to a midday peak and falls (12 steps, unbalanced phases); every
    circuit carries a small own base; at 45 % of the window the first metered feeder (else the grid)
    gets a step that lifts its base to 50 % of its limit — with the EVs drawing it would exceed its
    limit until the controller sheds — removed at 72 %. One vehicle per charger connector 1
    arrives during the first third and leaves during the last; each needs 25–60 % of what it could
    take alone at full power during its stay, one needs 125 % (not everything can be met). Vehicles
    carry the site's ``vehicles[].id_tags`` where there are any (a fast vehicle on a DC charger),
    the rest random tags; one 1-phase EV sits on a 3-phase charger. Every third charger speaks
    2.0.1 and its vehicle announces departure and need; every visit carries the announcement.
    """
    rng = random.Random(seed)
    chargers = list(site.chargers)
    versions = {ch.id: (VERSION_201 if i % 3 == 2 else VERSION_16) for i, ch in enumerate(chargers)}
    assigned = _assign(site, chargers, rng)
    known_tags = {t for v in site.vehicles for t in v.id_tags}
    n = len(chargers)
    arrive_order = list(range(n))
    depart_order = list(range(n))
    rng.shuffle(arrive_order)
    rng.shuffle(depart_order)
    one_phase_done = False
    impossible = rng.randrange(n) if n else -1
    while n and chargers[impossible].kind == "dc" and any(ch.kind == "ac" for ch in chargers):
        impossible = rng.randrange(n)
    visits: list[Visit] = []
    for i, ch in enumerate(chargers):
        spread = arrive_order[i] / max(1, n - 1)
        arrive = round(duration_s * (0.02 + 0.30 * spread + rng.uniform(0.0, 0.01)), 1)
        spread = depart_order[i] / max(1, n - 1)
        depart = round(duration_s * (0.67 + 0.30 * spread + rng.uniform(0.0, 0.01)), 1)
        vehicle = assigned.get(ch.id)
        tag = vehicle.id_tags[0] if vehicle is not None else _random_tag(rng, known_tags)
        soc = round(rng.uniform(20.0, 60.0), 1)
        ev_max_kw: float | None = None
        if ch.kind == "dc":
            battery = vehicle.battery_kwh if vehicle is not None and vehicle.battery_kwh else 200.0
            ev = EvParams(battery_kwh=battery, reaction_s=round(rng.uniform(1.0, 3.0), 1))
            ev_max_kw = vehicle.max_kw if vehicle is not None and vehicle.max_kw else ch.max_kw
        else:
            one_phase = not one_phase_done and ch.phases == 3 and vehicle is None
            one_phase_done = one_phase_done or one_phase
            ev = _ac_ev(site, ch, vehicle, rng, one_phase)
        draft = Visit(ch.id, arrive, depart, ev, 0.0, soc, tag, 1, ev_max_kw, vehicle.id if vehicle else None)
        share = IMPOSSIBLE_SHARE if i == impossible else rng.uniform(*NEED_SHARE)
        need = round(max(0.01, share * max_energy_kwh(site, draft)), 2)
        visits.append(
            Visit(
                ch.id,
                arrive,
                depart,
                ev,
                need,
                soc,
                tag,
                1,
                ev_max_kw,
                draft.vehicle_id,
                Announce(depart, need),
            )
        )
    visits.sort(key=lambda v: v.arrive_s)
    day = RigDay(duration_s, _demo_base(site, duration_s), tuple(visits), versions)
    day.validate(site)
    return day


def _random_tag(rng: random.Random, taken: set[str]) -> str:
    while True:
        tag = f"{rng.getrandbits(32):08X}"
        if tag not in taken:
            taken.add(tag)
            return tag


# --- outcome ---------------------------------------------------------------------------------------

MET_TOLERANCE = 0.01
"""A need counts as met when at least 99 % of it was delivered (meter-value and rounding slack)."""


@dataclass
class VisitRecord:
    """How one visit is going (the rig updates it)."""

    visit: Visit
    arrived: bool = False
    plugged: bool = False
    """A transaction was started."""
    plugged_at_s: float | None = None
    departed: bool = False
    delivered_kwh: float = 0.0
    """Energy into the battery so far [kWh] (final once departed)."""
    error: str | None = None
    """The last reason a plug-in failed, if any did."""

    @property
    def met(self) -> bool:
        return self.delivered_kwh >= self.visit.need_kwh * (1.0 - MET_TOLERANCE)


@dataclass(frozen=True)
class RigSummary:
    """The ground truth of a run so far. Energies over every visit that has arrived; departures
    judged at each vehicle's ``depart_s`` (met: :data:`MET_TOLERANCE`)."""

    elapsed_s: float
    energy_delivered_kwh: float
    energy_requested_kwh: float
    departures_met: int
    departures_total: int
    max_utilisation: Mapping[str, float]
    """Node → highest phase load / rated limit seen."""
    exceeded_s: Mapping[str, Phase3]
    """Node → seconds above the rated limit on L1, L2, L3."""
    max_load_a: Mapping[str, Phase3]
    """Node → highest load seen on L1, L2, L3 [A]."""
    visits: tuple[VisitRecord, ...]

    @property
    def exceeded_total_s(self) -> float:
        """The longest exceedance of any node phase [s]."""
        return max((max(v) for v in self.exceeded_s.values()), default=0.0)

    def lines(self) -> list[str]:
        """A human-readable report."""
        out = [
            f"after {self.elapsed_s:.1f} s: delivered {self.energy_delivered_kwh:.2f} of "
            f"{self.energy_requested_kwh:.2f} kWh requested; departures met {self.departures_met}/"
            f"{self.departures_total}",
        ]
        for node, util in self.max_utilisation.items():
            ex = self.exceeded_s[node]
            peak = self.max_load_a[node]
            out.append(
                f"  {node:<12} peak {peak[0]:6.1f}/{peak[1]:6.1f}/{peak[2]:6.1f} A  max {util * 100:5.1f} %  "
                f"above rating {ex[0]:.1f}/{ex[1]:.1f}/{ex[2]:.1f} s"
            )
        for r in self.visits:
            if r.departed:
                state = "met" if r.met else "MISSED" if r.plugged else "MISSED (never plugged in)"
            else:
                state = "charging" if r.plugged else "waiting" if r.arrived else "due"
            out.append(
                f"  {r.visit.label:<20} {r.delivered_kwh:5.2f} / {r.visit.need_kwh:5.2f} kWh  "
                f"{r.visit.arrive_s:6.1f}–{r.visit.depart_s:6.1f} s  {state}"
            )
        return out


def summarise(
    elapsed_s: float,
    records: Sequence[VisitRecord],
    max_utilisation: Mapping[str, float],
    exceeded_s: Mapping[str, Phase3],
    max_load_a: Mapping[str, Phase3],
) -> RigSummary:
    arrived = [r for r in records if r.arrived]
    departed = [r for r in records if r.departed]
    return RigSummary(
        elapsed_s=elapsed_s,
        energy_delivered_kwh=sum(r.delivered_kwh for r in arrived),
        energy_requested_kwh=sum(r.visit.need_kwh for r in arrived),
        departures_met=sum(1 for r in departed if r.met),
        departures_total=len(departed),
        max_utilisation=dict(max_utilisation),
        exceeded_s=dict(exceeded_s),
        max_load_a=dict(max_load_a),
        visits=tuple(replace(r) for r in records),
    )
