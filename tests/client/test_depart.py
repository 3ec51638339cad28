"""``depotctl depart`` and ``depotctl schedule import`` against a real daemon.

The daemon runs in a thread of its own (:func:`tests.api.test_roles.live_daemon`), so the CLI's
``main()`` runs in the test's thread and its blocking urllib calls never stall the server's loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from controller.cli import main
from controller.client.depart import next_occurrence
from controller.fleet.departures import local_instant
from hil.rig import free_port
from tests.api.test_roles import TOKENS, TZ, Live, fleet_site, live_daemon

ADMIN = TOKENS["admin"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_daemon(fleet_site(tmp_path_factory.mktemp("cli"))) as running:
        yield running


@pytest.fixture
def admin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPOTCTL_TOKEN", ADMIN)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_one_off_at_the_next_occurrence_of_a_local_time(
    live: Live, admin_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    now = live.now()
    wall = (now - timedelta(minutes=30)).time().replace(second=0, microsecond=0)  # just passed: tomorrow
    today = now.date()
    day = today if local_instant(today, wall, TZ) > now else today + timedelta(days=1)
    expected = local_instant(day, wall, TZ).astimezone(TZ)

    code, out, err = run(capsys, "depart", "VAN-01", "--at", wall.strftime("%H:%M"), "--energy-kwh", "60",
                         "--config", str(live.site_path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        f"VAN-01 departs {expected:%a} {expected.day} {expected:%b %H:%M} (Europe/Amsterdam), 60 kWh — set"
    )
    vehicle = live.call("GET", "/api/v1/vehicles/VAN-01", ADMIN).json()
    assert [datetime.fromisoformat(o["at"]) for o in vehicle["one_offs"]] == [expected]

    code, out, _ = run(capsys, "depart", "VAN-01", "--clear", "--url", live.url)
    assert code == 0
    assert out.splitlines() == ["VAN-01: one-off departure cleared", out.splitlines()[1]]
    assert out.splitlines()[1].startswith("VAN-01: next departure ") and "(mon–fri 06:30)" in out
    code, out, _ = run(capsys, "depart", "VAN-01", "--clear", "--url", live.url)
    assert (code, out.splitlines()[0]) == (0, "VAN-01: no one-off departure to clear")


def test_next_occurrence_today_if_ahead_else_tomorrow() -> None:
    now = datetime(2024, 3, 30, 12, 0, tzinfo=TZ)
    assert next_occurrence(datetime(2024, 1, 1, 13, 0).time(), TZ, now) == datetime(2024, 3, 30, 13, 0, tzinfo=TZ)
    assert next_occurrence(datetime(2024, 1, 1, 11, 0).time(), TZ, now) == datetime(2024, 3, 31, 11, 0, tzinfo=TZ)
    # 02:30 does not exist on 31 March 2024 in Amsterdam (02:00 → 03:00): moved forward by the gap
    got = next_occurrence(datetime(2024, 1, 1, 2, 30).time(), TZ, now)
    assert got == datetime(2024, 3, 31, 3, 30, tzinfo=TZ) and got.utcoffset() == timedelta(hours=2)


def test_soc_priority_and_a_token_file(live: Live, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEPOTCTL_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(TOKENS["fleet-acme"] + "\n")
    day = (live.now() + timedelta(days=2)).date()
    code, out, err = run(capsys, "depart", "VAN-02", "--at", f"{day}T07:15", "--soc", "90", "--priority", "2",
                         "--url", live.url, "--token-file", str(token_file))
    assert (code, err) == (0, "")
    first, *more = out.splitlines()
    assert first.startswith("VAN-02 departs ")
    assert first.endswith("07:15 (Europe/Amsterdam), to 90 % SoC, priority 2 — set")
    # VAN-02 also leaves mon–fri 07:00 (site file): when that comes first, the CLI says so
    assert all(m.startswith("note: VAN-02 leaves earlier first: ") for m in more)
    one_offs = live.call("GET", "/api/v1/vehicles/VAN-02", ADMIN).json()["one_offs"]
    assert [(o["at"][:16], o["target_soc_pct"], o["priority"]) for o in one_offs] == [(f"{day}T07:15", 90, 2)]
    assert run(capsys, "depart", "VAN-02", "--clear", "--url", live.url, "--token-file", str(token_file))[0] == 0


def test_recurring_with_days_adds_and_replaces_the_vehicles_schedule(
    live: Live, admin_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert live.call("PUT", "/api/v1/schedules", ADMIN, json_body=[
        {"vehicle": "BUS-01", "days": "daily", "at": "04:00", "energy_kwh": 120}]).status == 200
    code, out, _ = run(capsys, "depart", "VAN-03", "--at", "05:30", "--energy-kwh", "40", "--days", "mon-fri",
                       "--url", live.url)
    assert (code, out) == (0, "VAN-03 departs mon-fri 05:30 (Europe/Amsterdam), 40 kWh — schedule set\n")
    code, out, _ = run(capsys, "depart", "VAN-03", "--at", "06:00", "--energy-kwh", "20", "--days", "sat,sun",
                       "--url", live.url)
    assert code == 0
    code, out, _ = run(capsys, "depart", "VAN-03", "--at", "05:00", "--soc", "80", "--days", "fri",
                       "--url", live.url)
    assert code == 0 and out.splitlines()[1:] == ["  replaces VAN-03#1 (mon-fri 05:30)"]
    schedules = live.call("GET", "/api/v1/schedules", ADMIN).json()
    assert [(e["id"], e["days"], e["at"], e["energy_kwh"], e["target_soc_pct"]) for e in schedules] == [
        ("BUS-01#1", "daily", "04:00", 120, None),  # another vehicle's: kept
        ("VAN-03#1", "fri", "05:00", None, 80),  # the new one takes the freed id
        ("VAN-03#2", "sat,sun", "06:00", 20, None),  # no day in common: kept
    ]
    code, out, _ = run(capsys, "depart", "VAN-03", "--clear", "--days", "weekend", "--url", live.url)
    assert code == 0 and "schedule VAN-03#2 (sat,sun 06:00) cleared" in out
    assert len(live.call("GET", "/api/v1/schedules", ADMIN).json()) == 2
    live.call("DELETE", "/api/v1/schedules", ADMIN)


def test_the_daemons_refusals_are_one_line_each_and_exit_1(
    live: Live, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPOTCTL_TOKEN", ADMIN)
    code, out, err = run(capsys, "depart", "VAN-01", "--at", "05:30", "--energy-kwh", "500", "--priority", "9",
                         "--url", live.url)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "depotctl depart: VAN-01: energy_kwh: 500 kWh is above the battery capacity of VAN-01 (75 kWh)"
    ]
    code, _, err = run(capsys, "depart", "VAN-77", "--at", "05:30", "--energy-kwh", "5", "--url", live.url)
    assert (code, err) == (1, "depotctl depart: VAN-77: HTTP 404: unknown vehicle 'VAN-77'\n")

    monkeypatch.setenv("DEPOTCTL_TOKEN", TOKENS["viewer"])
    code, _, err = run(capsys, "depart", "VAN-01", "--clear", "--url", live.url)
    assert code == 1 and "HTTP 403: token 'viewer' has role viewer, which may only read" in err
    monkeypatch.delenv("DEPOTCTL_TOKEN")
    code, _, err = run(capsys, "depart", "VAN-01", "--clear", "--url", live.url)
    assert code == 1 and "HTTP 401" in err and "DEPOTCTL_TOKEN" in err


def test_bad_arguments_exit_2_and_send_nothing(
    live: Live, admin_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases = [
        (["--clear", "--at", "05:30"], "--clear takes no --at"),
        (["--at", "05:30"], "give the energy needed"),
        (["--energy-kwh", "5"], "give --at"),
        (["--at", "2030-01-01T05:30", "--energy-kwh", "5", "--days", "mon"], "with --days, --at is a time of day"),
    ]
    for extra, message in cases:
        code, out, err = run(capsys, "depart", "VAN-01", *extra, "--url", live.url)
        assert (code, out) == (2, "") and message in err, (extra, err)
    for extra in (["--at", "25:00"], ["--at", "05:30", "--soc", "150"], ["--at", "05:30", "--energy-kwh", "0"],
                  ["--at", "05:30", "--energy-kwh", "5", "--days", "fir"], ["--at", "05:30", "--soc", "5",
                                                                            "--priority", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["depart", "VAN-01", *extra, "--url", live.url])
        assert exit_.value.code == 2, extra
    capsys.readouterr()
    code, _, err = run(capsys, "depart", "VAN-01", "--clear", "--url", live.url, "--token-file",
                       str(tmp_path / "missing"))
    assert code == 2 and "cannot read the token file" in err
    assert live.call("GET", "/api/v1/vehicles/VAN-01", ADMIN).json()["one_offs"] == []


def test_no_daemon_is_a_clear_message_and_exit_1(capsys: pytest.CaptureFixture[str], admin_env: None) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "depart", "VAN-01", "--at", "05:30", "--energy-kwh", "5", "--url", url)
    assert (code, out) == (1, "")
    assert err == f"depotctl is not running: nothing answers on {url} (connection refused)\n"


def test_schedule_import(live: Live, admin_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.csv"
    good.write_text("vehicle,days,at,energy_kwh,priority\nVAN-01,mon-fri,05:30,30,2\nBUS-01,daily,04:45,150,\n")
    code, out, err = run(capsys, "schedule", "import", str(good), "--config", str(live.site_path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{good}: 2 schedules in force"
    assert "BUS-01#1" in out and "VAN-01#1" in out and "30 kWh, priority 2" in out

    bad = tmp_path / "bad.csv"
    bad.write_text("vehicle,days,at,energy_kwh\nVAN-02,mon,06:00,20\nVAN-02,fir,06:00,20\nVAN-03,mon,06:00,-1\n")
    code, out, err = run(capsys, "schedule", "import", str(bad), "--url", live.url)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{bad}: line 3: days: 'fir' is not a weekday (mon, tue, wed, thu, fri, sat, sun)",
        f"{bad}: line 4: energy_kwh: must be above 0 kWh, got -1",
        f"{bad}: 2 problems, nothing imported",
    ]
    assert [e["id"] for e in live.call("GET", "/api/v1/schedules", ADMIN).json()] == ["BUS-01#1", "VAN-01#1"]

    code, _, err = run(capsys, "schedule", "import", str(tmp_path / "nope.csv"), "--url", live.url)
    assert code == 2 and "cannot read" in err
    live.call("DELETE", "/api/v1/schedules", ADMIN)
