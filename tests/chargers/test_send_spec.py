"""``Control.send_spec`` (a profile sent as built), the holds_last_limit budget rule and
``Control.learn`` — against simulated chargers on loopback, on a clock the test moves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from controller.chargers.control import Control
from controller.chargers.events import ChargerEvent
from controller.chargers.profiles import control_profile
from controller.chargers.server import CentralSystem
from controller.chargers.state import ChargerState
from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site
from tests.hil.central import ManualClock

TTL_S = 30.0
EV = EvParams(max_a=32, phases=3, reaction_s=0.2)
SKEW_S = 10.0  # Control's default margin on every profile end


async def _connected(
    server_factory: Callable[..., Any], chargers: list[dict[str, Any]], **sim: Any
) -> tuple[CentralSystem, dict[str, SimCharger], ManualClock]:
    clock = ManualClock()
    cs = await server_factory(make_site(chargers, ttl_s=TTL_S), clock=clock)
    sims = {ch["id"]: SimCharger(SimOptions(ch["id"], tick_s=0.05, **sim), clock=clock) for ch in chargers}
    for s in sims.values():
        await s.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    await eventually(lambda: all(cs.state(cid).failsafe is not None for cid in sims), what="fail-safes")
    return cs, sims, clock


async def test_send_spec_sends_as_built_and_keeps_it_in_the_book(server_factory: Callable[..., Any]) -> None:
    cs, sims, clock = await _connected(server_factory, [{"id": "CP1"}], quirks=frozenset({"power_only"}))
    sim = sims["CP1"]
    try:
        control = cs.control
        before = len(sim.record.profiles_received)
        target = control.target("CP1")
        in_amps = control_profile(
            replace(target, quirks=target.quirks - {"power_only"}), now=clock(), limit=10.0, ttl_s=TTL_S
        )
        assert in_amps.unit == "A"
        rejected = await control.send_spec("CP1", in_amps)
        assert rejected.status == "rejected" and rejected.detail == "Rejected"
        assert len(sim.record.profiles_received) == before + 1  # no quirk fall-back tried
        assert cs.state("CP1").learned_quirks == () and cs.state("CP1").last_rejection is None
        assert control.budget("CP1").value == pytest.approx(6.0, abs=0.05)  # a rejected profile never counts

        in_watts = control_profile(target, now=clock(), limit=10.0, ttl_s=TTL_S)
        accepted = await control.send_spec("CP1", in_watts)
        assert accepted.status == "accepted" and accepted.spec == in_watts
        assert sim.composite_a() == pytest.approx(10.0, abs=0.05)
        assert control.budget("CP1").value == pytest.approx(10.0, abs=0.05)
        assert cs.state("CP1").accepted[1].spec == in_watts

        failsafe = control.failsafe_spec("CP1")
        assert (await control.send_spec("CP1", failsafe)).status == "accepted"
        assert control.failsafe_installed("CP1")

        await sim.close()
        await eventually(lambda: cs.session("CP1") is None, what="disconnect seen")
        assert (await control.send_spec("CP1", in_watts)).status == "not_connected"
    finally:
        await sim.close()


@pytest.mark.parametrize("how", ["site_file", "learnt"])
async def test_a_charger_holding_its_last_limit_is_budgeted_at_it_until_a_lower_one(
    how: str, server_factory: Callable[..., Any]
) -> None:
    holding = {"id": "HOLD", "ocpp_quirks": ["holds_last_limit"]} if how == "site_file" else {"id": "HOLD"}
    cs, sims, clock = await _connected(server_factory, [holding, {"id": "PLAIN"}])
    try:
        control = cs.control
        if how == "learnt":
            control.learn("HOLD", ["holds_last_limit"])
            assert "holds_last_limit" in control.target("HOLD").quirks
            assert cs.state("HOLD").learned_quirks == ("holds_last_limit",)
        for cid in ("HOLD", "PLAIN"):
            assert (await control.apply(cid, 20.0)).status == "accepted"
            assert control.budget(cid).value == pytest.approx(20.0)
        clock.advance(TTL_S + SKEW_S + 1.0)  # past every end, margin included
        assert control.budget("PLAIN").value == pytest.approx(6.0)  # back on its fail-safe
        held = control.budget("HOLD")
        assert held.value == pytest.approx(20.0) and held.source == "held last limit"

        clock.advance(3600.0)  # an hour later: still held, also after the book was pruned by a send
        elsewhere = control_profile(control.target("HOLD"), now=clock(), limit=5.0, ttl_s=TTL_S, connector_id=0)
        assert (await control.send_spec("HOLD", elsewhere)).status == "accepted"  # another place: prunes the book
        assert control.budget("HOLD").value == pytest.approx(20.0)

        assert (await control.apply("HOLD", 8.0)).status == "accepted"  # a lower one replaces it
        assert control.budget("HOLD").value == pytest.approx(8.0)
        clock.advance(TTL_S + SKEW_S + 1.0)
        assert control.budget("HOLD").value == pytest.approx(8.0)  # now 8 A is what it holds
        assert control.budget("HOLD").source == "held last limit"
    finally:
        for s in sims.values():
            await s.close()


def _ignore(_event: ChargerEvent) -> None:
    return None


def test_learn_names_an_unknown_quirk() -> None:
    states: dict[str, ChargerState] = {}
    control = Control(
        make_site(), lambda _cid: None, lambda cid: states.setdefault(cid, ChargerState(cid)), ManualClock(), _ignore
    )
    with pytest.raises(ValueError, match=r"charger CP1: unknown quirk\(s\) 'holds_everything'"):
        control.learn("CP1", ["power_only", "holds_everything"])
    assert "power_only" not in control.target("CP1").quirks  # all or nothing
    control.learn("CP1", ["power_only", "no_resume_after_zero"])
    assert {"power_only", "no_resume_after_zero"} <= control.target("CP1").quirks
    assert states["CP1"].learned_quirks == ("no_resume_after_zero", "power_only")


async def test_apply_asks_go_when_its_turn_comes_and_sends_nothing_when_told_no(
    server_factory: Callable[..., Any],
) -> None:
    """A plan push queued behind a slow call to a charger that a commissioning run has taken over
    meanwhile: ``go`` is asked once the turn comes, and False drops it unsent."""
    cs, sims, _clock = await _connected(server_factory, [{"id": "CP1"}], slow_answer_s=0.3)
    sim = sims["CP1"]
    try:
        control = cs.control
        await sim.plug_in(EV)
        held = False
        before = len(sim.record.profiles_received)
        first = asyncio.create_task(control.apply("CP1", 10.0, urgent=True))
        await asyncio.sleep(0.05)  # the first call is in flight; the next waits for its turn
        second = asyncio.create_task(control.apply("CP1", 12.0, connector=1, urgent=False, go=lambda: not held))
        await asyncio.sleep(0.05)
        held = True  # the run took the charger while the push waited
        assert (await asyncio.wait_for(first, 5.0)).status == "accepted"
        dropped = await asyncio.wait_for(second, 5.0)
        assert dropped.status == "superseded"
        assert len(sim.record.profiles_received) == before + 1  # only the first went out
        assert (await control.apply("CP1", 12.0, go=lambda: True)).status == "accepted"
    finally:
        await sim.close()
