"""Every contract metric is registered with its type and shows in a real scrape of /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from controller.metrics import (
    CONTRACT_NAMES,
    EXTRA_NAMES,
    DepotMetrics,
    MetricsServer,
    add_exceeded,
    count_push,
    count_shed,
    count_store_dropped,
    observe_bill,
    observe_charger,
    observe_charger_safety,
    observe_failsafe,
    observe_grid,
    observe_meter,
    observe_plan,
    set_departure_at_risk,
    start_metrics_server,
)
from controller.planner.plan import plan
from tests.metrics.plans import hand_plan, small_snapshot
from tests.metrics.scrape import scrape

# the type each contract name has; counters/histograms are named here as a scrape shows them
CONTRACT_TYPES: dict[str, str] = {
    "depot_grid_current_amperes": "gauge",
    "depot_grid_power_watts": "gauge",
    "depot_circuit_limit_amperes": "gauge",
    "depot_circuit_load_amperes": "gauge",
    "depot_circuit_headroom_amperes": "gauge",
    "depot_charger_connected": "gauge",
    "depot_charger_limit_amperes": "gauge",
    "depot_charger_current_amperes": "gauge",
    "depot_charger_energy_wh_total": "counter",
    "depot_session_unmet_energy_wh": "gauge",
    "depot_plan_duration_seconds": "histogram",
    "depot_plan_solver": "gauge",
    "depot_meter_reads_total": "counter",
    "depot_meter_age_seconds": "gauge",
    "depot_failsafe_active": "gauge",
    "depot_overload_sheds_total": "counter",
    "depot_profile_pushes_total": "counter",
    "depot_limit_exceeded_seconds_total": "counter",
    "depot_departure_at_risk": "gauge",
    "depot_charger_uncontrolled": "gauge",
    "depot_charger_clock_offset_seconds": "gauge",
    "depot_charger_failsafe_installed": "gauge",
    "depot_energy_price": "gauge",
    "depot_demand_peak_kw": "gauge",
    "depot_energy_cost_total": "counter",
}

CONTRACT_LABELS: dict[str, set[str]] = {
    "depot_grid_current_amperes": {"phase"},
    "depot_circuit_limit_amperes": {"circuit", "phase"},
    "depot_circuit_load_amperes": {"circuit", "phase"},
    "depot_circuit_headroom_amperes": {"circuit", "phase"},
    "depot_charger_connected": {"charger"},
    "depot_charger_limit_amperes": {"charger"},
    "depot_charger_current_amperes": {"charger", "phase"},
    "depot_charger_energy_wh_total": {"charger"},
    "depot_session_unmet_energy_wh": {"charger"},
    "depot_plan_solver": {"solver"},
    "depot_meter_reads_total": {"meter", "result"},
    "depot_meter_age_seconds": {"meter"},
    "depot_overload_sheds_total": {"circuit"},
    "depot_profile_pushes_total": {"charger", "result"},
    "depot_limit_exceeded_seconds_total": {"circuit", "phase"},
    "depot_departure_at_risk": {"vehicle"},
    "depot_charger_uncontrolled": {"charger"},
    "depot_charger_clock_offset_seconds": {"charger"},
    "depot_charger_failsafe_installed": {"charger"},
    "depot_energy_price": {"currency"},
    "depot_energy_cost_total": {"currency"},
}


def family_name(contract_name: str, kind: str) -> str:
    return contract_name.removesuffix("_total") if kind == "counter" else contract_name


def fill(m: DepotMetrics) -> None:
    """Touch every metric once, the way the daemon would."""
    observe_plan(m, hand_plan())
    observe_grid(m, (50.0, 52.5, 29.0), 21_000.0)
    observe_meter(m, "grid-meter", "ok", 0.4)
    observe_failsafe(m, True, "grid meter stale")
    observe_charger(m, "a1", True, (16.0, 16.0, 0.0), 12_345.0)
    observe_charger_safety(m, "a1", uncontrolled=False, clock_offset_s=-1.25, failsafe_installed=True)
    count_shed(m, "feeder-a")
    count_push(m, "a1", "accepted")
    add_exceeded(m, "feeder-a", 2, 1.5)
    set_departure_at_risk(m, "bus-7", True)
    count_store_dropped(m)
    observe_bill(m, "EUR", 0.31, 42.5, 12.75)


@pytest.fixture
def served() -> Iterator[tuple[DepotMetrics, MetricsServer]]:
    m = DepotMetrics()
    server = start_metrics_server(m.registry, "127.0.0.1:0")
    try:
        yield m, server
    finally:
        server.stop()


def test_contract_names_are_the_issue_list() -> None:
    assert set(CONTRACT_NAMES) == set(CONTRACT_TYPES)
    assert len(CONTRACT_NAMES) == len(set(CONTRACT_NAMES))
    assert not set(CONTRACT_NAMES) & set(EXTRA_NAMES)
    for name in CONTRACT_NAMES:  # units in the names
        assert name.startswith("depot_")


def test_every_contract_name_registered_with_its_type() -> None:
    m = DepotMetrics()
    families = dict(m.families())
    for name, kind in CONTRACT_TYPES.items():
        assert families.get(family_name(name, kind)) == kind, name
    exported = m.exported_names()
    for name in (*CONTRACT_NAMES, *EXTRA_NAMES):
        kind = CONTRACT_TYPES.get(name, "gauge")
        expected = f"{name}_bucket" if kind == "histogram" else name
        assert expected in exported, name


def test_instances_do_not_collide() -> None:
    a, b = DepotMetrics(), DepotMetrics()
    observe_failsafe(a, True, "starting")
    assert a.registry.get_sample_value("depot_failsafe_active") == 1.0
    assert b.registry.get_sample_value("depot_failsafe_active") == 0.0


def test_scrape_exposes_every_contract_name(served: tuple[DepotMetrics, MetricsServer]) -> None:
    m, server = served
    fill(m)
    got = scrape(server.url)
    names = got.names()
    for name, kind in CONTRACT_TYPES.items():
        assert got.types.get(family_name(name, kind)) == kind, name
        series = f"{name}_bucket" if kind == "histogram" else name
        assert series in names, f"{series} not in the scrape"
        if name in CONTRACT_LABELS:
            labelled = [dict(lbl) for n, lbl in got.samples if n == series]
            assert labelled and all(set(lbl) - {"le"} == CONTRACT_LABELS[name] for lbl in labelled), name
    for name in EXTRA_NAMES:
        assert name in names
    # nothing exported that the registry does not know about
    assert names <= m.exported_names()
    assert "# HELP depot_grid_current_amperes " in got.text


def test_scrape_of_a_real_plan(served: tuple[DepotMetrics, MetricsServer]) -> None:
    m, server = served
    snapshot = small_snapshot()
    p, _ = plan(snapshot)
    assert p.nodes and p.sessions
    observe_plan(m, p)
    got = scrape(server.url)
    assert got.label_values("depot_circuit_headroom_amperes", "circuit") == {nl.node_id for nl in p.nodes}
    for nl in p.nodes:
        phase = ("L1", "L2", "L3")[nl.phase]
        assert got.value("depot_circuit_headroom_amperes", circuit=nl.node_id, phase=phase) == pytest.approx(
            nl.headroom_a)
        assert got.value("depot_circuit_load_amperes", circuit=nl.node_id, phase=phase) == pytest.approx(
            nl.planned_a)
    assert got.value("depot_plan_solver", solver=p.stats.solver) == 1.0
    assert got.value("depot_plan_duration_seconds_count") == 1.0
    assert got.value("depot_plan_duration_seconds_sum") == pytest.approx(p.stats.total_ms / 1000.0)
    assert got.label_values("depot_session_unmet_energy_wh", "charger") == {s.charger_id for s in p.sessions}
    a2 = p.session("s-a2")  # 200 kWh in 2 h cannot be met
    assert got.value("depot_session_unmet_energy_wh", charger="a2") == pytest.approx(a2.shortfall_kwh * 1000.0)
    assert a2.shortfall_kwh > 0
