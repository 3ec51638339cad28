"""The battery's taper as LP rows: the plan keeps a van's state of charge low when capacity comes
later, and never promises more than the simulated EV (controller/simulate/vehicles.py) accepts."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from controller.model import Charger, Circuit, Control, Grid, SessionState, Site, SiteInfo, Snapshot
from controller.planner import lp, plan
from controller.planner.instance import Instance, build_instance
from controller.planner.lp import LpData, layout_for, solve, with_taper
from controller.planner.milp import choose_met
from controller.simulate.vehicles import SimVehicle, dc_a_per_kw

NOW = datetime(2026, 11, 26, 17, 0, 0, tzinfo=UTC)
STEP_S = 2.0  # the simulated EV's integration step


@pytest.fixture(autouse=True)
def _rows_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lp, "TAPER_ROWS", True)


def _site(n_ac: int = 2, n_dc: int = 0, ac_max_a: float = 32.0, room_a: float = 200.0) -> Site:
    chargers = [
        Charger(id=f"c{i}", circuit="bay", kind="ac", phases=3, phase_rotation="L1-L2-L3", max_a=ac_max_a)
        for i in range(1, n_ac + 1)
    ] + [
        Charger(id=f"d{i}", circuit="bay", kind="dc", phases=3, phase_rotation="L1-L2-L3", min_a=0.0, max_kw=50.0,
                efficiency=0.93, power_factor=0.98)
        for i in range(1, n_dc + 1)
    ]
    return Site(site=SiteInfo(name="t", timezone="UTC"), grid=Grid(limit_a=100.0, margin_a=2.0),
                circuits=(Circuit(id="bay", limit_a=room_a, margin_a=0.0),), chargers=tuple(chargers),
                control=Control(horizon_h=24.0))


def _van(sid: str, charger: str, soc_pct: float, battery_kwh: float, dep_h: float, need_kwh: float | None = None,
         ) -> SessionState:
    need = battery_kwh * (1.0 - soc_pct / 100.0) if need_kwh is None else need_kwh
    return SessionState(session_id=sid, charger_id=charger, vehicle_id=f"v-{sid}", energy_need_kwh=need,
                        departure_at=NOW + timedelta(hours=dep_h), arrived_at=NOW - timedelta(minutes=5),
                        priority=5, soc_pct=soc_pct, battery_kwh=battery_kwh, phases_used=3)


def test_a_van_is_kept_low_to_take_a_later_surge_of_capacity() -> None:
    """Two vans on 32 A wallboxes (3 x 230 V: 22.08 kW at full rate, 6 A minimum), both leaving in
    2 h, neither of which can be met. The grid leaves 16 A for the first hour and 64 A after (the
    forecast), so in the second hour each can draw its full 32 A.

    * V1: 60 kWh at 10 %, asks 54 kWh: 16 A for an hour and 32 A for the next give 33.12 kWh, and
      it never reaches its taper (10 % + 33.12/60 = 65 %).
    * V2: 40 kWh at 25 %, asks 30 kWh. Kept low for the surge: 32 A all of hour 2, 22.0 kWh to
      80 % in 0.996 h, then 13 s of taper: 22.08 kWh (the LP plans 22.06: the slot in which its
      taper begins is planned along the chord row, just below the exact curve). Total 55.2 kWh.
    * Charged first instead (16 A in hour 1: 11.04 kWh, 52.6 %), V2 reaches 80 % after another
      10.96 kWh (0.496 h) and tapers for the rest of hour 2: 8 kWh x (1 - exp(-2.76/h x 0.504 h))
      = 6.0 kWh (k = 22.08 kW / (40 kWh x 0.2) = 2.76/h); V2 28.0 kWh, V1 22.08: 50.1 kWh.
    * Each kWh V2 takes in hour 1 instead of V1 is 1 kWh less for V1 and 0.77 kWh more for V2.
    * The fastest-charge caps (all a session had before the taper rows) see V2 at full rate from
      now, tapering from the end of the first hour, so ~10 A in hour 2 however long it waits: they
      gave V2 the first hour (16 A) and V1 none, and planned 42.4 kWh.
    """
    snap = Snapshot(
        site=_site(), now=NOW, base_load_a={"grid": (82.0, 82.0, 82.0)},
        sessions=(_van("v1", "c1", 10.0, 60.0, 2.0), _van("v2", "c2", 25.0, 40.0, 2.0)),
        base_load_forecast_a={"grid": ((NOW, (82.0, 82.0, 82.0)), (NOW + timedelta(hours=1), (34.0, 34.0, 34.0)))},
    )
    p, _ = plan(snap)
    v1, v2 = p.session("v1"), p.session("v2")
    assert v1.limit.value == pytest.approx(16.0)
    assert v2.limit.value == 0.0
    assert all(v == 0.0 for t, v in v2.schedule if t < NOW + timedelta(hours=1))  # V2 waits for the surge
    assert v1.expected_energy_kwh == pytest.approx(16.0 * 0.69 + 32.0 * 0.69, abs=1e-3)
    k = 22.08 / (40.0 * 0.2)
    to_80 = 40.0 * 0.55
    v2_best = to_80 + 8.0 * (1.0 - math.exp(-k * (1.0 - to_80 / 22.08)))
    assert v2_best == pytest.approx(22.08, abs=0.01)
    assert v2_best - 0.05 <= v2.expected_energy_kwh <= v2_best + 1e-6
    assert not v1.will_meet_departure and not v2.will_meet_departure


def _sim_vehicle(inst: Instance, s: int) -> SimVehicle:
    p = inst.sessions[s]
    assert p.soc_pct is not None and p.battery_kwh is not None
    b = p.battery_kwh
    start = b * p.soc_pct / 100.0
    ch = p.charger
    if p.kind == "ac":
        return SimVehicle(kind="ac", grid_phases=(0, 1, 2), max_a=p.max_unit, max_kw=0.0, min_a=p.min_unit,
                          volts_v=p.kwh_per_unit_h * 1000.0, a_per_kw=0.0, battery_kwh=b, start_kwh=start,
                          target_kwh=b - start, phases_used=3)
    return SimVehicle(kind="dc", grid_phases=(0, 1, 2), max_a=0.0, max_kw=p.max_unit, min_a=0.0, volts_v=0.0,
                      a_per_kw=dc_a_per_kw(inst.site, ch), battery_kwh=b, start_kwh=start, target_kwh=b - start)


def _most_accepted_kwh(ev: SimVehicle, delivered_kwh: float, hours: float) -> float:
    """What the simulated EV takes in ``hours`` from ``delivered_kwh`` under a limit at its maximum."""
    limit = ev.max_a if ev.kind == "ac" else ev.max_kw
    got = 0.0
    steps = max(1, round(hours * 3600.0 / STEP_S))
    dt = hours * 3600.0 / steps
    for _ in range(steps):
        got += ev.energy_kwh(ev.draw_a(limit, delivered_kwh + got), dt)
    return got


def _lp_schedule(snap: Snapshot) -> tuple[Instance, LpData, np.ndarray]:
    inst = build_instance(snap)
    res, _, data = solve(inst, {}, None, 5.0, choose_met)
    assert res.ok, res.status
    return inst, data, res.x


CASES = [
    # (soc %, battery kWh, hours to departure, need kWh or None = to full), per van; room for EVs [A]
    ([(20.0, 50.0, 2.0, None), (70.0, 20.0, 2.0, None)], 32.0),
    ([(79.0, 45.0, 3.0, None), (85.0, 75.0, 5.0, None), (60.0, 68.0, 4.0, None)], 10.0),
    ([(50.0, 40.0, 6.0, None), (75.0, 30.0, 1.5, None), (92.0, 60.0, 3.0, None), (81.0, 68.0, 8.0, 10.0)], 6.0),
    ([(97.0, 45.0, 2.0, None), (40.0, 45.0, 4.0, None), (78.0, 30.0, 20.0, None)], 8.0),
]


@pytest.mark.parametrize(("vans", "room_a"), CASES)
def test_the_rows_never_promise_more_than_the_simulated_ev_accepts(
    vans: list[tuple[float, float, float, float | None]], room_a: float
) -> None:
    """Walk the LP's schedule slot by slot: from the state of charge the schedule itself has
    reached, the simulated EV (its taper, its minimum current) can take at least the slot's planned
    energy under a limit at its maximum; the first slot's decision is at most what it accepts now."""
    sessions = tuple(_van(f"v{i}", f"c{i}", soc, b, dep, need) for i, (soc, b, dep, need) in enumerate(vans, start=1))
    snap = Snapshot(site=_site(n_ac=len(vans), room_a=room_a), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)},
                    sessions=sessions)
    _check_schedule(snap)


def test_dc_rows_never_promise_more_than_the_simulated_ev_accepts() -> None:
    sessions = (
        SessionState(session_id="d", charger_id="d1", vehicle_id="v-d", energy_need_kwh=40.0,
                     departure_at=NOW + timedelta(hours=3), arrived_at=NOW, priority=5, soc_pct=55.0,
                     battery_kwh=80.0),
        SessionState(session_id="e", charger_id="c1", vehicle_id="v-e", energy_need_kwh=12.0,
                     departure_at=NOW + timedelta(hours=2), arrived_at=NOW, priority=5, soc_pct=80.0,
                     battery_kwh=60.0, phases_used=3),
    )
    snap = Snapshot(site=_site(n_ac=1, n_dc=1, room_a=70.0), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)},
                    sessions=sessions)
    _check_schedule(snap)


def _check_schedule(snap: Snapshot) -> None:
    inst, data, x = _lp_schedule(snap)
    tp = data.taper
    assert tp is not None and tp.on.any()
    hours = inst.grid.hours * data.presence
    checked = 0
    for s in tp.sess[tp.on].tolist():  # the sessions stage 2 plans with the rows (stage 1 left them unmet)
        ev = _sim_vehicle(inst, s)
        planned = data.kwh[s] * x[s]
        now_a = ev.draw_a(ev.max_a if ev.kind == "ac" else ev.max_kw, 0.0)
        now_unit = max(now_a) if ev.kind == "ac" else max(now_a) / ev.a_per_kw
        assert x[s, 0] <= now_unit + 1e-6
        delivered = float(planned[0])
        for t in range(1, inst.grid.count):
            if hours[s, t] <= 0.0 or planned[t] <= 1e-9:
                delivered += float(planned[t])
                continue
            most = _most_accepted_kwh(ev, delivered, float(hours[s, t]))
            assert planned[t] <= most * (1.0 + 1e-3) + 1e-4, (s, t, planned[t], most)
            delivered += float(planned[t])
            checked += 1
    assert checked > 0


def test_only_sessions_whose_battery_can_reach_its_taper_get_rows() -> None:
    sessions = (
        _van("full-soon", "c1", 85.0, 60.0, 3.0),  # in the taper: rows, no chord
        _van("low", "c2", 30.0, 60.0, 8.0),  # reaches 80 % within its stay: rows and chord
        _van("stops", "c3", 30.0, 60.0, 8.0, need_kwh=20.0),  # stops at 63 %: none
        _van("short-stay", "c4", 30.0, 60.0, 0.5),  # 11 kWh at most before it leaves: none
        _van("at-min", "c5", 99.0, 60.0, 3.0),  # AC at its minimum current's share: none (caps exact)
        SessionState(session_id="no-soc", charger_id="c6", energy_need_kwh=30.0,
                     departure_at=NOW + timedelta(hours=3), priority=5),
    )
    snap = Snapshot(site=_site(n_ac=6), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)}, sessions=sessions)
    inst = build_instance(snap)
    lay = with_taper(inst, layout_for(inst))
    assert [inst.sessions[s].session_id for s in lay.taper] == ["full-soon", "low"]
    assert lay.taper_chord == (False, True)
    assert lay.taper_len[0] < lay.taper_len[1] == inst.grid.count  # rows up to each departure
    assert layout_for(inst).taper == ()  # stage 1 never has them


def test_met_sessions_and_sessions_without_a_state_of_charge_plan_as_without_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rows change only what stage 2 plans for the sessions stage 1 leaves unmet."""
    sessions = (
        _van("a", "c1", 60.0, 40.0, 3.0),
        SessionState(session_id="b", charger_id="c2", energy_need_kwh=15.0,
                     departure_at=NOW + timedelta(hours=4), priority=5),
    )
    snap = Snapshot(site=_site(), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)}, sessions=sessions)
    with_rows, _ = plan(snap)
    monkeypatch.setattr(lp, "TAPER_ROWS", False)
    without, _ = plan(snap)
    assert all(sp.will_meet_departure for sp in with_rows.sessions)
    planned = [(sp.limit, sp.schedule) for sp in with_rows.sessions]
    assert planned == [(sp.limit, sp.schedule) for sp in without.sessions]
