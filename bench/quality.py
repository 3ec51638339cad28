"""How good is the planner? Every policy on every scenario in hil/scenarios/, one table.

    python bench/quality.py [--json] [--scenarios a.yaml,b.yaml] [--policies lp,optimal]

Targets (issue 4): ``lp`` has zero violations everywhere, delivers >= 99 % of the optimum's
energy on each scenario, and beats equal-share and edf on departures met wherever they differ;
a 24 h, 60-charger scenario at 60 s steps finishes in under 60 s. ``lp/opt`` divides lp's
delivered energy by the offline optimum's bound (its LP value: perfect knowledge, no minimum
current); ``lp/opt-run`` by what that optimum delivered when executed step by step.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from controller.simulate.cli import POLICIES, simulate  # noqa: E402
from controller.simulate.result import SimResult  # noqa: E402
from controller.simulate.scenario import load_scenario  # noqa: E402

SCENARIOS = ROOT / "hil" / "scenarios"


def evaluate(results: dict[str, SimResult]) -> dict[str, Any]:
    lp = results.get("lp")
    opt = results.get("optimal")
    row: dict[str, Any] = {
        p: {
            "delivered_ratio": round(r.delivered_ratio, 4),
            "departures_met": r.departures_met,
            "departures_total": len(r.sessions),
            "violations": r.violations.count,
            "ampere_seconds": round(r.violations.ampere_seconds, 1),
            "p95_ms": r.planner_ms()["p95"],
            "wall_s": round(r.wall_s, 2),
        }
        for p, r in results.items()
    }
    checks: dict[str, bool] = {}
    if lp is not None:
        checks["lp_zero_violations"] = lp.violations.count == 0
        if opt is not None and opt.optimal_bound_kwh:
            row["lp_over_optimal"] = round(lp.delivered_kwh / opt.optimal_bound_kwh, 4)
            row["lp_over_optimal_run"] = round(lp.delivered_kwh / max(opt.delivered_kwh, 1e-9), 4)
            checks["lp_99pct_of_optimal"] = lp.delivered_kwh >= 0.99 * opt.optimal_bound_kwh - 1e-6
        for other in ("equal-share", "edf"):
            if other in results and results[other].departures_met != lp.departures_met:
                checks[f"lp_beats_{other}"] = lp.departures_met > results[other].departures_met
    row["checks"] = checks
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--scenarios", help="comma-separated scenario files (default: all in hil/scenarios)")
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    files = [Path(f) for f in args.scenarios.split(",")] if args.scenarios else sorted(SCENARIOS.glob("*.yaml"))
    policies = args.policies.split(",")
    table: list[dict[str, Any]] = []
    for path in files:
        scenario = load_scenario(path)
        results = {p: simulate(scenario, p) for p in policies}
        row = evaluate(results)
        row["scenario"] = scenario.name
        row["chargers"] = len(scenario.site.chargers)
        row["hours"] = scenario.duration_s / 3600
        row["step_s"] = scenario.step_s
        table.append(row)
        if not args.json:
            print(f"… {scenario.name} done", file=sys.stderr)
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    head = ["scenario", "chg"]
    for p in policies:
        head += [f"{p} kWh%", f"{p} met"]
    head += ["lp/opt", "lp/opt-run", "lp viol", "lp p95 ms", "lp wall s", "targets"]
    rows = [head]
    for row in table:
        cells = [row["scenario"], str(row["chargers"])]
        for p in policies:
            r = row[p]
            cells += [f"{100 * r['delivered_ratio']:.1f}", f"{r['departures_met']}/{r['departures_total']}"]
        lp = row.get("lp", {})
        cells += [
            f"{100 * row.get('lp_over_optimal', 0):.1f}%",
            f"{100 * row.get('lp_over_optimal_run', 0):.1f}%",
            str(lp.get("violations", "—")),
            f"{lp.get('p95_ms', 0):.1f}",
            f"{lp.get('wall_s', 0):.1f}",
            " ".join(f"{k}={'ok' if v else 'MISS'}" for k, v in row["checks"].items()),
        ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for i, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
