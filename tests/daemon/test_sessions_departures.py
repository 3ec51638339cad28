"""plan_sessions plans against the departure history: earlier than declared for habitual early leavers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.chargers.state import ChargerState, ConnectorState, Transaction
from controller.config.loader import load_site
from controller.daemon.sessions import DepartureHistory, plan_sessions
from controller.fleet.departures import DepartureNeed
from controller.store import DeclaredDeparture, PastDeparture, SessionStart, SessionStop, Store, restore

SITE = load_site("config/demo-site.yaml").site
T0 = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)
DECLARED = T0 + timedelta(hours=5)


def _states(vehicle: str | None = "VAN-01", tx_id: str = "T1") -> dict[str, ChargerState]:
    st = ChargerState("CP07", connected=True)
    conn = st.connectors.setdefault(1, ConnectorState(status="Charging"))
    conn.transaction = Transaction(tx_id, 1, None, vehicle, T0 - timedelta(hours=1))
    return {"CP07": st}


def _declared(at: datetime = DECLARED) -> object:
    def departure_of(vehicle_id: str, after: datetime) -> DepartureNeed | None:
        return DepartureNeed(vehicle_id, at, 30.0, None, None, "schedule", "mon–fri 18:00")

    return departure_of


def _early_leaver(put: list[DeclaredDeparture] | None = None) -> DepartureHistory:
    h = DepartureHistory(put=put.append if put is not None else None)
    past = []
    for day in range(1, 7):  # six sessions, each left an hour before its declared departure
        declared = DECLARED - timedelta(days=day)
        past.append(PastDeparture(f"CP07:old{day}", "VAN-01", declared, declared - timedelta(hours=1)))
    h.seed({"VAN-01": past})
    return h


def _plan(h: DepartureHistory, states: dict[str, ChargerState], now: datetime = T0, *, use: bool = True,
          declared: datetime = DECLARED) -> datetime | None:
    sessions = plan_sessions(SITE, states, now, departure_of=_declared(declared),  # type: ignore[arg-type]
                             sent={}, learned={}, departures=h, use_history=use)
    return sessions[0].departure_at if sessions else None


def test_an_early_leaver_is_planned_an_hour_earlier_and_its_declaration_recorded() -> None:
    put: list[DeclaredDeparture] = []
    h = _early_leaver(put)
    assert _plan(h, _states()) == DECLARED - timedelta(hours=1)
    assert put == [DeclaredDeparture("CP07:T1", "VAN-01", DECLARED)]
    est = h.estimates["CP07:T1"]
    assert est.from_history and est.declared_at == DECLARED
    _plan(h, _states())
    assert len(put) == 1  # unchanged: written once


def test_with_the_history_switched_off_the_declared_departure_is_planned() -> None:
    h = _early_leaver()
    assert _plan(h, _states(), use=False) == DECLARED
    assert "CP07:T1" not in h.estimates and h.declared["CP07:T1"].declared_at == DECLARED


def test_without_history_or_without_a_vehicle_nothing_changes() -> None:
    h = DepartureHistory()
    assert _plan(h, _states()) == DECLARED
    assert list(h.declared) == ["CP07:T1"] and not h.estimates["CP07:T1"].from_history
    anonymous = DepartureHistory()
    assert _plan(anonymous, _states(vehicle=None)) is None  # no vehicle: no schedule, no history
    assert anonymous.declared == {}


def test_a_session_that_ended_becomes_history() -> None:
    h = DepartureHistory()
    states = _states()
    for day in range(6):  # six sessions leaving an hour early, one a day
        declared = DECLARED + timedelta(days=day)
        now = T0 + timedelta(days=day)
        states = _states(tx_id=f"T{day}")
        assert _plan(h, states, now, declared=declared) == (declared if day < 5 else declared - timedelta(hours=1))
        states["CP07"].connectors[1].transaction = None  # unplugged an hour before its declared departure
        left = declared - timedelta(hours=1)
        _plan(h, states, left, declared=declared + timedelta(days=1))
        assert h.history("VAN-01")[-1].offset_s == -3600.0
    assert len(h.history("VAN-01")) == 6 and h.declared == {}


def test_a_declaration_is_replaced_only_while_it_is_ahead() -> None:
    put: list[DeclaredDeparture] = []
    h = DepartureHistory(put=put.append)
    _plan(h, _states(), T0, declared=DECLARED)
    _plan(h, _states(), T0 + timedelta(hours=1), declared=DECLARED + timedelta(minutes=30))  # changed before due
    # it stayed past its declared departure: the schedule's next occurrence is not what it declared
    _plan(h, _states(), DECLARED + timedelta(hours=2), declared=DECLARED + timedelta(days=1))
    assert [p.declared_at for p in put] == [DECLARED, DECLARED + timedelta(minutes=30)]


def test_sessions_on_a_charger_removed_from_the_site_are_forgotten_without_a_sample() -> None:
    h = DepartureHistory()
    _plan(h, _states())
    _plan(h, {})
    assert h.declared == {} and h.history("VAN-01") == ()


def test_a_disconnected_charger_keeps_its_session() -> None:
    h = DepartureHistory()
    states = _states()
    _plan(h, states)
    states["CP07"].connected = False
    assert _plan(h, states) is None  # not planned while out of contact
    assert list(h.declared) == ["CP07:T1"] and h.history("VAN-01") == ()


def test_seeded_open_declarations_survive_a_restart() -> None:
    h = DepartureHistory()
    h.seed({}, {"CP07:T1": DeclaredDeparture("CP07:T1", "VAN-01", T0 - timedelta(hours=1)),
                "CP99:T9": DeclaredDeparture("CP99:T9", "VAN-02", T0)}, {"CP07:T1": "CP07"})
    assert list(h.declared) == ["CP07:T1"]  # CP99:T9 is not an open session any more
    # after the restart the schedule gives tomorrow's departure: the session keeps what it declared
    _plan(h, _states(), T0, declared=T0 + timedelta(days=1))
    assert h.declared["CP07:T1"].declared_at == T0 - timedelta(hours=1)


def test_the_history_goes_through_sqlite_and_comes_back_after_a_restart(tmp_path: Path) -> None:
    """The daemon's path: plan_sessions notes declarations into the store (DepartureHistory.put),
    the SessionStop closes them; a restarted daemon seeds its history from restore()."""
    path = tmp_path / "depot.db"
    store = Store(path, meter_interval_s=0.0, batch_interval_s=0.01)
    h = DepartureHistory(put=store.put)
    for day in range(6):  # six sessions, each unplugged an hour before its declared departure
        declared, now = DECLARED + timedelta(days=day), T0 + timedelta(days=day)
        states = _states(tx_id=f"T{day}")
        store.put(SessionStart(f"CP07:T{day}", "CP07", 1, "VAN-01", now))
        _plan(h, states, now, declared=declared)
        states["CP07"].connectors[1].transaction = None
        left = declared - timedelta(hours=1)
        store.put(SessionStop(f"CP07:T{day}", "CP07", 1, "VAN-01", left, 20.0, True))
        _plan(h, states, left, declared=declared + timedelta(days=1))  # the stop re-plans at once
    # a seventh session is running, declared for tomorrow 18:00, when the controller stops
    store.put(SessionStart("CP07:T6", "CP07", 1, "VAN-01", T0 + timedelta(days=6)))
    assert _plan(h, _states(tx_id="T6"), T0 + timedelta(days=6), declared=DECLARED + timedelta(days=6)) == (
        DECLARED + timedelta(days=6, hours=-1)
    )
    assert store.flush(5.0) and store.close()

    restored = restore(path, T0 + timedelta(days=6))
    again = DepartureHistory()
    again.seed(restored.departure_history, restored.open_declared,
               {s.session_id: s.charger_id for s in restored.open_sessions})
    assert [s.offset_s for s in again.history("VAN-01")] == [-3600.0] * 6
    assert again.declared["CP07:T6"].declared_at == DECLARED + timedelta(days=6)
    assert _plan(again, _states(tx_id="T6"), T0 + timedelta(days=6), declared=DECLARED + timedelta(days=6)) == (
        DECLARED + timedelta(days=6, hours=-1)
    )
