"""A daemon that is built but not run: its parts wired as ``depotctl run`` wires them, its OCPP
central system on a free loopback port with simulated chargers connected, its history store open
— and no loops. A test plays the fast loop itself (sets the observation, ends a cycle through the
daemon's own ``cycle_done``) and may hold commissioning runs at their first wait (:meth:`Bare.hold`),
so what the daemon's commissioning part answers can be looked at one step at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from controller.chargers.state import Reading
from controller.commission.runner import CommissionOptions
from controller.config.loader import load_site
from controller.daemon.core import Daemon, DaemonOptions
from controller.daemon.ports import Observation
from controller.model.snapshot import PhaseCurrents
from controller.rules.failsafe import CycleHealth
from hil.chargers.sim import SimCharger, SimOptions
from hil.rig import free_port, rig_site_text
from tests.daemon.clocks import pinned_clock
from tests.daemon.rigged import FAST, _merged

QUIET_S = 3600.0
"""The simulated chargers' own meter interval: they stay quiet, the test writes the readings."""


@dataclass
class Bare:
    daemon: Daemon
    site_path: Path
    storage: Path
    sims: dict[str, SimCharger]
    skew_s: list[float]
    gate: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> datetime:
        return self.daemon.clock()

    def advance(self, seconds: float) -> None:
        """Move the daemon's (and the chargers') clock on."""
        self.skew_s[0] += seconds

    def hold(self) -> None:
        """Commissioning runs started from now on wait at their first wait until :attr:`gate` is set."""
        gate = self.gate

        async def sleep(seconds: float) -> None:
            await gate.wait()
            await asyncio.sleep(seconds)

        part = self.daemon.commission
        part.ports = replace(part.ports, sleep=sleep)

    def reads(self, charger_id: str, amps: float, age_s: float = 0.0, connector: int = 1) -> None:
        """The charger's connector reported ``amps`` on each of its lines ``age_s`` ago."""
        at = self.now() - timedelta(seconds=age_s)
        conn = self.daemon.cs.state(charger_id).connectors[connector]
        conn.measured.current_a = [Reading(amps, at) for _ in range(3)]

    def observe(self, loads_a: Mapping[str, PhaseCurrents], grid_power_w: float | None = None) -> Observation:
        """The fast loop publishes ``loads_a`` and ends its cycle (the daemon's own ``cycle_done``)."""
        d = self.daemon
        d.fast.observation = Observation(loads_a=dict(loads_a), grid_power_w=grid_power_w)
        d.fast.ports.cycle_done(True, True)
        return d.fast.observation


def site_text(tmp: Path, overrides: Mapping[str, Any], name: str = "site.yaml") -> Path:
    """The demo site with ``overrides``, on free loopback ports, its store in ``tmp``."""
    merged = tmp / f"{Path(name).stem}.in.yaml"
    merged.write_text(yaml.safe_dump(_merged(overrides), sort_keys=False))
    text = rig_site_text(
        merged,
        meter_ports={},
        ocpp_port=free_port(),
        api_port=free_port(),
        metrics_port=free_port(),
        storage_path=tmp / "depot.db",
    )
    path = tmp / name
    path.write_text(text)
    return path


@contextlib.asynccontextmanager
async def bare_daemon(
    tmp: Path,
    chargers: tuple[str, ...] = (),
    *,
    overrides: Mapping[str, Any] = FAST,
    commission: CommissionOptions | None = None,
) -> AsyncIterator[Bare]:
    """The daemon of the demo site (``overrides`` merged in), in normal control, ``chargers``
    connected (each with its fail-safe installed) and idle."""
    skew = [0.0]
    clock = pinned_clock(monotonic=lambda: time.monotonic() + skew[0])
    path = site_text(tmp, overrides)
    options = DaemonOptions(
        clock=clock,
        handle_signals=False,
        serve_api=False,
        serve_metrics=False,
        plan_in_worker=False,
        commission=commission or CommissionOptions(),
    )
    d = Daemon(load_site(path).site, path, options)
    storage = tmp / "depot.db"
    d.recorder.open(storage, d.clock())
    await d.cs.start()
    while d.failsafe.state.active:  # the meters are good (the test says what they read)
        d.failsafe.advance(CycleHealth(), d.clock(), d.site.control.recover_cycles)
    sims = {cid: SimCharger(SimOptions(cid, tick_s=0.1, meter_interval_s=QUIET_S), clock=clock) for cid in chargers}
    url = f"ws://127.0.0.1:{d.cs.port}{d.site.ocpp.path}"
    bare = Bare(d, path, storage, sims, skew)
    try:
        await asyncio.gather(*(s.connect(url) for s in sims.values()))
        deadline = time.monotonic() + 5.0
        while not all(d.cs.control.failsafe_installed(cid) for cid in chargers):
            assert time.monotonic() < deadline, "fail-safes not installed within 5 s"
            await asyncio.sleep(0.02)
        yield bare
    finally:
        bare.gate.set()
        await d.commission.stop()
        for s in sims.values():
            with contextlib.suppress(Exception):
                await s.close()
        await d.cs.stop()
        await d.recorder.close()
        await d.meters.close()
        d.executor.shutdown(wait=False, cancel_futures=True)
