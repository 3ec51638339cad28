from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.chargers.planning import session_states
from controller.chargers.state import ChargerState, Reading, Transaction
from tests.chargers.conftest import make_site

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def test_session_states_map_phases_and_energy() -> None:
    site = make_site(
        [{"id": "CP1", "phase_rotation": "L2-L3-L1"}, {"id": "CP2", "phases": 1, "phase_rotation": "L3"}],
        vehicles=[{"id": "BUS-1", "id_tags": ["T1"], "priority": 2, "max_a": 24}],
    )
    a = ChargerState("CP1")
    c = a.connector(1)
    c.transaction = Transaction(
        11,
        1,
        "T1",
        "BUS-1",
        T0 - timedelta(hours=1),
        meter_start_wh=1000.0,
        energy_need_kwh=30.0,
        energy_need_at_wh=2000.0,
        phases_in_use=3,
    )
    c.measured.current_a = [Reading(16.0, T0), Reading(15.0, T0), Reading(14.0, T0)]
    c.measured.energy_wh = Reading(7000.0, T0)
    b = ChargerState("CP2")
    b.connector(1).transaction = Transaction(12, 1, "X", None, T0)
    b.connector(1).measured.current_a = [Reading(10.0, T0 - timedelta(minutes=5)), None, None]  # stale
    unknown = ChargerState("NOT-IN-SITE")
    unknown.connector(1).transaction = Transaction(13, 1, None, None, T0)
    s1, s2 = session_states(site, {"CP1": a, "CP2": b, "NOT-IN-SITE": unknown}, T0)
    assert s1.session_id == "CP1:11" and s1.priority == 2 and s1.ev_max_a == 24
    assert s1.measured_a == (14.0, 16.0, 15.0)  # charger L1 on grid L2, L2 on L3, L3 on L1
    assert s1.energy_delivered_kwh == 6.0 and s1.energy_need_kwh == 25.0 and s1.phases_used == 3
    assert s2.measured_a is None and s2.vehicle_id is None and s2.priority == 10


def test_a_line_to_line_charger_counts_its_current_in_both_of_its_lines() -> None:
    """A 208 V charger on L2-L3 reports its one current on its L1, on L1 and L2, or without a
    phase; grid L2 and L3 both carry it (the larger reading)."""
    from controller.chargers.planning import grid_currents
    from controller.chargers.state import ConnectorState
    from controller.config import load_site_text

    site = load_site_text(
        """site: {name: US, timezone: UTC, service: wye, voltage_v: 120}
grid: {limit_a: 200}
ocpp: {security_profile: 0}
chargers:
  - {id: L2, phases: 1, phase_rotation: L2-L3, max_a: 48}
  - {id: N, phases: 1, phase_rotation: L3, max_a: 16}
"""
    ).site
    ch = site.charger("L2")
    age = timedelta(seconds=30)
    for current_a, unphased, want in [
        ([Reading(16.0, T0), None, None], None, (0.0, 16.0, 16.0)),
        ([Reading(16.0, T0), Reading(15.8, T0), None], None, (0.0, 16.0, 16.0)),
        ([None, None, None], Reading(12.0, T0), (0.0, 12.0, 12.0)),
        ([Reading(3.0, T0 - timedelta(minutes=5)), None, None], None, None),  # stale: unknown
    ]:
        conn = ConnectorState()
        conn.measured.current_a = current_a
        conn.measured.current_unphased_a = unphased
        assert grid_currents(ch, conn, T0, age, site) == want
        assert grid_currents(ch, conn, T0, age) == want  # nothing about the service needed
    one = ConnectorState()
    one.measured.current_unphased_a = Reading(9.0, T0)
    assert grid_currents(site.charger("N"), one, T0, age) == (0.0, 0.0, 9.0)  # a 120 V charger's one value


def test_a_single_phase_car_on_a_three_phase_charger_on_a_delta_bus_draws_on_two_lines() -> None:
    from controller.chargers.planning import grid_currents
    from controller.chargers.state import ConnectorState
    from controller.config import load_site_text

    site = load_site_text(
        """site: {name: IT, timezone: UTC, service: delta, voltage_v: 230}
grid: {limit_a: 200}
ocpp: {security_profile: 0}
chargers: [{id: X, phases: 3, phase_rotation: L2-L3-L1, max_a: 32}]
"""
    ).site
    ch = site.charger("X")
    age = timedelta(seconds=30)
    conn = ConnectorState()
    conn.measured.current_a = [Reading(16.0, T0), Reading(0.0, T0), Reading(0.0, T0)]
    assert grid_currents(ch, conn, T0, age, site) == (0.0, 16.0, 16.0)  # charger L1, L2 = grid L2, L3
    assert grid_currents(ch, conn, T0, age) == (0.0, 16.0, 0.0)  # without the site: as reported
    conn.measured.current_a = [Reading(16.0, T0), Reading(16.0, T0), Reading(16.0, T0)]
    assert grid_currents(ch, conn, T0, age, site) == (16.0, 16.0, 16.0)  # a three-phase car


async def test_push_plan_applies_each_session_on_its_connector() -> None:
    from controller.chargers.planning import push_plan
    from controller.model.snapshot import Limit, Plan, SessionPlan, SessionState, SolveStats
    from tests.chargers.test_control import Rig

    rig = Rig(make_site([{"id": "CP1", "connectors": 2}]))
    s = rig.plug("CP1", tx=None)
    sp = SessionPlan(
        "CP1:5",
        "CP1",
        "ac",
        Limit(12.0, "grid L1"),
        ((T0 + timedelta(seconds=30), 8.0),),
        0.0,
        0.0,
        T0,
        (0, 1, 2),
        (12.0, 12.0, 12.0),
    )
    plan = Plan(T0, (), T0, (sp,), (), SolveStats("ok", "highs", 0, 0, 0, 0, 0, 0))
    results = await push_plan(rig.control, plan, [SessionState("CP1:5", "CP1", connector=2)])
    assert [r.status for r in results] == ["accepted"]
    assert s.sent[0].connector_id == 2 and [p.limit for p in s.sent[0].periods] == [12.0, 8.0]
    assert any(e.kind == "profile_accepted" and e.detail["source"] == "grid L1" for e in rig.events)
