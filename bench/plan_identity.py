"""Did a refactor change any plan? Record plans before, compare after.

    python bench/plan_identity.py --save /tmp/before.json
    python bench/plan_identity.py --compare /tmp/before.json

Plans: the bench instances (bench/planner.py make_snapshot, sizes 10/100/300/1000 by default), a
cold plan then ``--cycles - 1`` hot-started cycles (next_cycle, chained, state carried), and every
scenario in tests/planner/scenarios (as tests/planner/test_scenarios.py runs them, every cycle).
Compared per session: limit value, source and unit, paused, schedule (times and values) and
expected energy (floats within ``--tol``, default 1e-9); per plan: warnings, overloads, node loads.
Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from planner import make_snapshot, next_cycle  # noqa: E402

from controller.model import Plan  # noqa: E402
from controller.planner.plan import plan  # noqa: E402
from controller.planner.state import PlannerState  # noqa: E402
from tests.planner.scenario import DIR, load, snapshot_from  # noqa: E402


def record(p: Plan) -> dict[str, Any]:
    return {
        "solver": p.stats.solver,
        "status": p.stats.status,
        "warnings": list(p.warnings),
        "overloads": list(p.overloads),
        "slot_starts": [s.isoformat() for s in p.slot_starts],
        "nodes": [[nl.node_id, nl.phase, nl.base_a, nl.ev_a, nl.limit_a, nl.overloaded] for nl in p.nodes],
        "sessions": {
            sp.session_id: {
                "limit": sp.limit.value, "source": sp.limit.source, "unit": sp.limit.unit, "paused": sp.paused,
                "schedule": [[t.isoformat(), v] for t, v in sp.schedule],
                "energy": sp.expected_energy_kwh, "need": sp.energy_need_kwh,
                "departure": sp.departure_at.isoformat(), "current": list(sp.current_a),
            }
            for sp in p.sessions
        },
    }


def run(sizes: list[int], cycles: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        snap = make_snapshot(n)
        state = PlannerState()
        for k in range(cycles):
            p, state = plan(snap, state)
            out[f"bench N={n} cycle {k}"] = record(p)
            snap = next_cycle(snap, seed=2 + k)
    for path in sorted(DIR.glob("*.yaml")):
        data = load(path.name)
        snap = snapshot_from(data)
        state = PlannerState()
        for k in range(int(data.get("cycles", 1))):
            cur = replace(snap, now=snap.now + timedelta(seconds=snap.site.control.plan_every_s * k))
            p, state = plan(cur, state)
            out[f"scenario {path.name} cycle {k}"] = record(p)
    return out


def compare(a: Any, b: Any, tol: float, where: str, diffs: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            diffs.append(f"{where}: keys {sorted(set(a) ^ set(b))[:5]}")
        for k in a:
            if k in b:
                compare(a[k], b[k], tol, f"{where}.{k}", diffs)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            diffs.append(f"{where}: length {len(a)} != {len(b)}")
            return
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            compare(x, y, tol, f"{where}[{i}]", diffs)
    elif isinstance(a, float) and isinstance(b, float) and not isinstance(a, bool):
        if not abs(a - b) <= tol:
            diffs.append(f"{where}: {a!r} != {b!r}")
    elif a != b:
        diffs.append(f"{where}: {a!r} != {b!r}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--save", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--sizes", default="10,100,300,1000")
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-9)
    args = ap.parse_args(argv)
    got = run([int(s) for s in args.sizes.split(",") if s.strip()], args.cycles)
    if args.save:
        args.save.write_text(json.dumps(got))
        print(f"{len(got)} plans saved to {args.save}")
    if args.compare:
        before = json.loads(args.compare.read_text())
        diffs: list[str] = []
        compare(before, got, args.tol, "", diffs)
        sessions = sum(len(v["sessions"]) for v in got.values())
        if diffs:
            print(f"{len(diffs)} differences over {len(got)} plans:")
            print("\n".join(diffs[:40]))
            return 1
        print(f"identical: {len(got)} plans, {sessions} session plans (tol {args.tol})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
