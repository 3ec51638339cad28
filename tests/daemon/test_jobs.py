"""The daemon's background jobs on a real history database."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.config.loader import load_site
from controller.daemon import jobs
from controller.daemon.fleet import FleetService
from controller.fleet.departures import DepartureNeed
from controller.model.site import Site, Storage
from controller.store import Event, MeterSample, SessionStart, SessionStop, Store
from controller.store.schema import connect

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass
class _Replan:
    fired: int = 0

    def set(self) -> None:
        self.fired += 1


@dataclass
class _Daemon:
    """The part of ``Daemon`` the jobs use."""

    site: Site
    events: list[str] = field(default_factory=list)
    replan: _Replan = field(default_factory=_Replan)
    fleet: FleetService = field(init=False)
    upcoming: list[DepartureNeed] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fleet = FleetService(self)  # type: ignore[arg-type]

    def clock(self) -> datetime:
        return NOW

    def record_event(self, kind: str, detail: str) -> None:
        self.events.append(f"{kind}: {detail}")


def _site(db: Path) -> Site:
    site = load_site("config/demo-site.yaml").site
    return replace(site, storage=Storage(path=str(db), retention_days=30))


async def test_retention_deletes_old_rows_and_records_it(tmp_path: Path) -> None:
    db = tmp_path / "depot.db"
    store = Store(db, meter_interval_s=0.0)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)
    for at in (old, recent):
        store.put(MeterSample("grid-meter", at, (1.0, 2.0, 3.0)))
        store.put(SessionStart(f"CP01:{at.day}", "CP01", 1, None, at))
        store.put(SessionStop(f"CP01:{at.day}", "CP01", 1, None, at + timedelta(hours=1), 5.0, None))
        store.put(Event(at, "info", "x"))
    assert await store.aclose()
    d = _Daemon(_site(db))
    await jobs.retention(d)  # type: ignore[arg-type]
    conn = connect(db)
    try:
        times = [row[0] for row in conn.execute("SELECT at FROM meter_readings")]
        sessions = [row[0] for row in conn.execute("SELECT session_id FROM sessions")]
    finally:
        conn.close()
    assert times == [recent.timestamp()]
    assert sessions == [f"CP01:{recent.day}"]
    assert any(e.startswith("info: retention deleted") for e in d.events)


async def test_departures_job_expands_the_next_day_and_replans(tmp_path: Path) -> None:
    d = _Daemon(_site(tmp_path / "depot.db"))
    await jobs.departures(d)  # type: ignore[arg-type]
    # demo-site: BUS-01 mon–sat 05:30, VAN-01 mon–fri 06:30, VAN-02 mon–fri 07:00 (Europe/Amsterdam);
    # 2026-11-26 is a Thursday, so the next 24 h hold Friday's three
    assert [n.vehicle_id for n in d.upcoming] == ["BUS-01", "VAN-01", "VAN-02"]
    assert d.upcoming[0].at == datetime(2026, 11, 27, 4, 30, tzinfo=UTC)
    assert d.replan.fired == 1
