"""The cost stage (issue 16): time-of-use prices, the demand charge and PV move charging in time, but
never past a departure, never at the cost of a departure met or of a vehicle's energy.

Pinned now: Thursday 2026-11-26 18:00:07 CET (the DST change days are in test_prices.py). Grid
import per slot is recomputed from the plan's schedules and the site (not from the LP)."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from controller.model import (
    Charger,
    Circuit,
    Control,
    DemandCharge,
    ExpectedArrival,
    Grid,
    Plan,
    SessionState,
    Site,
    SiteInfo,
    Snapshot,
    Tariff,
    TariffStep,
)
from controller.planner import cost
from controller.planner.cost import COST_MARGIN_SHARE
from controller.planner.instance import build_instance
from controller.planner.lp import met_mask, resolve_with_pattern, solve
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from tests.planner.checks import bound_violations, cap_violations, limit_violations, slot_values
from tests.planner.scenario import DIR, load, snapshot_from

TZ_BERLIN = ZoneInfo("Europe/Berlin")
NO_TARIFF = Tariff()
NOW = datetime(2026, 11, 26, 17, 0, 7, tzinfo=UTC)  # Thursday, 18:00 in Berlin
VOLT = 230.0
TOU = Tariff(energy=(TariffStep(time(0), 0.18), TariffStep(time(7), 0.31), TariffStep(time(22), 0.18)))
FLAT = Tariff(energy=(TariffStep(time(0), 0.30),))
DEMAND = Tariff(demand=DemandCharge(price_per_kw=14.0))
BASE = {"grid": (10.0, 10.0, 10.0)}  # 6.9 kW
BASE_KW = 30.0 * VOLT / 1000.0


def site(tariff: Tariff = NO_TARIFF, chargers: int = 4, **kw: object) -> Site:
    base: dict[str, object] = dict(
        site=SiteInfo(name="t", timezone="Europe/Berlin"),
        grid=Grid(limit_a=160.0, margin_a=2.0),
        circuits=(Circuit(id="feeder-a", limit_a=125.0, margin_a=0.0),),
        chargers=tuple(Charger(id=f"a{i}", circuit="feeder-a", kind="ac", phases=3, phase_rotation="L1-L2-L3",
                               max_a=32.0) for i in range(1, chargers + 1)),
        control=Control(horizon_h=24.0, plan_cost=True),
        tariff=tariff,
    )
    base.update(kw)
    return Site(**base)  # type: ignore[arg-type]


def sess(sid: str, charger: str, need: float, dep_h: float, now: datetime = NOW, **kw: object) -> SessionState:
    kw.setdefault("phases_used", 3)  # known: an EV whose phases are not known draws its minimum now
    return SessionState(session_id=sid, charger_id=charger, vehicle_id=f"v-{sid}", energy_need_kwh=need,
                        departure_at=now + timedelta(hours=dep_h), arrived_at=now - timedelta(hours=1),
                        priority=5, **kw)  # type: ignore[arg-type]


def snap(*sessions: SessionState, tariff: Tariff = NO_TARIFF, now: datetime = NOW, **kw: object) -> Snapshot:
    return Snapshot(site=site(tariff), now=now, base_load_a=BASE, sessions=sessions, **kw)  # type: ignore[arg-type]


def safe(s: Snapshot, p: Plan) -> None:
    assert limit_violations(s, p) == []
    assert bound_violations(s, p) == []
    assert cap_violations(s, p) == []


def import_kw(p: Plan) -> list[float]:
    """Grid import per slot: the base load plus every session's limit x voltage x its phases."""
    vals = slot_values(p)
    return [BASE_KW + sum(vals[sp.session_id][k] * VOLT * len(sp.grid_phases) / 1000.0 for sp in p.sessions)
            for k in range(len(p.slot_starts))]


def energy_between(p: Plan, sid: str, start: datetime, end: datetime) -> float:
    """kWh the plan's schedule gives ``sid`` from ``start`` to ``end`` (3-phase AC at 230 V)."""
    sp = p.session(sid)
    ends = [*p.slot_starts[1:], p.horizon_end]
    vals = slot_values(p)[sid]
    out = 0.0
    for a, b, v in zip(p.slot_starts, ends, vals, strict=True):
        lo, hi = max(a, start, p.created_at), min(b, end, sp.departure_at)
        if hi > lo:
            out += v * 3 * VOLT / 1000.0 * (hi - lo).total_seconds() / 3600.0
    return out


def met(p: Plan) -> set[str]:
    return {sp.session_id for sp in p.sessions if sp.will_meet_departure}


def test_a_night_with_slack_and_a_demand_charge_plans_a_flat_peak_and_the_same_departures() -> None:
    vans = tuple(sess(f"s{i}", f"a{i}", 60.0, 12.0) for i in range(1, 4))  # 180 kWh in 12 h
    plain, _ = plan(snap(*vans))
    p, _ = plan(snap(*vans, tariff=DEMAND))
    safe(snap(*vans, tariff=DEMAND), p)
    assert met(p) == met(plain) == {"s1", "s2", "s3"}
    assert max(import_kw(plain)) > 70.0  # without a price: everyone at full power now
    # the least peak that still delivers every kWh before the buffer (the last quarter of each
    # dwell, 1 h ago to 12 h ahead, stays free: cost.COST_MARGIN_SHARE)
    flat = BASE_KW + 180.0 / (12.0 - COST_MARGIN_SHARE * 13.0)
    assert max(import_kw(p)) <= flat * 1.03  # within the 0.1 A resolution and the minimum-current repair
    assert {sp.limit.source for sp in p.sessions if sp.limit.value == 0.0} == {"demand charge"}
    # a van whose phases are not known yet draws its minimum now (it must draw to show them)
    unknown, _ = plan(snap(*(replace(v, phases_used=None) for v in vans), tariff=DEMAND))
    assert all(sp.limit.value >= 6.0 for sp in unknown.sessions)


def test_under_the_billing_peak_so_far_charging_costs_nothing_more() -> None:
    vans = tuple(sess(f"s{i}", f"a{i}", 60.0, 12.0) for i in range(1, 4))
    plain, _ = plan(snap(*vans))
    p, _ = plan(snap(*vans, tariff=DEMAND, demand_peak_kw=100.0))
    assert [sp.limit.value for sp in p.sessions] == [sp.limit.value for sp in plain.sessions] == [32.0] * 3
    assert max(import_kw(p)) <= 100.0
    # the same with a lower peak so far: charging up to it is still free, above it is not (but for
    # a session the repair lifts to its minimum current in a later slot rather than lose energy)
    q, _ = plan(snap(*vans, tariff=DEMAND, demand_peak_kw=40.0))
    assert max(import_kw(q)) <= 40.0 + 6.0 * 3 * VOLT / 1000.0
    assert import_kw(q)[0] >= 40.0 - 1.5  # and what is free now is used now (earliness)


def test_time_of_use_moves_energy_to_the_cheap_hours_but_never_past_a_departure() -> None:
    s = snap(sess("s1", "a1", 20.0, 12.0), sess("s2", "a2", 30.0, 5.0), tariff=TOU)
    p, _ = plan(s)
    safe(s, p)
    cheap = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)  # 22:00 in Berlin
    assert met(p) == {"s1", "s2"}
    s1, s2 = p.session("s1"), p.session("s2")
    assert s1.limit.value == 0.0 and s1.limit.source == "tariff"
    assert energy_between(p, "s1", NOW, cheap) == pytest.approx(0.0, abs=1e-6)
    assert energy_between(p, "s1", cheap, s1.departure_at) == pytest.approx(20.0, rel=5e-3)
    # s2 leaves at 23:00: the cheap hour before it gives 22 kWh, only the rest is bought dear
    assert energy_between(p, "s2", cheap, s2.departure_at) == pytest.approx(22.08, rel=1e-2)
    assert energy_between(p, "s2", NOW, cheap) == pytest.approx(30.0 - 22.08, rel=2e-2)
    assert all(t < s2.departure_at for t, v in s2.schedule if v > 0)


def test_a_departure_that_needs_every_slot_is_not_deferred() -> None:
    need = 32.0 * 3 * VOLT / 1000.0 * 3.0  # full power for the three hours until departure
    s = snap(sess("s1", "a1", need, 3.0), tariff=TOU)
    p, _ = plan(s)
    sp = p.session("s1")
    assert sp.limit.value == 32.0 and sp.limit.source == "charger max"
    assert sp.will_meet_departure


def test_dated_prices_win_over_the_daily_tariff_where_present() -> None:
    start = NOW.replace(minute=0, second=0)
    dated = tuple((start + timedelta(hours=h), 0.05 if h == 2 else 0.30) for h in range(4))
    s = snap(sess("s1", "a1", 15.0, 6.0), tariff=TOU, prices=dated)
    p, _ = plan(s)
    cheap = start + timedelta(hours=2)  # 19:00 UTC, 20:00 in Berlin: dear by the daily tariff
    assert p.session("s1").limit.source == "tariff"
    assert energy_between(p, "s1", cheap, cheap + timedelta(hours=1)) == pytest.approx(15.0, rel=5e-3)
    # without the dated prices the same session charges in the daily tariff's cheap hour
    q, _ = plan(snap(sess("s1", "a1", 15.0, 6.0), tariff=TOU))
    night = datetime(2026, 11, 26, 21, 0, tzinfo=UTC)
    assert energy_between(q, "s1", night, night + timedelta(hours=1)) == pytest.approx(15.0, rel=5e-3)


NOON = datetime(2026, 11, 26, 8, 0, 7, tzinfo=UTC)  # 09:00 in Berlin
PV_FORECAST = (  # a forecast that promises PV now, then none until 12:00, then 40 kW until 15:00
    (NOON.replace(second=0), 40.0), (NOON.replace(minute=15, second=0), 0.0),
    (NOON.replace(hour=11, second=0), 40.0), (NOON.replace(hour=14, second=0), 0.0),
)


@pytest.mark.parametrize(("pv_now", "charged_now"), [(1.0, False), (None, True)])
def test_charging_moves_to_the_pv_forecast_but_the_current_slot_counts_only_the_measured_pv(
    pv_now: float | None, charged_now: bool
) -> None:
    s = snap(sess("s1", "a1", 20.0, 8.0, now=NOON), tariff=FLAT, now=NOON, pv_kw=pv_now, pv_forecast_kw=PV_FORECAST)
    p, _ = plan(s)
    safe(s, p)
    sp = p.session("s1")
    assert sp.will_meet_departure
    if charged_now:  # no fresh PV reading: no PV counted at all, a flat price: charged at once
        assert sp.limit.value == 32.0
    else:  # the forecast's 40 kW now are not counted (1 kW measured); at noon the PV is free
        assert sp.limit.value == 0.0 and sp.limit.source == "tariff"
        sunny = NOON.replace(hour=11, second=0)
        assert energy_between(p, "s1", sunny, sunny + timedelta(hours=3)) == pytest.approx(20.0, rel=5e-3)


def test_the_cost_stage_holds_each_sessions_energy_and_the_met_set_of_stage_two() -> None:
    """More need than room: the LP's energy stage decides who is met and how much each gets; the
    cost stage keeps exactly that (within its tolerance) and only moves it in time."""
    sessions = tuple(sess(f"s{i}", f"a{i}", need, dep) for i, (need, dep) in
                     enumerate(((70.0, 4.0), (30.0, 3.0), (90.0, 6.0), (15.0, 2.0)), start=1))
    s = replace(snap(*sessions, tariff=Tariff(energy=TOU.energy, demand=DemandCharge(14.0))),
                site=site(Tariff(energy=TOU.energy, demand=DemandCharge(14.0)),
                          circuits=(Circuit(id="feeder-a", limit_a=40.0, margin_a=0.0),)))
    inst = build_instance(s)
    assert inst.cost_stage
    res, model, data = solve(inst, {}, None, 5.0)
    assert model is not None and model.stage2 is not None
    res3, data3 = cost.solve_cost(inst, res, model, data, 5.0)
    assert data3 is not data and model.stage3 is not None
    e2 = (data.kwh * res.x).sum(axis=1)
    e3 = (data3.kwh * res3.x).sum(axis=1)
    assert (e3 >= e2 - 1e-5 * np.maximum(1.0, inst.need_kwh)).all()
    assert not np.allclose(res3.x, res.x)  # it did move energy in time


def test_the_fixup_replans_energy_first_then_cost_around_the_repairs_pattern() -> None:
    """The min-current repair's fix-up after the cost stage: energy is re-planned first around the
    pattern, then the cost with that energy held, and the pattern is kept."""
    s = replace(snap(sess("s1", "a1", 12.0, 6.0), sess("s2", "a2", 12.0, 6.0), tariff=DEMAND),
                site=site(DEMAND, circuits=(Circuit(id="feeder-a", limit_a=10.0, margin_a=0.0),)))
    inst = build_instance(s)
    res, model, data = solve(inst, {}, None, 5.0)
    assert model is not None
    res3, data3 = cost.solve_cost(inst, res, model, data, 5.0)
    assert data3.held is data
    n, t = res3.x.shape
    lo = np.zeros((n, t))
    up = data3.col_upper[: n * t].reshape(n, t).copy()
    up[0, 1::2] = 0.0  # the repair paused s1 in every other slot from slot 1 on
    lo[:, 0] = up[:, 0] = res3.x[:, 0]
    x3, _ = cost.resolve_pattern(model, data3, lo, up)
    assert x3 is not None
    assert (x3[0, 1::2] <= 1e-9).all() and np.allclose(x3[:, 0], res3.x[:, 0])
    x2, _ = resolve_with_pattern(model.for_fixups(), data, lo, up)  # the energy re-plan alone
    assert x2 is not None
    e2, e3 = (data.kwh * x2).sum(axis=1), (data.kwh * x3).sum(axis=1)
    assert (e3 >= e2 - 1e-5 * np.maximum(1.0, inst.need_kwh)).all()

    def peak_kw(x: np.ndarray) -> float:
        return float((inst.grid_kw_per_unit[:, None] * x)[:, 1:].sum(axis=0).max())

    assert peak_kw(x3) < peak_kw(x2) - 1.0  # the cost re-plan flattened what the energy re-plan ran early


def test_departures_met_are_the_same_with_and_without_a_tariff_on_the_scenarios() -> None:
    """Every scenario of tests/planner/scenarios, as test_scenarios.py runs them, with a
    time-of-use tariff and a demand charge added: the same departures met, all limits kept."""
    priced = Tariff(energy=TOU.energy, demand=DemandCharge(14.0))
    for path in sorted(DIR.glob("*.yaml")):
        if path.name == "base.yaml":
            continue
        data = load(path.name)
        first = snapshot_from(data)
        outcome = []
        for tariff in (Tariff(), priced):
            s0 = replace(first, site=replace(first.site, tariff=tariff))
            state = PlannerState()
            for k in range(int(data.get("cycles", 1))):
                cur = replace(s0, now=s0.now + timedelta(seconds=s0.site.control.plan_every_s * k))
                p, state = plan(cur, state)
                safe(cur, p)
            outcome.append((met(p), sum(sp.expected_energy_kwh for sp in p.sessions)))
        (met_plain, kwh_plain), (met_priced, kwh_priced) = outcome
        assert met_priced == met_plain, path.name
        assert kwh_priced >= 0.98 * kwh_plain, path.name  # the minimum-current repair's own noise


def _stage_two_met(s: Snapshot) -> frozenset[str]:
    inst = build_instance(s)
    res, _, data = solve(inst, {}, None, 30.0)
    need = inst.need_kwh
    short = np.maximum(need - (data.kwh * res.x).sum(axis=1), 0.0)
    return frozenset(sid for sid, m in zip(inst.session_ids, met_mask(need, short), strict=True) if m)


@pytest.mark.parametrize("seed", [1, 2])
def test_stages_one_and_two_choose_the_same_departures_with_and_without_a_tariff(seed: int) -> None:
    """The tariff is a tie-break in stages 1 and 2 (``TARIFF_W``), below every shortfall cost: on
    the planner benchmark's depot (200 sessions, 4 feeders, 16 boards) their met set is the same
    with the benchmark's time-of-use tariff and demand charge and without any."""
    bench = Path(__file__).resolve().parents[2] / "bench"
    sys.path.insert(0, str(bench))
    try:
        from planner import make_snapshot  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(bench))
    priced = make_snapshot(200, seed=seed, cost=True)
    assert build_instance(priced).cost_stage
    plain = replace(priced, site=replace(priced.site, tariff=Tariff()), demand_peak_kw=None)
    with_tariff, without = _stage_two_met(priced), _stage_two_met(plain)
    assert with_tariff == without
    assert 0 < len(without) < 200  # some met, some not: the choice is real


def test_a_base_load_forecast_moves_charging_out_of_the_hours_it_fills_under_a_demand_charge() -> None:
    """The evening's base load (forecast, 60 A per line until 20:00 UTC) sets the billing peak;
    charging goes after it, under that peak, at no demand charge."""
    evening = ((NOW.replace(minute=0, second=0), (60.0, 60.0, 60.0)),
               (NOW.replace(hour=20, minute=0, second=0), (5.0, 5.0, 5.0)))
    s = snap(sess("s1", "a1", 30.0, 10.0), tariff=DEMAND, base_load_forecast_a={"grid": evening})
    p, _ = plan(s)
    safe(s, p)
    sp = p.session("s1")
    assert sp.will_meet_departure
    assert sp.limit.value == 0.0 and sp.limit.source == "demand charge"
    late = NOW.replace(hour=20, minute=0, second=0)
    assert energy_between(p, "s1", NOW, late) == pytest.approx(0.0, abs=1e-6)
    assert energy_between(p, "s1", late, sp.departure_at) == pytest.approx(30.0, rel=5e-3)


def test_expected_arrivals_keep_their_room_so_the_vans_present_charge_more_now() -> None:
    """The depot's history says 40 kW of vans arrive in 2 h for 6 h: the present vans are not
    flattened into those hours — the plan's peak already counts them, so charging now up to that
    peak costs nothing more (the arrivals are never a limit, never a departure)."""
    vans = tuple(sess(f"s{i}", f"a{i}", 60.0, 12.0) for i in range(1, 4))
    alone, _ = plan(snap(*vans, tariff=DEMAND))
    coming = (ExpectedArrival(NOW + timedelta(hours=2), NOW + timedelta(hours=10), 240.0, 60.0),)
    s = snap(*vans, tariff=DEMAND, expected_arrivals=coming)
    p, _ = plan(s)
    safe(s, p)
    assert met(p) == met(alone) == {"s1", "s2", "s3"}
    expected_kw = 240.0 / (0.75 * 8.0)  # flat over the first three quarters of their stay
    assert import_kw(p)[0] > import_kw(alone)[0] + 10.0  # the present vans charge more now
    # the least peak for both: 2 h with the vans alone, then 6.75 h (to the vans' buffer) beside
    # the arrivals' flat 40 kW: 2 (P - base) + 6.75 (P - base - 40) >= 180 kWh
    least = (180.0 + 8.75 * BASE_KW + 6.75 * expected_kw) / 8.75
    assert import_kw(p)[0] <= least * 1.03
    # the bill: a flexible load of their own, not the base load's (never in the current slot)
    inst = build_instance(s)
    assert inst.bill is not None
    k = int(np.searchsorted(inst.grid.starts_s, (NOW + timedelta(hours=3)).timestamp(), side="right")) - 1
    assert inst.bill.net_peak_kw[k] == pytest.approx(inst.bill.net_kw[k], rel=1e-6)
    assert inst.bill.expected_kwh.tolist() == [240.0]
    assert inst.bill.expected_kw[0, k] == pytest.approx(60.0) and inst.bill.expected_kw[0, 0] == 0.0


def test_expected_arrivals_are_a_load_that_can_move_so_the_night_stays_flat() -> None:
    """A van here needs 60 kWh in 4.25 h (before its buffer; a second one, staying the night,
    needs 1 kWh); 120 kWh of vans are expected from +1 h for 12 h. Taken as a flat 13.3 kW from
    +1 h to +10 h, they would leave the van only the hours beside it (least peak 24.3 kW above
    the base); as a load that can move — as they will, once here — the night's least peak is
    about 18 kW above the base, and the van plans for that."""
    van, stays = sess("s1", "a1", 60.0, 6.0), sess("s2", "a2", 1.0, 14.0)
    coming = (ExpectedArrival(NOW + timedelta(hours=1), NOW + timedelta(hours=13), 120.0, 50.0),)
    s = snap(van, stays, tariff=DEMAND, expected_arrivals=coming)
    p, _ = plan(s)
    safe(s, p)
    assert met(p) == {"s1", "s2"}
    assert import_kw(p)[0] - BASE_KW <= 18.0 * 1.04  # within the 0.1 A resolution
    assert import_kw(p)[0] - BASE_KW >= 60.0 / 4.25 - 0.5  # and the van still gets its need in time


def test_a_dc_bus_waits_for_the_cheap_hours_and_the_taper_rows_hold_it_to_what_its_battery_takes() -> None:
    """A 450 kWh bus at 40 % needing 260 kWh (to 98 %) under a time-of-use price: the cost stage
    moves its charge to the cheap hours although the fastest charge would be in the taper by then
    (the exact rows of controller.planner.taper, not the fastest charge's caps), and the schedule
    never gives a slot more than the battery accepts along the schedule itself."""
    from controller.planner.taper import KNEE, SLOPE
    dc = Charger(id="d1", circuit="feeder-a", kind="dc", phases=3, phase_rotation="L1-L2-L3", max_kw=75.0)
    bus = SessionState(session_id="bus", charger_id="d1", vehicle_id="b", energy_need_kwh=260.0,
                       departure_at=NOW + timedelta(hours=14), arrived_at=NOW, priority=5, phases_used=3,
                       soc_pct=40.0, battery_kwh=450.0)
    s = Snapshot(site=replace(site(TOU), chargers=(dc,)), now=NOW, base_load_a=BASE, sessions=(bus,))
    p, _ = plan(s)
    safe(s, p)
    sp = p.session("bus")
    assert sp.will_meet_departure
    vals = slot_values(p)["bus"]
    ends = [*p.slot_starts[1:], p.horizon_end]
    hours = [(b - a).total_seconds() / 3600.0 for a, b in zip(p.slot_starts, ends, strict=True)]
    before_22 = sum(v * h for v, h, a in zip(vals, hours, p.slot_starts, strict=True)
                    if a.astimezone(TZ_BERLIN).hour in (18, 19, 20, 21))
    assert before_22 < 1.0  # nothing at 0.31 EUR/kWh: everything after 22:00 at 0.18
    soc, e_total = 0.40, 0.0
    for v, h in zip(vals, hours, strict=True):  # along the plan's own schedule
        e = v * h
        u = 1.0 - SLOPE * (soc - KNEE)
        if soc > KNEE:
            assert e <= 450.0 / SLOPE * u * (1.0 - np.exp(-SLOPE * 75.0 / 450.0 * h)) + 0.5
        soc += e / 450.0
        e_total += e
    assert e_total == pytest.approx(260.0, abs=3.0)


def test_a_bus_slower_than_its_charger_is_never_planned_above_its_own_curve() -> None:
    """A 50 kW bus (the site's vehicle list says so) on a 150 kW charger at 88 %: the taper rows use
    the bus's 50 kW, not the charger's rating — no slot is planned above what its battery takes
    along the plan itself (review: the charger's rating over-promised 4.8 kWh in one slot)."""
    from controller.model import Vehicle
    from controller.planner.taper import KNEE, SLOPE
    dc = Charger(id="d1", circuit="feeder-a", kind="dc", phases=3, phase_rotation="L1-L2-L3", max_kw=150.0)
    bus = SessionState(session_id="bus", charger_id="d1", vehicle_id="b50", energy_need_kwh=30.0,
                       departure_at=NOW + timedelta(hours=6, minutes=40), arrived_at=NOW, priority=5,
                       phases_used=3, soc_pct=88.0, battery_kwh=450.0)
    s = Snapshot(site=replace(site(TOU), chargers=(dc,), vehicles=(Vehicle(id="b50", max_kw=50.0),)), now=NOW,
                 base_load_a=BASE, sessions=(bus,))
    p, _ = plan(s)
    safe(s, p)
    vals = slot_values(p)["bus"]
    ends = [*p.slot_starts[1:], p.horizon_end]
    soc = 0.88
    for v, a, b in zip(vals, p.slot_starts, ends, strict=True):
        h = (b - a).total_seconds() / 3600.0
        e = v * h
        u = 1.0 - SLOPE * (soc - KNEE)
        assert e <= 450.0 / SLOPE * u * (1.0 - np.exp(-SLOPE * 50.0 / 450.0 * h)) + 0.05
        soc += e / 450.0


def test_unusable_expected_arrivals_are_left_out_with_a_warning_and_the_plan_stands() -> None:
    vans = tuple(sess(f"s{i}", f"a{i}", 60.0, 12.0) for i in range(1, 4))
    plain, _ = plan(snap(*vans, tariff=DEMAND))
    naive = datetime(2026, 11, 26, 20, 0)  # no time zone
    bad = (
        ExpectedArrival(naive, naive + timedelta(hours=8), 100.0, 50.0),
        ExpectedArrival(NOW + timedelta(hours=2), NOW + timedelta(hours=1), 100.0, 50.0),  # leaves before it comes
        ExpectedArrival(NOW + timedelta(hours=2), NOW + timedelta(hours=9), float("nan"), 50.0),
    )
    p, _ = plan(snap(*vans, tariff=DEMAND, expected_arrivals=bad))
    assert p.stats.solver == "highs"
    assert any("expected arrivals: 3 unusable entries left out" in w for w in p.warnings)
    assert [sp.limit.value for sp in p.sessions] == [sp.limit.value for sp in plain.sessions]
    huge = (ExpectedArrival(NOW + timedelta(hours=2), NOW + timedelta(hours=9), 1e308, 1e308),)
    q, _ = plan(snap(*vans, tariff=DEMAND, expected_arrivals=huge))
    assert q.stats.solver == "highs" and any("too large" in w for w in q.warnings)
