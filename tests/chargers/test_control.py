"""Control logic with fake sessions: deadband, refresh, one call per charger, supersede, budget."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from controller.chargers.control import Control
from controller.chargers.events import ChargerEvent
from controller.chargers.profiles import ProfileSpec
from controller.chargers.session import CallOutcome
from controller.chargers.state import Capabilities, ChargerState, Transaction
from controller.model.site import Site
from tests.chargers.conftest import make_site

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeSession:
    version = "1.6"
    frame_hook = None
    on_frame = None
    work_slots = None

    def __init__(self, answers: list[str] | None = None, delay: float = 0.0) -> None:
        self.sent: list[ProfileSpec] = []
        self.answers = answers or []
        self.delay = delay
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None

    async def send_profile(self, spec: ProfileSpec) -> CallOutcome:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            self.sent.append(spec)
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            return CallOutcome(self.answers.pop(0) if self.answers else "Accepted")
        finally:
            self.in_flight -= 1

    async def start(self) -> None: ...

    async def read_capabilities(self) -> Capabilities:
        return Capabilities()

    async def configure_sampling(self, interval_s: int, measurands: tuple[str, ...]) -> tuple[str, ...]:
        return measurands

    async def composite_schedule(self, connector_id: int, duration_s: int) -> CallOutcome:
        return CallOutcome("Rejected")


class Rig:
    def __init__(self, site: Site | None = None, offset_s: float = 0.0) -> None:
        self.site = site or make_site([{"id": f"CP{i}"} for i in range(3)], ttl_s=120)
        self.offset_s = offset_s
        self.clock = FakeClock()
        self.sessions: dict[str, FakeSession] = {}
        self.states: dict[str, ChargerState] = {}
        self.events: list[ChargerEvent] = []
        self.control = Control(self.site, self.sessions.get, self.state, self.clock, self.events.append)  # type: ignore[arg-type]

    def state(self, cid: str) -> ChargerState:
        return self.states.setdefault(cid, ChargerState(cid))

    def plug(self, cid: str, session: FakeSession | None = None, tx: int | None = 5) -> FakeSession:
        s = session or FakeSession()
        self.sessions[cid] = s
        st = self.state(cid)
        st.observe_time(self.clock() + timedelta(seconds=self.offset_s), self.clock())  # a timestamp from it
        if tx is not None:
            st.connector(1).transaction = Transaction(tx, 1, "TAG", None, self.clock())
        return s


async def test_deadband_and_refresh() -> None:
    rig = Rig()
    s = rig.plug("CP0")
    assert (await rig.control.apply("CP0", 16.0)).status == "accepted"
    assert (await rig.control.apply("CP0", 16.4)).status == "unchanged"
    rig.clock.advance(59)
    assert (await rig.control.apply("CP0", 16.0)).status == "unchanged"
    assert rig.control.due_for_refresh() == []
    rig.clock.advance(2)  # past half the TTL
    assert rig.control.due_for_refresh() == [("CP0", 1)]
    assert (await rig.control.apply("CP0", 16.0)).status == "accepted"
    assert (await rig.control.apply("CP0", 17.0)).status == "accepted"  # beyond the deadband
    assert len(s.sent) == 3


async def test_new_transaction_is_resent_even_inside_deadband() -> None:
    rig = Rig()
    s = rig.plug("CP0", tx=5)
    await rig.control.apply("CP0", 16.0)
    rig.state("CP0").connector(1).transaction = Transaction(6, 1, "TAG", None, rig.clock())
    r = await rig.control.apply("CP0", 16.0)
    assert r.status == "accepted" and s.sent[-1].transaction_id == 6


async def test_one_call_per_charger_newest_wins_and_chargers_in_parallel() -> None:
    rig = Rig()
    s = rig.plug("CP0")
    s.gate = asyncio.Event()
    first = asyncio.create_task(rig.control.apply("CP0", 10.0))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(rig.control.apply("CP0", 11.0))
    third = asyncio.create_task(rig.control.apply("CP0", 12.0))
    await asyncio.sleep(0.01)
    s.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, second, third), 2)
    assert [r.status for r in results] == ["accepted", "superseded", "accepted"]
    assert [p.first_limit for p in s.sent] == [10.0, 12.0] and s.max_in_flight == 1

    slow = [rig.plug(f"CP{i}", FakeSession(delay=0.3)) for i in range(3)]
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.wait_for(asyncio.gather(*(rig.control.apply(f"CP{i}", 8.0) for i in range(3))), 2)
    assert loop.time() - t0 < 0.6 and all(x.max_in_flight == 1 for x in slow)


async def test_budget_accepted_until_ttl_then_failsafe_and_unconfirmed() -> None:
    rig = Rig()
    rig.plug("CP0")
    fs = await rig.control.install_failsafe("CP0")
    assert fs.status == "accepted" and rig.state("CP0").failsafe is not None
    b = rig.control.budget("CP0")
    assert (b.value, b.source, b.until) == (6.0, "fail-safe", None)
    await rig.control.apply("CP0", 20.0, [(T0 + timedelta(seconds=60), 25.0)])
    b = rig.control.budget("CP0")
    assert b.value == 25.0 and b.until == T0 + timedelta(seconds=120 + rig.control.skew_s)
    assert rig.control.budget("CP0", b.until - timedelta(seconds=1)).value == 25.0
    assert rig.control.budget("CP0", b.until).value == 6.0
    rig.sessions["CP0"].answers = ["Timeout"]
    r = await rig.control.apply("CP0", 30.0)
    assert r.status == "timeout"
    assert rig.control.budget("CP0").value == 30.0 and rig.control.budget("CP0").source == "unconfirmed profile"


async def test_no_failsafe_means_charger_max_and_never_zero() -> None:
    rig = Rig()
    rig.plug("CP0")
    assert rig.control.budget("CP0").value == 32.0
    await rig.control.install_failsafe("CP0")
    await rig.control.apply("CP0", 0.0)
    assert rig.control.budget("CP0").value == 0.0  # accepted 0 A is what it draws until the TTL
    rig.clock.advance(200)
    assert rig.control.budget("CP0").value == 6.0


async def test_not_connected_and_deferred() -> None:
    site = make_site([{"id": "CP0", "ocpp_quirks": ["stack_level_zero_only"]}])
    rig = Rig(site)
    assert (await rig.control.apply("CP0", 10.0)).status == "not_connected"
    rig.plug("CP0", tx=None)
    assert (await rig.control.apply("CP0", 10.0)).status == "deferred"  # would replace the fail-safe


async def test_fallback_learns_once_and_backs_off_when_nothing_works() -> None:
    rig = Rig()
    s = rig.plug("CP0", FakeSession(answers=["Rejected", "Rejected", "Accepted"]), tx=None)
    r = await rig.control.apply("CP0", 10.0)
    assert r.status == "accepted" and rig.state("CP0").learned_quirks == ("txdefault_on_connector_0",)
    assert [p.connector_id for p in s.sent] == [1, 1, 0]  # power_only tried first (same connector)
    assert any(e.kind == "quirk_learned" for e in rig.events)

    rig2 = Rig()
    s2 = rig2.plug("CP1", FakeSession(answers=["Rejected"] * 20))
    r2 = await rig2.control.apply("CP1", 10.0)
    assert r2.status == "rejected" and 2 <= len(s2.sent) <= 5
    n = len(s2.sent)
    rig2.clock.advance(61)
    await rig2.control.apply("CP1", 12.0)
    assert len(s2.sent) > n + 1  # after the back-off the fallbacks are tried again
    m = len(s2.sent)
    await rig2.control.apply("CP1", 14.0)
    assert len(s2.sent) == m + 1  # within the back-off: one attempt only


@pytest.mark.parametrize(
    "answer,status", [("NotSupported", "rejected"), ("Disconnected", "not_connected"), ("FormationViolation", "failed")]
)
async def test_statuses(answer: str, status: str) -> None:
    rig = Rig()
    rig.plug("CP0", FakeSession(answers=[answer] * 10))
    assert (await rig.control.apply("CP0", 10.0)).status == status


async def test_max_periods_and_dc_units() -> None:
    site = make_site([{"id": "DC1", "kind": "dc", "max_kw": 150, "max_a": None}])
    rig = Rig(site)
    s = rig.plug("DC1")
    rig.state("DC1").capabilities = Capabilities(max_periods=2)
    sched = [(T0 + timedelta(seconds=s_), 50.0 + s_) for s_ in (20, 40, 60)]
    await rig.control.apply("DC1", 40.0, sched)
    spec = s.sent[-1]
    assert spec.unit == "W" and spec.periods[0].limit == 40000.0 and len(spec.periods) == 2
    assert rig.control.budget("DC1").unit == "kW" and rig.control.budget("DC1").value == 70.0


def _with_deadband(site: Site, deadband_a: float) -> Site:
    return dataclasses.replace(site, control=dataclasses.replace(site.control, deadband_a=deadband_a))


async def test_deadband_never_holds_back_a_decrease() -> None:
    """Issue 12 hazard 1: a decrease inside the deadband went out only at the refresh (up to ttl/2)."""
    rig = Rig(_with_deadband(make_site([{"id": "CP0"}], ttl_s=120), 1.0))
    s = rig.plug("CP0")
    assert (await rig.control.apply("CP0", 16.0)).status == "accepted"
    assert (await rig.control.apply("CP0", 16.8)).status == "unchanged"  # an increase may wait
    r = await rig.control.apply("CP0", 15.8)
    assert r.status == "accepted" and s.sent[-1].first_limit == 15.8
    # a lower period later in the schedule is a decrease too
    r = await rig.control.apply("CP0", 15.8, [(T0 + timedelta(seconds=60), 15.5)])
    assert r.status == "accepted" and [p.limit for p in s.sent[-1].periods] == [15.8, 15.5]
    assert len(s.sent) == 3


async def test_a_waiting_decrease_goes_ahead_of_a_waiting_increase() -> None:
    rig = Rig(make_site([{"id": "CP0", "connectors": 3}], ttl_s=120))
    s = rig.plug("CP0", tx=None)
    await rig.control.apply("CP0", 16.0, connector=1)
    await rig.control.apply("CP0", 6.0, connector=2)
    s.gate = asyncio.Event()
    in_flight = asyncio.create_task(rig.control.apply("CP0", 8.0, connector=3))
    await asyncio.sleep(0.01)
    raise_ = asyncio.create_task(rig.control.apply("CP0", 16.0, connector=2))
    await asyncio.sleep(0.01)
    shed = asyncio.create_task(rig.control.apply("CP0", 10.0, connector=1))
    await asyncio.sleep(0.01)
    assert rig.control.ctl("CP0").queue.waiting() == [(("control", 1), True), (("control", 2), False)]
    s.gate.set()
    results = await asyncio.wait_for(asyncio.gather(in_flight, raise_, shed), 2)
    assert [r.status for r in results] == ["accepted"] * 3
    assert [(p.connector_id, p.first_limit) for p in s.sent[2:]] == [(3, 8.0), (1, 10.0), (2, 16.0)]
    assert s.max_in_flight == 1


async def test_superseded_only_drops_an_older_waiting_call_for_the_same_connector() -> None:
    rig = Rig(make_site([{"id": "CP0", "connectors": 2}], ttl_s=120))
    s = rig.plug("CP0", tx=None)
    s.gate = asyncio.Event()
    first = asyncio.create_task(rig.control.apply("CP0", 8.0, connector=1))
    await asyncio.sleep(0.01)
    older = asyncio.create_task(rig.control.apply("CP0", 6.0, connector=2))
    other = asyncio.create_task(rig.control.apply("CP0", 9.0, connector=1))
    await asyncio.sleep(0.01)
    newer = asyncio.create_task(rig.control.apply("CP0", 7.0, connector=2))
    await asyncio.sleep(0.01)
    s.gate.set()
    results = await asyncio.wait_for(asyncio.gather(first, older, other, newer), 2)
    assert [r.status for r in results] == ["accepted", "superseded", "accepted", "accepted"]
    assert sorted((p.connector_id, p.first_limit) for p in s.sent) == [(1, 8.0), (1, 9.0), (2, 7.0)]


async def test_cancelled_waiter_passes_its_turn_on() -> None:
    rig = Rig()
    s = rig.plug("CP0", tx=None)
    s.gate = asyncio.Event()
    first = asyncio.create_task(rig.control.apply("CP0", 8.0, connector=1))
    await asyncio.sleep(0.01)
    doomed = asyncio.create_task(rig.control.apply("CP0", 6.0, connector=2))
    await asyncio.sleep(0.01)
    doomed.cancel()
    s.gate.set()
    await asyncio.wait_for(first, 2)
    assert (await asyncio.wait_for(rig.control.apply("CP0", 7.0, connector=1), 2)).status == "accepted"


async def test_a_charger_with_a_call_stuck_or_timed_out_cannot_be_lowered_soon() -> None:
    """A decrease waits behind the call in flight (one per charger) for up to the call timeout: the
    overload shed must not count on such a charger (``lowerable_now``)."""
    rig = Rig()
    s = rig.plug("CP0", FakeSession(answers=["Accepted", "Timeout", "Accepted"]))
    assert rig.control.lowerable_now("CP0")
    s.gate = asyncio.Event()
    call = asyncio.create_task(rig.control.apply("CP0", 16.0))
    await asyncio.sleep(0.01)
    rig.clock.advance(0.9)
    assert rig.control.lowerable_now("CP0")  # unanswered for a moment: a slow answer, not stuck
    rig.clock.advance(0.2)
    assert not rig.control.lowerable_now("CP0")  # more than STUCK_CALL_S: stuck
    s.gate.set()
    assert (await asyncio.wait_for(call, 2)).status == "accepted"
    assert rig.control.lowerable_now("CP0")
    assert (await rig.control.apply("CP0", 10.0)).status == "timeout"
    assert not rig.control.lowerable_now("CP0")  # its last call timed out: the next may too
    assert (await rig.control.apply("CP0", 8.0)).status == "accepted"
    assert rig.control.lowerable_now("CP0")
