"""Planner benchmark: our highspy LP vs a straightforward PuLP + CBC model of the same instance.

    python bench/planner.py [--json] [--sizes 10,100,300,1000] [--runs 5] [--cost]

Instances: grid -> 4 feeders -> 4 sub-boards each, per-phase limits, mixed 1-phase / 3-phase AC
and DC sessions with departures staggered over 24 h. Per size it prints variables, constraints,
build / solve / total ms of a cold plan (median of ``--runs``), the next cycle (15 s later, inputs
changed slightly, the kept model hot-started), the reference (PuLP build + CBC solve) and the
ratio reference / ours (cold).

The instance's bill (``mode``): ``tou`` — its time-of-use tariff (0.32 from 07:00, 0.18 from
23:00, site-local), the benchmark as it always was (a tie-break; the cost stage off); ``--cost``
adds, in the same run and next to each ``tou`` row, ``none`` — no tariff: nothing priced, stages
1 and 2 alone — and ``cost`` — the tariff and a demand charge (14 per kW above a billing peak so
far of half the grid's kW): the cost stage with both. The reference is solved once per size (it
prices nothing but the tie-break), its ratio given against each mode.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.model import (
    Charger,
    Circuit,
    Control,
    DemandCharge,
    Grid,
    SessionState,
    Site,
    SiteInfo,
    Snapshot,
    Tariff,
    TariffStep,
)
from controller.planner.instance import build_instance
from controller.planner.plan import plan
from controller.planner.reference import solve_reference
from controller.planner.state import PlannerState

ROTATIONS = ("L1-L2-L3", "L2-L3-L1", "L3-L1-L2")
NOW = datetime(2026, 11, 26, 17, 1, 0, tzinfo=UTC)


def make_snapshot(n: int, seed: int = 1, bill: str = "tou", cost: bool = False) -> Snapshot:
    """The bench instance with its bill (``tou``, ``none``, ``cost``; ``cost=True``: ``cost``)."""
    bill = "cost" if cost else bill
    rng = random.Random(seed)
    feeders = [Circuit(id=f"feeder-{f}", limit_a=0.0) for f in "abcd"]
    boards: list[Circuit] = []
    chargers: list[Charger] = []
    sessions: list[SessionState] = []
    per_board_a = [0.0] * 16
    for i in range(n):
        b = i % 16
        r = rng.random()
        if r < 0.2:
            ch = Charger(id=f"dc{i}", circuit=f"board-{b}", kind="dc", phases=3, phase_rotation="L1-L2-L3",
                         min_a=0.0, max_kw=rng.choice([50.0, 90.0, 150.0]))
            need = rng.uniform(40, 250)
            used = None
            load = ch.max_kw * 1000 / (0.95 * 3 * 230) if ch.max_kw else 0.0
        elif r < 0.45:
            ch = Charger(id=f"ac1-{i}", circuit=f"board-{b}", kind="ac", phases=1,
                         phase_rotation=rng.choice(("L1", "L2", "L3")), max_a=32.0)
            need = rng.uniform(5, 40)
            used = 1
            load = 32.0 / 3
        else:
            ch = Charger(id=f"ac3-{i}", circuit=f"board-{b}", kind="ac", phases=3,
                         phase_rotation=rng.choice(ROTATIONS), max_a=32.0)
            used = rng.choice((1, 3, 3, None))
            need = rng.uniform(10, 80) if used != 1 else rng.uniform(5, 30)
            load = 32.0 if used != 1 else 32.0 / 3
        per_board_a[b] += load
        chargers.append(ch)
        dep = NOW + timedelta(hours=rng.uniform(1.0, 24.0))
        sessions.append(SessionState(
            session_id=f"s{i}", charger_id=ch.id, vehicle_id=f"v{i}", arrived_at=NOW - timedelta(hours=1),
            departure_at=dep, energy_need_kwh=round(need, 2), priority=rng.choice((1, 3, 5, 5, 5)),
            phases_used=used,
        ))
    for b in range(16):
        boards.append(Circuit(id=f"board-{b}", parent=f"feeder-{'abcd'[b // 4]}",
                              limit_a=max(40.0, round(per_board_a[b] * 0.7))))
    feeder_sum = [sum(per_board_a[f * 4:(f + 1) * 4]) for f in range(4)]
    feeders = [replace(c, limit_a=max(63.0, round(feeder_sum[k] * 0.55))) for k, c in enumerate(feeders)]
    grid_a = max(100.0, round(sum(per_board_a) * 0.4))
    site = Site(
        site=SiteInfo(name="bench", timezone="Europe/Amsterdam"),
        grid=Grid(limit_a=grid_a, margin_a=5.0),
        circuits=(*feeders, *boards),
        chargers=tuple(chargers),
        control=Control(plan_every_s=15.0, horizon_h=24.0, slot_min=15, solver_time_limit_s=5.0,
                        plan_cost=bill == "cost"),
        tariff=BILLS[bill],
    )
    base = {"grid": (grid_a * 0.15, grid_a * 0.12, grid_a * 0.1)}
    for k, c in enumerate(feeders):
        base[c.id] = (c.limit_a * 0.1, c.limit_a * 0.05 * (k % 2), c.limit_a * 0.08)
    peak_kw = 0.5 * grid_a * 3 * 230.0 / 1000.0 if bill == "cost" else None
    return Snapshot(site=site, now=NOW, base_load_a=base, sessions=tuple(sessions), demand_peak_kw=peak_kw)


TOU = (TariffStep(at=datetime(2026, 1, 1, 7).time(), price_per_kwh=0.32),
       TariffStep(at=datetime(2026, 1, 1, 23).time(), price_per_kwh=0.18))
BILLS = {
    "tou": Tariff(energy=TOU),
    "none": Tariff(),
    "cost": Tariff(energy=TOU, demand=DemandCharge(price_per_kw=14.0)),
}


def next_cycle(snap: Snapshot, seed: int = 2) -> Snapshot:
    """15 s later: base load wobbles a little, every need shrinks by what was delivered."""
    rng = random.Random(seed)
    base = {k: tuple(max(0.0, v * rng.uniform(0.97, 1.03)) for v in vals) for k, vals in snap.base_load_a.items()}
    sessions = tuple(
        replace(s, energy_need_kwh=max(0.0, (s.energy_need_kwh or 0.0) - rng.uniform(0.0, 0.05)))
        for s in snap.sessions
    )
    return replace(snap, now=snap.now + timedelta(seconds=15), base_load_a=base, sessions=sessions)  # type: ignore[arg-type]


def run_size(n: int, runs: int, reference: bool, bill: str = "tou") -> dict[str, float | int | str | None]:
    snap = make_snapshot(n, bill=bill)
    nxt = next_cycle(snap)
    cold, warm, builds, solves = [], [], [], []
    stats = None
    for _ in range(runs):
        t0 = time.perf_counter()
        p, state = plan(snap, PlannerState())
        cold.append((time.perf_counter() - t0) * 1e3)
        builds.append(p.stats.build_ms)
        solves.append(p.stats.solve_ms)
        stats = p.stats
        t0 = time.perf_counter()
        p2, _ = plan(nxt, state)
        warm.append((time.perf_counter() - t0) * 1e3)
        if not p2.stats.warm:
            print(f"warning: N={n} next cycle did not reuse the model", file=sys.stderr)
        for pl in (p, p2):
            if pl.stats.status != "Optimal" and "MILP" not in pl.stats.status:
                print(f"warning: N={n} {bill}: {pl.stats.status}", file=sys.stderr)
    assert stats is not None
    ref_ms: float | None = None
    if reference:
        ref_times = []
        for _ in range(max(1, min(runs, 3))):
            t0 = time.perf_counter()
            solve_reference(build_instance(snap))
            ref_times.append((time.perf_counter() - t0) * 1e3)
        ref_ms = statistics.median(ref_times)
    total = statistics.median(cold)
    return {
        "n": n,
        "mode": bill,
        "variables": stats.variables,
        "constraints": stats.constraints,
        "slots": stats.slots,
        "build_ms": round(statistics.median(builds), 1),
        "solve_ms": round(statistics.median(solves), 1),
        "total_ms": round(total, 1),
        "warm_ms": round(statistics.median(warm), 1),
        "reference_ms": None if ref_ms is None else round(ref_ms, 1),
        "ratio": None if ref_ms is None or total <= 0 else round(ref_ms / total, 1),
    }


def _silence_highs_banner() -> None:
    """HiGHS prints a banner on stdout when the first model is created; keep --json output clean."""
    import ctypes
    import os

    import highspy

    sys.stdout.flush()
    saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        highspy.Highs()
        ctypes.CDLL(None).fflush(None)
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON list of rows")
    ap.add_argument("--sizes", default="10,100,300,1000")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--no-reference", action="store_true", help="skip the PuLP/CBC reference")
    ap.add_argument("--cost", action="store_true",
                    help="also measure each size without a tariff and with a tariff and a demand charge")
    args = ap.parse_args(argv)
    _silence_highs_banner()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    rows: list[dict[str, float | int | str | None]] = []
    for n in sizes:
        first = run_size(n, max(1, args.runs), not args.no_reference)
        rows.append(first)
        for bill in ("none", "cost") if args.cost else ():
            row = run_size(n, max(1, args.runs), False, bill=bill)
            ref, total = first["reference_ms"], row["total_ms"]
            row["reference_ms"] = ref
            if isinstance(ref, float) and isinstance(total, float) and total > 0:
                row["ratio"] = round(ref / total, 1)
            rows.append(row)
    if args.json:
        print(json.dumps(rows))
        return 0
    cols = ["n", "mode", "slots", "variables", "constraints", "build_ms", "solve_ms", "total_ms", "warm_ms",
            "reference_ms", "ratio"]
    print("  ".join(f"{c:>12}" for c in cols))
    for r in rows:
        print("  ".join(f"{'-' if r[c] is None else r[c]:>12}" for c in cols))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
