from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.store import (
    AcceptedProfile,
    Allocation,
    ChargerRecord,
    Departure,
    Event,
    MeterSample,
    Record,
    SessionStart,
    SessionStop,
    Store,
)

T0 = datetime(2026, 3, 2, 8, 0, 0, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def one_of_each() -> list[Record]:
    return [
        ChargerRecord("cp1", "feeder-a", "ac", 3, 2, 32.0, None, at(0)),
        SessionStart("s1", "cp1", 1, "bus-7", at(1), energy_need_kwh=120.0),
        SessionStart("s2", "cp1", 2, None, at(2)),
        SessionStop("s2", "cp1", 2, None, at(900), energy_kwh=3.5, met_departure=None),
        MeterSample("grid", at(3), (101.5, 99.0, 97.25), 68_000.0),
        Allocation(at(4), "cp1", "s1", 16.0, "A", "circuit feeder-a L2", "highs"),
        Allocation(at(4), "dc1", None, 50.0, "kW", "grid kW", "heuristic"),
        Event(at(5), "failsafe_enter", "grid meter stale"),
        Event(at(6), "reject", "SetChargingProfile Rejected", charger_id="cp1", circuit_id="feeder-a"),
        Departure("d1", "bus-7", at(7), departure_at=at(36_000), energy_kwh=120.0),
        Departure("d2", "van-3", at(8), recurring="mon,tue 06:30", target_soc_pct=80.0),
        AcceptedProfile("cp1", 1, 16.0, "A", at(600), at(9)),
        AcceptedProfile("dc1", 0, 11_000.0, "W", None, at(10)),
        AcceptedProfile(
            "cp1", 2, 32.0, "A", at(300), at(11), (32.0, 16.0), (0, 120), at(6), "TxProfile", stack_level=1
        ),
        AcceptedProfile("cp1", 0, 6.0, "A", None, at(2), (6.0,), (0,), None, "failsafe", stack_level=0),
    ]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "depot.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(db_path, batch_interval_s=0.05)
    yield s
    s.close(timeout_s=5.0)
