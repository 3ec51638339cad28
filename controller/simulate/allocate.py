"""The usual load-management heuristics, for comparison with the planner.

All respect every node and line of the circuit tree (limit − margin − base load) and the AC
minimum current: ``equal_share`` fills every vehicle up at the same rate until a breaker or the
vehicle's maximum stops it (max-min fair, what most load managers do); ``edf`` serves vehicles in
order of departure, each taking all it can (earliest deadline first); ``llf`` does the same in
order of laxity (least laxity first): laxity = time to departure − remaining energy / maximum rate,
the slack a vehicle has before it can no longer be met even at full rate.

Phasor limits, exactly: each demand carries its line current phasor per A at every node and line
it loads (:attr:`Demand.coefs`, from :func:`controller.model.phasor.charger_phasors`: a
line-to-line charger 30° off its lines, a transformer's primary through its matrix), and the
rule is ``|Σ coef × current| ≤ limit − margin − |base|`` per node and line. The base load's angle
is not known to a controller (a meter reports magnitudes), so its magnitude is taken off the room:
safe whatever its angle. Within that room nothing is approximated: a demand's largest current
that keeps a sum inside its circle is the root of a quadratic (:func:`headroom_a`), and the fair
share grows every active demand until a circle or a cap stops it. Where every coefficient on a
line is real and positive (a European wye site) this is the arithmetic rule it always was.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.model.site import GRID_ID, Charger, Site
from controller.model.snapshot import PhaseCurrents

Key = tuple[str, int]  # (node id, grid phase)


@dataclass(frozen=True)
class Demand:
    """One plugged-in vehicle as a heuristic sees it, in per-phase grid current [A]."""

    key: str
    charger: Charger
    phases: tuple[int, ...]  # grid phases it draws on
    cap_a: float  # highest per-phase current (charger and vehicle)
    min_a: float  # below this an AC vehicle cannot charge (0 for DC)
    deadline: datetime
    nodes: tuple[str, ...]  # the charger's circuit and every ancestor up to the grid
    need_kwh: float = 0.0  # energy still wanted
    max_kw: float = 0.0  # its rate at cap_a (0: unknown, then laxity is the time to the deadline)
    coefs: tuple[tuple[Key, complex], ...] = ()
    """Per (node, line): its line current phasor there per A of its own current. Empty: 1 on every
    line of ``phases`` at every node of ``nodes`` (loads in phase: the arithmetic sum)."""

    def coef_map(self) -> dict[Key, complex]:
        if self.coefs:
            return dict(self.coefs)
        return {(n, p): 1 + 0j for n in self.nodes for p in self.phases}

    def uses(self) -> list[Key]:
        return list(self.coef_map())

    @property
    def latest_start(self) -> datetime:
        """The last moment it could start at full rate and still be met: deadline − need / max rate.

        Laxity at ``now`` is ``latest_start − now``, so ordering by it is least laxity first.
        """
        if self.max_kw <= 0 or self.need_kwh <= 0:
            return self.deadline
        return self.deadline - timedelta(hours=self.need_kwh / self.max_kw)


def residual_a(site: Site, base_a: Mapping[str, PhaseCurrents]) -> dict[Key, float]:
    """Room left for EVs on each node and phase: limit − margin − non-EV load (never below 0)."""
    room: dict[Key, float] = {}
    for node in (GRID_ID, *(c.id for c in site.circuits)):
        usable = site.node_limit_a(node) - site.node_margin_a(node)
        base = base_a.get(node, (0.0, 0.0, 0.0))
        for p in range(3):
            room[(node, p)] = max(0.0, usable - base[p])
    return room


def headroom_a(acc: complex, coef: complex, room_a: float) -> float:
    """The largest ``t ≥ 0`` with ``|acc + coef × t| ≤ room_a`` (0 when ``acc`` is already outside)."""
    cc = abs(coef) ** 2
    if cc <= 1e-18:
        return math.inf
    outside = abs(acc) ** 2 - room_a**2
    if outside > 1e-6:
        return 0.0
    b = (acc * coef.conjugate()).real
    return max(0.0, (-b + math.sqrt(max(0.0, b * b - cc * outside))) / cc)


def _fill(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Max-min fair progressive filling: every active demand grows by the same current until a
    cap, or a node line's circle, stops it (there: the demands whose growth would push the sum
    out; one whose phasor points back inside may go on)."""
    alloc = {d.key: 0.0 for d in demands}
    coefs = {d.key: d.coef_map() for d in demands}
    acc: dict[Key, complex] = dict.fromkeys(room, 0j)
    active = {d.key: d for d in demands if d.cap_a > 1e-9}
    while active:
        total: dict[Key, complex] = {}
        for key in active:
            for k, c in coefs[key].items():
                total[k] = total.get(k, 0j) + c
        step = min(d.cap_a - alloc[d.key] for d in active.values())
        for k, c in total.items():
            step = min(step, headroom_a(acc[k], c, room[k]))
        step = max(step, 0.0)
        for key in active:
            alloc[key] += step
            for k, c in coefs[key].items():
                acc[k] += c * step
        before = len(active)
        for key, d in list(active.items()):
            if alloc[key] >= d.cap_a - 1e-9 or any(
                abs(acc[k]) >= room[k] - 1e-9 and (acc[k] * c.conjugate()).real >= -1e-12
                for k, c in coefs[key].items()
            ):
                del active[key]
        if len(active) == before and step <= 1e-12:
            break  # nothing can grow (numerically at every boundary)
    return alloc


def equal_share(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Per-phase current for each demand. AC shares below the minimum pause the smallest first."""
    paused: set[str] = set()
    while True:
        live = [d for d in demands if d.key not in paused]
        alloc = _fill(live, room)
        short = [d for d in live if d.min_a > 0 and alloc[d.key] < d.min_a - 1e-9]
        if not short:
            alloc.update({k: 0.0 for k in paused})
            return alloc
        # pause the latest deadline among those that cannot reach their minimum, then refill
        paused.add(max(short, key=lambda d: (d.deadline, d.key)).key)


def _greedy(demands: list[Demand], room: dict[Key, float], order: Callable[[Demand], datetime]) -> dict[str, float]:
    """Serve the demands in ``order``, each taking all it can (none below its minimum)."""
    acc: dict[Key, complex] = dict.fromkeys(room, 0j)
    alloc: dict[str, float] = {}
    for d in sorted(demands, key=lambda d: (order(d), d.key)):
        coefs = d.coef_map()
        give = min([d.cap_a, *(headroom_a(acc[k], c, room[k]) for k, c in coefs.items())])
        if give < d.min_a or give <= 1e-9:
            give = 0.0
        alloc[d.key] = give
        for k, c in coefs.items():
            acc[k] += c * give
    return alloc


def edf(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Earliest deadline first."""
    return _greedy(demands, room, lambda d: d.deadline)


def llf(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Least laxity first: the vehicle with the least slack before it can no longer be met."""
    return _greedy(demands, room, lambda d: d.latest_start)
