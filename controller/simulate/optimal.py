"""The offline optimum: one LP over the whole scenario with perfect knowledge.

It knows every arrival, true departure, energy need and the true base load in advance, and the
vehicles' taper near full (linear in the energy already delivered). It ignores the AC minimum
current (a relaxation), so its objective value is an upper bound on the energy any controller
can deliver; its schedule is then executed by the same engine as the other policies.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import highspy
import numpy as np

from controller.model.site import GRID_ID
from controller.planner.highs import new_highs
from controller.simulate.engine import node_base_a
from controller.simulate.policies import View, to_limit
from controller.simulate.scenario import Scenario
from controller.simulate.vehicles import TAPER_FLOOR, TAPER_FROM_SOC, SimVehicle

GRID_SLOT_MIN = 15
EARLY_WEIGHT = 1e-4  # among optimal schedules, prefer delivering earlier


@dataclass
class OptimalSchedule:
    boundaries: list[datetime]
    current_a: dict[str, np.ndarray[Any, np.dtype[np.float64]]]  # per session key: per-phase current per slot
    bound_kwh: float
    status: str

    def at(self, key: str, t: datetime) -> float:
        k = bisect.bisect_right(self.boundaries, t) - 1
        row = self.current_a.get(key)
        if row is None or k < 0 or k >= len(row):
            return 0.0
        return float(row[k])


def slot_boundaries(scenario: Scenario, start: datetime | None = None) -> list[datetime]:
    begin = start or scenario.start
    points = {begin, scenario.end}
    t = scenario.start
    while t < scenario.end:
        points.add(t)
        t += timedelta(minutes=GRID_SLOT_MIN)
    for s in scenario.sessions:
        points.update((s.arrive, s.depart))
    tz = scenario.tz
    local_start, local_end = scenario.local(scenario.start), scenario.local(scenario.end)
    profiles = [scenario.base_load, *scenario.circuit_base_load.values()]
    for profile in profiles:
        for local in profile.change_points(local_start, local_end):
            points.add(local.replace(tzinfo=tz).astimezone(scenario.start.tzinfo))
    return sorted(p for p in points if begin <= p <= scenario.end)


def solve_optimal(
    scenario: Scenario, start: datetime | None = None, delivered_kwh: dict[str, float] | None = None
) -> OptimalSchedule:
    """The optimum from ``start`` on, given what each session already has (closed-loop re-solves)."""
    site = scenario.site
    begin = start or scenario.start
    delivered = delivered_kwh or {}
    bounds = slot_boundaries(scenario, begin)
    n_slots = len(bounds) - 1
    hours = np.array([(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(bounds)])
    mid_h = np.array([(a - begin).total_seconds() / 3600 for a in bounds[:-1]]) + hours / 2
    sessions = [s for s in scenario.sessions if s.depart > begin]
    vehicles = []
    needs = []
    for s in sessions:
        v = SimVehicle.for_session(site, s)
        got = min(delivered.get(s.key, 0.0), s.energy_kwh)
        vehicles.append(dataclasses.replace(v, start_kwh=v.start_kwh + got, target_kwh=v.target_kwh - got))
        needs.append(s.energy_kwh - got)
    n = len(sessions)
    # columns: x[s,k] (per-phase current), then E[s,k] (energy delivered before slot k)
    nx = n * n_slots
    ncol = 2 * nx
    lower = np.zeros(ncol)
    upper = np.zeros(ncol)
    cost = np.zeros(ncol)
    rows_i: list[int] = []
    cols_j: list[int] = []
    vals: list[float] = []
    row_lo: list[float] = []
    row_hi: list[float] = []

    def add_row(entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(row_lo)
        for j, v in entries:
            rows_i.append(r)
            cols_j.append(j)
            vals.append(v)
        row_lo.append(lo)
        row_hi.append(hi)

    kwh_per_a = np.zeros((n, n_slots))
    for i, (s, v) in enumerate(zip(sessions, vehicles, strict=True)):
        cap = v.max_a if v.kind == "ac" else v.max_kw * v.a_per_kw
        per_a_h = (v.voltage_v * len(v.grid_phases) / 1000) if v.kind == "ac" else 1.0 / v.a_per_kw
        for k in range(n_slots):
            present = s.arrive <= bounds[k] and bounds[k + 1] <= s.depart
            col = i * n_slots + k
            upper[col] = cap if present else 0.0
            kwh_per_a[i, k] = per_a_h * hours[k]
            cost[col] = -kwh_per_a[i, k] * (1 - EARLY_WEIGHT * mid_h[k] / max(1.0, mid_h[-1]))
            # E columns: free, defined by the chain rows below
            upper[nx + col] = needs[i]
        # energy cap: E[last] + x[last]*c ≤ need  (total delivered)
        last = i * n_slots + n_slots - 1
        add_row([(nx + last, 1.0), (last, kwh_per_a[i, -1])], -np.inf, needs[i])
        # chain: E[k] − E[k−1] − c x[k−1] = 0, E[0] = 0
        add_row([(nx + i * n_slots, 1.0)], 0.0, 0.0)
        for k in range(1, n_slots):
            c = i * n_slots + k
            add_row([(nx + c, 1.0), (nx + c - 1, -1.0), (c - 1, -kwh_per_a[i, k - 1])], 0.0, 0.0)
        # taper (hil.ev's model), soc_k = (start + E[k]) / battery, linear in E:
        #   DC: share = 1 − (1−floor)(soc − from)/(1 − from) down to the floor at 100 % — exact;
        #   AC: share = max(min/cap, (1 − soc)/(1 − from)) — convex in soc, so the chord from
        #       (from, 1) to (100 %, min/cap) lies above it: the tightest linear bound, still a bound.
        soc0 = v.start_kwh / v.battery_kwh
        floor = TAPER_FLOOR if v.kind == "dc" else min(1.0, v.min_a / cap) if cap > 0 else 1.0
        slope = cap * (1 - floor) / ((1 - TAPER_FROM_SOC) * v.battery_kwh)
        rhs = cap * (1 + (1 - floor) * (TAPER_FROM_SOC - soc0) / (1 - TAPER_FROM_SOC))
        if rhs < cap * 2:  # the taper can bite within this session
            for k in range(n_slots):
                c = i * n_slots + k
                if upper[c] > 0:
                    add_row([(c, 1.0), (nx + c, slope)], -np.inf, rhs)
    # node and phase limits, every slot, against the true base load at the slot's start
    users: dict[tuple[str, int], list[int]] = {}
    for i, v in enumerate(vehicles):
        for node in site.ancestors(site.charger(sessions[i].charger_id).circuit):
            for p in v.grid_phases:
                users.setdefault((node, p), []).append(i)
    grid_kw = site.grid.limit_kw
    for k in range(n_slots):
        base = node_base_a(scenario, bounds[k])
        for (node, p), members in users.items():
            room = site.node_limit_a(node) - site.node_margin_a(node) - base[node][p]
            add_row([(i * n_slots + k, 1.0) for i in members], -np.inf, max(0.0, room))
        if grid_kw is not None and n:
            base_kw = sum(base[GRID_ID]) * site.site.voltage_v / 1000
            entries = []
            for i, v in enumerate(vehicles):
                ch = site.charger(sessions[i].charger_id)
                per_a_kw = (
                    v.voltage_v * len(v.grid_phases) / 1000
                    if v.kind == "ac"
                    else 3 * v.voltage_v * ch.power_factor / 1000
                )
                entries.append((i * n_slots + k, per_a_kw))
            add_row(entries, -np.inf, max(0.0, grid_kw - base_kw))
    if not n:
        return OptimalSchedule(bounds, {}, 0.0, "empty")
    h = new_highs(120.0)
    lp = highspy.HighsLp()
    n_rows = len(row_lo)
    order = np.lexsort((np.array(rows_i), np.array(cols_j)))
    col_arr = np.array(cols_j)[order]
    col_start = np.zeros(ncol + 1, dtype=np.int32)
    np.cumsum(np.bincount(col_arr, minlength=ncol), out=col_start[1:])
    lp.num_col_ = ncol
    lp.num_row_ = n_rows
    lp.col_cost_ = cost
    lp.col_lower_ = lower
    lp.col_upper_ = upper
    lp.row_lower_ = np.array(row_lo)
    lp.row_upper_ = np.array(row_hi)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = ncol
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.start_ = col_start
    lp.a_matrix_.index_ = np.array(rows_i, dtype=np.int32)[order]
    lp.a_matrix_.value_ = np.array(vals)[order]
    h.passModel(lp)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    x = np.array(h.getSolution().col_value[:nx]).reshape(n, n_slots)
    x = np.clip(x, 0.0, None)
    bound = float((x * kwh_per_a).sum())
    return OptimalSchedule(bounds, {s.key: x[i] for i, s in enumerate(sessions)}, bound, status)


RESOLVE_EVERY = timedelta(hours=1)


@dataclass
class OptimalPolicy:
    """Executes the offline optimum (perfect knowledge).

    Solved once up front (its value is the bound), then re-solved every hour from the energy
    actually delivered, so what rounding, the AC minimum current and the taper inside a slot cost
    is made up later where possible — the best a controller with perfect knowledge could do.
    """

    scenario: Scenario
    name: str = "optimal"
    sheds: bool = True
    schedule: OptimalSchedule | None = field(default=None)
    bound_kwh: float = 0.0
    solved_at: datetime | None = None

    def __post_init__(self) -> None:
        self.schedule = solve_optimal(self.scenario)
        self.bound_kwh = self.schedule.bound_kwh
        self.solved_at = self.scenario.start

    def decide(self, view: View) -> dict[str, float]:
        assert self.schedule is not None and self.solved_at is not None
        if view.now - self.solved_at >= RESOLVE_EVERY:
            done = {lv.key: lv.delivered_kwh for lv in view.sessions}
            self.schedule = solve_optimal(self.scenario, view.now, done)
            self.solved_at = view.now
        out = {}
        for lv in view.sessions:
            amps = self.schedule.at(lv.key, view.now)
            if lv.charger.kind == "ac" and 0 < amps < lv.charger.min_a:
                amps = lv.charger.min_a if amps >= lv.charger.min_a / 2 else 0.0
            out[lv.key] = to_limit(view.site, lv.charger, amps + 0.05)  # dispatch rounds down to 0.1
        return out
