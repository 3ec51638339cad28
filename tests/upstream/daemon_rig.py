"""The whole daemon in local-controller mode: the rig (meters, chargers, EVs) → depotctl (in-process,
or ``depotctl run`` as a process) → the rig's CSMS. Like :func:`tests.daemon.rigged.rigged`, plus
the CSMS, ``ocpp.upstream`` in the site file, and every rig charger checking each frame it
receives against the OCPP schemas (the CSMS checks what it receives itself).

Feeder-b of the demo site with two chargers: CP07 speaks 1.6, CP08 2.0.1, each with a 32 A
three-phase EV from the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from controller.chargers.clock import utc_now
from controller.config.loader import load_site
from controller.daemon.core import Daemon, DaemonOptions
from controller.upstream.proxy import ProxyOptions
from hil.csms import CsmsOptions, SimCsms
from hil.rig import BaseStep, Rig, RigDay, Visit
from tests.daemon.clocks import pinned_clock
from tests.daemon.rigged import (
    FAST,
    Rigged,
    deep_merge,
    ev3,
    rig_site,
    start_process,
    stop_process,
    wait_async,
    write_site,
)
from tests.upstream.conftest import FAST_LINK

CHARGERS = [
    {"id": "CP07", "circuit": "feeder-b", "kind": "ac", "phases": 3, "max_a": 32},
    {"id": "CP08", "circuit": "feeder-b", "kind": "ac", "phases": 3, "phase_rotation": "L2-L3-L1", "max_a": 32},
]
VERSIONS = {"CP07": "1.6", "CP08": "2.0.1"}


def feeder_b_day(duration_s: float = 900.0) -> RigDay:
    return RigDay(
        duration_s,
        base=(BaseStep(0.0, "grid", (20.0, 20.0, 20.0)), BaseStep(0.0, "feeder-b", (10.0, 10.0, 10.0))),
        visits=(
            Visit("CP07", 0.5, duration_s, ev3(), need_kwh=50.0, id_tag="T-CP07"),
            Visit("CP08", 0.5, duration_s, ev3(), need_kwh=50.0, id_tag="T-CP08"),
        ),
        versions=VERSIONS,
    )


@dataclass
class Up:
    r: Rigged
    csms: SimCsms
    sent: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Per rig charger, every frame it sent (parsed)."""

    def assert_clean(self) -> None:
        assert self.csms.violations() == []
        assert self.csms.violations(direction="out") == []
        assert self.csms.anomalies == []
        for cid, sim in self.r.rig.sims.items():
            assert sim.validator is not None and sim.validator.violations == [], cid


@contextlib.asynccontextmanager
async def upstream_rigged(
    tmp: Path,
    *,
    process: bool = False,
    day: RigDay | None = None,
    csms_options: CsmsOptions | None = None,
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[Up]:
    """The daemon (``process``: ``depotctl run``, on the machine's clock like the rig and the CSMS
    then) between the rig and the CSMS, every charger connected."""
    clock = clock or (utc_now if process else pinned_clock())
    csms = SimCsms(clock, csms_options or CsmsOptions(call_timeout_s=3.0))
    await csms.start()
    overrides = deep_merge(copy.deepcopy(dict(FAST)), {
        "ocpp": {"upstream": {"url": csms.url, "security_profile": 0, "offline_authorize": "cache"}},
        "chargers": CHARGERS,
    })
    rig = Rig(rig_site(overrides), day or feeder_b_day(), meter_ports={"127.0.0.1:15020": 0}, clock=clock)
    up_sent: dict[str, list[list[Any]]] = {}
    for cid, sim in rig.sims.items():
        got = up_sent.setdefault(cid, [])

        def record(direction: str, raw: str | bytes, got: list[list[Any]] = got) -> None:
            if direction == "out":
                got.append(json.loads(raw))

        sim.frame_hook = record
        sim.validate_frames()
    await rig.start()
    task: asyncio.Task[int] | None = None
    r: Rigged | None = None
    try:
        site_path, ports = write_site(tmp, rig, overrides)
        r = Rigged(rig, site_path, tmp / "depot.db", f"http://127.0.0.1:{ports['api']}",
                   f"http://127.0.0.1:{ports['metrics']}", f"ws://127.0.0.1:{ports['ocpp']}/ocpp")
        if process:
            r.log_path = tmp / "daemon.log"
            r.proc = start_process(site_path, r.log_path)
        else:
            options = DaemonOptions(handle_signals=False, clock=clock, upstream=ProxyOptions(link=FAST_LINK))
            r.daemon = Daemon(load_site(site_path).site, site_path, replace(options))
            task = asyncio.create_task(r.daemon.run())
        await wait_async(lambda: _up(r), 20, "the daemon's API")
        offline = await rig.connect_chargers(r.ocpp_url, keep_connected=True, timeout_s=15)
        assert not offline, f"chargers not connected: {offline}"
        yield Up(r, csms, up_sent)
    finally:
        if r is not None and r.proc is not None:
            await asyncio.to_thread(stop_process, r.proc)
        if r is not None and r.daemon is not None and task is not None:
            r.daemon.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 15)
        await rig.stop()
        await csms.stop()


async def _up(r: Rigged) -> bool:
    if r.proc is not None and r.proc.poll() is not None:
        raise AssertionError(f"depotctl run exited with {r.proc.returncode}:\n{r.log()[-3000:]}")
    await r.status()
    return True
