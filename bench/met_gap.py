"""Does departures first's stage 1 (the fractional-knapsack LP) meet as many departures as a MILP?

    nice python bench/met_gap.py [--json] [--scenarios a.yaml,dir/,…] [--every N] [--samples 30]
                                 [--time-limit-s 1.0]

Runs the ``lp`` policy over the scenarios of bench/quality.py (hil/scenarios/*.yaml and
hil/scenarios/acn/*.yaml), exactly as quality.py does. At every Nth planning cycle it takes the
planner's own Instance and stage-1 LP data — the bench wraps ``controller.planner.plan.solve``
(the product is not changed): the stage-1 arrays are rebuilt with ``lp_data`` from the same
instance and stability targets, and stage 1's answer is read from the kept stage-1 HiGHS model —
and compares, within the LP's own model (a session is met with shortfall ≤ MET_TOL·max(1, need)):

* the knapsack's met count (stage 1's answer) against
* ``controller.planner.milp.max_met`` — the most departures the same model can meet, priority
  classes lexicographically, time-limited, hinted with the knapsack's answer (never worse).

Cycles where the knapsack already meets every session with a need are counted (``all met``) but
not solved (the MILP cannot do better). Per scenario: planning cycles, cycles sampled, all met,
cycles where both agree, where the MILP meets more (and the sum of the extra departures), not
proven, the LP's time for that cycle (the planner's HiGHS time, both stages, hot-started) and the
MILP's (cold, hint included), median / p95, and the instance size (sessions with a need, slots,
columns). Default N: so that about ``--samples`` cycles per scenario are sampled (the whole bench
then takes a few minutes on one core).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import scenario_files  # noqa: E402

from controller.planner.instance import Instance  # noqa: E402
from controller.planner.lp import LpData, layout_for, lp_data  # noqa: E402
from controller.planner.milp import FloatArray, class_order, max_met, met_of  # noqa: E402
from controller.planner.rows import build_rows  # noqa: E402
from controller.simulate.cli import simulate  # noqa: E402
from controller.simulate.scenario import Scenario, load_scenario  # noqa: E402

# the module, not the package's ``plan`` function of the same name
plan_module = importlib.import_module("controller.planner.plan")

DEFAULT_SAMPLES = 30
DEFAULT_TIME_LIMIT_S = 1.0
CHECK_TOL = 1e-4  # as the planner's own check of a solver's answer


@dataclass
class Sample:
    cycle: int
    n: int  # sessions with a need
    t: int
    cols: int
    knapsack: int
    knapsack_per_class: tuple[int, ...]
    plan: int  # met by the planner's LP answer (stage 2, the met set held; more may be met there)
    milp: int
    milp_per_class: tuple[int, ...]
    proven: bool
    bound: int
    lp_ms: float
    milp_ms: float
    status: str
    problem: str | None  # the independent check of the MILP's schedule (node rows, bounds, need)


@dataclass
class Tally:
    every: int
    time_limit_s: float
    cycles: int = 0
    all_met: int = 0
    samples: list[Sample] = field(default_factory=list)
    skipped: int = 0  # sampled cycles without an optimal stage 1 (nothing to compare)


def wrap_solve(tally: Tally) -> Callable[..., Any]:
    """``controller.planner.plan.solve`` with a comparison at every Nth cycle; same return value."""
    real = plan_module.solve

    def solve(inst: Instance, prev: dict[str, float], model: Any, time_limit_s: float, *rest: Any) -> Any:
        out = real(inst, prev, model, time_limit_s, *rest)
        tally.cycles += 1
        if (tally.cycles - 1) % tally.every == 0:
            compare(tally, inst, prev, out)
        return out

    return solve


def compare(tally: Tally, inst: Instance, prev: dict[str, float], out: Any) -> None:
    res, model, _ = out
    if not res.ok or model is None or inst.n == 0:
        tally.skipped += 1
        return
    data = lp_data(inst, layout_for(inst), prev)  # stage 1's arrays, as solve built them
    lay = data.layout
    x1 = np.asarray(model.highs.getSolution().col_value, dtype=np.float64)[: lay.n_x].reshape(lay.n, lay.t)
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    judged = need > 1e-9
    met1 = met_of(data, x1)
    if not judged.any():
        tally.skipped += 1
        return
    if met1.sum() == judged.sum():
        tally.all_met += 1
        return
    ans = max_met(inst, data, tally.time_limit_s, met1, x1)
    classes = np.array(lay.classes, dtype=np.int64)
    order = [c for c in class_order(inst, data) if (judged & (classes == c)).any()]
    k_per = tuple(int(met1[classes == c].sum()) for c in order)
    plan_met = int(met_of(data, res.x).sum())
    tally.samples.append(Sample(tally.cycles, int(judged.sum()), lay.t, lay.n_cols + int(judged.sum()),
                                int(met1.sum()), k_per, plan_met, ans.count, ans.per_class, ans.proven,
                                ans.bound if ans.bound is not None else ans.count, res.solve_ms, ans.solve_ms,
                                ans.status, check(inst, data, ans.x)))


def check(inst: Instance, data: LpData, x: FloatArray | None) -> str | None:
    """The MILP's schedule against the planner's own independent rows (not the LP's arrays)."""
    if x is None:
        return "no schedule"
    lay = data.layout
    need = data.row_lower[lay.energy_row0 : lay.energy_row0 + lay.n]
    if (x < -CHECK_TOL).any() or (x > data.col_upper[: lay.n_x].reshape(x.shape) + CHECK_TOL).any():
        return "bounds violated"
    if build_rows(inst).violations(x, tol=CHECK_TOL).any():
        return "capacity violated"
    if ((data.kwh * x).sum(axis=1) > need + CHECK_TOL * np.maximum(1.0, need)).any():
        return "energy above need"
    return None


def expected_cycles(scenario: Scenario) -> int:
    return max(1, int(scenario.duration_s / max(scenario.step_s, scenario.site.control.plan_every_s)))


def run_scenario(scenario: Scenario, every: int | None, samples: int, time_limit_s: float) -> Tally:
    n_every = every or max(1, math.ceil(expected_cycles(scenario) / samples))
    tally = Tally(n_every, time_limit_s)
    real = plan_module.solve
    plan_module.solve = wrap_solve(tally)
    try:
        simulate(scenario, "lp")
    finally:
        plan_module.solve = real
    return tally


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summary(name: str, tally: Tally, wall_s: float) -> dict[str, Any]:
    ss = tally.samples
    more = [s for s in ss if s.milp_per_class > s.knapsack_per_class]
    fewer = [s for s in ss if s.milp_per_class < s.knapsack_per_class]
    return {
        "scenario": name,
        "every": tally.every,
        "cycles": tally.cycles,
        "sampled": len(ss) + tally.all_met,
        "all_met": tally.all_met,
        "solved": len(ss),
        "equal": sum(1 for s in ss if s.milp_per_class == s.knapsack_per_class),
        "milp_more": len(more),
        "extra_departures": sum(s.milp - s.knapsack for s in more),
        "milp_more_than_plan": sum(1 for s in ss if s.milp > s.plan),
        "extra_vs_plan": sum(max(0, s.milp - s.plan) for s in ss),
        "bad_schedules": sum(1 for s in ss if s.problem is not None),
        "milp_fewer": len(fewer),  # must be 0: the knapsack's answer is the MILP's hint
        "not_proven": sum(1 for s in ss if not s.proven),
        "open_bound": sum(s.bound - s.milp for s in ss if not s.proven),
        "lp_ms_p50": round(statistics.median([s.lp_ms for s in ss]), 1) if ss else 0.0,
        "milp_ms_p50": round(statistics.median([s.milp_ms for s in ss]), 1) if ss else 0.0,
        "milp_ms_p95": round(pct([s.milp_ms for s in ss], 0.95), 1),
        "milp_ms_max": round(max((s.milp_ms for s in ss), default=0.0), 1),
        "n_p50": int(statistics.median([s.n for s in ss])) if ss else 0,
        "n_max": max((s.n for s in ss), default=0),
        "t_max": max((s.t for s in ss), default=0),
        "cols_max": max((s.cols for s in ss), default=0),
        "worst": [
            {"cycle": s.cycle, "knapsack": s.knapsack, "milp": s.milp, "per_class": [s.knapsack_per_class,
                                                                                   s.milp_per_class],
             "n": s.n, "proven": s.proven, "bound": s.bound, "milp_ms": round(s.milp_ms, 1)}
            for s in sorted(more, key=lambda s: s.knapsack - s.milp)[:3]
        ],
        "skipped": tally.skipped,
        "wall_s": round(wall_s, 1),
    }


def print_table(rows: list[dict[str, Any]], time_limit_s: float) -> None:
    head = ["scenario", "N", "cycles", "sampled", "all met", "solved", "equal", "MILP more (+dep)", "> plan (+dep)",
            "fewer", "bad",
            "not proven", "LP ms p50", "MILP ms p50/p95/max", "sess p50/max", "slots", "cols", "wall s"]
    table = [head]
    for r in rows:
        table.append([
            r["scenario"], str(r["every"]), str(r["cycles"]), str(r["sampled"]), str(r["all_met"]), str(r["solved"]),
            str(r["equal"]), f"{r['milp_more']} (+{r['extra_departures']})",
            f"{r['milp_more_than_plan']} (+{r['extra_vs_plan']})", str(r["milp_fewer"]), str(r["bad_schedules"]),
            f"{r['not_proven']}" + (f" (≤+{r['open_bound']})" if r["not_proven"] else ""),
            f"{r['lp_ms_p50']:.1f}", f"{r['milp_ms_p50']:.0f}/{r['milp_ms_p95']:.0f}/{r['milp_ms_max']:.0f}",
            f"{r['n_p50']}/{r['n_max']}", str(r["t_max"]), str(r["cols_max"]), f"{r['wall_s']:.0f}",
        ])
    tot = {k: sum(r[k] for r in rows) for k in ("cycles", "sampled", "all_met", "solved", "equal", "milp_more",
                                                "extra_departures", "milp_more_than_plan", "extra_vs_plan",
                                                "milp_fewer", "bad_schedules", "not_proven")}
    table.append(["total", "", str(tot["cycles"]), str(tot["sampled"]), str(tot["all_met"]), str(tot["solved"]),
                  str(tot["equal"]), f"{tot['milp_more']} (+{tot['extra_departures']})",
                  f"{tot['milp_more_than_plan']} (+{tot['extra_vs_plan']})", str(tot["milp_fewer"]),
                  str(tot["bad_schedules"]),
                  str(tot["not_proven"]), "", "", "", "", "", ""])
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for i, row in enumerate(table):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0 or i == len(table) - 2:
            print("  ".join("-" * w for w in widths))
    print(f"MILP time limit {time_limit_s:g} s per cycle; 'not proven (≤+k)': the MILP's proven bound leaves k "
          "more departures possible over those cycles. Lexicographic over priority classes.")
    for r in rows:
        for w in r["worst"]:
            print(f"  {r['scenario']} cycle {w['cycle']}: knapsack {w['knapsack']}, MILP {w['milp']} "
                  f"of {w['n']} with a need (per class {w['per_class'][0]} -> {w['per_class'][1]}), "
                  f"{'proven' if w['proven'] else 'not proven, bound ' + str(w['bound'])}, {w['milp_ms']} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--scenarios", help="comma-separated scenario files or directories (default: hil/scenarios, hil/scenarios/acn)"
    )
    parser.add_argument("--every", type=int, default=None, help="compare at every Nth planning cycle "
                        "(default: about --samples cycles per scenario)")
    parser.add_argument("--samples", type=int, default=DEFAULT_SAMPLES)
    parser.add_argument("--time-limit-s", type=float, default=DEFAULT_TIME_LIMIT_S,
                        help=f"the MILP's time limit per sampled cycle (default {DEFAULT_TIME_LIMIT_S:g} s)")
    args = parser.parse_args()
    if args.every is not None and args.every < 1:
        parser.error("--every must be at least 1")
    rows = []
    for path in scenario_files(args.scenarios):
        scenario = load_scenario(path)
        t0 = time.perf_counter()
        tally = run_scenario(scenario, args.every, max(1, args.samples), args.time_limit_s)
        rows.append(summary(scenario.name, tally, time.perf_counter() - t0))
        if not args.json:
            print(f"… {scenario.name} done", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, args.time_limit_s)
    return 1 if any(r["milp_fewer"] or r["bad_schedules"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
