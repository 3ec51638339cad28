"""Shared fixtures: a manual clock and a simulated meter server on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hil.meter import MeterSimServer, SimMeter


class ManualClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def sdm() -> AsyncIterator[MeterSimServer]:
    meter = SimMeter(1, "eastron-sdm630")
    meter.set_load(base_a=(10.0, 12.0, 8.0), ev_a=(16.0, 16.0, 16.0))
    server = MeterSimServer([meter])
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
