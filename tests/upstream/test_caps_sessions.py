"""plan_sessions fills ``SessionState.cap`` from the CSMS's profiles (local-controller mode), in each
session's unit, and leaves it empty without upstream."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controller.chargers.state import ChargerState, ConnectorState, Transaction
from controller.config.loader import load_site
from controller.daemon.sessions import plan_sessions
from controller.model.snapshot import SessionState
from controller.upstream.caps import CapBook
from controller.upstream.caps_site import charger_rating, session_units, site_ratings
from tests.upstream.payloads import T0, HandClock, profile, set_request

SITE = load_site("config/demo-site.yaml").site
H = timedelta(hours=1)


def _states(*plugged: tuple[str, int, str, int | None]) -> dict[str, ChargerState]:
    """(charger, connector, transaction id, phases in use)."""
    out: dict[str, ChargerState] = {}
    for charger_id, connector, tid, phases in plugged:
        st = out.setdefault(charger_id, ChargerState(charger_id, connected=True))
        conn = st.connectors.setdefault(connector, ConnectorState(status="Charging"))
        conn.transaction = Transaction(tid, connector, None, None, T0 - H, phases_in_use=phases)
    return out


def _plan(states: dict[str, ChargerState], book: CapBook | None) -> dict[str, SessionState]:
    sessions = plan_sessions(SITE, states, T0, departure_of=lambda v, t: None, sent={}, learned={}, caps=book)
    return {s.session_id: s for s in sessions}


def _book() -> CapBook:
    return CapBook(HandClock(), ratings=site_ratings(lambda: SITE))


def test_without_upstream_no_session_has_a_cap() -> None:
    states = _states(("CP07", 1, "T1", 3))
    assert _plan(states, None)["CP07:T1"].cap == ()
    assert _plan(states, _book())["CP07:T1"].cap == ()  # upstream, but no profile


def test_sessions_get_their_cap_in_their_unit() -> None:
    """A TxProfile in W on a three-phase session (16 A per phase at 230 V), a TxDefault in A on a
    single-phase charger's, a W cap on the DC charger's in kW; a session whose phases are unknown
    has a W cap sized for the charger's wired phases (the lower current)."""
    book = _book()
    for cid, conn, tid in (("CP07", 1, "T1"), ("CP03", 1, "T3"), ("DC01", 1, "T9"), ("CP08", 1, "T8")):
        book.transaction_started(cid, conn, tid)
    assert book.set_profile("CP07", "1.6", set_request("1.6", 1, profile(
        "1.6", 1, "TxProfile", tx=None, unit="W", start=T0 + H, duration=7200, periods=((0, 11040.0),)))).status \
        == "Accepted"
    assert book.set_profile("CP03", "2.0.1", set_request("2.0.1", 0, profile(
        "2.0.1", 1, periods=((0, 13.0),)))).status == "Accepted"
    assert book.set_profile("DC01", "2.0.1", set_request("2.0.1", 0, profile(
        "2.0.1", 1, "ChargePointMaxProfile", unit="W", periods=((0, 20000.0),)))).status == "Accepted"
    assert book.set_profile("CP08", "1.6", set_request("1.6", 0, profile(
        "1.6", 1, unit="W", periods=((0, 6900.0),)))).status == "Accepted"
    sessions = _plan(_states(("CP07", 1, "T1", 3), ("CP03", 1, "T3", None), ("DC01", 1, "T9", None),
                             ("CP08", 1, "T8", None)), book)
    assert sessions["CP07:T1"].cap == ((T0 + H, pytest.approx(16.0)), (T0 + 3 * H, float("inf")))
    assert sessions["CP03:T3"].cap == ((T0, 13.0),)
    assert sessions["DC01:T9"].cap == ((T0, 20.0),)
    assert sessions["CP08:T8"].cap == ((T0, pytest.approx(10.0)),)


def test_a_charger_wide_cap_is_shared_by_the_sessions_planned_on_it() -> None:
    site_charger = SITE.charger("CP07")
    book = CapBook(HandClock(), ratings=lambda cid: charger_rating(SITE, site_charger))
    assert book.set_profile("CP07", "2.0.1", set_request("2.0.1", 0, profile(
        "2.0.1", 1, "ChargePointMaxProfile", periods=((0, 20.0),)))).status == "Accepted"
    # the book knows neither transaction: the planner's count of sessions on the charger decides
    sessions = _plan(_states(("CP07", 1, "T1", 3), ("CP07", 2, "T2", 3)), book)
    assert sessions["CP07:T1"].cap == sessions["CP07:T2"].cap == ((T0, 10.0),)


def test_session_units_follow_the_site_voltages() -> None:
    assert session_units(SITE, SITE.charger("CP07"), None) == session_units(SITE, SITE.charger("CP07"), 3)
    one = session_units(SITE, SITE.charger("CP07"), 1)
    assert (one.unit, one.phases_used, one.voltage_v) == ("A", 1, pytest.approx(230.0))
    dc = session_units(SITE, SITE.charger("DC01"), None)
    assert (dc.unit, dc.phases_used, dc.voltage_v) == ("kW", 3, pytest.approx(230.0))
    rating = charger_rating(SITE, SITE.charger("DC01"))
    assert (rating.kind, rating.max_kw, rating.connectors) == ("dc", 50.0, 1)
    assert site_ratings(lambda: SITE)("nope") is None
