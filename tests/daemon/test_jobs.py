"""The daemon's background jobs on a real history database."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from controller.api.models import StatusResponse
from controller.config.loader import load_site
from controller.daemon import jobs
from controller.daemon.fleet import FleetPorts, FleetService
from controller.model.site import Site, Storage
from controller.store import Event, MeterSample, SessionStart, SessionStop, Store
from controller.store.records import EventKind, Record
from controller.store.schema import connect

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@dataclass
class Recorded:
    """A recorder that keeps what it is given."""

    records: list[Record] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def put(self, record: Record) -> None:
        self.records.append(record)

    def event(
        self, kind: EventKind, detail: str, *, charger_id: str | None = None, circuit_id: str | None = None
    ) -> None:
        self.events.append(f"{kind}: {detail}")


@dataclass
class NoSessions:
    def assign(self, sid: str, charger_id: str, connector: int, vehicle_id: str) -> None:
        raise AssertionError("no session runs here")


def _no_status() -> StatusResponse:
    raise AssertionError("the jobs never ask for the status")


@dataclass
class World:
    """What the jobs are wired to: the site, a pinned clock, a recorder, the fleet, re-plans asked."""

    site: Site
    recorder: Recorded = field(default_factory=Recorded)
    replans: int = 0

    def clock(self) -> datetime:
        return NOW

    def replan(self) -> None:
        self.replans += 1

    def ports(self) -> jobs.JobPorts:
        fleet = FleetService(FleetPorts(
            site=lambda: self.site, clock=self.clock, recorder=self.recorder, replan=self.replan, states={},
            sessions=NoSessions(), outcome=lambda: None, status=_no_status,
        ))
        return jobs.JobPorts(
            site=lambda: self.site, clock=self.clock, recorder=self.recorder, upcoming=fleet.upcoming,
            replan=self.replan,
        )


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
    world = World(_site(db))
    await jobs.retention(world.ports())
    conn = connect(db)
    try:
        times = [row[0] for row in conn.execute("SELECT at FROM meter_readings")]
        sessions = [row[0] for row in conn.execute("SELECT session_id FROM sessions")]
    finally:
        conn.close()
    assert times == [recent.timestamp()]
    assert sessions == [f"CP01:{recent.day}"]
    assert any(e.startswith("info: retention deleted") for e in world.recorder.events)


async def test_departures_job_expands_the_next_day_and_replans(tmp_path: Path) -> None:
    world = World(_site(tmp_path / "depot.db"))
    upcoming = await jobs.departures(world.ports())
    # demo-site: BUS-01 mon–sat 05:30, VAN-01 mon–fri 06:30, VAN-02 mon–fri 07:00 (Europe/Amsterdam);
    # 2026-11-26 is a Thursday, so the next 24 h hold Friday's three
    assert [n.vehicle_id for n in upcoming] == ["BUS-01", "VAN-01", "VAN-02"]
    assert upcoming[0].at == datetime(2026, 11, 27, 4, 30, tzinfo=UTC)
    assert world.replans == 1
