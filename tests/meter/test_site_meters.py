"""The daemon's view: every meter of a site polled in the background, staleness on real time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from controller.config import load_site
from controller.meter.meters import SiteMeters
from hil.meter import MeterSimServer, SimMeter

SITE = """\
site: {{name: t, timezone: Europe/Amsterdam}}
grid: {{limit_a: 100, meter: a}}
ocpp: {{security_profile: 0}}
meters:
  - {{id: a, preset: eastron-sdm630, poll_s: 0.05, stale_after_s: 0.4,
      modbus: {{host: 127.0.0.1, port: {port}, unit: 1, timeout_s: 0.2}}}}
  - {{id: b, preset: sunspec, poll_s: 0.05, stale_after_s: 0.4,
      modbus: {{host: 127.0.0.1, port: {port}, unit: 2, timeout_s: 0.2}}}}
circuits:
  - {{id: c, limit_a: 50, meter: b}}
"""


async def wait_until(condition: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_background_polling_staleness_and_recovery(tmp_path: Path) -> None:
    sims = [SimMeter(1, "eastron-sdm630"), SimMeter(2, "sunspec")]
    for s in sims:
        s.set_load(base_a=(5.0, 6.0, 7.0))
    server = MeterSimServer(sims)
    port = await server.start()
    (tmp_path / "site.yaml").write_text(SITE.format(port=port), encoding="utf-8")
    meters = SiteMeters(load_site(tmp_path / "site.yaml").site, backoff_initial_s=0.05, backoff_max_s=0.2)
    assert len(meters.hubs) == 1 and set(meters.readers) == {"a", "b"}
    stop = asyncio.Event()
    task = asyncio.create_task(meters.run(stop))
    try:
        await wait_until(lambda: all(r.accepted >= 3 for r in meters.readers.values()), 3.0)
        assert all(s.usable is not None for s in meters.status().values())
        assert meters.reader("b").status().usable.current_a == (5.0, 6.0, 7.0)  # type: ignore[union-attr]

        await server.stop()
        waited = await wait_until(lambda: all(s.stale for s in meters.status().values()), 3.0)
        assert waited < 0.4 + 0.3
        assert all(r.latest() is None for r in meters.readers.values())

        await server.start()
        await wait_until(lambda: not any(s.stale for s in meters.status().values()), 3.0)
    finally:
        stop.set()
        await asyncio.wait_for(task, 3.0)
        await meters.close()
        await server.stop()
