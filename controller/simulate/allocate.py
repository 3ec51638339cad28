"""The usual load-management heuristics, for comparison with the planner.

All respect every node and phase of the circuit tree (limit − margin − base load) and the AC
minimum current: ``equal_share`` fills every vehicle up at the same rate until a breaker or the
vehicle's maximum stops it (max-min fair, what most load managers do); ``edf`` serves vehicles in
order of departure, each taking all it can (earliest deadline first); ``llf`` does the same in
order of laxity (least laxity first): laxity = time to departure − remaining energy / maximum rate,
the slack a vehicle has before it can no longer be met even at full rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.model.site import GRID_ID, Charger, Site

Key = tuple[str, int]  # (node id, grid phase)
PhaseCurrents = tuple[float, float, float]


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

    def uses(self) -> list[Key]:
        return [(n, p) for n in self.nodes for p in self.phases]

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


def _fill(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Max-min fair progressive filling."""
    alloc = {d.key: 0.0 for d in demands}
    left = dict(room)
    active = {d.key: d for d in demands if d.cap_a > 1e-9}
    while active:
        users: dict[Key, int] = {}
        for d in active.values():
            for k in d.uses():
                users[k] = users.get(k, 0) + 1
        step = min(d.cap_a - alloc[d.key] for d in active.values())
        for k, count in users.items():
            step = min(step, left[k] / count)
        step = max(step, 0.0)
        for d in active.values():
            alloc[d.key] += step
            for k in d.uses():
                left[k] -= step
        saturated = {k for k, v in left.items() if v <= 1e-9}
        for key, d in list(active.items()):
            if alloc[key] >= d.cap_a - 1e-9 or any(k in saturated for k in d.uses()):
                del active[key]
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
    left = dict(room)
    alloc: dict[str, float] = {}
    for d in sorted(demands, key=lambda d: (order(d), d.key)):
        give = min([d.cap_a, *(left[k] for k in d.uses())])
        if give < d.min_a or give <= 1e-9:
            give = 0.0
        alloc[d.key] = give
        for k in d.uses():
            left[k] -= give
    return alloc


def edf(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Earliest deadline first."""
    return _greedy(demands, room, lambda d: d.deadline)


def llf(demands: list[Demand], room: dict[Key, float]) -> dict[str, float]:
    """Least laxity first: the vehicle with the least slack before it can no longer be met."""
    return _greedy(demands, room, lambda d: d.latest_start)
