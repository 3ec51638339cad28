"""What the planner is told about each session (pure): the learnt vehicle maximum."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from controller.chargers.state import ChargerState, ConnectorState, Reading, Transaction
from controller.config.loader import load_site
from controller.daemon.sessions import REACTION_S, Sent, plan_sessions

SITE = load_site("config/demo-site.yaml").site
T0 = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)


def _states(draw_a: float) -> dict[str, ChargerState]:
    st = ChargerState("CP07", connected=True)
    conn = st.connectors.setdefault(1, ConnectorState(status="Charging"))
    conn.transaction = Transaction("T1", 1, None, None, T0 - timedelta(hours=1))
    conn.measured.current_a = [Reading(draw_a, T0) for _ in range(3)]
    return {"CP07": st}


def _cap(draw_a: float) -> float | None:
    learned: dict[str, float] = {}
    sent = {"CP07:T1": Sent(16.0, T0 - timedelta(seconds=REACTION_S + 10))}
    sessions = plan_sessions(SITE, _states(draw_a), T0, departure_of=lambda v, t: None, sent=sent, learned=learned)
    assert [s.session_id for s in sessions] == ["CP07:T1"]
    return sessions[0].ev_max_a


def test_a_vehicle_drawing_well_below_its_limit_is_capped() -> None:
    assert _cap(10.0) == 11.0


def test_a_draw_at_the_failsafe_limit_teaches_no_vehicle_maximum() -> None:
    """Issue 12: a charger whose clock is ahead sits on its 6 A fail-safe profile; the daemon must
    not learn a false 6 A vehicle maximum from that."""
    assert SITE.failsafe.charger_a == 6.0
    assert _cap(6.0) is None
    assert _cap(5.4) is None


def test_uncontrolled_chargers_are_not_planned() -> None:
    sessions = plan_sessions(SITE, _states(10.0), T0, departure_of=lambda v, t: None, sent={}, learned={},
                             uncontrolled=frozenset({"CP07"}))
    assert sessions == ()


def test_budgets_and_learnt_caps_of_line_to_line_and_dc_chargers_at_their_bus_voltage() -> None:
    """Issue 18: a DC charger's kW as line current at its bus's voltage (480Y/277 V: 3 × 277 V per
    A, not the site's 230 V default), a 208 V charger's budget on both of its lines; a 208 V
    vehicle drawing 20 A on a 32 A limit, reported on its L1 only, learns a 21 A cap."""
    from controller.config.loader import load_site_text
    from controller.daemon.sessions import budget_grid_a

    site = load_site_text(
        """site: {name: US, timezone: UTC, service: wye, voltage_v: 277}
grid: {limit_a: 600}
ocpp: {security_profile: 0}
circuits: [{id: xf, limit_a: 180, transformer: {connection: delta-wye, ratio: 2.31}}]
chargers:
  - {id: L2, circuit: xf, phases: 1, phase_rotation: L3-L1, max_a: 48}
  - {id: DC, kind: dc, max_kw: 60, efficiency: 1.0, power_factor: 1.0}
"""
    ).site
    a = 1000.0 / (3 * 277.0)
    assert budget_grid_a(site, site.charger("DC"), 60.0, "kW") == (60 * a, 60 * a, 60 * a)
    assert budget_grid_a(site, site.charger("L2"), 32.0, "A") == (32.0, 0.0, 32.0)
    st = ChargerState("L2", connected=True)
    conn = st.connectors.setdefault(1, ConnectorState(status="Charging"))
    conn.transaction = Transaction("T1", 1, None, None, T0 - timedelta(hours=1))
    conn.measured.current_a = [Reading(20.0, T0), None, None]
    learned: dict[str, float] = {}
    sent = {"L2:T1": Sent(32.0, T0 - timedelta(seconds=REACTION_S + 10))}
    (s,) = plan_sessions(site, {"L2": st}, T0, departure_of=lambda v, t: None, sent=sent, learned=learned)
    assert s.measured_a == (20.0, 0.0, 20.0) and s.ev_max_a == 21.0
