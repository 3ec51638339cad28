"""Fixtures shared by the charger-rig tests: a pinned clock and a small central system on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.hil.central import ManualClock, MiniCentral


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def central(clock: ManualClock) -> AsyncIterator[MiniCentral]:
    c = MiniCentral(clock, response_timeout_s=2.0)
    await c.start()
    yield c
    await c.stop()
