"""The simulated depot's session history for the arrival forecast (controller.simulate.arrivals),
and what the forecast buys lp on the bus depot with a demand charge (the cost stage on)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

from controller.simulate.arrivals import ABSENT_P, ENERGY_JITTER, HISTORY_DAYS, JITTER_S, fleet_history
from controller.simulate.engine import run
from controller.simulate.policies import PlannerPolicy
from controller.simulate.scenario import Scenario, load_scenario

BUS_DEPOT = Path(__file__).resolve().parents[2] / "hil" / "scenarios" / "bus-depot-demand-charge.yaml"


def _with_cost_stage(sc: Scenario) -> Scenario:
    """The cost stage on, planning every 5 min (not 1: the same night in a fifth of the cycles)."""
    control = dataclasses.replace(sc.site.control, plan_cost=True, plan_every_s=300)
    return dataclasses.replace(sc, site=dataclasses.replace(sc.site, control=control))


def test_the_history_is_earlier_days_of_the_same_kind_a_little_different_and_the_same_every_run() -> None:
    sc = load_scenario(BUS_DEPOT)  # Tuesday 2026-03-03
    past = fleet_history(sc)
    assert past == fleet_history(sc)  # seeded by the scenario's name
    tz = sc.tz
    days = sorted({p.started_at.astimezone(tz).date() for p in past})
    start_day = sc.start.astimezone(tz).date()
    assert len(days) == HISTORY_DAYS and all(d < start_day and d.weekday() < 5 for d in days)
    by_charger = {s.charger_id: s for s in sc.sessions}  # one bus per bay in this depot
    assert len(by_charger) == len(sc.sessions)
    n = len(sc.sessions)
    assert HISTORY_DAYS * n * (1 - 3 * ABSENT_P) <= len(past) < HISTORY_DAYS * n  # some buses out of service
    moved = 0
    for p in past:
        s = by_charger[p.charger_id]
        assert p.vehicle_id == s.vehicle_id  # the scenario's (none here): as the daemon would have it
        ago = (start_day - p.started_at.astimezone(tz).date()).days
        same_time = s.arrive - timedelta(days=ago)  # no DST change in these days
        assert abs((p.started_at - same_time).total_seconds()) <= JITTER_S + 1e-6
        assert abs(p.energy_kwh / s.energy_kwh - 1.0) <= ENERGY_JITTER + 1e-9
        moved += p.started_at != same_time
    assert moved == len(past)  # never the day itself


def test_the_forecast_lowers_the_nights_peak_on_the_bus_depot_and_meets_every_departure() -> None:
    sc = _with_cost_stage(load_scenario(BUS_DEPOT))
    told = run(sc, PlannerPolicy(), arrival_forecast=True)
    blind = run(sc, PlannerPolicy(), arrival_forecast=False)
    assert told.departures_met == blind.departures_met == len(sc.sessions)
    assert told.violations.count == blind.violations.count == 0
    assert told.bill.peak_kw < 0.9 * blind.bill.peak_kw  # measured 2026-12-07: 680 against 802 kW
