"""A daemon against the hil rig on free loopback ports: in-process, or as ``depotctl run``."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from controller.chargers.clock import utc_now
from controller.config.loader import load_site, load_site_text
from controller.daemon.core import Daemon, DaemonOptions
from controller.model.site import Site
from hil.ev import EvParams
from hil.rig import BaseStep, Rig, RigDay, Visit, free_port, rig_site_text
from tests.daemon.clocks import pinned_clock

DEMO = Path(__file__).resolve().parents[2] / "config" / "demo-site.yaml"
FAST = {"ocpp": {"profile_ttl_s": 12, "meter_sample_s": 1}, "control": {"plan_every_s": 3}}
"""Test timing: profiles live 12 s (refreshed every 3 s plan), chargers report every second."""


def deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


def ev3(max_a: float = 32.0, reaction_s: float = 3.0) -> EvParams:
    return EvParams(max_a=max_a, phases=3, battery_kwh=200.0, reaction_s=reaction_s)


def feeder_b_day(duration_s: float = 600.0) -> RigDay:
    """Two anonymous 3-phase EVs on feeder-b (CP07, CP08: 32 A each) and a site van (VAN-01's tag:
    a scheduled departure, so the planner may move its charging to the cheap night tariff) on CP01."""
    return RigDay(
        duration_s,
        base=(BaseStep(0.0, "grid", (20.0, 20.0, 20.0)), BaseStep(0.0, "feeder-b", (10.0, 10.0, 10.0))),
        visits=(
            Visit("CP07", 0.5, duration_s, ev3(), need_kwh=50.0, id_tag="T-CP07"),
            Visit("CP08", 0.5, duration_s, ev3(), need_kwh=50.0, id_tag="T-CP08"),
            Visit("CP01", 0.5, duration_s, ev3(16.0), need_kwh=20.0, id_tag="04A2B3C4", vehicle_id="VAN-01"),
        ),
    )


@dataclass
class Rigged:
    rig: Rig
    site_path: Path
    storage: Path
    api_url: str
    metrics_url: str
    ocpp_url: str
    daemon: Daemon | None = None
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    task: asyncio.Task[int] | None = None  # the in-process daemon's run (a test may replace both)

    async def status(self) -> dict[str, Any]:
        body = await asyncio.to_thread(_get, self.api_url + "/api/v1/status")
        data: dict[str, Any] = json.loads(body)
        return data

    async def metrics(self) -> str:
        return (await asyncio.to_thread(_get, self.metrics_url + "/metrics")).decode()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
        return body


async def wait_for(pred: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.1) -> float:
    """Poll ``pred`` until true; returns the seconds it took; fails the test after ``timeout_s``."""
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(step_s)
    return time.monotonic() - t0


async def wait_async(pred: Callable[[], Any], timeout_s: float, what: str, step_s: float = 0.2) -> float:
    t0 = time.monotonic()
    while True:
        with contextlib.suppress(OSError, ValueError):
            if await pred():
                return time.monotonic() - t0
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(step_s)


def write_site(
    tmp: Path, rig: Rig, overrides: Mapping[str, Any], name: str = "site.yaml"
) -> tuple[Path, dict[str, int]]:
    """The demo site with ``overrides`` merged in, then re-pointed at the rig: its meters (also
    meters given in ``overrides``, at the demo's endpoint), listeners and storage on free ports."""
    ports = {"ocpp": free_port(), "api": free_port(), "metrics": free_port()}
    merged = tmp / f"{Path(name).stem}.in.yaml"
    merged.write_text(yaml.safe_dump(_merged(overrides), sort_keys=False))
    text = rig_site_text(
        merged,
        meter_ports=rig.meter_ports,
        ocpp_port=ports["ocpp"],
        api_port=ports["api"],
        metrics_port=ports["metrics"],
        storage_path=tmp / "depot.db",
    )
    path = tmp / name
    path.write_text(text)
    load_site(path)  # fails the test early on a bad override
    return path, ports


def start_process(site_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "controller.cli", "run", "--config", str(site_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=site_path.parent,
        )


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
    """Signal and wait (blocking: call it through ``asyncio.to_thread`` while the rig runs)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


def rig_site(overrides: Mapping[str, Any]) -> Site:
    """The demo site with ``overrides`` merged in (a smaller board, fewer chargers): what the rig
    simulates, so that it and the daemon see one depot."""
    return load_site_text(yaml.safe_dump(_merged(overrides), sort_keys=False), f"{DEMO.name} + overrides").site


def _merged(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return deep_merge(yaml.safe_load(DEMO.read_text(encoding="utf-8")), copy.deepcopy(dict(overrides)))


@contextlib.asynccontextmanager
async def rigged(
    tmp: Path,
    day: RigDay | None = None,
    *,
    overrides: Mapping[str, Any] = FAST,
    process: bool = False,
    options: DaemonOptions | None = None,
    rig_options: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
    site_edit: Callable[[Site], Site] | None = None,
) -> AsyncIterator[Rigged]:
    """The demo site with ``overrides`` (also topology: circuits, chargers — the rig simulates the
    same depot) on free ports, the rig playing ``day``, a daemon on it, every charger connected.

    ``rig_options``: more :class:`~hil.rig.Rig` keywords (``sim_options`` for hostile chargers,
    ``noise_a``, ``tick_s``, ``seed``). ``clock``: one clock for the rig, its chargers and the
    in-process daemon (unless ``options`` names its own); by default one pinned at
    :data:`~tests.daemon.clocks.PINNED_AT` — never the wall clock. A daemon ``process`` runs on the
    machine's clock, and so does the rig then (its chargers' clocks must agree with the daemon's).
    ``options``: the in-process daemon's options (default: no signal handlers). ``site_edit``: what
    to change in the in-process daemon's :class:`Site` beyond what the site file says (the rig still
    plays the file's depot), e.g. a tariff with a demand charge.
    """
    site0 = rig_site(overrides)
    extra: dict[str, Any] = dict(rig_options or {})
    if not process:
        own = options.clock if options is not None and options.clock is not utc_now else None
        clock = clock or own or pinned_clock()
        options = replace(options or DaemonOptions(handle_signals=False), clock=own or clock)
    if clock is not None:
        extra.setdefault("clock", clock)
    rig = Rig(site0, day or feeder_b_day(), meter_ports={"127.0.0.1:15020": 0}, **extra)
    await rig.start()
    try:
        site_path, ports = write_site(tmp, rig, overrides)
        r = Rigged(
            rig,
            site_path,
            tmp / "depot.db",
            f"http://127.0.0.1:{ports['api']}",
            f"http://127.0.0.1:{ports['metrics']}",
            f"ws://127.0.0.1:{ports['ocpp']}/ocpp",
        )
        if process:
            r.log_path = tmp / "daemon.log"
            r.proc = start_process(site_path, r.log_path)
        else:
            site = load_site(site_path).site
            r.daemon = Daemon(site_edit(site) if site_edit is not None else site, site_path, options)
            r.task = asyncio.create_task(r.daemon.run())
        try:
            await wait_async(lambda: _up(r), 20, "the daemon's API")
            offline = await r.rig.connect_chargers(r.ocpp_url, keep_connected=True, timeout_s=15)
            assert not offline, f"chargers not connected: {offline}"
            yield r
        finally:
            if r.proc is not None:  # in a thread: the rig's chargers must keep answering meanwhile
                await asyncio.to_thread(stop_process, r.proc)
            if r.daemon is not None and r.task is not None:
                r.daemon.request_stop()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(r.task, 15)
    finally:
        await rig.stop()


async def steady(r: Rigged, chargers: tuple[str, ...] = ("CP07", "CP08"), above_a: float = 20.0) -> None:
    """Normal control, and ``chargers``' EVs drawing more than ``above_a`` (the fail-safe is 6 A)."""

    async def normal() -> bool:
        return not (await r.status())["failsafe"]["active"]

    await wait_async(normal, 20, "normal control")
    await wait_for(
        lambda: min(r.rig.sim(c).draw_a()[0] for c in chargers) > above_a, 30, f"EVs drawing > {above_a:g} A"
    )


async def _up(r: Rigged) -> bool:
    if r.proc is not None and r.proc.poll() is not None:
        raise AssertionError(f"depotctl run exited with {r.proc.returncode}:\n{r.log()[-3000:]}")
    await r.status()
    return True
