"""Fixtures for the simulated CSMS's tests: a pinned clock moved by hand, a started CSMS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hil.csms import CsmsOptions, SimCsms
from tests.hil.central import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def csms(clock: ManualClock) -> AsyncIterator[SimCsms]:
    c = SimCsms(clock, CsmsOptions(id_tags={"TAG": "Accepted", "BLOCKED": "Blocked"}, call_timeout_s=3.0))
    await c.start()
    yield c
    await c.stop()
