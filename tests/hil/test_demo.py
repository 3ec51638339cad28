"""The demo (``make demo``: ``python -m hil.demo``; ``depotctl demo`` in a source checkout): the whole
simulated depot with the real daemon, and what it prints."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text

from controller.cli import main
from controller.config import load_site
from controller.daemon import plan_loop as plan_loop_module
from controller.daemon.core import Daemon
from hil.demo.run import Demo
from hil.demo.view import DemoFrame, FitHeight, NodeTruth, agenda, demo_panel, status_line, upcoming
from hil.ev import EvParams
from hil.rig import BaseStep, Rig, RigDay, RigEvent, Visit
from tests.api.samples import full_status, sparse_status

ROOT = Path(__file__).resolve().parents[2]
NODES = ("grid", "feeder-a", "board-a1", "feeder-b")


def test_demo_runs_the_depot_and_reports_the_ground_truth() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hil.demo", "--duration", "25", "--no-live"],  # what `make demo` runs
        cwd=ROOT, capture_output=True, text=True, timeout=90,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert re.search(r"delivered \d+\.\d+ of \d+\.\d+ kWh requested; departures met \d+/10", out), out
    for node in NODES:
        assert re.search(rf"^\s+{node}\s+peak .* above rating [\d.]+/[\d.]+/[\d.]+ s$", out, flags=re.M), node
    plans = re.search(r"^\s+plans (\d+) \(plan time p50", out, flags=re.M)
    sheds = re.search(r"^\s+overload sheds (\d+)", out, flags=re.M)
    assert plans is not None and sheds is not None, out
    assert int(plans.group(1)) >= 1 or int(sheds.group(1)) >= 1, out
    assert re.search(r"^t +\d+/25 s  NORMAL  grid ", out, flags=re.M), out  # the status line, every 10 s
    assert "fail-safe episodes 0" in out, out


def test_a_bad_site_file_exits_2_with_nothing_started(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "site.yaml"
    bad.write_text("version: 1\nsite: {name: x}\n")
    assert main(["demo", "--config", str(bad), "--no-live", "--duration", "5"]) == 2
    err = capsys.readouterr().err
    assert "site.yaml" in err and "nothing started" in err
    assert main(["demo", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert main(["demo", "--duration", "-1"]) == 2


def _demo(console_file: io.StringIO, duration_s: float = 5.0) -> Demo:
    site_path = ROOT / "config" / "demo-site.yaml"
    console = Console(file=console_file, width=120)
    return Demo(site_path, load_site(site_path).site, duration_s=duration_s, seed=7, console=console, live=False)


async def test_a_rig_that_cannot_start_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(_self: Rig) -> None:
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(Rig, "start", refuse)
    out = io.StringIO()
    assert await _demo(out).run() == 1
    assert "the simulated depot could not start" in out.getvalue() and "Address already in use" in out.getvalue()


async def test_a_daemon_that_cannot_start_exits_1_and_the_rig_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refuse(_self: Daemon) -> None:
        raise OSError(98, "Address already in use")

    stopped: list[bool] = []
    rig_stop = Rig.stop

    async def note_stop(self: Rig, timeout_s: float = 5.0) -> None:
        stopped.append(True)
        await rig_stop(self, timeout_s)

    monkeypatch.setattr(Daemon, "start", refuse)
    monkeypatch.setattr(Rig, "stop", note_stop)
    out = io.StringIO()
    assert await _demo(out).run() == 1
    assert "the daemon could not run: OSError" in out.getvalue() and "Address already in use" in out.getvalue()
    assert stopped == [True]


async def test_a_control_loop_that_dies_ends_the_demo_with_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def broken(_d: Daemon) -> None:
        await asyncio.sleep(0.5)
        raise RuntimeError("planner bug")

    monkeypatch.setattr(plan_loop_module, "plan_loop", broken)
    out = io.StringIO()
    started = time.monotonic()
    assert await _demo(out, duration_s=30.0).run() == 1
    assert time.monotonic() - started < 20
    assert "the daemon stopped on its own" in out.getvalue()
    assert "plan loop died" in capsys.readouterr().err  # the daemon's own log, errors on stderr


def test_status_line_says_state_grid_sessions_plan_and_sheds() -> None:
    line = status_line(full_status(failsafe=False), 42.4, 180)
    assert line == "t    42/180 s  NORMAL  grid 312.5/298.0/405.2 A of 390  sessions 3  plan 39 ms  sheds 2"
    blind = status_line(sparse_status(), 3.0, 0)
    assert blind.startswith("t     3 s  FAIL-SAFE (starting)  grid — A of ")
    assert "plan —" in blind and "sessions 0" in blind
    assert "\n" not in line + blind


def _day() -> RigDay:
    ev = EvParams(max_a=16.0, phases=3, battery_kwh=60.0)
    return RigDay(
        60.0,
        base=(BaseStep(0.0, "grid", (10.0, 10.0, 10.0)), BaseStep(20.0, "feeder-b", (50.0, 50.0, 50.0), "step")),
        visits=(Visit("CP01", 5.0, 50.0, ev, 2.0, vehicle_id="VAN-01"), Visit("CP07", 10.0, 40.0, ev, 1.0)),
    )


def test_agenda_lists_arrivals_departures_and_noted_steps_in_order() -> None:
    events = agenda(_day())
    assert [t for t, _ in events] == [5.0, 10.0, 20.0, 40.0, 50.0]
    assert "VAN-01@CP01" in events[0][1] and "step" in events[2][1]
    assert upcoming(events, 10.0, 2) == tuple(events[2:4])


def _render(renderable: object, width: int = 120, height: int = 200) -> str:
    console = Console(width=width, height=height, file=io.StringIO(), record=True, force_terminal=True)
    console.print(renderable)
    return console.export_text()


def test_demo_panel_shows_clock_truth_events_and_urls() -> None:
    frame = DemoFrame(
        elapsed_s=42.0, duration_s=180.0, day_s=180.0,
        nodes=(NodeTruth("grid", (150.0, 161.0, 90.0), 160.0, 1.01, (0.0, 1.5, 0.0)),),
        upcoming=((81.0, "base     overload step +46 A on feeder-b"),),
        recent=(RigEvent(40.2, "arrive", "VAN-01@CP02 plugged in"),),
        api_url="http://127.0.0.1:1/api/v1/status", metrics_url="http://127.0.0.1:2/metrics",
        notes=("41.0 s  WARNING depotctl.daemon.fast: overload",),
    )
    text = _render(demo_panel(frame))
    assert all(len(line) <= 120 for line in text.splitlines())
    for part in ("42 s / 180 s", "23%", "161.0", "0.0/1.5/0.0", "101%", "81 s", "overload step", "VAN-01@CP02",
                 "/api/v1/status", "/metrics", "overload"):
        assert part in text, part


def test_fit_height_keeps_the_top_and_the_tail() -> None:
    tail = Text("TAIL 1\nTAIL 2")
    page = Text("\n".join(f"line {i}" for i in range(50)) + "\nTAIL 1\nTAIL 2")
    lines = _render(FitHeight(page, tail), height=10).splitlines()
    assert len(lines) == 10
    assert lines[0] == "line 0" and lines[-2:] == ["TAIL 1", "TAIL 2"] and "hidden" in lines[-3]
    assert len(_render(FitHeight(page, tail), height=100).splitlines()) == 52
