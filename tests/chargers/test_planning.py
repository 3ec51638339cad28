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
