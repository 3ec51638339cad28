"""Background jobs (apscheduler, in the daemon's event loop; the disk work in threads).

* retention — daily at 03:17 site time, and once shortly after start: delete history older than
  ``storage.retention_days`` (rolled up first), in short batches beside the writer thread;
* roll-up — daily at 00:10 site time: yesterday's per-vehicle energy and site peak;
* departures — hourly and at start: expand the recurring departures of the next 24 h, log them
  and re-plan (a departure that starts to matter is planned for without waiting for an event).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from controller.daemon.ports import Clock, Recorder
from controller.fleet.departures import DepartureNeed
from controller.model.site import Site
from controller.store import purge, rollup_daily

LOG = logging.getLogger("depotctl.daemon.jobs")


@dataclass(frozen=True)
class JobPorts:
    site: Callable[[], Site]
    clock: Clock
    recorder: Recorder
    upcoming: Callable[[datetime, datetime], list[DepartureNeed]]  # the fleet's departures in a window
    replan: Callable[[], None]


def start_jobs(p: JobPorts) -> Any:
    tz = ZoneInfo(p.site().site.timezone)
    scheduler = AsyncIOScheduler(timezone=tz, event_loop=asyncio.get_running_loop())
    now = p.clock()
    common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    scheduler.add_job(retention, "cron", hour=3, minute=17, args=[p], id="retention", **common)
    scheduler.add_job(retention, "date", run_date=now + timedelta(seconds=30), args=[p], id="retention-start")
    scheduler.add_job(rollup, "cron", hour=0, minute=10, args=[p], id="rollup", **common)
    scheduler.add_job(departures, "interval", hours=1, args=[p], id="departures", next_run_time=now, **common)
    scheduler.start()
    return scheduler


async def retention(p: JobPorts) -> None:
    site = p.site()
    path, days, now = site.storage.path, site.storage.retention_days, p.clock()
    try:
        deleted = await asyncio.to_thread(purge, path, days, now, pause_s=0.01)
    except Exception as exc:
        LOG.error("retention failed: %s", exc)
        return
    total = sum(deleted.values())
    if total:
        LOG.info("retention: deleted %d rows older than %d days (%s)", total, days, deleted)
        p.recorder.event("info", f"retention deleted {total} rows older than {days} days")


async def rollup(p: JobPorts) -> None:
    today = p.clock().date()
    try:
        await asyncio.to_thread(rollup_daily, p.site().storage.path, today - timedelta(days=1), today)
    except Exception as exc:
        LOG.error("daily roll-up failed: %s", exc)


async def departures(p: JobPorts) -> list[DepartureNeed]:
    """Log the next 24 h of departures and re-plan; returns them."""
    now = p.clock()
    upcoming = p.upcoming(now, now + timedelta(hours=24))
    if upcoming:
        tz = ZoneInfo(p.site().site.timezone)
        listed = ", ".join(f"{n.vehicle_id} {n.at.astimezone(tz):%a %H:%M}" for n in upcoming)
        LOG.info("departures in the next 24 h: %s", listed)
    p.replan()
    return upcoming
