"""The fleet API against a real daemon: departures, schedules, CSV import, assignments, reports.

One daemon for the module per instant (in a thread of its own, see
:func:`tests.api.test_roles.live_daemon`): every test runs with the daemon's clock pinned at each of
:data:`tests.daemon.clocks.INSTANTS` — a weekday afternoon, Monday 00:30, both 2026 DST change
days — never at the wall clock's. Each test uses its own vehicle or cleans up after itself, so the
order does not matter.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.daemon.core import Daemon
from controller.store import SessionStart, SessionStop
from tests.api.test_roles import TOKENS, Answer, Live, fleet_site, live_daemon
from tests.daemon.clocks import INSTANTS, TZ, local_iso, next_at, pinned_clock, tomorrow_at

ADMIN = TOKENS["admin"]
ACME = TOKENS["fleet-acme"]


@pytest.fixture(scope="module", params=list(INSTANTS))
def instant(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def live(instant: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    site = fleet_site(tmp_path_factory.mktemp(f"fleet-api-{instant}"))
    with live_daemon(site, pinned_clock(INSTANTS[instant])) as running:
        yield running


def _problems(answer: Answer) -> dict[str, str]:
    """The 422 answer's problems as field → reason (each problem exactly ``{field, reason}``)."""
    assert answer.status == 422, answer.body[:500]
    detail = answer.json()["detail"]
    assert all(set(p) == {"field", "reason"} for p in detail), detail
    return {p["field"]: p["reason"] for p in detail}


# --- departures ------------------------------------------------------------------------------------------


def test_departure_set_get_delete_round_trip_with_readiness(live: Live) -> None:
    at = local_iso(next_at(live.now(), 5, 30))  # before the next weekday 06:30, or on its day: it comes first
    answer = live.call("PUT", "/api/v1/vehicles/VAN-01/departure", ACME, json_body={"at": at, "energy_kwh": 40})
    assert answer.status == 200, answer.body
    body = answer.json()
    assert body["timezone"] == "Europe/Amsterdam"
    assert body["one_off"]["at"].startswith(at) and body["one_off"]["energy_kwh"] == 40
    assert body["next_departure"]["source"] == "one-off"

    vehicle = live.call("GET", "/api/v1/vehicles/VAN-01", ACME).json()
    assert vehicle["departure"]["at"].startswith(at)
    assert vehicle["departure"]["rule"] == f"one-off {at.replace('T', ' ')}"
    assert (vehicle["departure"]["source"], vehicle["need_kwh"]) == ("one-off", 40)
    assert [o["energy_kwh"] for o in vehicle["one_offs"]] == [40]
    # not plugged in: nothing planned for it, so no verdict yet
    assert (vehicle["charger_id"], vehicle["expected_kwh"], vehicle["will_be_ready"]) == (None, None, None)
    listed = {v["id"]: v for v in live.call("GET", "/api/v1/vehicles", ACME).json()}
    assert listed["VAN-01"] == vehicle

    cleared = live.call("DELETE", "/api/v1/vehicles/VAN-01/departure", ACME)
    assert cleared.status == 200 and cleared.json()["removed"] is True
    after = cleared.json()["next_departure"]
    assert after["source"] == "schedule" and after["rule"] == "mon–fri 06:30"  # the site file's schedule again
    assert live.call("GET", "/api/v1/vehicles/VAN-01", ACME).json()["one_offs"] == []
    again = live.call("DELETE", "/api/v1/vehicles/VAN-01/departure", ACME)
    assert again.status == 200 and again.json()["removed"] is False


NEXT_0530 = {
    "wednesday-1400": "2026-12-10T05:30:00+01:00",  # tomorrow
    "monday-0030": "2026-12-07T05:30:00+01:00",  # today, before the weekday 06:30
    "dst-spring-0130": "2026-03-29T05:30:00+02:00",  # today, past the jump: summer time
    "dst-autumn-0130": "2026-10-25T05:30:00+01:00",  # today, past the fall back: winter time
}
VAN_01_SCHEDULED = {  # VAN-01: mon–fri 06:30 in the site file
    "wednesday-1400": "2026-12-10T06:30:00+01:00",  # Thursday
    "monday-0030": "2026-12-07T06:30:00+01:00",  # this very Monday, not tomorrow
    "dst-spring-0130": "2026-03-30T06:30:00+02:00",  # a Sunday: Monday's, in summer time
    "dst-autumn-0130": "2026-10-26T06:30:00+01:00",  # a Sunday: Monday's, in winter time
}
AT_0230_DAILY = {  # a run-time schedule "daily 02:30"
    "wednesday-1400": "2026-12-10T02:30:00+01:00",
    "monday-0030": "2026-12-07T02:30:00+01:00",
    "dst-spring-0130": "2026-03-29T03:30:00+02:00",  # 02:30 does not exist that night: moved forward by the gap
    "dst-autumn-0130": "2026-10-25T02:30:00+02:00",  # 02:30 happens twice that night: the first one
}
DAY_HOURS = {"wednesday-1400": 24.0, "monday-0030": 24.0, "dst-spring-0130": 23.0, "dst-autumn-0130": 25.0}


def test_departures_at_fixed_instants(live: Live, instant: str) -> None:
    """At each instant: the next 05:30 one-off, the next scheduled weekday departure and a recurring
    02:30 schedule land where the site's calendar puts them, with the offset in force then."""
    at = local_iso(next_at(live.now(), 5, 30))
    answer = live.call("PUT", "/api/v1/vehicles/VAN-02/departure", ADMIN, json_body={"at": at, "energy_kwh": 10})
    assert answer.status == 200, answer.body
    assert answer.json()["one_off"]["at"] == NEXT_0530[instant]
    live.call("DELETE", "/api/v1/vehicles/VAN-02/departure", ADMIN)

    van_01 = live.call("GET", "/api/v1/vehicles/VAN-01", ADMIN).json()["departure"]
    assert (van_01["at"], van_01["source"]) == (VAN_01_SCHEDULED[instant], "schedule")

    entries = [{"vehicle": "VAN-03", "days": "daily", "at": "02:30", "energy_kwh": 5}]
    assert live.call("PUT", "/api/v1/schedules", ADMIN, json_body=entries).status == 200
    try:
        van_03 = live.call("GET", "/api/v1/vehicles/VAN-03", ADMIN).json()["departure"]
        assert (van_03["at"], van_03["rule"]) == (AT_0230_DAILY[instant], "daily 02:30")
    finally:
        assert live.call("DELETE", "/api/v1/schedules", ADMIN).json() == {"removed": 1}

    report = live.call("GET", "/api/v1/reports/daily", ADMIN).json()  # today's, site-local
    assert (report["date"], report["hours"]) == (live.now().date().isoformat(), DAY_HOURS[instant])


def test_departure_with_an_offset_and_a_target_soc(live: Live) -> None:
    day = (live.now() + timedelta(days=2)).date()
    answer = live.call(
        "PUT", "/api/v1/vehicles/VAN-02/departure", ADMIN,
        json_body={"at": f"{day}T04:00:00+00:00", "target_soc_pct": 90, "priority": 2},
    )
    assert answer.status == 200, answer.body
    one_off = answer.json()["one_off"]
    local = datetime.fromisoformat(one_off["at"])
    assert local == datetime(day.year, day.month, day.day, 4, tzinfo=UTC)
    assert local.utcoffset() == TZ.utcoffset(local.replace(tzinfo=None))  # answered in site-local time
    assert (one_off["target_soc_pct"], one_off["energy_kwh"], one_off["priority"]) == (90, None, 2)
    live.call("DELETE", "/api/v1/vehicles/VAN-02/departure", ADMIN)


def test_bad_departures_are_422_with_field_and_reason(live: Live) -> None:
    now = live.now()

    def put(vehicle: str, body: object) -> Answer:
        return live.call("PUT", f"/api/v1/vehicles/{vehicle}/departure", ADMIN, json_body=body)

    past = _problems(put("VAN-03", {"at": "2020-03-01T05:00", "energy_kwh": 10}))
    assert "in the past" in past["at"]
    assert "above 0" in _problems(put("VAN-03", {"at": tomorrow_at(5, now=now), "energy_kwh": 0}))["energy_kwh"]
    assert "above 0" in _problems(put("VAN-03", {"at": tomorrow_at(5, now=now), "energy_kwh": -5}))["energy_kwh"]
    above = _problems(put("VAN-03", {"at": tomorrow_at(5, now=now), "energy_kwh": 61}))["energy_kwh"]
    assert "battery capacity" in above and "60" in above
    far = (live.now() + timedelta(days=8)).strftime("%Y-%m-%dT%H:%M")
    assert "7 days" in _problems(put("VAN-03", {"at": far, "energy_kwh": 10}))["at"]
    both = _problems(put("VAN-03", {"at": "soon", "energy_kwh": 10, "target_soc_pct": 80}))
    assert "ISO 8601" in both["at"] and "not both" in both["energy_kwh"]
    # FastAPI's own validation: the same shape, the field path and the reason
    typed = _problems(put("VAN-03", {"at": tomorrow_at(5, now=now), "energy_kwh": "lots", "colour": "red"}))
    assert "valid number" in typed["energy_kwh"] and typed["colour"] == "unknown field"
    assert "Field required" in _problems(put("VAN-03", {"energy_kwh": 10}))["at"]

    unknown = put("NOPE-1", {"at": tomorrow_at(5, now=now), "energy_kwh": 10})
    assert unknown.status == 404 and unknown.json() == {"detail": "unknown vehicle 'NOPE-1'"}
    assert live.call("GET", "/api/v1/vehicles/VAN-03", ADMIN).json()["one_offs"] == []  # nothing was set


# --- schedules ----------------------------------------------------------------------------------------------


def test_schedules_put_get_delete(live: Live) -> None:
    entries = [
        {"vehicle": "VAN-03", "days": "mon-fri", "at": "05:45", "energy_kwh": 25},
        {"vehicle": "VAN-03", "days": "sat,sun", "at": "09:00", "energy_kwh": 10, "priority": 7},
        {"id": "bus-early", "vehicle": "BUS-01", "days": "daily", "at": "04:30", "target_soc_pct": 95},
    ]
    answer = live.call("PUT", "/api/v1/schedules", ADMIN, json_body=entries)
    assert answer.status == 200, answer.body
    got = live.call("GET", "/api/v1/schedules", ADMIN).json()
    assert got == answer.json()
    assert [(e["id"], e["vehicle"], e["days"], e["at"], e["energy_kwh"], e["target_soc_pct"], e["priority"])
            for e in got] == [
        ("bus-early", "BUS-01", "daily", "04:30", None, 95, None),
        ("VAN-03#1", "VAN-03", "mon-fri", "05:45", 25, None, None),
        ("VAN-03#2", "VAN-03", "sat,sun", "09:00", 10, None, 7),
    ]
    # the run-time schedule takes part in the vehicle's departures
    bus = live.call("GET", "/api/v1/vehicles/BUS-01", ADMIN).json()
    assert bus["departure"]["rule"] in ("daily 04:30", "mon–sat 05:30")

    bad = _problems(live.call("PUT", "/api/v1/schedules", ADMIN, json_body=[
        {"vehicle": "VAN-03", "days": "fir", "at": "25:00", "energy_kwh": 5},
        {"vehicle": "VAN-03", "days": "mon", "at": "06:00", "energy_kwh": 500},
    ]))
    assert "'fir' is not a weekday" in bad["schedules[0].days"] and "25:00" in bad["schedules[0].at"]
    assert "battery capacity" in bad["schedules[1].energy_kwh"]
    assert live.call("GET", "/api/v1/schedules", ADMIN).json() == got  # nothing half-applied

    assert live.call("DELETE", "/api/v1/schedules", ADMIN).json() == {"removed": 3}
    assert live.call("GET", "/api/v1/schedules", ADMIN).json() == []


def test_csv_import_all_or_nothing_with_line_numbers(live: Live) -> None:
    good = "vehicle,days,at,energy_kwh,priority\nVAN-01,mon-fri,05:30,30,2\nVAN-02,\"mon,wed\",06:00,20,\n"
    answer = live.call("POST", "/api/v1/schedules/import", ACME, data=good.encode(), content_type="text/csv")
    assert answer.status == 200, answer.body
    before = live.call("GET", "/api/v1/schedules", ACME).json()
    assert [(e["vehicle"], e["days"], e["at"]) for e in before] == [
        ("VAN-01", "mon-fri", "05:30"), ("VAN-02", "mon,wed", "06:00")
    ]

    bad = "vehicle;days;at;energy_kwh\nVAN-01;mon-fri;05:00;30\nVAN-02;fir;06:00;20\nVAN-01;sat;7h;10\n"
    problems = _problems(live.call("POST", "/api/v1/schedules/import", ACME, data=bad.encode(),
                                   content_type="text/csv; charset=utf-8"))
    assert "'fir' is not a weekday" in problems["line 3: days"]
    assert "'7h'" in problems["line 4: at"]
    assert live.call("GET", "/api/v1/schedules", ACME).json() == before  # the good row 2 was not applied either

    foreign = "vehicle,days,at,energy_kwh\nBUS-01,mon,05:00,30\n"
    problems = _problems(live.call("POST", "/api/v1/schedules/import", ACME, data=foreign.encode(),
                                   content_type="text/csv"))
    assert "unknown vehicle 'BUS-01'" in problems["line 2: vehicle"]

    wrong_type = live.call("POST", "/api/v1/schedules/import", ACME, json_body=[good])
    assert wrong_type.status == 415 and "text/csv" in wrong_type.json()["detail"]
    assert live.call("DELETE", "/api/v1/schedules", ACME).json() == {"removed": 2}


# --- chargers and sessions ------------------------------------------------------------------------------------


def test_assign_a_vehicle_to_a_charger(live: Live) -> None:
    idle = live.call("PUT", "/api/v1/chargers/CP06/vehicle", ADMIN, json_body={"vehicle": "VAN-03"})
    assert idle.status == 200 and idle.json() == {"charger_id": "CP06", "vehicle": "VAN-03", "session_id": None}

    live.run(_plug(live.daemon, "CP05", "T-77"))
    try:
        answer = live.call("PUT", "/api/v1/chargers/CP05/vehicle", ADMIN, json_body={"vehicle": "VAN-03"})
        assert answer.status == 200 and answer.json()["session_id"] == "CP05:T-77"
        sessions = live.call("GET", "/api/v1/sessions", ADMIN).json()
        assert [(s["charger_id"], s["vehicle_id"], s["active"]) for s in sessions] == [("CP05", "VAN-03", True)]
        chargers = {c["id"]: c for c in live.call("GET", "/api/v1/chargers", ADMIN).json()}
        assert chargers["CP05"]["sessions"][0]["vehicle_id"] == "VAN-03"
    finally:
        live.run(_unplug(live.daemon, "CP05"))

    assert live.call("PUT", "/api/v1/chargers/CP99/vehicle", ADMIN, json_body={"vehicle": "VAN-03"}).status == 404
    assert live.call("PUT", "/api/v1/chargers/CP05/vehicle", ADMIN, json_body={"vehicle": "VAN-99"}).status == 404
    assert "vehicle" in _problems(live.call("PUT", "/api/v1/chargers/CP05/vehicle", ADMIN, json_body={}))


def test_session_history_of_the_last_7_days(live: Live) -> None:
    now = live.now()
    record = live.daemon.recorder.put
    two_days, nine_days = now - timedelta(days=2), now - timedelta(days=9)
    record(SessionStart("CP02:H-1", "CP02", 1, "BUS-01", two_days, 100.0))
    record(SessionStop("CP02:H-1", "CP02", 1, "BUS-01", two_days + timedelta(hours=5), 96.5, False))
    record(SessionStart("CP02:H-0", "CP02", 1, "VAN-01", nine_days, None))
    record(SessionStop("CP02:H-0", "CP02", 1, "VAN-01", nine_days + timedelta(hours=1), 5.0, None))
    deadline = time.monotonic() + 5.0
    while True:  # the store writes in batches, off the control path
        history = live.call("GET", "/api/v1/sessions?active=false", ADMIN).json()
        if history or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [(s["session_id"], s["vehicle_id"], s["active"], s["delivered_kwh"], s["will_meet_departure"])
            for s in history] == [("CP02:H-1", "BUS-01", False, 96.5, False)]
    assert datetime.fromisoformat(history[0]["stopped_at"]).utcoffset() is not None
    assert live.call("GET", "/api/v1/sessions?active=false", ACME).json() == []  # not its tenant's


async def _plug(d: Daemon, charger_id: str, transaction_id: str) -> None:
    from controller.chargers.state import ConnectorState, Transaction

    conn = d.cs.state(charger_id).connectors.setdefault(1, ConnectorState())
    conn.transaction = Transaction(transaction_id, 1, "UNKNOWN-TAG", None, d.clock())


async def _unplug(d: Daemon, charger_id: str) -> None:
    d.cs.state(charger_id).connectors[1].transaction = None


# --- reports -----------------------------------------------------------------------------------------------


def test_daily_report_json_and_csv(live: Live) -> None:
    today = live.now().date().isoformat()
    answer = live.call("GET", f"/api/v1/reports/daily?date={today}", ADMIN)
    assert answer.status == 200, answer.body
    report = answer.json()
    assert (report["date"], report["timezone"], report["grid_meter"]) == (today, "Europe/Amsterdam", "grid-meter")
    assert [p["phase"] for p in report["site_peak"]] == ["L1", "L2", "L3"]
    assert report["hours"] in (23.0, 24.0, 25.0)

    as_csv = live.call("GET", f"/api/v1/reports/daily?date={today}&format=csv", ADMIN)
    assert as_csv.status == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["content-disposition"] == f'attachment; filename="depotctl-daily-{today}.csv"'
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode())))
    assert [r["phase"] for r in rows if r["section"] == "site_peak"] == ["L1", "L2", "L3"]
    assert {r["date"] for r in rows} == {today}

    assert "date" in _problems(live.call("GET", "/api/v1/reports/daily?date=2024-02-30", ADMIN))
    assert "format" in _problems(live.call("GET", "/api/v1/reports/daily?format=xml", ADMIN))
    default = live.call("GET", "/api/v1/reports/daily", ADMIN).json()
    assert default["date"] == today


def test_openapi_documents_the_fleet_models(live: Live) -> None:
    doc = live.call("GET", "/openapi.json").json()
    put = doc["paths"]["/api/v1/vehicles/{vehicle_id}/departure"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/DepartureIn")
    assert put["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ProblemsResponse")
    assert put["security"] == [{"BearerToken": []}]
    assert "text/csv" in doc["paths"]["/api/v1/schedules/import"]["post"]["requestBody"]["content"]
    assert doc["paths"]["/api/v1/status"]["get"]["security"] == [{"BearerToken": []}]
    for name in ("VehicleInfo", "ScheduleIn", "ScheduleInfo", "SessionRecord", "DailyReportInfo", "AssignIn"):
        assert name in doc["components"]["schemas"]


def test_a_restart_in_process_keeps_schedules_and_departures(tmp_path: Path) -> None:
    """Persistence through the store (the process-level restart is in tests/daemon/test_fleet_loop.py)."""
    site = fleet_site(tmp_path)
    at = tomorrow_at(6, 15)
    with live_daemon(site) as first:
        assert first.call("PUT", "/api/v1/vehicles/VAN-01/departure", ACME,
                          json_body={"at": at, "energy_kwh": 33}).status == 200
        assert first.call("PUT", "/api/v1/schedules", ACME, json_body=[
            {"vehicle": "VAN-02", "days": "tue", "at": "07:10", "energy_kwh": 12}]).status == 200
    with live_daemon(site) as second:
        vehicle = second.call("GET", "/api/v1/vehicles/VAN-01", ACME).json()
        assert [(o["at"][:16], o["energy_kwh"]) for o in vehicle["one_offs"]] == [(at, 33)]
        assert [e["id"] for e in second.call("GET", "/api/v1/schedules", ACME).json()] == ["VAN-02#1"]
