"""Faults are faults (issue 12, hazard 12): a fast cycle that raises is an unhealthy cycle — no
watchdog ping after it, fail-safe once it persists as long as a meter may be stale — and a plan
loop that stops planning while sessions run is a fault too. Closed loop against the rig."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import controller.daemon.fast as fast
import controller.daemon.plan_loop as plan_loop
from controller.daemon.core import DaemonOptions
from controller.daemon.sdnotify import Notifier
from tests.daemon.rigged import rigged, steady, wait_async, wait_for

FAILSAFE_A = 6.0


class Recorder(Notifier):
    """What the daemon tells systemd, in order (no socket)."""

    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[str] = []

    def send(self, *fields: str) -> bool:
        self.sent.extend(fields)
        return True


async def test_a_fast_cycle_that_raises_pets_no_watchdog_and_ends_in_failsafe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notes = Recorder()
    async with rigged(tmp_path, options=DaemonOptions(handle_signals=False, notifier=notes)) as r:
        await steady(r)
        assert r.daemon is not None
        stale_after_s = max(m.stale_after_s for m in r.daemon.site.meters)

        def broken(*_a: object, **_k: object) -> None:
            raise RuntimeError("a bug in the fast cycle")

        monkeypatch.setattr(fast, "known_loads", broken)
        await asyncio.sleep(1.5)  # the cycle in flight may still complete
        pings_before = notes.sent.count("WATCHDOG=1")

        def all_failsafe() -> bool:
            return all((r.rig.sim(c).composite_a() or 99.0) <= FAILSAFE_A + 1e-6 for c in ("CP07", "CP08"))

        await wait_for(all_failsafe, stale_after_s + 4.0, "every charger at its fail-safe limit")
        status = await r.status()
        assert status["failsafe"]["active"] and "control cycle failing" in status["failsafe"]["reason"]
        assert notes.sent.count("WATCHDOG=1") == pings_before  # not one ping since the fault

        monkeypatch.undo()

        async def normal() -> bool:
            return not (await r.status())["failsafe"]["active"]

        await wait_async(normal, 15, "normal once the cycles complete again")
        await wait_for(lambda: notes.sent.count("WATCHDOG=1") > pings_before, 5, "the watchdog petted again")


async def test_a_stalled_plan_loop_is_a_fault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notes = Recorder()
    async with rigged(tmp_path, options=DaemonOptions(handle_signals=False, notifier=notes)) as r:
        await steady(r)
        assert r.daemon is not None
        stall = asyncio.Event()
        real = plan_loop.plan_cycle

        async def stuck(loop: plan_loop.PlanLoop) -> object:
            await stall.wait()  # a planner that never returns
            return await real(loop)

        monkeypatch.setattr(plan_loop, "plan_cycle", stuck)
        periods = plan_loop.PLAN_STALL_PERIODS * r.daemon.site.control.plan_every_s

        async def failsafe() -> bool:
            status = await r.status()
            return bool(status["failsafe"]["active"] and "plan loop stalled" in status["failsafe"]["reason"])

        await wait_async(failsafe, periods + 2 * r.daemon.site.control.plan_every_s + 3, "fail-safe: plan stalled")
        pings = notes.sent.count("WATCHDOG=1")
        await asyncio.sleep(2.5)
        assert notes.sent.count("WATCHDOG=1") == pings  # no ping while the plan loop is stalled
        await wait_for(
            lambda: all((r.rig.sim(c).composite_a() or 99.0) <= FAILSAFE_A + 1e-6 for c in ("CP07", "CP08")),
            5, "chargers at fail-safe")
        stall.set()
