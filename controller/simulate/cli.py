"""``depotctl simulate``: replay scenario days offline and score the policies."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controller.config.reading import read_or_report
from controller.simulate.engine import run
from controller.simulate.optimal import (
    COST_BOUND_TIME_LIMIT_S,
    MAX_MET_TIME_LIMIT_S,
    OptimalPolicy,
    solve_cost_bound,
    solve_max_met,
)
from controller.simulate.policies import (
    PlannerPolicy,
    Policy,
    Uncontrolled,
    edf_policy,
    equal_share_policy,
    llf_policy,
)
from controller.simulate.result import SimResult, session_table, table
from controller.simulate.scenario import Scenario, load_scenario
from controller.simulate.whatif import scale_sessions, with_grid_limit, with_pv_factor

POLICIES = ("lp", "equal-share", "edf", "llf", "uncontrolled", "optimal")


def make_policy(name: str, scenario: Scenario) -> Policy:
    if name == "lp":
        return PlannerPolicy()
    if name == "equal-share":
        return equal_share_policy()
    if name == "edf":
        return edf_policy()
    if name == "llf":
        return llf_policy()
    if name == "uncontrolled":
        return Uncontrolled()
    if name == "optimal":
        return OptimalPolicy(scenario)
    raise ValueError(name)


def simulate(
    scenario: Scenario,
    policy_name: str,
    *,
    progress: bool = False,
    keep_series: bool = False,
    max_met_time_limit_s: float = MAX_MET_TIME_LIMIT_S,
    departure_history: bool | None = None,
    arrival_forecast: bool | None = None,
    max_met: bool = True,
    cost_bound_time_limit_s: float = COST_BOUND_TIME_LIMIT_S,
) -> SimResult:
    """Run one policy on one scenario. The ``optimal`` policy's result also carries the bounds:
    the energy optimum (``optimal_bound_kwh``), the most departures any controller could meet
    (``max_met``, a MILP limited to ``max_met_time_limit_s``; ``max_met=False`` skips it) and the
    least bill (``cost_bound``, limited to ``cost_bound_time_limit_s``).
    ``departure_history``: whether the policy plans against each vehicle's history-based departure
    estimate (default: lp only); ``arrival_forecast``: whether it is shown the vehicles still to
    come, forecast from earlier days (default: lp only, where the site has a demand charge)."""
    policy = make_policy(policy_name, scenario)
    bar = _Progress(f"{scenario.name} {policy_name}") if progress else None
    result = run(scenario, policy, progress=bar, keep_series=keep_series, departure_history=departure_history,
                 arrival_forecast=arrival_forecast)
    if bar is not None:
        bar.done()
    if isinstance(policy, OptimalPolicy) and policy.first is not None:
        result.optimal_bound_kwh = policy.bound_kwh
        if max_met:
            result.max_met = solve_max_met(scenario, max_met_time_limit_s)
        result.cost_bound = solve_cost_bound(scenario, policy.first, cost_bound_time_limit_s)
    if isinstance(policy, PlannerPolicy):
        result.solvers = dict(policy.solvers_used)
    return result


class _Progress:
    """A one-line progress bar on stderr (only drawn on a terminal)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.last = -1

    def __call__(self, fraction: float) -> None:
        pct = min(100, int(fraction * 100))
        if pct != self.last:
            self.last = pct
            filled = pct // 4
            sys.stderr.write(f"\r{self.label:<30} [{'#' * filled}{'.' * (25 - filled)}] {pct:3d}%")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 70 + "\r")
        sys.stderr.flush()


def _cmd_simulate(args: argparse.Namespace) -> int:
    policies = list(POLICIES) if args.policy == "all" else [args.policy]
    if args.plot and (len(args.files) != 1 or len(policies) != 1):
        print("depotctl: error: --plot takes one scenario file and one policy", file=sys.stderr)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("depotctl: error: --plot needs matplotlib: pip install 'depotctl[plot]'", file=sys.stderr)
            return 2
    scenarios: list[Scenario] = []
    for name in args.files:
        loaded = read_or_report(load_scenario, name, "nothing simulated")
        if loaded is None:
            return 2
        scenario = loaded
        if args.grid_limit_a is not None:
            scenario = with_grid_limit(scenario, args.grid_limit_a)
        if args.scale_sessions is not None:
            scenario = scale_sessions(scenario, args.scale_sessions)
        if args.pv_factor is not None:
            scenario = with_pv_factor(scenario, args.pv_factor)
        scenarios.append(scenario)
    progress = sys.stderr.isatty() and not args.no_progress
    history = False if args.no_departure_history else None
    arrivals = False if args.no_arrival_forecast else None
    results = [
        simulate(sc, p, progress=progress, keep_series=bool(args.plot), departure_history=history,
                 arrival_forecast=arrivals)
        for sc in scenarios
        for p in policies
    ]
    if args.json:
        payload: dict[str, Any] = (
            results[0].to_json() if len(results) == 1 else {"results": [r.to_json() for r in results]}
        )
        print(json.dumps(payload, indent=2))
    else:
        if len(results) == 1:
            print(session_table(results[0]))
            print()
        print(table(results))
        for r in results:
            first = r.first_missed()
            if first is not None:
                print(
                    f"{r.scenario} ({r.policy}): first missed departure: {first.charger} at "
                    f"{first.depart:%Y-%m-%d %H:%M %Z} ({first.delivered_kwh:.1f} of {first.requested_kwh:.1f} kWh)"
                )
            if r.optimal_bound_kwh is not None:
                print(f"{r.scenario} (optimal): with perfect knowledge at most {r.optimal_bound_kwh:.1f} kWh")
            if r.max_met is not None:
                print(f"{r.scenario} (optimal): with perfect knowledge {r.max_met.describe()}")
            if r.cost_bound is not None and r.priced:
                print(f"{r.scenario} (optimal): with perfect knowledge {r.cost_bound.describe()}")
            if r.bill is not None and r.priced:
                b = r.bill
                print(
                    f"{r.scenario} ({r.policy}): cost {b.cost_total:.2f} {b.currency} (energy {b.cost_energy:.2f}, "
                    f"demand {b.cost_demand:.2f} for a {b.peak_kw:.1f} kW peak), import {b.import_kwh:.1f} kWh"
                    + (f", PV {b.pv_used_kwh:.1f} of {b.pv_kwh:.1f} kWh used on site" if b.pv_kwh > 0 else "")
                )
            if r.past_end:
                print(
                    f"{r.scenario} ({r.policy}): {r.past_end} session(s) still plugged in at the scenario's end: "
                    "their energy counts, neither met nor missed"
                )
    if args.plot:
        from controller.simulate.plot import plot_result

        plot_result(scenarios[0], results[0], Path(args.plot))
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2: {text!r}")
    return value


def _scale(text: str) -> float:
    value = _positive(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("simulate", help="replay scenario days offline and score the planner")
    p.add_argument("files", metavar="FILE", nargs="+", help="scenario file(s): a site file plus `scenario:`")
    p.add_argument("--policy", choices=[*POLICIES, "all"], default="lp", help="who decides the limits (default lp)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--plot", metavar="OUT.png", help="write a plot of loads and energies (needs matplotlib)")
    p.add_argument("--scale-sessions", type=_scale, metavar="F", help="repeat the sessions with F× the vehicles")
    p.add_argument("--grid-limit-a", type=_positive, metavar="N", help="what if the connection were N A per phase")
    p.add_argument(
        "--pv-factor",
        type=_share,
        metavar="F",
        help="the real PV output is F × the scenario's pv_kw; lp's forecast stays the profile (0.3: a cloudy day)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-departure-history", action="store_true",
                   help="lp plans against the declared departures, not the vehicles' history")
    p.add_argument("--no-arrival-forecast", action="store_true",
                   help="lp's cost stage is not told the vehicles still to come (forecast from earlier days)")
    p.set_defaults(func=_cmd_simulate)
