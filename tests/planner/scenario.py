"""Scenario files: a base YAML plus small variants (``base:`` + ``patch:``), expectations, a diff.

A variant's ``patch`` is deep-merged into its base (mappings merge, lists replace). Expectations
compare only what they name; a mismatch prints the expected and actual views as a unified diff.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import fields
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import yaml

from controller.model import (
    Charger,
    Circuit,
    Control,
    Grid,
    Plan,
    SessionState,
    Site,
    SiteInfo,
    Snapshot,
    Tariff,
    TariffStep,
    Vehicle,
)

DIR = Path(__file__).parent / "scenarios"


def merge(base: Any, patch: Any) -> Any:
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base.get(k), v) if k in base else v
        return out
    return patch


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DIR / name).read_text())
    if "base" in data:
        base = load(data["base"])
        base.pop("expect", None)
        base.pop("description", None)
        data = merge(base, data.get("patch", {})) | {
            k: v for k, v in data.items() if k not in ("base", "patch")
        }
    return dict(data)


def _dt(v: Any) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(str(v))


def _pick(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return d


def site_from(d: dict[str, Any]) -> Site:
    return Site(
        site=SiteInfo(name=d.get("name", "scenario"), timezone=d.get("timezone", "UTC"),
                      voltage_v=float(d.get("voltage_v", 230.0))),
        grid=Grid(**_pick(Grid, d["grid"])),
        circuits=tuple(Circuit(**_pick(Circuit, c)) for c in d.get("circuits", [])),
        chargers=tuple(Charger(**_pick(Charger, c)) for c in d.get("chargers", [])),
        vehicles=tuple(Vehicle(**_pick(Vehicle, v)) for v in d.get("vehicles", [])),
        control=Control(**_pick(Control, d.get("control", {}))),
        tariff=Tariff(energy=tuple(
            TariffStep(at=time.fromisoformat(str(t["at"])), price_per_kwh=float(t["price_per_kwh"]))
            for t in d.get("tariff", []))),
    )


def snapshot_from(d: dict[str, Any]) -> Snapshot:
    now = _dt(d["now"])
    sessions = []
    for s in d.get("sessions", []):
        s = dict(s)
        for key in ("departure_at", "arrived_at"):
            if isinstance(s.get(key), (int, float)):  # hours from now
                s[key] = now + timedelta(hours=float(s[key]))
            elif s.get(key) is not None:
                s[key] = _dt(s[key])
        sessions.append(SessionState(**_pick(SessionState, s)))
    base = {k: (float(v[0]), float(v[1]), float(v[2])) for k, v in (d.get("base_load_a") or {}).items()}
    return Snapshot(site=site_from(d["site"]), now=now, base_load_a=base, sessions=tuple(sessions))


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, list) and len(expected) == 2 and all(isinstance(e, (int, float)) for e in expected) \
            and isinstance(actual, (int, float)):
        return expected[0] - 0.05 <= actual <= expected[1] + 0.05
    if isinstance(expected, str) and expected.startswith("~") and isinstance(actual, str):
        return expected[1:] in actual
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isclose(expected, actual, abs_tol=0.05)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_matches(e, a) for e, a in zip(expected, actual, strict=True))
    return bool(expected == actual)


def view(plan: Plan, expect: dict[str, Any]) -> dict[str, Any]:
    """The part of a plan that ``expect`` talks about, in the same shape."""
    out: dict[str, Any] = {}
    if "solver" in expect:
        out["solver"] = plan.stats.solver
    if "overloads" in expect:
        out["overloads"] = [o for o in expect["overloads"] if any(x.startswith(o) for x in plan.overloads)]
    if "warnings" in expect:
        out["warnings"] = [w for w in expect["warnings"] if any(w in x for x in plan.warnings)]
    if "sessions" in expect:
        out["sessions"] = {}
        for sid, exp in expect["sessions"].items():
            try:
                sp = plan.session(sid)
            except KeyError:
                out["sessions"][sid] = "missing"
                continue
            full = {
                "limit": sp.limit.value, "source": sp.limit.source, "unit": sp.limit.unit,
                "met": sp.will_meet_departure, "paused": sp.paused, "phases": list(sp.grid_phases),
                "energy_kwh": round(sp.expected_energy_kwh, 2), "shortfall_kwh": round(sp.shortfall_kwh, 2),
                "shortfall_pct": round(100 * sp.shortfall_kwh / sp.energy_need_kwh, 1) if sp.energy_need_kwh else 0.0,
            }
            out["sessions"][sid] = {k: full[k] for k in exp}
    if "nodes" in expect:
        out["nodes"] = {}
        for node, exp in expect["nodes"].items():
            loads = [plan.node(node, ph) for ph in range(3)]
            full = {
                "ev_a": [round(nl.ev_a, 1) for nl in loads],
                "headroom_a": [round(nl.headroom_a, 1) for nl in loads],
                "overloaded": [nl.overloaded for nl in loads],
            }
            out["nodes"][node] = {k: full[k] for k in exp}
    return out


def _quiet(expected: Any, actual: Any) -> Any:
    """``actual`` with every matching part replaced by its expectation, so the diff shows only misses."""
    if _matches(expected, actual):
        return expected
    if isinstance(expected, dict) and isinstance(actual, dict):
        return {k: _quiet(expected[k], v) if k in expected else v for k, v in actual.items()}
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [_quiet(e, a) for e, a in zip(expected, actual, strict=True)]
    return actual


def diff(expect: dict[str, Any], actual: dict[str, Any]) -> str:
    actual = _quiet(expect, actual)
    a = yaml.safe_dump(expect, sort_keys=True).splitlines()
    b = yaml.safe_dump(actual, sort_keys=True).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "expected", "actual", lineterm=""))


def check(plan: Plan, expect: dict[str, Any]) -> str | None:
    """None when the plan matches, else a readable diff."""
    exp = {k: v for k, v in expect.items() if k in ("solver", "overloads", "warnings", "sessions", "nodes")}
    act = view(plan, exp)
    return None if _matches(exp, act) else diff(exp, act)
