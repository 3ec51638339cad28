"""The benchmark script runs and prints the agreed JSON (a smoke test, not a timing test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_json_rows() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "planner.py"), "--json", "--sizes", "10,20", "--runs", "1"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    rows = json.loads(out.stdout)
    assert [r["n"] for r in rows] == [10, 20]
    keys = {"n", "variables", "constraints", "build_ms", "solve_ms", "total_ms", "warm_ms", "reference_ms", "ratio"}
    for r in rows:
        assert keys <= set(r)
        assert r["variables"] > 0 and r["total_ms"] > 0 and r["reference_ms"] > 0
        assert abs(r["ratio"] - r["reference_ms"] / r["total_ms"]) < 0.2


def test_bench_cost_mode_measures_each_size_without_a_bill_and_with_a_demand_charge() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "planner.py"), "--json", "--sizes", "20", "--runs", "1", "--cost",
         "--no-reference"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    rows = json.loads(out.stdout)
    assert [(r["n"], r["mode"]) for r in rows] == [(20, "tou"), (20, "none"), (20, "cost")]
    assert all(r["total_ms"] > 0 and r["warm_ms"] > 0 for r in rows)
    assert "warning" not in out.stderr  # every plan optimal, the cost stage included, the next cycle warm
