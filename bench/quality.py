"""How good is the planner? Every policy on every scenario in hil/scenarios/ and hil/scenarios/acn/.

    python bench/quality.py [--json] [--scenarios a.yaml,dir/,…] [--policies lp,edf,optimal] [--jobs N]
    python bench/quality.py --tariff [--json] [--scenarios …] [--jobs N]

Per scenario: the energy requested, the offline energy optimum (``opt kWh``: the LP value of the
``optimal`` policy — perfect knowledge, no minimum current — a bound no controller reaches), the
most departures any controller could meet (``max met``: a MILP on the same model with one binary
"met" per session departing within the scenario, limited to ``MAX_MET_TIME_LIMIT_S`` = 10 s per
scenario — every scenario here solves to optimality in under 5 s on one core; where the limit is hit
the column shows ``≤N?``, the bound HiGHS proved, rounded down, and a note below the table gives the
best count it found and says "not proven"), and per policy the energy delivered and the departures
met (met / departed within the scenario; ``past end`` counts the sessions still plugged in when the
scenario ends, whose energy counts but which are neither met nor missed). ``lp/opt`` divides lp's
energy by the optimum's bound, ``lp/opt-run`` by what that optimum delivered when executed step by
step.

Targets (issue 13), checked per scenario: lp has zero violations; lp meets at least as many
departures as the best of edf, llf and equal-share, and delivers ≥ 99.5 % of the best of their
energies; lp delivers ≥ 97 % of the optimum where the declared departures are the real ones and
≥ 95 % where the controller is told drivers' estimates (the ACN days). A bug detector besides:
``within_bounds`` fails when any policy that kept within the limits (zero violations) meets more
departures than ``max met`` or delivers more than ``opt kWh`` — a bound is then wrong, or the
simulation gives energy it should not. A scenario with a tariff also shows lp's ``cost_total``
and ``peak_kw``.

``--tariff`` (issue 16, the depot's bill): every scenario with a tariff — its own where it has one
(the bus depot with a demand charge, the workplace with PV), else :data:`STANDARD_TARIFF` (time of
use 0.18 / 0.31 / 0.18 EUR/kWh from 00:00 / 07:00 / 22:00 site time and a demand charge of
14 EUR/kW on the highest 15-minute average) — runs lp with it, lp planning without it (``w/o``,
billed with it), edf with it, and the optimum's cost bound (``optimal_cost_bound``: the least bill
with perfect knowledge that meets at least the departures the energy optimum meets with at least
its energy). ``terms`` says whether lp meets those two terms: where it does not, it may cost less
by delivering less, so ``bound@lp`` is the same bound on lp's own terms (the least cost of meeting
at least the departures lp met with at least the energy it delivered). Per scenario: departures
met by lp with the tariff and without, lp's ``cost_total`` against both bounds, lp's ``peak_kw``
against edf's, and whether the night has slack (the bound's schedule peaks at least 20 % below
edf's). Targets: departures unchanged; cost within 3 % of the bound; where the night has slack, a
peak at least 20 % below edf's. Medians and totals below the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from datetime import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.model.site import DemandCharge, Tariff, TariffStep  # noqa: E402
from controller.simulate.cli import POLICIES, simulate  # noqa: E402
from controller.simulate.engine import run  # noqa: E402
from controller.simulate.optimal import MAX_MET_TIME_LIMIT_S, solve_cost_bound, solve_optimal  # noqa: E402
from controller.simulate.policies import PlannerPolicy  # noqa: E402
from controller.simulate.result import SimResult  # noqa: E402
from controller.simulate.scenario import Scenario, load_scenario  # noqa: E402
from controller.simulate.whatif import with_tariff  # noqa: E402

SCENARIOS = ROOT / "hil" / "scenarios"
DEFAULT_DIRS = (SCENARIOS, SCENARIOS / "acn")
HEURISTICS = ("equal-share", "edf", "llf")
OPT_SHARE_EXACT = 0.97  # declared departures are the real ones
OPT_SHARE_ESTIMATED = 0.95  # the controller is told estimates (wrong both ways)
BEST_HEURISTIC_SHARE = 0.995
BOUND_SLACK_KWH = 1e-3

STANDARD_TARIFF = Tariff(
    currency="EUR",
    energy=(TariffStep(time(0), 0.18), TariffStep(time(7), 0.31), TariffStep(time(22), 0.18)),
    demand=DemandCharge(price_per_kw=14.0, window_min=15),
)
COST_SHARE = 1.03  # lp's cost_total at most 3 % above the offline cost bound
PEAK_SHARE = 0.80  # where the night has slack: lp's peak at least 20 % below edf's


def estimated_departures(scenario: Scenario) -> bool:
    """Is the controller told anything but the real departure for some session?"""
    return any(s.declared_depart != s.depart for s in scenario.sessions)


def evaluate(scenario: Scenario, results: dict[str, SimResult]) -> dict[str, Any]:
    lp = results.get("lp")
    opt = results.get("optimal")
    row: dict[str, Any] = {
        p: {
            "delivered_kwh": round(r.delivered_kwh, 2),
            "delivered_ratio": round(r.delivered_ratio, 4),
            "departures_met": r.departures_met,
            "departures_total": r.departures_total,
            "violations": r.violations.count,
            "ampere_seconds": round(r.violations.ampere_seconds, 1),
            "p95_ms": r.planner_ms()["p95"],
            "wall_s": round(r.wall_s, 2),
        }
        for p, r in results.items()
    }
    for p, r in results.items():
        if r.bill is not None and r.priced:
            row[p] |= {"cost_total": round(r.bill.cost_total, 2), "peak_kw": round(r.bill.peak_kw, 2)}
    any_result = next(iter(results.values()), None)
    row["requested_kwh"] = round(any_result.requested_kwh, 2) if any_result else 0.0
    row["past_end"] = any_result.past_end if any_result else 0
    row["estimated_departures"] = estimated_departures(scenario)
    if opt is not None and opt.optimal_bound_kwh is not None:
        row["optimal_bound_kwh"] = round(opt.optimal_bound_kwh, 2)
    if opt is not None and opt.max_met is not None:
        row["max_met"] = opt.max_met.to_json()
    checks: dict[str, bool] = {}
    if opt is not None and opt.optimal_bound_kwh is not None and opt.max_met is not None:
        checks["within_bounds"] = not beyond_bounds(results, opt.optimal_bound_kwh, opt.max_met.bound)
    if lp is not None:
        checks["lp_zero_violations"] = lp.violations.count == 0
        if opt is not None and opt.optimal_bound_kwh:
            row["lp_over_optimal"] = round(lp.delivered_kwh / opt.optimal_bound_kwh, 4)
            row["lp_over_optimal_run"] = round(lp.delivered_kwh / max(opt.delivered_kwh, 1e-9), 4)
            share = OPT_SHARE_ESTIMATED if row["estimated_departures"] else OPT_SHARE_EXACT
            checks[f"lp_{round(100 * share)}pct_of_optimal"] = lp.delivered_kwh >= share * opt.optimal_bound_kwh - 1e-6
        others = [results[h] for h in HEURISTICS if h in results]
        if others:
            checks["lp_met_ge_heuristics"] = lp.departures_met >= max(r.departures_met for r in others)
            best_kwh = max(r.delivered_kwh for r in others)
            checks["lp_kwh_995_of_heuristics"] = lp.delivered_kwh >= BEST_HEURISTIC_SHARE * best_kwh - 1e-6
    row["checks"] = checks
    return row


def beyond_bounds(results: dict[str, SimResult], bound_kwh: float, max_met: int) -> list[str]:
    """Policies that kept within the limits yet beat a bound (a policy that broke a limit may)."""
    return [
        name
        for name, r in results.items()
        if r.violations.count == 0 and (r.departures_met > max_met or r.delivered_kwh > bound_kwh + BOUND_SLACK_KWH)
    ]


def scenario_files(spec: str | None) -> list[Path]:
    """Files named, or every *.yaml of the directories named (default: hil/scenarios and its acn/)."""
    parts = [Path(p) for p in spec.split(",")] if spec else list(DEFAULT_DIRS)
    files: list[Path] = []
    for part in parts:
        files += sorted(part.glob("*.yaml")) if part.is_dir() else [part]
    return files


def print_table(table: list[dict[str, Any]], policies: list[str]) -> None:
    head = ["scenario", "chg", "sess", "req kWh", "opt kWh", "max met"]
    for p in policies:
        head += [f"{p} kWh", f"{p} met"]
    head += ["past end", "lp/opt", "lp/opt-run", "lp viol", "lp cost", "lp peak kW", "lp p95 ms", "lp wall s"]
    head += ["targets"]
    rows = [head]
    for row in table:
        bound = row.get("optimal_bound_kwh")
        cells = [
            row["scenario"],
            str(row["chargers"]),
            str(row["sessions"]),
            f"{row['requested_kwh']:.1f}",
            "—" if bound is None else f"{bound:.1f}",
            max_met_cell(row.get("max_met")),
        ]
        for p in policies:
            r = row[p]
            cells += [f"{r['delivered_kwh']:.1f}", f"{r['departures_met']}/{r['departures_total']}"]
        lp = row.get("lp", {})
        cells += [
            str(row["past_end"]),
            f"{100 * row['lp_over_optimal']:.1f}%" if "lp_over_optimal" in row else "—",
            f"{100 * row['lp_over_optimal_run']:.1f}%" if "lp_over_optimal_run" in row else "—",
            str(lp.get("violations", "—")),
            f"{lp['cost_total']:.2f}" if "cost_total" in lp else "—",
            f"{lp['peak_kw']:.1f}" if "peak_kw" in lp else "—",
            f"{lp.get('p95_ms', 0):.1f}",
            f"{lp.get('wall_s', 0):.1f}",
            " ".join(f"{k}={'ok' if v else 'MISS'}" for k, v in row["checks"].items()),
        ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for row in table:
        mm = row.get("max_met")
        if mm is not None and not mm["proven"]:
            found = "none found" if mm["incumbent"] is None else f"best found {mm['incumbent']}"
            print(
                f"{row['scenario']}: max met {mm['bound']} of {mm['departures_total']} not proven "
                f"(HiGHS {mm['status']!r} after {mm['solve_s']:.1f} s; {found})"
            )


def max_met_cell(mm: dict[str, Any] | None) -> str:
    """The bound and what it is out of; ``≤N?`` when HiGHS did not prove it in its time limit."""
    if mm is None:
        return "—"
    return f"{mm['bound']}/{mm['departures_total']}" if mm["proven"] else f"≤{mm['bound']}?/{mm['departures_total']}"


def _quality_row(path: Path, policies: list[str], max_met_time_limit_s: float) -> dict[str, Any]:
    scenario = load_scenario(path)
    results = {p: simulate(scenario, p, max_met_time_limit_s=max_met_time_limit_s) for p in policies}
    row = evaluate(scenario, results)
    row["scenario"] = scenario.name
    row["chargers"] = len(scenario.site.chargers)
    row["sessions"] = len(scenario.sessions)
    row["hours"] = scenario.duration_s / 3600
    row["step_s"] = scenario.step_s
    return row


def priced(scenario: Scenario) -> tuple[Scenario, bool]:
    """The scenario with its own tariff, else with :data:`STANDARD_TARIFF` (``True``: added)."""
    if scenario.priced:
        return scenario, False
    return with_tariff(scenario, STANDARD_TARIFF), True


def planning_cost(scenario: Scenario) -> Scenario:
    """The scenario with the planner's cost stage on (``control.plan_cost``: off by default)."""
    site = dataclasses.replace(
        scenario.site, control=dataclasses.replace(scenario.site.control, plan_cost=True)
    )
    return dataclasses.replace(scenario, site=site)


def _tariff_row(path: Path) -> dict[str, Any]:
    """lp with the tariff and without, edf with it, the cost bound: issue 16's figures for one scenario."""
    scenario, added = priced(load_scenario(path))
    scenario = planning_cost(scenario)
    lp = simulate(scenario, "lp")
    lp_plain = run(scenario, PlannerPolicy(name="lp-no-tariff", ignore_tariff=True))  # its bill: the tariff's
    edf = simulate(scenario, "edf")
    opt = simulate(scenario, "optimal", max_met=False)
    assert lp.bill is not None and edf.bill is not None and lp_plain.bill is not None and opt.cost_bound is not None
    cb = opt.cost_bound
    # the least cost of doing what lp did: at least its departures met and its energy
    at_lp = solve_cost_bound(
        scenario, solve_optimal(scenario), met_min=lp.departures_met, energy_min_kwh=lp.delivered_kwh * (1 - 1e-6)
    )
    slack = cb.peak_kw is not None and cb.peak_kw <= PEAK_SHARE * edf.bill.peak_kw
    row: dict[str, Any] = {
        "scenario": scenario.name,
        "tariff": "standard" if added else "own",
        "currency": lp.bill.currency,
        "departures_total": lp.departures_total,
        "lp_met": lp.departures_met,
        "lp_met_without_tariff": lp_plain.departures_met,
        "lp_kwh": round(lp.delivered_kwh, 2),
        "lp_kwh_without_tariff": round(lp_plain.delivered_kwh, 2),
        "lp_cost_total": round(lp.bill.cost_total, 2),
        "lp_cost_without_tariff": round(lp_plain.bill.cost_total, 2),  # planned without, billed with it
        "lp_peak_without_tariff_kw": round(lp_plain.bill.peak_kw, 2),
        "edf_cost_total": round(edf.bill.cost_total, 2),
        "optimal_cost_bound": round(cb.bound, 2),
        "cost_bound": cb.to_json(),
        "cost_over_bound": round(lp.bill.cost_total / cb.bound, 4) if cb.bound > 0 else None,
        "cost_bound_at_lp": at_lp.to_json(),
        "cost_over_bound_at_lp": round(lp.bill.cost_total / at_lp.bound, 4) if at_lp.bound > 0 else None,
        "lp_peak_kw": round(lp.bill.peak_kw, 2),
        "edf_peak_kw": round(edf.bill.peak_kw, 2),
        "bound_peak_kw": None if cb.peak_kw is None else round(cb.peak_kw, 2),
        "peak_over_edf": round(lp.bill.peak_kw / edf.bill.peak_kw, 4) if edf.bill.peak_kw > 0 else None,
        "slack": slack,
        "lp_pv_used_kwh": round(lp.bill.pv_used_kwh, 2),
        "pv_kwh": round(lp.bill.pv_kwh, 2),
        "lp_violations": lp.violations.count,
        "lp_p95_ms": lp.planner_ms()["p95"],
    }
    checks = {
        "departures_unchanged": lp.departures_met >= lp_plain.departures_met,
        "cost_within_3pct": cb.bound > 0 and lp.bill.cost_total <= COST_SHARE * cb.bound + 1e-6,
        "cost_within_3pct_at_lp_terms": at_lp.bound > 0 and lp.bill.cost_total <= COST_SHARE * at_lp.bound + 1e-6,
    }
    if slack:
        checks["peak_20pct_below_edf"] = lp.bill.peak_kw <= PEAK_SHARE * edf.bill.peak_kw + 1e-6
    row["lp_meets_bound_terms"] = meets_bound_terms(row)
    row["checks"] = checks
    return row


def meets_bound_terms(row: dict[str, Any]) -> bool:
    """Does lp meet the cost bound's two terms (the departures and the energy it is held to)? Where
    it does not, lp may cost less than the bound by delivering less: the ratio then says little."""
    cb = row["cost_bound"]
    return bool(row["lp_met"] >= cb["departures_met_min"] and row["lp_kwh"] >= cb["energy_kwh_min"] - 0.01)


def print_tariff_table(table: list[dict[str, Any]]) -> None:
    head = [
        "scenario", "tariff", "met lp", "met lp w/o", "lp cost", "lp w/o cost", "cost bound", "lp/bound",
        "terms", "bound@lp", "lp/bound@lp", "lp peak kW", "edf peak kW", "lp/edf", "bound peak", "slack",
        "PV used", "targets",
    ]  # fmt: skip
    rows = [head]
    for r in table:
        cb = r["cost_bound"]
        rows.append(
            [
                r["scenario"],
                r["tariff"],
                f"{r['lp_met']}/{r['departures_total']}",
                f"{r['lp_met_without_tariff']}/{r['departures_total']}",
                f"{r['lp_cost_total']:.2f}",
                f"{r['lp_cost_without_tariff']:.2f}",
                f"{r['optimal_cost_bound']:.2f}" + ("" if cb["proven"] else "?"),
                "—" if r["cost_over_bound"] is None else f"{100 * r['cost_over_bound']:.1f}%",
                "yes" if meets_bound_terms(r) else "no",
                f"{r['cost_bound_at_lp']['bound']:.2f}" + ("" if r["cost_bound_at_lp"]["proven"] else "?"),
                "—" if r["cost_over_bound_at_lp"] is None else f"{100 * r['cost_over_bound_at_lp']:.1f}%",
                f"{r['lp_peak_kw']:.1f}",
                f"{r['edf_peak_kw']:.1f}",
                "—" if r["peak_over_edf"] is None else f"{100 * r['peak_over_edf']:.1f}%",
                "—" if r["bound_peak_kw"] is None else f"{r['bound_peak_kw']:.1f}",
                "yes" if r["slack"] else "no",
                f"{r['lp_pv_used_kwh']:.0f}/{r['pv_kwh']:.0f}" if r["pv_kwh"] else "—",
                " ".join(f"{k}={'ok' if v else 'MISS'}" for k, v in r["checks"].items()),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    cost = [r["cost_over_bound"] for r in table if r["cost_over_bound"] is not None]
    at_lp = [r["cost_over_bound_at_lp"] for r in table if r["cost_over_bound_at_lp"] is not None]
    peak = [r["peak_over_edf"] for r in table if r["peak_over_edf"] is not None and r["slack"]]
    print()
    print(
        f"departures met: lp with the tariff {sum(r['lp_met'] for r in table)}, without "
        f"{sum(r['lp_met_without_tariff'] for r in table)} of {sum(r['departures_total'] for r in table)}"
    )
    if cost:
        print(f"lp cost / bound: median {100 * statistics.median(cost):.1f}%, worst {100 * max(cost):.1f}%")
    held = [r["cost_over_bound"] for r in table if r["cost_over_bound"] is not None and meets_bound_terms(r)]
    if held:
        print(
            f"  where lp meets the bound's terms (departures and energy; {len(held)} scenarios): median "
            f"{100 * statistics.median(held):.1f}%, worst {100 * max(held):.1f}%"
        )
    if at_lp:
        print(
            f"lp cost / the least cost of lp's own departures and energy: median "
            f"{100 * statistics.median(at_lp):.1f}%, worst {100 * max(at_lp):.1f}%"
        )
    if peak:
        print(
            f"lp peak / edf where the night has slack ({len(peak)} scenarios): median "
            f"{100 * statistics.median(peak):.1f}%, worst {100 * max(peak):.1f}%"
        )
    for name in sorted({k for r in table for k in r["checks"]}):
        judged = [r["checks"][name] for r in table if name in r["checks"]]
        print(f"{name}: {sum(judged)} of {len(judged)} scenarios")
    unproven = [r["scenario"] for r in table if not (r["cost_bound"]["proven"] and r["cost_bound_at_lp"]["proven"])]
    if unproven:
        print(f"cost bound not proven (HiGHS's time limit; ? above: its proven lower bound): {', '.join(unproven)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--scenarios", help="comma-separated scenario files or directories (default: hil/scenarios, hil/scenarios/acn)"
    )
    parser.add_argument("--policies", default=",".join(p for p in POLICIES if p != "uncontrolled"))
    parser.add_argument(
        "--max-met-time-limit-s",
        type=float,
        default=MAX_MET_TIME_LIMIT_S,
        help=f"time limit of the max-met MILP per scenario (default {MAX_MET_TIME_LIMIT_S:g} s)",
    )
    parser.add_argument(
        "--tariff", action="store_true", help="issue 16's figures: every scenario with a tariff (see the docstring)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        help="scenarios simulated at once in separate processes (default: 1; with --tariff: the CPU count); "
        "more than one makes the planner timings noisier",
    )
    args = parser.parse_args()
    files = scenario_files(args.scenarios)
    jobs = max(1, args.jobs or ((os.cpu_count() or 1) if args.tariff else 1))
    if args.tariff:
        tariff_rows = _map(_tariff_row, [(f,) for f in files], jobs)
        if args.json:
            print(json.dumps(tariff_rows, indent=2))
        else:
            print_tariff_table(tariff_rows)
        return 0
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}: choose from {', '.join(POLICIES)}")
    table = _map(_quality_row, [(f, policies, args.max_met_time_limit_s) for f in files], jobs)
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print_table(table, policies)
    return 0


def _map(fn: Any, arg_lists: list[tuple[Any, ...]], jobs: int) -> list[dict[str, Any]]:
    """``fn`` over the argument tuples in order, ``jobs`` processes at a time; a line on stderr each."""
    out: list[dict[str, Any]] = []
    if jobs == 1:
        for a in arg_lists:
            out.append(fn(*a))
            print(f"… {out[-1]['scenario']} done", file=sys.stderr)
        return out
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(fn, *a) for a in arg_lists]
        for f in futures:
            out.append(f.result())
            print(f"… {out[-1]['scenario']} done", file=sys.stderr)
    return out


if __name__ == "__main__":
    sys.exit(main())
