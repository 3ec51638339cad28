"""The depot's bill in a simulation: cost, peak, PV, dated prices and the offline cost bound."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.cli import main
from controller.config import ConfigError
from controller.model.site import DemandCharge, Tariff, TariffStep
from controller.model.snapshot import Snapshot
from controller.simulate.bill import dated_price, window_start
from controller.simulate.cli import simulate
from controller.simulate.engine import run
from controller.simulate.optimal import solve_cost_bound, solve_optimal
from controller.simulate.policies import PlannerPolicy, Uncontrolled, View
from controller.simulate.scenario import load_scenario, load_scenario_text
from controller.simulate.whatif import with_pv_factor, with_tariff

ROOT = Path(__file__).resolve().parents[2]

BERLIN = ZoneInfo("Europe/Berlin")

# 10 A on every phase at 230 V: 6.9 kW all day, 20 A (13.8 kW) from 15:05 to 15:20; 3 kW of PV
# from 10:00 to 14:00; 0.20 EUR/kWh before noon, 0.40 after; 10 EUR/kW on the 15-minute peak.
CONSTANT = """site: {name: T, timezone: Europe/Berlin, voltage_v: 230}
grid: {limit_a: 100}
chargers: [{id: CP1, phases: 3, max_a: 32}]
tariff:
  - {at: "00:00", price_per_kwh: 0.20}
  - {at: "12:00", price_per_kwh: 0.40}
scenario:
  start: "2026-03-04T08:00"
  duration_h: 8
  step_s: 60
  tariff: {currency: EUR, demand: {price_per_kw: 10.0, window_min: 15}}
  base_load:
    - {at: "00:00", a: [10, 10, 10]}
    - {at: "2026-03-04T15:05", a: [20, 20, 20]}
    - {at: "2026-03-04T15:20", a: [10, 10, 10]}
  pv_kw: [{at: "00:00", kw: 0}, {at: "10:00", kw: PV}, {at: "14:00", kw: 0}]
"""


def constant(pv_kw: float = 3.0) -> str:
    return CONSTANT.replace("kw: PV", f"kw: {pv_kw}")


def test_cost_peak_and_pv_of_a_constant_load_by_hand() -> None:
    bill = run(load_scenario_text(constant(), "c.yaml"), Uncontrolled()).bill
    assert bill is not None
    # import: 08-10 6.9 kW, 10-14 3.9 kW (PV), 14-16 6.9 kW plus 6.9 kW for a quarter hour
    assert bill.import_kwh == pytest.approx(2 * 6.9 + 4 * 3.9 + 2 * 6.9 + 0.25 * 6.9, rel=1e-9)
    assert bill.cost_energy == pytest.approx(0.2 * (2 * 6.9 + 2 * 3.9) + 0.4 * (2 * 3.9 + 2.25 * 6.9), rel=1e-9)
    # 15:00-15:15 holds 5 min at 6.9 and 10 at 13.8 kW: 11.5 kW; 15:15-15:30 only 9.2 kW
    assert bill.peak_kw == pytest.approx(11.5, rel=1e-9)
    assert bill.peak_at == datetime(2026, 3, 4, 15, 0, tzinfo=BERLIN)
    assert bill.peak_window_min == 15
    assert bill.cost_demand == pytest.approx(115.0, rel=1e-9)
    assert bill.cost_total == pytest.approx(bill.cost_energy + 115.0, rel=1e-12)
    assert bill.pv_kwh == pytest.approx(12.0, rel=1e-9)
    assert bill.pv_used_kwh == pytest.approx(12.0, rel=1e-9)
    assert bill.currency == "EUR"


def test_pv_beyond_the_load_is_exported_not_used_and_never_counted_twice() -> None:
    bill = run(load_scenario_text(constant(10.0), "c.yaml"), Uncontrolled()).bill
    assert bill is not None
    assert bill.pv_kwh == pytest.approx(40.0, rel=1e-9)
    assert bill.pv_used_kwh == pytest.approx(4 * 6.9, rel=1e-9)  # the load, not the PV
    assert bill.pv_used_kwh <= bill.pv_kwh
    assert bill.import_kwh == pytest.approx(4 * 6.9 + 0.25 * 6.9, rel=1e-9)  # nothing imported 10-14


def test_a_cloudy_day_scales_the_real_pv_not_the_forecast() -> None:
    sc = with_pv_factor(load_scenario_text(constant(10.0), "c.yaml"), 0.4)
    seen: list[Snapshot] = []

    class Recording(PlannerPolicy):
        def decide(self, view: View) -> dict[str, float]:
            seen.append(self.snapshot(view))
            return super().decide(view)

    bill = run(sc, Recording()).bill
    assert bill is not None and bill.pv_kwh == pytest.approx(16.0, rel=1e-9)
    at_noon = next(s for s in seen if s.now == datetime(2026, 3, 4, 11, 0, tzinfo=UTC))  # 12:00 in Berlin
    assert at_noon.pv_kw == pytest.approx(4.0)  # measured: the real output
    forecast = dict(at_noon.pv_forecast_kw)
    assert forecast[at_noon.now] == 10.0  # the forecast: the profile
    assert forecast[datetime(2026, 3, 4, 13, 0, tzinfo=UTC)] == 0.0  # 14:00 local
    first = seen[0]
    assert first.demand_peak_kw is None  # no window completed yet
    assert first.prices == ()
    assert first.site.tariff.demand is not None and first.site.tariff.demand.price_per_kw == 10.0
    later = next(s for s in seen if s.now == datetime(2026, 3, 4, 7, 30, tzinfo=UTC))
    assert later.demand_peak_kw == pytest.approx(6.9)  # windows 08:00-08:15 … completed


def test_pv_lowers_the_grid_current_and_no_circuit_below_it() -> None:
    text = constant(3.0).replace("grid: {limit_a: 100}", "grid: {limit_a: 100}\ncircuits: [{id: board, limit_a: 50}]")
    text = text.replace("{id: CP1, phases: 3, max_a: 32}", "{id: CP1, circuit: board, phases: 3, max_a: 32}")
    text += '  circuit_base_load: {board: [{at: "00:00", a: [5, 5, 5]}]}\n'
    text += '  sessions: [{charger: CP1, arrive: "2026-03-04T10:00", depart: "2026-03-04T12:00", energy_kwh: 50}]\n'
    sunny = run(load_scenario_text(text, "c.yaml"), Uncontrolled())
    dark = run(load_scenario_text(text.replace("kw: 3.0", "kw: 0"), "c.yaml"), Uncontrolled())
    assert sunny.peak_a["board"] == dark.peak_a["board"] == (37.0, 37.0, 37.0)  # 32 A car + 5 A: no PV there
    pv_a = 3000 / (3 * 230)
    assert dark.peak_a["grid"] == (42.0, 42.0, 42.0)  # 10 A + the car, 10:00-12:00
    assert sunny.peak_a["grid"][0] == pytest.approx(42.0 - pv_a, rel=1e-9)  # the PV's current taken off
    assert dark.bill is not None and sunny.bill is not None
    assert dark.bill.import_kwh - sunny.bill.import_kwh == pytest.approx(12.0, rel=1e-9)
    assert sunny.violations.count == dark.violations.count == 0


def test_the_grid_import_counts_what_the_chargers_take_from_the_grid() -> None:
    text = constant(0.0).replace(
        "chargers: [{id: CP1, phases: 3, max_a: 32}]",
        "chargers: [{id: CP1, phases: 3, max_a: 16}, {id: DC1, kind: dc, max_kw: 20, efficiency: 0.9}]",
    )
    text += (
        "  sessions:\n"
        '    - {charger: CP1, arrive: "2026-03-04T09:00", depart: "2026-03-04T13:00", energy_kwh: 20}\n'
        '    - {charger: DC1, arrive: "2026-03-04T09:30", depart: "2026-03-04T13:00", energy_kwh: 30, ev_max_kw: 20}\n'
    )
    result = run(load_scenario_text(text, "c.yaml"), Uncontrolled())
    assert result.bill is not None
    ac, dc = sorted(result.sessions, key=lambda s: s.charger)
    assert ac.charger == "CP1" and ac.delivered_kwh > 19.9 and dc.delivered_kwh > 29.9
    base_kwh = 8 * 6.9 + 0.25 * 6.9
    assert result.bill.import_kwh == pytest.approx(base_kwh + ac.delivered_kwh + dc.delivered_kwh / 0.9, rel=1e-9)


def test_windows_align_to_the_site_clock_through_a_dst_change_and_half_hour_zones() -> None:
    berlin = datetime(2026, 3, 29, 3, 10, tzinfo=BERLIN)  # the first hour of summer time
    assert window_start(berlin, 15) == datetime(2026, 3, 29, 3, 0, tzinfo=BERLIN)
    assert window_start(datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN), 60) == datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN)
    kolkata = ZoneInfo("Asia/Kolkata")  # +05:30: an hour's window starts at :00 there, :30 UTC
    t = datetime(2026, 3, 4, 10, 20, tzinfo=kolkata)
    assert window_start(t, 60) == datetime(2026, 3, 4, 10, 0, tzinfo=kolkata)
    assert window_start(t, 60).astimezone(UTC).minute == 30


def test_dated_prices_win_each_until_the_next_and_the_last_until_the_end_of_its_hour() -> None:
    text = constant(0.0).replace(
        "  base_load:",
        '  prices: [{at: "2026-03-04T09:00", price_per_kwh: 1.0}, {at: "2026-03-04T10:15", price_per_kwh: 2.0}]\n'
        "  base_load:",
    )
    sc = load_scenario_text(text, "c.yaml")
    nine = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)  # 09:00 in Berlin
    assert sc.prices == ((nine, 1.0), (nine + timedelta(minutes=75), 2.0))
    assert dated_price(sc.prices, nine - timedelta(seconds=1)) is None
    assert dated_price(sc.prices, nine + timedelta(minutes=74)) == 1.0
    assert dated_price(sc.prices, nine + timedelta(minutes=119)) == 2.0
    assert dated_price(sc.prices, nine + timedelta(minutes=120)) is None  # 11:00: the hour has ended
    bill = run(sc, Uncontrolled()).bill
    assert bill is not None
    # 09:00-10:15 at 1.0, 10:15-11:00 at 2.0, the rest at the daily steps
    expected = 6.9 * (1.0 * 0.2 + 1.25 * 1.0 + 0.75 * 2.0 + 1.0 * 0.2) + 0.4 * (4 * 6.9 + 0.25 * 6.9)
    assert bill.cost_energy == pytest.approx(expected, rel=1e-9)


SMALL = """site: {name: Small depot, timezone: Europe/Berlin, voltage_v: 230}
grid: {limit_a: 160}
chargers:
  - {id: CP1, phases: 3, max_a: 32}
  - {id: CP2, phases: 3, max_a: 32}
  - {id: DC1, kind: dc, max_kw: 50}
tariff:
  - {at: "00:00", price_per_kwh: 0.18}
  - {at: "07:00", price_per_kwh: 0.31}
  - {at: "22:00", price_per_kwh: 0.18}
control: {plan_every_s: 300, horizon_h: 12}
scenario:
  start: "2026-03-04T18:00"
  duration_h: 12
  step_s: 300
  tariff: {currency: EUR, demand: {price_per_kw: 14.0, window_min: 15}}
  base_load: [{at: "00:00", a: [20, 18, 19]}, {at: "06:00", a: [40, 38, 39]}, {at: "20:00", a: [25, 24, 24]}]
  pv_kw: [{at: "00:00", kw: 0}, {at: "05:00", kw: 4}]
  sessions:
    - {charger: CP1, arrive: "2026-03-04T18:00", depart: "2026-03-05T05:00", energy_kwh: 30, battery_kwh: 80}
    - {charger: CP2, arrive: "2026-03-04T19:00", depart: "2026-03-05T06:00", energy_kwh: 25, battery_kwh: 80}
    - {charger: DC1, arrive: "2026-03-04T20:00", depart: "2026-03-05T05:30", energy_kwh: 60, ev_max_kw: 50,
       battery_kwh: 200}
"""


def test_the_cost_bound_is_below_every_policy_that_delivers_what_it_asks() -> None:
    sc = load_scenario_text(SMALL, "small.yaml")
    optimum = simulate(sc, "optimal")
    bound = optimum.cost_bound
    assert bound is not None and bound.proven
    # the energy optimum meets all three with 115 kWh; a met session may be 0.5 % (0.1 kWh at least) short
    assert bound.departures_met_min == 3 and bound.energy_kwh_min == pytest.approx(115.0 - 0.575, rel=1e-6)
    assert bound.incumbent is not None and bound.peak_kw is not None
    assert bound.bound <= bound.incumbent + 1e-6
    edf_peak = 0.0
    for policy in ("lp", "equal-share", "edf", "llf", "uncontrolled", "optimal"):
        r = optimum if policy == "optimal" else simulate(sc, policy)
        assert r.violations.count == 0, policy  # within the limits the bound assumes
        assert r.departures_met == 3 and r.delivered_kwh >= bound.energy_kwh_min, policy
        assert r.bill is not None
        assert bound.bound <= r.bill.cost_total + 1e-6, policy
        if policy == "edf":
            edf_peak = r.bill.peak_kw
    assert bound.peak_kw < 0.8 * edf_peak  # the night has slack: a flatter peak is possible


def test_the_cost_bound_keeps_the_departures_the_energy_optimum_meets_where_not_all_can_be() -> None:
    short = SMALL.replace("grid: {limit_a: 160}", "grid: {limit_a: 45}").replace("energy_kwh: 60", "energy_kwh: 150")
    short = short.replace("battery_kwh: 200", "battery_kwh: 300")
    sc = load_scenario_text(short, "short.yaml")
    optimum = simulate(sc, "optimal", max_met=True)
    assert optimum.max_met is not None and optimum.cost_bound is not None
    bound = optimum.cost_bound
    assert bound.departures_met_min < 3  # the MILP path: binaries for who is met
    assert bound.departures_met_min <= optimum.max_met.bound
    assert bound.proven and bound.incumbent is not None
    assert bound.bound <= bound.incumbent <= bound.bound * 1.001 + 1e-9
    # on a policy's own terms (its departures met, its energy) the bound is below what it paid
    first = solve_optimal(sc)
    for policy in ("lp", "edf"):
        r = simulate(sc, policy)
        assert r.violations.count == 0 and r.bill is not None
        own = solve_cost_bound(sc, first, met_min=r.departures_met, energy_min_kwh=r.delivered_kwh * (1 - 1e-6))
        assert own.proven and own.departures_met_min == r.departures_met
        assert own.bound <= r.bill.cost_total + 1e-6, policy


def test_without_a_tariff_the_bill_is_zero_and_the_peak_still_reported() -> None:
    text = SMALL.replace("  tariff: {currency: EUR, demand: {price_per_kw: 14.0, window_min: 15}}\n", "")
    text = text.split("tariff:\n", 1)[0] + "control:" + text.split("control:", 1)[1]
    sc = load_scenario_text(text, "plain.yaml")
    assert not sc.priced
    r = simulate(sc, "optimal", max_met=False)
    assert r.bill is not None and r.bill.cost_total == 0.0 and r.bill.peak_kw > 0
    assert r.cost_bound is not None and r.cost_bound.bound == 0.0 and r.cost_bound.proven


def test_cli_json_has_the_bill_and_the_cost_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(SMALL)
    assert main(["simulate", str(path), "--policy", "optimal", "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("cost_energy", "cost_demand", "cost_total", "peak_kw", "pv_used_kwh", "pv_kwh", "currency"):
        assert key in data, key
    assert data["cost_total"] == pytest.approx(data["cost_energy"] + data["cost_demand"], abs=1e-3)
    assert data["optimal_cost_bound"] == data["cost_bound"]["bound"]
    assert "at least as many departures" in data["cost_bound"]["definition"]
    assert data["optimal_cost_bound"] <= data["cost_total"] + 1e-6
    assert main(["simulate", str(path), "--policy", "edf", "--no-progress"]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("scenario"))
    assert [c.strip() for c in head.split("  ") if c.strip()][10:12] == ["cost", "peak kW"]
    assert "small (edf): cost " in out and " EUR (energy " in out


def test_cli_plot_shows_price_and_peak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="install the plot extra: pip install 'depotctl[plot]'")
    path, out = tmp_path / "small.yaml", tmp_path / "bill.png"
    path.write_text(SMALL)
    assert main(["simulate", str(path), "--policy", "edf", "--plot", str(out), "--no-progress"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_scenario_text(text, "s.yaml")
    return [p.format("s.yaml") for p in info.value.errors]


def place(text: str, line_start: str, token: str) -> str:
    """``s.yaml:LINE:COL`` of ``token`` on the line that starts with ``line_start``."""
    number, line = next((i, s) for i, s in enumerate(text.splitlines(), 1) if s.startswith(line_start))
    return f"s.yaml:{number}:{line.index(token) + 1}"


def test_a_bad_pv_row_is_refused_with_its_place() -> None:
    text = constant(3.0)
    bad = text.replace("kw: 3.0", "kw: -3")
    where = place(bad, "  pv_kw:", "-3")
    assert errors_of(bad) == [f"{where}: scenario.pv_kw[1].kw: Input should be greater than or equal to 0 (got '-3')"]
    bad = text.replace('{at: "10:00", kw: 3.0}', '{at: "10h", kw: 3.0}')
    where = place(bad, "  pv_kw:", '"10h"')
    assert errors_of(bad) == [f"{where}: scenario.pv_kw[1].at: expected HH:MM or an ISO local date-time, got '10h'"]
    bad = text.replace('{at: "10:00", kw: 3.0}', '{at: "10:00"}')
    where = place(bad, "  pv_kw:", '{at: "10:00"}')
    assert errors_of(bad) == [f"{where}: scenario.pv_kw[1].kw: required key is missing"]
    bad = text.replace('"14:00", kw: 0', '"10:00", kw: 0')
    where = place(bad, "  pv_kw:", '"10:00", kw: 0')
    assert errors_of(bad) == [f"{where}: scenario.pv_kw[2].at: two steps at 10:00"]


def test_a_bad_scenario_tariff_or_price_is_refused_with_its_place() -> None:
    text = constant(3.0)
    errors = errors_of(text.replace("window_min: 15", "window_min: 7"))
    assert (
        len(errors) == 1
        and "scenario.tariff.demand.window_min: window_min must be one of 5, 10, 15, 30, 60" in errors[0]
    )
    errors = errors_of(text.replace("{currency: EUR,", "{currency: euro,"))
    assert len(errors) == 1 and "scenario.tariff.currency" in errors[0]
    errors = errors_of(text.replace("  base_load:", '  prices: [{at: "09:00", price_per_kwh: 1}]\n  base_load:'))
    assert len(errors) == 1 and "scenario.prices[0].at: dated prices need an ISO local date-time" in errors[0]
    assert errors[0].startswith("s.yaml:12:")


def test_the_cost_stage_flattens_a_feeder_limited_evening() -> None:
    """hil/scenarios/feeder-limited.yaml from 16:00 to 22:00 with a time-of-use tariff and a demand
    charge, the cost stage on: the vans on the new feeder (plenty of room, hours to spare) wait
    instead of all charging at full power as they arrive. Until 2026-12-07 the stage changed
    nothing there — every session was "tight" because stages 1–2's price tie-break put a little of
    its energy in its buffer — and the evening's peak was 164.7 kW (edf's: 156.8)."""
    scenario = load_scenario(ROOT / "hil" / "scenarios" / "feeder-limited.yaml")
    tariff = Tariff(currency="EUR", energy=(TariffStep(time(0), 0.18), TariffStep(time(7), 0.31),
                                            TariffStep(time(22), 0.18)),
                    demand=DemandCharge(price_per_kw=14.0, window_min=15))
    scenario = with_tariff(scenario, tariff)
    site = dataclasses.replace(scenario.site, control=dataclasses.replace(scenario.site.control, plan_cost=True))
    scenario = dataclasses.replace(scenario, site=site, duration_s=6 * 3600.0)
    lp = simulate(scenario, "lp")
    assert lp.bill is not None and lp.violations.count == 0
    assert lp.bill.peak_kw < 140.0
