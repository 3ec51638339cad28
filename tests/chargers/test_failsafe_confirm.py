"""Issue 12 hazard 13: the fail-safe profile is confirmed, retried and re-installed.

A failed install is retried with bounded exponential back-off while the charger stays connected
(and stops when it goes); a BootNotification (the charger may have lost its profiles) makes it
unconfirmed and re-installs it; a changed ``failsafe.*`` on reload goes to every connected charger,
budgeted at max(old, new) until accepted. Until confirmed, a charger is budgeted at its maximum.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.model.site import Failsafe
from tests.chargers.conftest import eventually, make_site
from tests.chargers.scripted import LoopClock, ScriptedCharger
from tests.chargers.test_control import FakeSession, Rig

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
FAST_RETRY = (0.05, 0.2)


def failsafe_frames(ch: ScriptedCharger) -> list[dict[str, Any]]:
    out = []
    for p in ch.profiles():
        profile = p.get("csChargingProfiles") or p.get("chargingProfile") or {}
        if profile.get("stackLevel") == 0 and p.get("connectorId", p.get("evseId")) == 0:
            out.append(profile)
    return out


def failsafe_limit(profile: dict[str, Any]) -> float:
    schedule = profile["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return float(schedule["chargingSchedulePeriod"][0]["limit"])


class Rejecting:
    """Answers the first ``n`` SetChargingProfile calls Rejected."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "SetChargingProfile" and self.n > 0:
            self.n -= 1
            return {"status": "Rejected"}
        return None


async def test_retry_backs_off_exponentially_up_to_a_bound_until_accepted() -> None:
    rig = Rig()
    s = rig.plug("CP0", FakeSession(answers=["Rejected"] * 12))
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)
        rig.clock.advance(seconds)

    rig.control._sleep = sleep
    task = rig.control.keep_failsafe("CP0")
    assert task is not None
    result = await asyncio.wait_for(task, 2)
    assert result.status == "accepted" and rig.control.failsafe_installed("CP0")
    assert delays[:5] == [2.0, 4.0, 8.0, 16.0, 32.0] and max(delays) == 60.0
    assert rig.state("CP0").failsafe_confirmed and s.sent[-1].stack_level == 0
    assert rig.control.counters["failsafe_retry"] == len(delays)


async def test_retry_stops_when_the_charger_goes() -> None:
    rig = Rig()
    s = rig.plug("CP0", FakeSession(answers=["Rejected"] * 1000))
    gate = asyncio.Event()

    async def sleep(_seconds: float) -> None:
        await gate.wait()

    rig.control._sleep = sleep
    task = rig.control.keep_failsafe("CP0")
    assert task is not None
    await asyncio.sleep(0.01)
    sent = len(s.sent)
    del rig.sessions["CP0"]
    rig.control.connection_lost("CP0")
    gate.set()
    await asyncio.wait({task}, timeout=1)
    assert task.done() and len(s.sent) == sent
    assert rig.control.keep_failsafe("CP0") is None  # not connected: nothing to retry


async def test_rejected_failsafe_is_retried_over_ocpp_and_budgeted_at_max_meanwhile(
    server_factory: Callable[..., Any],
) -> None:
    clock = LoopClock(T0)
    cs = await server_factory(make_site(), clock=clock, failsafe_retry_s=(0.3, 0.6))
    # attempt 1 and its two fallbacks, then attempt 2 (fallbacks back off for a minute): rejected
    ch = ScriptedCharger("CP1", clock, answer=Rejecting(4))
    await ch.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        await ch.boot()
        await eventually(lambda: len(ch.profiles()) >= 3, what="first attempt")
        assert not cs.control.failsafe_installed("CP1")
        b = cs.control.budget("CP1")
        assert (b.value, b.source) == (32.0, "charger max (no fail-safe installed)")
        await eventually(lambda: cs.control.failsafe_installed("CP1"), 5.0, "fail-safe after retries")
        assert len(ch.profiles()) == 5 and cs.state("CP1").learned_quirks == ()
        assert cs.state("CP1").failsafe_confirmed
        b = cs.control.budget("CP1")
        assert (b.value, b.source) == (6.0, "fail-safe")
    finally:
        await ch.close()


@pytest.mark.parametrize("new_a", [8.0, 4.0])
async def test_reload_with_a_new_failsafe_value_reinstalls_it(new_a: float, server_factory: Callable[..., Any]) -> None:
    clock = LoopClock(T0)
    site = make_site([{"id": "CP1"}, {"id": "CP2"}])
    cs = await server_factory(site, clock=clock, failsafe_retry_s=FAST_RETRY)
    chargers = [ScriptedCharger(cid, clock, version=v) for cid, v in (("CP1", "1.6"), ("CP2", "2.0.1"))]
    for ch in chargers:
        await ch.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
        await ch.boot()
    try:
        await eventually(lambda: all(cs.control.failsafe_installed(c.charger_id) for c in chargers), what="set up")
        cs.reload(dataclasses.replace(site, failsafe=Failsafe(charger_a=new_a, dc_kw=10.0)))
        for ch in chargers:
            cid = ch.charger_id
            assert not cs.control.failsafe_installed(cid) and not cs.state(cid).failsafe_confirmed
            assert cs.control.budget(cid).value == max(6.0, new_a)  # old or new may bind meanwhile
        for ch in chargers:
            await eventually(lambda ch=ch: cs.control.failsafe_installed(ch.charger_id), what="new fail-safe")
            assert failsafe_limit(failsafe_frames(ch)[-1]) == new_a
            assert cs.control.budget(ch.charger_id).value == new_a
    finally:
        for ch in chargers:
            await ch.close()


async def test_boot_later_in_a_connection_reinstalls_the_failsafe(server_factory: Callable[..., Any]) -> None:
    clock = LoopClock(T0)
    cs = await server_factory(make_site(), clock=clock, failsafe_retry_s=FAST_RETRY, boot_grace_s=0.1)
    ch = ScriptedCharger("CP1", clock)
    await ch.connect(f"ws://127.0.0.1:{cs.port}/ocpp")  # reconnects without booting
    try:
        await eventually(lambda: cs.control.failsafe_installed("CP1"), what="set up after the grace")
        assert len(failsafe_frames(ch)) == 1
        await ch.boot()  # it rebooted after all: its profiles may be gone
        assert not cs.control.failsafe_installed("CP1") or len(failsafe_frames(ch)) == 2
        await eventually(lambda: len(failsafe_frames(ch)) == 2, what="re-installed")
        await eventually(lambda: cs.control.failsafe_installed("CP1"), what="confirmed again")
    finally:
        await ch.close()


async def test_reconnect_with_boot_unconfirms_until_reinstalled(server_factory: Callable[..., Any]) -> None:
    clock = LoopClock(T0)
    cs = await server_factory(make_site(), clock=clock, failsafe_retry_s=FAST_RETRY)
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    first = ScriptedCharger("CP1", clock)
    await first.connect(url)
    await first.boot()
    await eventually(lambda: cs.control.failsafe_installed("CP1"), what="set up")
    await first.start_transaction()
    assert (await cs.control.apply("CP1", 10.0)).status == "accepted"
    assert cs.control.budget("CP1").value == 10.0
    await first.close()
    await eventually(lambda: not cs.state("CP1").connected, what="link down")
    assert cs.control.budget("CP1").value == 10.0  # out of contact: what it accepted, until it ends
    second = ScriptedCharger("CP1", clock, answer=Rejecting(1000))  # rebooted, and now refuses
    await second.connect(url)
    try:
        await second.boot()
        assert cs.control.budget("CP1").value == 32.0  # it may have lost every profile
        await eventually(lambda: len(second.profiles()) >= 2, what="re-install tried, and retried")
        assert not cs.control.failsafe_installed("CP1") and cs.control.budget("CP1").value == 32.0
        second.answer = None
        await eventually(lambda: cs.control.failsafe_installed("CP1"), 5.0, "re-installed")
        assert cs.control.budget("CP1").value == 10.0  # the old TxProfile may still be held until it ends
    finally:
        await second.close()
