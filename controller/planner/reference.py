"""A straightforward PuLP model of the same instance, written from the site model directly.

Used as the benchmark's reference (one ``LpVariable`` per session-slot, ``lpSum`` constraints, CBC)
and by the tests as an independent check of what is feasible. It shares only the Instance (slot
grid, cleaned bounds and needs) with the planner, not its matrices.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import pulp

from controller.planner.instance import Instance


@dataclass(frozen=True)
class ReferenceResult:
    status: str
    energy_kwh: tuple[float, ...]
    first_slot: tuple[float, ...]


def _model(
    inst: Instance, feasibility: bool, semi_continuous: bool = False
) -> tuple[pulp.LpProblem, list[list[pulp.LpVariable]], list[list[float]]]:
    g = inst.grid
    hours = g.hours.tolist()
    starts = g.starts_s.tolist()
    ends = g.ends_s.tolist()
    prob = pulp.LpProblem("reference", pulp.LpMinimize)
    x: list[list[pulp.LpVariable]] = []
    kwh: list[list[float]] = []
    most = inst.slot_max.tolist()  # the maximum, or an outside cap (SessionState.cap) where lower
    for i, p in enumerate(inst.sessions):
        dep = p.departure.timestamp()
        row_v, row_k = [], []
        for t in range(g.count):
            frac = min(1.0, max(0.0, (dep - starts[t]) / (ends[t] - starts[t])))
            ub = most[i][t] if frac > 1e-9 and p.need_kwh > 1e-9 else 0.0
            var = pulp.LpVariable(f"x_{i}_{t}", lowBound=0, upBound=ub)
            if semi_continuous and p.min_unit > 0 and ub > 0:
                on = pulp.LpVariable(f"on_{i}_{t}", cat=pulp.LpBinary)
                prob += var <= ub * on, f"on_max_{i}_{t}"
                prob += var >= p.min_unit * on, f"on_min_{i}_{t}"
            row_v.append(var)
            row_k.append(p.kwh_per_unit_h * hours[t] * frac)
        x.append(row_v)
        kwh.append(row_k)
    short = []
    for i, p in enumerate(inst.sessions):
        energy = pulp.lpSum(kwh[i][t] * x[i][t] for t in range(g.count))
        if feasibility:
            prob += energy == p.need_kwh, f"need_{i}"
        else:
            u = pulp.LpVariable(f"u_{i}", lowBound=0)
            prob += energy + u == p.need_kwh, f"need_{i}"
            short.append((p.priority, u))
    line_a = inst.line_rows.a
    line_cap = inst.row_caps()[0]
    for q in range(line_a.shape[0]):
        users = [i for i in range(inst.n) if line_a[q, i] > 0]
        for t in range(g.count):
            prob += (
                pulp.lpSum(float(line_a[q, i]) * x[i][t] for i in users) <= float(line_cap[q]),
                f"cap_{q}_{t}",
            )
    if inst.grid_kw_cap is not None:
        for t in range(g.count):
            prob += (
                pulp.lpSum(p.grid_kw_per_unit * x[i][t] for i, p in enumerate(inst.sessions)) <= inst.grid_kw_cap,
                f"kw_{t}",
            )
    if feasibility:
        prob += pulp.lpSum([])
    else:
        ranks = sorted({pr for pr, _ in short})
        weight = {pr: 30.0 ** (len(ranks) - 1 - k) for k, pr in enumerate(ranks)}
        price = inst.prices.tolist() if inst.prices is not None else [0.0] * g.count
        prob += pulp.lpSum(weight[pr] * u for pr, u in short) + pulp.lpSum(
            0.001 * price[t] * kwh[i][t] * x[i][t] for i in range(len(x)) for t in range(g.count)
        )
    return prob, x, kwh


def solve_reference(
    inst: Instance, feasibility: bool = False, time_limit_s: float = 120.0, semi_continuous: bool = False
) -> ReferenceResult:
    """Build and solve with CBC. ``feasibility=True`` asks whether every need can be met exactly;
    ``semi_continuous=True`` adds the AC minimum current (0 or [min, max]) with binaries."""
    with warnings.catch_warnings():  # PuLP 3.3 announces its 4.0 API on every variable
        warnings.simplefilter("ignore", DeprecationWarning)
        prob, x, kwh = _model(inst, feasibility, semi_continuous)
        prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s))
    status = pulp.LpStatus.get(prob.status, str(prob.status))
    energy = tuple(
        sum(k * (v.varValue or 0.0) for k, v in zip(kr, xr, strict=True)) for kr, xr in zip(kwh, x, strict=True)
    )
    first = tuple((xr[0].varValue or 0.0) if xr else 0.0 for xr in x)
    return ReferenceResult(status, energy, first)


def needs_feasible(inst: Instance, semi_continuous: bool = True) -> bool:
    """True when a schedule meets every session's need within every limit (and, by default, with
    every AC current 0 or at least its minimum)."""
    if not inst.sessions:
        return True
    return solve_reference(inst, feasibility=True, semi_continuous=semi_continuous).status == "Optimal"
