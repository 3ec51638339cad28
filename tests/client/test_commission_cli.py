"""``depotctl commission`` (controller/client/commission.py) and the commissioned state in ``depotctl status``.

The words (a check as it completes, the report, the summary of ``--all``) are pure and tested on
hand-made reports; bad arguments and a daemon that does not answer exit 2 before anything is sent.
The runs go against the REAL daemon (in-process, pinned clock, its API on loopback with tokens) on
the hil rig, each ``depotctl`` in its own process as a user runs it: one EV charger passes (``--json``),
one whose clock is two minutes ahead fails, the refusals (already running, unknown, not connected,
not admin) exit 2, ``depotctl status`` shows the result, and ``--all --report`` writes the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import io
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console

from controller.api.models import ChargerInfo
from controller.cli import main
from controller.client.api import TOKEN_ENV
from controller.client.commission import check_line, report_lines, summary_line
from controller.client.view import chargers_table
from controller.client.view_format import LocalClock
from controller.commission.html import NotRun
from controller.commission.report import CHECK_NAMES, EV_CHECKS, Check, Report
from controller.config.loader import load_site
from controller.daemon.core import Daemon, DaemonOptions
from hil.ev import EvParams
from hil.rig import BaseStep, Rig, RigDay, Visit, free_port
from tests.api.samples import full_status
from tests.api.test_roles import TOKENS, call, write_tokens
from tests.commission.timings import EV_REACTION_S, RIG_OPTIONS
from tests.daemon.clocks import pinned_clock
from tests.daemon.rigged import FAST, Rigged, deep_merge, rig_site, wait_async, wait_for, write_site

AT = datetime(2026, 12, 9, 14, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))


def _report(state: str = "finished", *checks: Check, **kw: object) -> Report:
    return Report("CP07", AT, AT + timedelta(minutes=3), state, checks, **kw)  # type: ignore[arg-type]


# --- the words ----------------------------------------------------------------------------------------------


def test_a_check_as_it_completes() -> None:
    assert check_line(Check("follows_limit", True, 0.64, "4 steps, median 0.64 s")) == (
        "PASS  follows_limit      0.64        4 steps, median 0.64 s"
    )
    assert (
        check_line(Check("clock", False, -120.0, "120 s behind")) == "FAIL  clock              -120        120 s behind"
    )
    assert check_line(Check("ignores_limit", None)) == "SKIP  ignores_limit      —"


def test_the_report_passed_first_time() -> None:
    r = _report("finished", Check("connects", True), Check("ignores_limit", None), reaction_s=6.23, vendor="ACME",
                model="WB", firmware="2.0", ocpp_version="1.6")  # fmt: skip
    assert report_lines(r, [], first=True) == [
        "CP07: PASSED — every check passed (1 passed, 0 failed, 1 skipped)",
        "  charger: OCPP 1.6 · ACME WB · firmware 2.0",
        "  quirks: none",
        "  add under CP07 in the site file:",
        "      reaction_s: 6.3",
        "  first commissioning of CP07: nothing to compare with",
    ]
    assert r.to_json()["reaction_s_line"] == "reaction_s: 6.3"  # the same line in the API's report
    quick = _report("finished", Check("connects", True), reaction_s=0.38)  # within 5 s: no line (it would shorten)
    assert "  nothing to add to the site file" in report_lines(quick, []) and quick.to_json()["reaction_s_line"] == ""


def test_the_report_failed_with_quirks_and_changes() -> None:
    r = _report("finished", Check("connects", True), Check("power_profile", False), Check("profile_expiry", False),
                quirks=("holds_last_limit", "power_only"))  # fmt: skip
    lines = report_lines(r, ["firmware 1.0 → 1.1", "power_profile passed before, fails now"], first=False)
    assert lines == [
        "CP07: FAILED — power_profile, profile_expiry (1 passed, 2 failed, 0 skipped)",
        "  quirks: holds_last_limit, power_only",
        "  add under CP07 in the site file:",
        "      ocpp_quirks: [holds_last_limit, power_only]",
        "  changes since the last commissioning:",
        "    - firmware 1.0 → 1.1",
        "    - power_profile passed before, fails now",
    ]
    assert report_lines(_report("finished", Check("connects", True)), [], first=False)[-2:] == [
        "  nothing to add to the site file",
        "  no change since the last commissioning",
    ]


def test_an_incomplete_run_is_not_passed() -> None:
    why = "EV checks: No EV charging: no transaction on connector 1 within 30 s. Commission it again with an EV."
    r = _report("finished", Check("connects", True), Check("follows_limit", None), incomplete=(why,))
    assert not r.passed and r.to_json()["passed"] is False and r.to_json()["incomplete"] == [why]
    assert report_lines(r, [])[:2] == [
        "CP07: INCOMPLETE — not everything was tested (1 passed, 0 failed, 1 skipped)",
        f"  not tested: {why}",
    ]
    failed = _report("finished", Check("clock", False), incomplete=(why,))
    assert report_lines(failed, [])[:2] == [
        "CP07: FAILED — clock (0 passed, 1 failed, 0 skipped)",
        f"  not tested: {why}",
    ]
    assert summary_line([r], []) == "site: 0 passed, 1 not passed (CP07)"
    assert report_lines(_report("running"), [])[0] == "CP07: RUNNING — not finished yet (0 passed, 0 failed, 0 skipped)"


def test_an_aborted_run_and_the_summary() -> None:
    aborted = _report("aborted", Check("connects", True), error="the charger disconnected")
    assert report_lines(aborted, [])[0] == "CP07: ABORTED — the charger disconnected (1 passed, 0 failed, 0 skipped)"
    passed = Report("CP01", AT, AT, "finished", (Check("connects", True),))
    assert summary_line([passed, aborted], [NotRun("CP09")]) == (
        "site: 1 passed, 1 not passed (CP07), 1 not commissioned (CP09)"
    )


# --- bad input: exit 2, one line, nothing sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["commission"], "give the charger to commission (CHARGER), or --all"),
        (["commission", "CP01", "--all"], "give CHARGER or --all, not both"),
        (["commission", "--all", "--report", "/nonexistent-dir/x.html"], "no such directory '/nonexistent-dir'"),
        (["commission", "CP01", "--timeout", "0"], "must be above 0, got 0"),
        (["commission", "CP01", "--token-file", "/nonexistent-token"], "cannot read the token file"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def cli(argv: list[str]) -> int:
    """``depotctl ARGV``'s exit status (argparse's own exit for a bad argument included)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


def test_no_daemon_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for argv in (["commission", "CP01", "--url", url], ["commission", "--all", "--url", url]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert "nothing answers" in err and len(err.strip().splitlines()) == 1, err


# --- the status ----------------------------------------------------------------------------------------------


def _table_text(chargers: list[ChargerInfo]) -> str:
    status = full_status()
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(chargers_table(chargers, LocalClock(status)))
    return console.export_text()


def test_status_shows_each_chargers_commissioning() -> None:
    cp01, dc150, cp09 = full_status().chargers
    text = _table_text(
        [
            cp01.model_copy(update={"commissioned": "failed"}),
            dc150.model_copy(update={"commissioned": "running"}),
            ChargerInfo.model_validate({**cp09.model_dump(), "commissioned": "passed"}),
        ]
    )
    assert "comm. FAILED" in text and "comm. running" in text and "comm. passed" in text
    assert "⚠ CP-01 failed its last commissioning · `depotctl commission CP-01` runs it again" in text
    assert max(len(line) for line in text.splitlines()) <= 120 and "…" not in text
    never = ChargerInfo.model_validate({**cp09.model_dump(), "commissioned": "never"})
    assert "comm. never" in _table_text([never])
    # a daemon that does not report it: nothing shown, nothing invented
    assert "comm." not in _table_text(full_status().chargers)


# --- end to end: the command against the real daemon on the rig ------------------------------------------------

OPTIONS = RIG_OPTIONS
CHARGERS = [
    {"id": "CP07", "circuit": "feeder-b", "kind": "ac", "phases": 3, "max_a": 32},
    {"id": "CP08", "circuit": "feeder-b", "kind": "ac", "phases": 3, "phase_rotation": "L2-L3-L1", "max_a": 32},
    {"id": "CP09", "circuit": "feeder-b", "kind": "ac", "phases": 1, "phase_rotation": "L3", "max_a": 16},
]
"""The daemon's chargers: CP07 (a well-behaved charger, an EV plugged in), CP08 (its clock two
minutes ahead, no EV) and CP09, which the rig does not simulate: never connected."""
CLI_TIMEOUT_S = 40.0


@contextlib.asynccontextmanager
async def depot(tmp: Path) -> AsyncIterator[Rigged]:
    """The real daemon in-process (pinned clock, API tokens) on the rig, which plays CP07 and CP08."""
    clock = pinned_clock()
    tokens = write_tokens(tmp / "tokens.yaml")
    overrides = deep_merge(copy.deepcopy(FAST), {"chargers": CHARGERS, "api": {"tokens_file": str(tokens)}})
    ev = EvParams(max_a=32.0, phases=3, battery_kwh=200.0, reaction_s=EV_REACTION_S)
    day = RigDay(
        120.0,
        base=(BaseStep(0.0, "grid", (20.0, 20.0, 20.0)), BaseStep(0.0, "feeder-b", (10.0, 10.0, 10.0))),
        visits=(Visit("CP07", 0.2, 120.0, ev, need_kwh=50.0, id_tag="T-CP07"),),
    )
    rig_overrides = {**overrides, "chargers": CHARGERS[:2]}
    rig = Rig(
        rig_site(rig_overrides), day, meter_ports={"127.0.0.1:15020": 0}, clock=clock,
        sim_options={"CP08": {"clock_offset_s": 120.0}},
    )  # fmt: skip
    await rig.start()
    try:
        site_path, ports = write_site(tmp, rig, overrides)
        options = DaemonOptions(handle_signals=False, plan_in_worker=False, clock=clock, commission=OPTIONS)
        daemon = Daemon(load_site(site_path).site, site_path, options)
        r = Rigged(
            rig, site_path, tmp / "depot.db", f"http://127.0.0.1:{ports['api']}",
            f"http://127.0.0.1:{ports['metrics']}", f"ws://127.0.0.1:{ports['ocpp']}/ocpp", daemon=daemon,
        )  # fmt: skip
        task = asyncio.create_task(daemon.run())
        try:
            await wait_async(lambda: _up(r), 20, "the daemon's API")
            offline = await rig.connect_chargers(r.ocpp_url, keep_connected=True, timeout_s=15)
            assert not offline, f"chargers not connected: {offline}"
            yield r
        finally:
            daemon.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
    finally:
        await rig.stop()


async def _up(r: Rigged) -> bool:
    answer = await asyncio.to_thread(call, r.api_url, "GET", "/api/v1/status", token=TOKENS["viewer"])
    return answer.status == 200


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def depotctl(*argv: str, token: str | None = None) -> Ran:
    """``depotctl ARGV`` as a user runs it: its own process (bounded by :data:`CLI_TIMEOUT_S`)."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if token is not None:
        env[TOKEN_ENV] = token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.cli", *argv,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"depotctl {' '.join(argv)} did not end within {CLI_TIMEOUT_S:.0f} s") from None
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


async def test_commission_against_the_daemon(tmp_path: Path) -> None:
    token_file = tmp_path / "admin.token"
    token_file.write_text(TOKENS["admin"] + "\n")
    async with depot(tmp_path) as r:
        d = r.daemon
        assert d is not None
        url = ("--url", r.api_url)
        admin = ("--token-file", str(token_file))
        await wait_for(
            lambda: not d.failsafe.state.active and r.rig.sim("CP07").draw_a()[0] > 3.0, 20, "normal control"
        )

        async def running(cid: str) -> bool:
            assert not cp07.done(), cp07.result()
            return bool(d.commission.commissioned(cid) == "running")

        # CP07 with its EV (--json) and CP08 (clock 2 min ahead, no EV) at once; meanwhile the refusals
        cp07 = asyncio.create_task(depotctl("commission", "CP07", "--json", *url, *admin))
        await wait_async(lambda: running("CP07"), 15, "CP07's run to start")
        cp08, again, unknown, offline, viewer = await asyncio.gather(
            depotctl("commission", "CP08", "--timeout", "30", "--report", str(tmp_path / "cp08.html"), *url, *admin),
            depotctl("commission", "CP07", *url, *admin),
            depotctl("commission", "CP99", *url, *admin),
            depotctl("commission", "CP09", *url, *admin),
            depotctl("commission", "CP08", *url, token=TOKENS["viewer"]),
        )
        assert (again.code, again.out) == (2, ""), again
        assert again.err == "depotctl commission: CP07: a commissioning of CP07 is already running\n"
        assert (unknown.code, unknown.err) == (2, "depotctl commission: CP99: unknown charger 'CP99'\n"), unknown
        assert (offline.code, offline.err) == (2, "depotctl commission: CP09: charger CP09 is not connected\n")
        assert viewer.code == 2 and "needs role admin" in viewer.err and len(viewer.err.splitlines()) == 1

        assert cp08.code == 1, cp08
        lines = cp08.out.splitlines()
        assert lines[0] == f"commissioning CP08 on {r.api_url}"
        assert [line.split()[:2] for line in lines[1 : 1 + len(CHECK_NAMES)]] == [
            ["FAIL" if name == "clock" else "SKIP" if name in EV_CHECKS else "PASS", name] for name in CHECK_NAMES
        ], cp08.out  # each check as it completed, in order: the EV checks skipped (nothing draws)
        clock_line = lines[1 + CHECK_NAMES.index("clock")]
        assert 115 < float(clock_line.split()[2]) < 125, clock_line  # measured: the offset [s]
        assert "CP08: FAILED — clock (4 passed, 1 failed, 6 skipped)" in lines
        assert any(x.startswith("  not tested: EV checks: No EV charging") for x in lines), lines  # not --no-ev
        assert "  first commissioning of CP08: nothing to compare with" in lines
        assert lines[-1] == f"site acceptance report written to {tmp_path / 'cp08.html'}"
        one = (tmp_path / "cp08.html").read_text(encoding="utf-8")
        assert 'id="charger-CP08"' in one and "CP07" not in one and "120.0 s ahead of ours" in one

        done = await cp07
        assert done.code == 0, done
        report = json.loads(done.out)  # --json: only the final report on stdout
        assert report["charger"] == "CP07" and report["state"] == "finished" and report["passed"] is True
        assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
        assert all(c["status"] == "passed" for c in report["checks"]), report["checks"]
        assert report["reaction_s"] is not None and report["changes"] == []

        status = await depotctl("status", *url, token=TOKENS["viewer"])
        assert status.code == 0, status
        assert "comm. passed" in status.out and "comm. FAILED" in status.out and "comm. never" in status.out
        assert "⚠ CP08 failed its last commissioning" in status.out

        # the whole site, without EV checks, and its report
        html = tmp_path / "site-acceptance.html"
        every = await depotctl("commission", "--all", "--no-ev", "--report", str(html), *url, *admin)
        assert every.code == 1, every  # CP08's clock
        out = every.out.splitlines()
        assert out[0] == "3 chargers in the site file, 2 connected: CP07, CP08"
        assert "CP07: PASSED — every check passed (5 passed, 0 failed, 6 skipped)" in out
        assert "CP08: FAILED — clock (4 passed, 1 failed, 6 skipped)" in out
        assert "site: 1 passed, 1 not passed (CP08), 1 not commissioned (CP09)" in out
        assert f"site acceptance report written to {html}" in out
        assert "  no change since the last commissioning" in out  # CP08, the same as before
        page = html.read_text(encoding="utf-8")
        for text in ("CP07", "CP08", "CP09", "not connected — not commissioned", "Demo depot", "2026-12-09"):
            assert text in page, text
        for name in CHECK_NAMES:
            assert len(re.findall(f'<tr class="check-[a-z]+"><td>{name}</td>', page)) == 2, name  # CP07's, CP08's
        assert d.commission.commissioned("CP09") == "never"

        # a run that outlasts --timeout: the command gives up (1), the daemon goes on with it
        late = await depotctl("commission", "CP08", "--timeout", "0.5", *url, *admin)
        assert late.code == 1 and "CP08: no result within 0.5 s: the run goes on in the daemon" in late.out, late
        assert d.commission.commissioned("CP08") == "running"
