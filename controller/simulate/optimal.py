"""The offline optimum: one LP over the whole scenario with perfect knowledge.

It knows every arrival, true departure, energy need and the true base load in advance, and the
vehicles' taper near full (linear in the energy already delivered). It ignores the AC minimum
current (a relaxation), so its objective value is an upper bound on the energy any controller
can deliver; its schedule is then executed by the same engine as the other policies.

The second bound, :func:`solve_max_met`, is the most departures any controller could meet: the
same model (:func:`build_model`, the same relaxations) with a binary "met" per session that departs
within the scenario, solved as a MILP with a time limit; it says when the bound is not proven.

The third, :func:`solve_cost_bound` (scenarios with a tariff), is the least bill: the same model
with the grid import per slot (base load + chargers − PV, never below 0) priced at the slot's
energy price, and the demand charge on the highest clock-aligned window average of it, minimised
subject to (a) at least as many departures met as the energy optimum meets and (b) at least the
energy optimum's total energy (less the met tolerance of the sessions it meets). Slots then also
break at price steps, PV steps and window boundaries, so that the price, the PV and a window's
membership are constant within a slot: any schedule the engine runs, averaged over each slot, is
feasible here and costs no more (import is convex in the chargers' power), so the value bounds the
cost of every such schedule.

Phasor limits: each node line's current is ``|B + Σ c_s x_s|`` (the true base phasor B, each
session's line phasor per A c_s: :func:`controller.model.phasor.charger_phasors`), kept at most
``limit − margin``. The model takes the *outer* polygon of that circle: one tangent row
``Re((B + Σ c_s x_s) · conj d) ≤ limit − margin`` per direction d, the directions spaced at most
:data:`OUTER_STEP_DEG` apart over the arc where the sum can lie (one exact row where every load and
the base sit at one angle — the arithmetic case of a European wye site). An outer polygon is a
relaxation, so both bounds stay upper bounds; it lets the sum reach at most
``1 / cos(OUTER_STEP_DEG / 2)`` of the room (+0.10 % at 5°): that is the bound's slack, and the
most the optimum's executed schedule can go over ``limit − margin`` (inside any margin above 0.1 %).
"""

from __future__ import annotations

import bisect
import cmath
import dataclasses
import itertools
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import highspy
import numpy as np

from controller.model.phasor import charger_phasors, node_ln_voltage_v
from controller.model.site import GRID_ID
from controller.planner.highs import new_highs
from controller.simulate.bill import price_at, price_change_points, window_min, window_start, window_starts
from controller.simulate.engine import grid_real_kw, node_base_phasors
from controller.simulate.policies import View, to_limit
from controller.simulate.result import MET_TOLERANCE, MET_TOLERANCE_KWH, CostBound, MetBound
from controller.simulate.scenario import Scenario, ScenarioSession
from controller.simulate.vehicles import TAPER_FLOOR, TAPER_FROM_SOC, SimVehicle

GRID_SLOT_MIN = 15
EARLY_WEIGHT = 1e-4  # among optimal schedules, prefer delivering earlier
OUTER_STEP_DEG = 5.0
"""Largest angle between two tangent rows of a phasor limit's outer polygon (overshoot ≤ 0.10 %)."""


def outer_directions(phasors: list[complex], step_deg: float = OUTER_STEP_DEG) -> list[complex]:
    """Unit directions whose tangent rows ``Re(z · conj d) ≤ R`` hold for every ``|z| ≤ R`` and,
    for ``z`` a non-negative combination of ``phasors``, bound ``|z|`` by ``R / cos(step / 2)``.

    The combinations lie in the arc the phasors' angles span: one direction when they share one
    angle (exact), tangents at both ends of the arc and at most ``step_deg`` apart between, the
    whole circle when the arc is 180° or wider.
    """
    raw = sorted({round(math.degrees(cmath.phase(c)) % 360.0, 9) % 360.0 for c in phasors if abs(c) > 1e-12})
    angles = [a for i, a in enumerate(raw) if i == 0 or a - raw[i - 1] > 1e-7]
    if len(angles) > 1 and angles[0] + 360.0 - angles[-1] <= 1e-7:
        angles.pop()  # 359.99999999° is 0°
    if not angles:
        return []
    gaps = [(angles[(i + 1) % len(angles)] - a) % 360.0 for i, a in enumerate(angles)]
    if len(angles) == 1:
        gaps = [360.0]
    widest = max(range(len(gaps)), key=lambda i: gaps[i])
    width = 360.0 - gaps[widest]
    if width <= 1e-6:
        return [cmath.rect(1.0, math.radians(angles[0]))]
    if width >= 180.0:
        count = max(3, math.ceil(360.0 / step_deg))
        return [cmath.rect(1.0, math.radians(k * 360.0 / count)) for k in range(count)]
    start = angles[(widest + 1) % len(angles)]
    count = math.ceil(width / step_deg - 1e-9) + 1
    return [cmath.rect(1.0, math.radians(start + k * width / (count - 1))) for k in range(count)]


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


def engine_time(scenario: Scenario, t: datetime) -> datetime:
    """When the engine acts on something that happens at ``t``: the first step at or after it.

    The engine moves in steps of ``step_s`` from the start; a vehicle arriving or leaving between
    two steps is seen at the next one, and the base load it scores a step with is the one at the
    step's start. Every time in the models below goes through here, so that they bound what the
    engine can deliver even where a scenario's times are not on its step grid.
    """
    offset_s = (t - scenario.start).total_seconds()
    if offset_s <= 0:
        return scenario.start
    steps = math.ceil(offset_s / scenario.step_s - 1e-9)
    return scenario.start + timedelta(seconds=steps * scenario.step_s)


def slot_boundaries(scenario: Scenario, start: datetime | None = None) -> list[datetime]:
    begin = start or scenario.start
    end = engine_time(scenario, scenario.end)
    points = {begin, end}
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
    if scenario.priced or scenario.pv:  # the bill's slots: price, PV and window constant within each
        for local in scenario.pv.change_points(local_start, local_end):
            points.add(local.replace(tzinfo=tz).astimezone(scenario.start.tzinfo))
        points.update(price_change_points(scenario.site.tariff, scenario.prices, scenario.start, scenario.end, tz))
        points.update(window_starts(scenario.start, scenario.end, window_min(scenario.site.tariff), tz))
    on_grid = {engine_time(scenario, p) for p in points}
    return sorted(p for p in on_grid if begin <= p <= end)


Column = np.ndarray[Any, np.dtype[np.float64]]


@dataclass
class _Model:
    """The perfect-knowledge model both bounds share: limits, caps, taper; no objective yet.

    Columns: x[s,k] (per-phase current of session s in slot k), then E[s,k] (energy delivered to s
    before slot k); ``x_col(i, k)`` and ``e_col(i, k)`` name them. ``delivered_kwh(i)`` is the
    linear form of what session i has at the end.
    """

    bounds: list[datetime]
    sessions: list[ScenarioSession]
    needs: list[float]
    kwh_per_a: np.ndarray[Any, np.dtype[np.float64]]  # per session, slot: kWh per A of x
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    integer: list[bool] = field(default_factory=list)
    rows_i: list[int] = field(default_factory=list)
    cols_j: list[int] = field(default_factory=list)
    vals: list[float] = field(default_factory=list)
    row_lo: list[float] = field(default_factory=list)
    row_hi: list[float] = field(default_factory=list)

    @property
    def n_slots(self) -> int:
        return len(self.bounds) - 1

    @property
    def nx(self) -> int:
        return len(self.sessions) * self.n_slots

    def x_col(self, i: int, k: int) -> int:
        return i * self.n_slots + k

    def e_col(self, i: int, k: int) -> int:
        return self.nx + i * self.n_slots + k

    def add_col(self, lo: float, hi: float, cost: float = 0.0, *, integer: bool = False) -> int:
        self.lower.append(lo)
        self.upper.append(hi)
        self.cost.append(cost)
        self.integer.append(integer)
        return len(self.lower) - 1

    def add_row(self, entries: list[tuple[int, float]], lo: float, hi: float) -> None:
        r = len(self.row_lo)
        for j, v in entries:
            self.rows_i.append(r)
            self.cols_j.append(j)
            self.vals.append(v)
        self.row_lo.append(lo)
        self.row_hi.append(hi)

    def delivered_kwh(self, i: int) -> list[tuple[int, float]]:
        cols = [(self.x_col(i, k), float(self.kwh_per_a[i, k])) for k in range(self.n_slots)]
        return [(j, c) for j, c in cols if self.upper[j] > 0]

    def highs(self, time_limit_s: float) -> Any:
        """A HiGHS object holding this model (minimising ``cost``)."""
        h = new_highs(time_limit_s)
        ncol, n_rows = len(self.lower), len(self.row_lo)
        lp = highspy.HighsLp()
        order = np.lexsort((np.array(self.rows_i), np.array(self.cols_j)))
        col_arr = np.array(self.cols_j, dtype=np.int64)[order]
        col_start = np.zeros(ncol + 1, dtype=np.int32)
        np.cumsum(np.bincount(col_arr, minlength=ncol), out=col_start[1:])
        lp.num_col_ = ncol
        lp.num_row_ = n_rows
        lp.col_cost_ = np.array(self.cost)
        lp.col_lower_ = np.array(self.lower)
        lp.col_upper_ = np.array(self.upper)
        lp.row_lower_ = np.array(self.row_lo)
        lp.row_upper_ = np.array(self.row_hi)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = ncol
        lp.a_matrix_.num_row_ = n_rows
        lp.a_matrix_.start_ = col_start
        lp.a_matrix_.index_ = np.array(self.rows_i, dtype=np.int32)[order]
        lp.a_matrix_.value_ = np.array(self.vals)[order]
        if any(self.integer):
            lp.integrality_ = [
                highspy.HighsVarType.kInteger if is_int else highspy.HighsVarType.kContinuous for is_int in self.integer
            ]
        h.passModel(lp)
        return h


def build_model(scenario: Scenario, begin: datetime, delivered: dict[str, float]) -> _Model:
    """Perfect knowledge of arrivals, real departures, needs and the true base load; node-line
    phasor limits (the outer polygon, :func:`outer_directions`) and the grid-kW limit (less the
    margins); the vehicles' caps and taper (as a linear bound); no AC minimum current. Every
    schedule the engine can run within the limits is feasible here."""
    site = scenario.site
    bounds = slot_boundaries(scenario, begin)
    n_slots = len(bounds) - 1
    hours = np.array([(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(bounds)])
    sessions = [s for s in scenario.sessions if engine_time(scenario, s.depart) > begin]
    vehicles = []
    needs = []
    for s in sessions:
        v = SimVehicle.for_session(site, s)
        got = min(delivered.get(s.key, 0.0), s.energy_kwh)
        vehicles.append(dataclasses.replace(v, start_kwh=v.start_kwh + got, target_kwh=v.target_kwh - got))
        needs.append(s.energy_kwh - got)
    n = len(sessions)
    m = _Model(bounds, sessions, needs, np.zeros((n, n_slots)))
    for i, (s, v) in enumerate(zip(sessions, vehicles, strict=True)):
        cap = v.max_a if v.kind == "ac" else v.max_kw * v.a_per_kw
        per_a_h = (v.volts_v / 1000) if v.kind == "ac" else 1.0 / v.a_per_kw
        arrive, depart = engine_time(scenario, s.arrive), engine_time(scenario, s.depart)
        for k in range(n_slots):
            present = arrive <= bounds[k] and bounds[k + 1] <= depart
            m.add_col(0.0, cap if present else 0.0)
            m.kwh_per_a[i, k] = per_a_h * hours[k]
    for i in range(n):
        for _ in range(n_slots):
            m.add_col(0.0, needs[i])  # E columns, defined by the chain rows below
    for i, v in enumerate(vehicles):
        cap = v.max_a if v.kind == "ac" else v.max_kw * v.a_per_kw
        # energy cap: E[last] + x[last]*c ≤ need  (total delivered)
        last = n_slots - 1
        m.add_row([(m.e_col(i, last), 1.0), (m.x_col(i, last), m.kwh_per_a[i, -1])], -np.inf, needs[i])
        # chain: E[k] − E[k−1] − c x[k−1] = 0, E[0] = 0
        m.add_row([(m.e_col(i, 0), 1.0)], 0.0, 0.0)
        for k in range(1, n_slots):
            m.add_row(
                [(m.e_col(i, k), 1.0), (m.e_col(i, k - 1), -1.0), (m.x_col(i, k - 1), -m.kwh_per_a[i, k - 1])], 0.0, 0.0
            )
        # taper (controller.simulate.ev's model), soc_k = (start + E[k]) / battery, linear in E:
        #   DC: share = 1 − (1−floor)(soc − from)/(1 − from) down to the floor at 100 % — exact;
        #   AC: share = max(min/cap, (1 − soc)/(1 − from)) — convex in soc, so the chord from
        #       (from, 1) to (100 %, min/cap) lies above it: the tightest linear bound, still a bound.
        soc0 = v.start_kwh / v.battery_kwh
        floor = TAPER_FLOOR if v.kind == "dc" else min(1.0, v.min_a / cap) if cap > 0 else 1.0
        slope = cap * (1 - floor) / ((1 - TAPER_FROM_SOC) * v.battery_kwh)
        rhs = cap * (1 + (1 - floor) * (TAPER_FROM_SOC - soc0) / (1 - TAPER_FROM_SOC))
        if rhs < cap * 2:  # the taper can bite within this session
            for k in range(n_slots):
                if m.upper[m.x_col(i, k)] > 0:
                    m.add_row([(m.x_col(i, k), 1.0), (m.e_col(i, k), slope)], -np.inf, rhs)
    # node-line phasor limits, every slot, against the true base load at the slot's start
    users: dict[tuple[str, int], list[tuple[int, complex]]] = {}
    for i, v in enumerate(vehicles):
        ch = site.charger(sessions[i].charger_id)
        for node, vec in charger_phasors(site, ch, v.phases_used if v.kind == "ac" else None).items():
            for p in range(3):
                if abs(vec[p]) > 1e-12:
                    users.setdefault((node, p), []).append((i, vec[p]))
    grid_kw = site.grid.limit_kw
    grid_v = node_ln_voltage_v(site, GRID_ID)
    for k in range(n_slots):
        base = node_base_phasors(scenario, bounds[k])
        for (node, p), members in users.items():
            room = site.node_limit_a(node) - site.node_margin_a(node)
            b = base[node][p]
            directions = outer_directions([b, *(c for _, c in members)])
            if len(directions) == 1:  # every load and the base at one angle: the exact arithmetic row
                # (magnitudes rounded: unit phasors at ±120° are 1 to the last bit or two)
                entries = [(m.x_col(i, k), round(abs(c), 12)) for i, c in members]
                m.add_row(entries, -np.inf, max(0.0, room - round(abs(b), 9)))
                continue
            for d in directions:
                m.add_row(
                    [(m.x_col(i, k), (c * d.conjugate()).real) for i, c in members],
                    -np.inf,
                    max(0.0, room - (b * d.conjugate()).real),
                )
        if grid_kw is not None and n:
            base_kw = sum(abs(a) for a in base[GRID_ID]) * grid_v / 1000
            entries = []
            for i, v in enumerate(vehicles):
                ch = site.charger(sessions[i].charger_id)
                per_a_kw = v.volts_v / 1000 if v.kind == "ac" else v.volts_v * ch.power_factor / 1000
                entries.append((m.x_col(i, k), per_a_kw))
            m.add_row(entries, -np.inf, max(0.0, grid_kw - base_kw))
    return m


def solve_optimal(
    scenario: Scenario, start: datetime | None = None, delivered_kwh: dict[str, float] | None = None
) -> OptimalSchedule:
    """The optimum from ``start`` on, given what each session already has (closed-loop re-solves)."""
    begin = start or scenario.start
    m = build_model(scenario, begin, delivered_kwh or {})
    n, n_slots = len(m.sessions), m.n_slots
    if not n:
        return OptimalSchedule(m.bounds, {}, 0.0, "empty")
    bounds = m.bounds
    hours = np.array([(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(bounds)])
    mid_h = np.array([(a - begin).total_seconds() / 3600 for a in bounds[:-1]]) + hours / 2
    for i in range(n):
        for k in range(n_slots):
            # most energy; among optimal schedules, the earlier
            m.cost[m.x_col(i, k)] = -m.kwh_per_a[i, k] * (1 - EARLY_WEIGHT * mid_h[k] / max(1.0, mid_h[-1]))
    h = m.highs(120.0)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    x = np.array(h.getSolution().col_value[: m.nx]).reshape(n, n_slots)
    x = np.clip(x, 0.0, None)
    bound = float((x * m.kwh_per_a).sum())
    return OptimalSchedule(bounds, {s.key: x[i] for i, s in enumerate(m.sessions)}, bound, status)


# The max-met MILP's time limit. Every scenario in hil/scenarios/ and acn/ solves to optimality well
# inside it on one core (the hardest, acn-jpl-2020-02-11: about 4.5 s; most under 1 s), so
# bench/quality.py costs some 10 s more over its ~2 minutes; a larger or harder scenario stops here
# and reports HiGHS's proven bound with "not proven".
MAX_MET_TIME_LIMIT_S = 10.0


def met_threshold_kwh(need_kwh: float) -> float:
    """The energy a session must have to count as met (the tolerance of :attr:`SessionOutcome.has_need`)."""
    return need_kwh - max(MET_TOLERANCE_KWH, MET_TOLERANCE * need_kwh)


def solve_max_met(scenario: Scenario, time_limit_s: float = MAX_MET_TIME_LIMIT_S) -> MetBound:
    """The most departures any controller could meet: a MILP on the energy optimum's model.

    One binary "met" per session that departs within the scenario: met ⇒ what it gets by its real
    departure ≥ its need (less the tolerance :class:`SessionOutcome` judges with). Same model and
    relaxations as :func:`solve_optimal`, so the value is an upper bound on any policy's count.
    Proven when HiGHS reports Optimal; otherwise the bound is HiGHS's MIP dual bound, rounded down,
    and ``incumbent`` is the best schedule it found in the time limit.
    """
    t0 = time.perf_counter()
    m = build_model(scenario, scenario.start, {})
    judged = [i for i, s in enumerate(m.sessions) if not s.past_end(scenario.end)]
    if not judged:
        return MetBound(0, 0, True, 0, "empty", 0.0)
    for i in judged:
        met = m.add_col(0.0, 1.0, -1.0, integer=True)  # minimise −(number met)
        m.add_row([*m.delivered_kwh(i), (met, -met_threshold_kwh(m.needs[i]))], 0.0, np.inf)
    h = m.highs(time_limit_s)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 0.999)  # the count is whole: a gap below one is closed
    h.run()
    model_status = h.getModelStatus()
    status = h.modelStatusToString(model_status)
    info = h.getInfo()
    found: int | None = None
    if info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible:
        found = round(-info.objective_function_value)
    proven = model_status == highspy.HighsModelStatus.kOptimal and found is not None
    if proven:
        bound = found
    else:
        dual = -info.mip_dual_bound
        bound = min(len(judged), math.floor(dual + 1e-6)) if math.isfinite(dual) else len(judged)
        if found is not None and bound <= found:  # the gap closed at the limit
            bound, proven = found, True
    assert bound is not None
    return MetBound(bound, found, proven, len(judged), status, time.perf_counter() - t0)


# The cost bound's time limit: a MILP only where the energy optimum leaves some departures unmet
# (else an LP); started from the energy optimum's schedule, so it always has a schedule to report.
COST_BOUND_TIME_LIMIT_S = 20.0
COST_MIP_REL_GAP = 1e-3  # proven: the schedule found is within 0.1 % of the bound (the bound is HiGHS's dual bound)


def _grid_kw_per_a(v: SimVehicle) -> float:
    """Grid real power per A of the model's x (per-phase current) [kW]."""
    if v.kind == "ac":
        return v.volts_v / 1000.0
    return 1.0 / (v.a_per_kw * v.efficiency) if v.a_per_kw else 0.0


def solve_cost_bound(
    scenario: Scenario,
    energy: OptimalSchedule,
    time_limit_s: float = COST_BOUND_TIME_LIMIT_S,
    *,
    met_min: int | None = None,
    energy_min_kwh: float | None = None,
) -> CostBound:
    """The least ``cost_total`` with perfect knowledge subject to (a) at least as many departures
    met as ``energy`` (the energy optimum from the start) meets and (b) at least its total energy,
    less the met tolerance (:func:`met_threshold_kwh`) of each session it meets — so that a
    controller meeting those departures as the simulation judges them is held to no more energy.

    ``met_min`` / ``energy_min_kwh`` replace the two terms (e.g. by what a policy reached: the least
    cost of doing what it did). Without a tariff the bill is 0 and nothing is solved. ``bound`` is
    HiGHS's proven lower bound (an LP: its optimum; a MILP: its dual bound), ``incumbent`` the least
    cost it found a schedule for; proven when HiGHS reports Optimal (a MILP: the two within
    :data:`COST_MIP_REL_GAP`).
    """
    t0 = time.perf_counter()
    site = scenario.site
    tariff = site.tariff
    m = build_model(scenario, scenario.start, {})
    n, n_slots = len(m.sessions), m.n_slots
    x0 = np.array([energy.current_a[s.key] for s in m.sessions]) if n else np.zeros((0, n_slots))
    if n and (m.bounds != energy.boundaries or x0.shape != (n, n_slots)):
        raise ValueError("the energy optimum was solved on other slots")
    delivered0 = (x0 * m.kwh_per_a).sum(axis=1) if n else np.zeros(0)
    judged = [i for i, s in enumerate(m.sessions) if not s.past_end(scenario.end)]
    met0 = [i for i in judged if delivered0[i] >= met_threshold_kwh(m.needs[i]) - 1e-6]
    # (b) counts a met session's energy as a met departure does: its need less the met tolerance
    energy_min = float(delivered0.sum()) - sum(m.needs[i] - met_threshold_kwh(m.needs[i]) for i in met0)
    if energy_min_kwh is not None:
        energy_min = energy_min_kwh
    n_met = len(met0) if met_min is None else min(met_min, len(judged))
    if not scenario.priced:
        return CostBound(0.0, 0.0, True, n_met, energy_min, None, tariff.currency, "no tariff", 0.0)
    bounds = m.bounds
    hours = np.array([(b - a).total_seconds() / 3600 for a, b in itertools.pairwise(bounds)])
    tz = scenario.tz
    base_kw = np.array([grid_real_kw(site, node_base_phasors(scenario, b, pv=False)[GRID_ID]) for b in bounds[:-1]])
    pv_kw = np.array([scenario.pv_kw(b) for b in bounds[:-1]])
    price = np.array([price_at(tariff, scenario.prices, b, scenario.local(b)) for b in bounds[:-1]])
    vehicles = [SimVehicle.for_session(site, s) for s in m.sessions]
    per_a_kw = [_grid_kw_per_a(v) for v in vehicles]
    # import per slot: imp[k] ≥ base − pv + Σ g x, imp ≥ 0 (export earns nothing)
    imp = [m.add_col(0.0, np.inf, float(price[k] * hours[k])) for k in range(n_slots)]
    for k in range(n_slots):
        entries = [(imp[k], 1.0)]
        entries += [(m.x_col(i, k), -per_a_kw[i]) for i in range(n) if m.upper[m.x_col(i, k)] > 0]
        m.add_row(entries, float(base_kw[k] - pv_kw[k]), np.inf)
    # the peak: every clock-aligned window's average import
    minutes = window_min(tariff)
    windows: dict[datetime, list[int]] = {}
    for k in range(n_slots):
        windows.setdefault(window_start(bounds[k].astimezone(tz), minutes), []).append(k)
    demand = tariff.demand
    peak = m.add_col(0.0, np.inf, demand.price_per_kw if demand is not None else 0.0)
    for slots in windows.values():
        covered_h = float(sum(hours[k] for k in slots))
        m.add_row([(peak, 1.0), *((imp[k], -float(hours[k]) / covered_h) for k in slots)], 0.0, np.inf)
    # (b) at least the energy optimum's energy (less the met tolerance of the sessions it meets)
    everything = [e for i in range(n) for e in m.delivered_kwh(i)]
    if everything:
        m.add_row(everything, energy_min - 1e-6 * max(1.0, energy_min), np.inf)
    # (a) at least as many departures met
    met_cols: list[int] = []
    if n_met == len(judged):
        for i in judged:
            m.add_row(m.delivered_kwh(i), met_threshold_kwh(m.needs[i]), np.inf)
    elif n_met > 0:
        for i in judged:
            met = m.add_col(0.0, 1.0, 0.0, integer=True)
            met_cols.append(met)
            m.add_row([*m.delivered_kwh(i), (met, -met_threshold_kwh(m.needs[i]))], 0.0, np.inf)
        m.add_row([(c, 1.0) for c in met_cols], float(n_met), np.inf)
    h = m.highs(time_limit_s)
    if met_cols:
        h.setOptionValue("mip_rel_gap", COST_MIP_REL_GAP)
    if met_cols and n_met <= len(met0) and float(delivered0.sum()) >= energy_min:  # the energy optimum fits
        start = _start_vector(m, x0, base_kw - pv_kw, per_a_kw, imp, peak, windows, hours, met_cols, judged, met0)
        sol = highspy.HighsSolution()
        sol.col_value = start
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    model_status = h.getModelStatus()
    status = h.modelStatusToString(model_status)
    info = h.getInfo()
    incumbent: float | None = None
    peak_kw: float | None = None
    if info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible:
        incumbent = float(info.objective_function_value)
        peak_kw = float(h.getSolution().col_value[peak])
    proven = model_status == highspy.HighsModelStatus.kOptimal and incumbent is not None
    if met_cols:
        dual = float(info.mip_dual_bound)
        bound = dual if math.isfinite(dual) else 0.0
        if incumbent is not None:
            bound = min(bound, incumbent)
    else:
        bound = incumbent if proven and incumbent is not None else 0.0
    return CostBound(
        bound=bound,
        incumbent=incumbent,
        proven=proven,
        departures_met_min=n_met,
        energy_kwh_min=energy_min,
        peak_kw=peak_kw,
        currency=tariff.currency,
        status=status,
        solve_s=time.perf_counter() - t0,
    )


def _start_vector(
    m: _Model,
    x0: np.ndarray[Any, np.dtype[np.float64]],
    net_kw: np.ndarray[Any, np.dtype[np.float64]],
    per_a_kw: list[float],
    imp: list[int],
    peak: int,
    windows: dict[datetime, list[int]],
    hours: np.ndarray[Any, np.dtype[np.float64]],
    met_cols: list[int],
    judged: list[int],
    met0: list[int],
) -> list[float]:
    """The energy optimum's schedule as a full column vector of the cost model (a MIP start)."""
    values = [0.0] * len(m.lower)
    n, n_slots = x0.shape
    for i in range(n):
        acc = 0.0
        for k in range(n_slots):
            values[m.x_col(i, k)] = float(x0[i, k])
            values[m.e_col(i, k)] = acc
            acc += float(x0[i, k] * m.kwh_per_a[i, k])
    ev_kw = (x0 * np.array(per_a_kw)[:, None]).sum(axis=0) if n else np.zeros(n_slots)
    imports = [max(0.0, float(net_kw[k] + ev_kw[k])) for k in range(n_slots)]
    for k, col in enumerate(imp):
        values[col] = imports[k]
    values[peak] = max(
        sum(imports[k] * float(hours[k]) for k in slots) / float(sum(hours[k] for k in slots))
        for slots in windows.values()
    )
    chosen = set(met0)
    for col, i in zip(met_cols, judged, strict=True):
        values[col] = 1.0 if i in chosen else 0.0
    return values


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

    first: OptimalSchedule | None = field(default=None)  # the solve from the start (the bounds' reference)

    def __post_init__(self) -> None:
        self.schedule = self.first = solve_optimal(self.scenario)
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
