"""Values: what each update function puts into the registry."""

from __future__ import annotations

import pytest

from controller.metrics import (
    DepotMetrics,
    add_exceeded,
    count_push,
    count_shed,
    observe_bill,
    observe_charger,
    observe_charger_safety,
    observe_failsafe,
    observe_grid,
    observe_meter,
    observe_plan,
    observe_site,
    set_departure_at_risk,
)
from controller.model import Limit, NodeLoad
from tests.metrics.plans import hand_plan, session, site


def value(m: DepotMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def series(m: DepotMetrics, name: str, label: str) -> set[str]:
    return {s.labels[label] for fam in m.registry.collect() for s in fam.samples
            if s.name == name and label in s.labels}


def test_circuit_load_limit_headroom_per_phase_match_the_plan() -> None:
    m = DepotMetrics()
    p = hand_plan()
    observe_plan(m, p)
    for nl in p.nodes:
        labels = {"circuit": nl.node_id, "phase": ("L1", "L2", "L3")[nl.phase]}
        assert value(m, "depot_circuit_limit_amperes", **labels) == nl.limit_a
        assert value(m, "depot_circuit_load_amperes", **labels) == pytest.approx(nl.base_a + nl.ev_a)
        assert value(m, "depot_circuit_headroom_amperes", **labels) == pytest.approx(nl.limit_a - nl.base_a - nl.ev_a)
    assert value(m, "depot_circuit_headroom_amperes", circuit="grid", phase="L2") == pytest.approx(45.5)
    assert value(m, "depot_circuit_headroom_amperes", circuit="feeder-a", phase="L3") == pytest.approx(-8.0)


def test_charger_limits_ac_in_amperes_dc_as_planned_grid_current() -> None:
    m = DepotMetrics()
    observe_plan(m, hand_plan())
    assert value(m, "depot_charger_limit_amperes", charger="a1") == 16.0
    assert value(m, "depot_charger_limit_amperes", charger="a2") == 8.0
    assert value(m, "depot_charger_limit_amperes", charger="dc1") == 16.5


def test_unmet_energy_in_wh() -> None:
    m = DepotMetrics()
    observe_plan(m, hand_plan())
    assert value(m, "depot_session_unmet_energy_wh", charger="a1") == 0.0
    assert value(m, "depot_session_unmet_energy_wh", charger="a2") == pytest.approx(2500.0)
    assert value(m, "depot_session_unmet_energy_wh", charger="dc1") == pytest.approx(10_000.0)


def test_solver_is_one_hot() -> None:
    m = DepotMetrics()
    observe_plan(m, hand_plan(solver="highs"))
    observe_plan(m, hand_plan(solver="heuristic"))
    got = {s: value(m, "depot_plan_solver", solver=s) for s in ("highs", "cbc", "heuristic", "none")}
    assert got == {"highs": 0.0, "cbc": 0.0, "heuristic": 1.0, "none": 0.0}


def test_plan_duration_histogram_counts() -> None:
    m = DepotMetrics()
    for ms in (3.0, 40.0, 40.0, 1500.0, 45_000.0):
        observe_plan(m, hand_plan(total_ms=ms))
    assert value(m, "depot_plan_duration_seconds_count") == 5.0
    assert value(m, "depot_plan_duration_seconds_sum") == pytest.approx(46.583)
    assert value(m, "depot_plan_duration_seconds_bucket", le="0.005") == 1.0
    assert value(m, "depot_plan_duration_seconds_bucket", le="0.05") == 3.0
    assert value(m, "depot_plan_duration_seconds_bucket", le="2.0") == 4.0
    assert value(m, "depot_plan_duration_seconds_bucket", le="30.0") == 4.0
    assert value(m, "depot_plan_duration_seconds_bucket", le="+Inf") == 5.0


def test_next_plan_drops_what_it_no_longer_mentions() -> None:
    m = DepotMetrics()
    observe_plan(m, hand_plan())
    smaller = hand_plan(
        nodes=tuple(NodeLoad("grid", ph, base_a=1.0, ev_a=2.0, limit_a=98.0) for ph in range(3)),
        sessions=(session("s1", "a1", 10.0, 10.0, Limit(10.0, "charger max")),),
    )
    observe_plan(m, smaller)
    assert series(m, "depot_circuit_load_amperes", "circuit") == {"grid"}
    assert series(m, "depot_circuit_headroom_amperes", "circuit") == {"grid"}
    assert series(m, "depot_charger_limit_amperes", "charger") == {"a1"}
    assert series(m, "depot_session_unmet_energy_wh", "charger") == {"a1"}


def test_grid_meter_failsafe_charger() -> None:
    m = DepotMetrics()
    observe_grid(m, (50.0, 52.5, 29.0), 21_000.0)
    assert [value(m, "depot_grid_current_amperes", phase=p) for p in ("L1", "L2", "L3")] == [50.0, 52.5, 29.0]
    assert value(m, "depot_grid_power_watts") == 21_000.0

    observe_meter(m, "grid-meter", "ok", 0.5)
    observe_meter(m, "grid-meter", "timeout", 1.5)
    observe_meter(m, "grid-meter", "timeout", 2.5)
    assert value(m, "depot_meter_reads_total", meter="grid-meter", result="ok") == 1.0
    assert value(m, "depot_meter_reads_total", meter="grid-meter", result="timeout") == 2.0
    assert value(m, "depot_meter_age_seconds", meter="grid-meter") == 2.5

    observe_failsafe(m, True, "grid meter stale")
    assert value(m, "depot_failsafe_active") == 1.0
    assert value(m, "depot_failsafe_reason_info", reason="grid meter stale") == 1.0
    observe_failsafe(m, False, "3 good cycles after: grid meter stale")
    assert value(m, "depot_failsafe_active") == 0.0
    assert value(m, "depot_failsafe_reason_info", reason="") == 1.0

    observe_charger(m, "a1", True, (16.0, 15.5, 0.0), 1000.0)
    observe_charger(m, "a1", True, (16.0, 15.5, 0.0), 1500.0)
    assert value(m, "depot_charger_connected", charger="a1") == 1.0
    assert value(m, "depot_charger_current_amperes", charger="a1", phase="L2") == 15.5
    assert value(m, "depot_charger_energy_wh_total", charger="a1") == 1500.0
    observe_charger(m, "a1", False)  # link lost: no current shown as 0 A, energy kept
    assert value(m, "depot_charger_connected", charger="a1") == 0.0
    assert series(m, "depot_charger_current_amperes", "charger") == set()
    assert value(m, "depot_charger_energy_wh_total", charger="a1") == 1500.0


def test_charger_safety_uncontrolled_clock_offset_failsafe() -> None:
    m = DepotMetrics()
    observe_charger_safety(m, "a1", uncontrolled=False, clock_offset_s=None, failsafe_installed=False)
    assert value(m, "depot_charger_uncontrolled", charger="a1") == 0.0
    assert value(m, "depot_charger_failsafe_installed", charger="a1") == 0.0
    assert series(m, "depot_charger_clock_offset_seconds", "charger") == set()  # unknown: no series, not 0 s

    observe_charger_safety(m, "a1", uncontrolled=True, clock_offset_s=-120.5, failsafe_installed=True)
    observe_charger_safety(m, "a2", uncontrolled=False, clock_offset_s=0.25, failsafe_installed=True)
    assert value(m, "depot_charger_uncontrolled", charger="a1") == 1.0
    assert value(m, "depot_charger_failsafe_installed", charger="a1") == 1.0
    assert value(m, "depot_charger_clock_offset_seconds", charger="a1") == -120.5  # behind: negative
    assert value(m, "depot_charger_clock_offset_seconds", charger="a2") == 0.25

    # obeys again, the offset no longer known (e.g. a new connection): the offset series goes, not to 0
    observe_charger_safety(m, "a1", uncontrolled=False, clock_offset_s=None, failsafe_installed=True)
    assert value(m, "depot_charger_uncontrolled", charger="a1") == 0.0
    assert series(m, "depot_charger_clock_offset_seconds", "charger") == {"a2"}
    observe_charger_safety(m, "a2", uncontrolled=False, clock_offset_s=float("nan"), failsafe_installed=True)
    assert series(m, "depot_charger_clock_offset_seconds", "charger") == set()


def test_charger_safety_does_not_walk_every_series() -> None:
    """Called for every charger each fast cycle: O(1), never a collect() of a whole metric (500 chargers)."""
    m = DepotMetrics()
    for i in range(3):
        observe_charger_safety(m, f"c{i}", uncontrolled=False, clock_offset_s=1.0, failsafe_installed=True)

    def walked(*args: object, **kwargs: object) -> None:
        raise AssertionError("collected every series")

    for metric in (m.charger_uncontrolled, m.charger_clock_offset, m.charger_failsafe_installed):
        metric.collect = walked  # type: ignore[method-assign]
    m.label_sets = walked  # type: ignore[method-assign,assignment]
    observe_charger_safety(m, "c1", uncontrolled=True, clock_offset_s=None, failsafe_installed=False)
    observe_charger_safety(m, "c9", uncontrolled=False, clock_offset_s=None, failsafe_installed=False)


def test_counters_and_departures() -> None:
    m = DepotMetrics()
    count_shed(m, "feeder-a")
    count_shed(m, "feeder-a")
    count_shed(m)
    assert value(m, "depot_overload_sheds_total", circuit="feeder-a") == 2.0
    assert value(m, "depot_overload_sheds_total", circuit="grid") == 1.0
    count_push(m, "a1", "accepted")
    count_push(m, "a1", "rejected")
    assert value(m, "depot_profile_pushes_total", charger="a1", result="rejected") == 1.0
    add_exceeded(m, "grid", 0, 1.0)
    add_exceeded(m, "grid", "L1", 0.5)
    assert value(m, "depot_limit_exceeded_seconds_total", circuit="grid", phase="L1") == 1.5
    with pytest.raises(ValueError):
        add_exceeded(m, "grid", 3, 1.0)
    with pytest.raises(ValueError):
        add_exceeded(m, "grid", "L1", -1.0)
    set_departure_at_risk(m, "bus-7", True)
    set_departure_at_risk(m, "bus-8", False)
    assert value(m, "depot_departure_at_risk", vehicle="bus-7") == 1.0
    assert value(m, "depot_departure_at_risk", vehicle="bus-8") == 0.0
    set_departure_at_risk(m, "bus-7", None)
    assert series(m, "depot_departure_at_risk", "vehicle") == {"bus-8"}


def test_reload_removes_label_sets_of_removed_chargers_and_circuits() -> None:
    m = DepotMetrics()
    observe_plan(m, hand_plan())
    for ch in ("a1", "a2", "dc1"):
        observe_charger(m, ch, True, (1.0, 1.0, 1.0), 10.0)
        observe_charger_safety(m, ch, uncontrolled=ch == "a2", clock_offset_s=3.0, failsafe_installed=True)
        count_push(m, ch, "accepted")
    count_shed(m, "feeder-a")
    add_exceeded(m, "feeder-a", 1, 2.0)
    observe_meter(m, "grid-meter", "ok", 0.1)
    observe_meter(m, "old-meter", "ok", 0.1)

    observe_site(m, site(chargers=("a1",), circuits=("feeder-b",)))

    for name in ("depot_charger_connected", "depot_charger_limit_amperes", "depot_charger_current_amperes",
                 "depot_charger_energy_wh_total", "depot_session_unmet_energy_wh", "depot_profile_pushes_total",
                 "depot_charger_uncontrolled", "depot_charger_clock_offset_seconds",
                 "depot_charger_failsafe_installed"):
        assert series(m, name, "charger") == {"a1"}, name
    for name in ("depot_circuit_limit_amperes", "depot_circuit_load_amperes", "depot_circuit_headroom_amperes"):
        assert series(m, name, "circuit") == {"grid"}, name
    assert series(m, "depot_overload_sheds_total", "circuit") == set()
    assert series(m, "depot_limit_exceeded_seconds_total", "circuit") == set()
    assert series(m, "depot_meter_reads_total", "meter") == set()  # the test site has no meters
    # what stayed kept its value
    assert value(m, "depot_charger_limit_amperes", charger="a1") == 16.0
    assert value(m, "depot_circuit_headroom_amperes", circuit="grid", phase="L1") == pytest.approx(48.0)


def test_charger_safety_reaches_the_collectors_only_when_it_changes() -> None:
    """Set for every charger every cycle (500 chargers: 1,500 gauge writes a second): only changes
    go through; the offset counts as changed from 0.1 s on; a reload sets everything again."""
    from controller.config.loader import load_site
    from controller.metrics.update import observe_site

    m = DepotMetrics()
    observe_charger_safety(m, "CP01", uncontrolled=False, clock_offset_s=1.0, failsafe_installed=True)
    observe_charger_safety(m, "CP01", uncontrolled=False, clock_offset_s=1.02, failsafe_installed=True)
    assert value(m, "depot_charger_clock_offset_seconds", charger="CP01") == 1.0
    observe_charger_safety(m, "CP01", uncontrolled=False, clock_offset_s=1.3, failsafe_installed=True)
    assert value(m, "depot_charger_clock_offset_seconds", charger="CP01") == 1.3
    m.charger_uncontrolled.remove("CP01")  # a series dropped behind its back …
    observe_site(m, load_site("config/demo-site.yaml").site)  # … a reload sets everything again
    observe_charger_safety(m, "CP01", uncontrolled=False, clock_offset_s=1.3, failsafe_installed=True)
    assert value(m, "depot_charger_uncontrolled", charger="CP01") == 0.0


def test_bill_price_peak_and_cost() -> None:
    m = DepotMetrics()
    r = m.registry
    assert r.get_sample_value("depot_demand_peak_kw") == 0.0  # nothing yet: 0, the period's start
    observe_bill(m, "EUR", 0.31, 42.5, 12.75)
    assert r.get_sample_value("depot_energy_price", {"currency": "EUR"}) == 0.31
    assert r.get_sample_value("depot_demand_peak_kw") == 42.5
    assert r.get_sample_value("depot_energy_cost_total", {"currency": "EUR"}) == 12.75
    observe_bill(m, "EUR", None, None, 12.80)  # no price now (a gap in the prices): no price series
    assert r.get_sample_value("depot_energy_price", {"currency": "EUR"}) is None
    assert r.get_sample_value("depot_demand_peak_kw") == 0.0
    assert r.get_sample_value("depot_energy_cost_total", {"currency": "EUR"}) == 12.80
    observe_bill(m, "CHF", 0.25, 10.0, 1.0)  # a reload changed the currency: the old series go
    assert r.get_sample_value("depot_energy_cost_total", {"currency": "EUR"}) is None
    assert r.get_sample_value("depot_energy_price", {"currency": "CHF"}) == 0.25
    observe_bill(m, "CHF", None, 10.0, None)  # no energy prices at all: no cost series
    assert r.get_sample_value("depot_energy_cost_total", {"currency": "CHF"}) is None


def test_charger_link_current_and_energy_reach_the_collectors_only_when_they_change() -> None:
    """The fast loop sets every charger every cycle; its meter values change every sample
    interval: an unchanged charger writes nothing, a change is written, a reload writes again."""
    from controller.config.loader import load_site

    m = DepotMetrics()
    observe_charger(m, "CP01", True, (16.0, 16.0, 0.0), 100.0)
    m.charger_connected.labels("CP01").set(7.0)  # a stand-in for "written since"
    observe_charger(m, "CP01", True, (16.0, 16.0, 0.0), 100.0)
    assert value(m, "depot_charger_connected", charger="CP01") == 7.0  # unchanged: not written
    observe_charger(m, "CP01", True, (16.0, 15.0, 0.0), 100.0)
    assert value(m, "depot_charger_connected", charger="CP01") == 1.0
    assert value(m, "depot_charger_current_amperes", charger="CP01", phase="L2") == 15.0
    observe_charger(m, "CP01", True, (16.0, 15.0, 0.0), 120.0)
    assert value(m, "depot_charger_energy_wh_total", charger="CP01") == 120.0
    observe_charger(m, "CP01", True, None, 120.0)  # no fresh reading: the series go
    assert series(m, "depot_charger_current_amperes", "charger") == set()
    m.charger_connected.remove("CP01")  # a series dropped behind its back …
    observe_site(m, load_site("config/demo-site.yaml").site)  # … a reload writes everything again
    observe_charger(m, "CP01", True, None, 120.0)
    assert value(m, "depot_charger_connected", charger="CP01") == 1.0
    with pytest.raises(ValueError, match="expected 3 phase currents"):
        observe_charger(m, "CP01", True, (1.0, 2.0), 120.0)
