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
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from controller.fleet.departures import expand
from controller.store import purge, rollup_daily

if TYPE_CHECKING:
    from controller.daemon.core import Daemon

LOG = logging.getLogger("depotctl.daemon.jobs")


def start_jobs(d: Daemon) -> Any:
    tz = ZoneInfo(d.site.site.timezone)
    scheduler = AsyncIOScheduler(timezone=tz, event_loop=asyncio.get_running_loop())
    now = d.clock()
    common = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
    scheduler.add_job(retention, "cron", hour=3, minute=17, args=[d], id="retention", **common)
    scheduler.add_job(retention, "date", run_date=now + timedelta(seconds=30), args=[d], id="retention-start")
    scheduler.add_job(rollup, "cron", hour=0, minute=10, args=[d], id="rollup", **common)
    scheduler.add_job(departures, "interval", hours=1, args=[d], id="departures", next_run_time=now, **common)
    scheduler.start()
    return scheduler


async def retention(d: Daemon) -> None:
    path, days, now = d.site.storage.path, d.site.storage.retention_days, d.clock()
    try:
        deleted = await asyncio.to_thread(purge, path, days, now, pause_s=0.01)
    except Exception as exc:
        LOG.error("retention failed: %s", exc)
        return
    total = sum(deleted.values())
    if total:
        LOG.info("retention: deleted %d rows older than %d days (%s)", total, days, deleted)
        d.record_event("info", f"retention deleted {total} rows older than {days} days")


async def rollup(d: Daemon) -> None:
    today = d.clock().date()
    try:
        await asyncio.to_thread(rollup_daily, d.site.storage.path, today - timedelta(days=1), today)
    except Exception as exc:
        LOG.error("daily roll-up failed: %s", exc)


async def departures(d: Daemon) -> None:
    now = d.clock()
    upcoming = expand(d.fleet.book.site_with_schedules(d.site), now, now + timedelta(hours=24), d.fleet.one_offs(now))
    d.upcoming = upcoming
    if upcoming:
        LOG.info(
            "departures in the next 24 h: %s",
            ", ".join(f"{n.vehicle_id} {n.at.astimezone(ZoneInfo(d.site.site.timezone)):%a %H:%M}" for n in upcoming),
        )
    d.replan.set()
