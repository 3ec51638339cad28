"""Each quirk in KNOWN_QUIRKS: a simulated charger with it ends up controlled; unconfigured quirks are
learnt from Rejected answers and capabilities."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from controller.config.schema import KNOWN_QUIRKS
from hil.chargers import SimCharger, SimOptions, SimProfile
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site
from tests.hil.central import ManualClock

EV = EvParams(max_a=32, phases=3, reaction_s=0.2)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("quirk", KNOWN_QUIRKS)
async def test_configured_quirk_ends_up_controlled(
    quirk: str, version: str, server_factory: Callable[..., Any]
) -> None:
    cs = await server_factory(make_site([{"id": "CP1", "ocpp_quirks": [quirk]}]))
    sim = SimCharger(SimOptions("CP1", version=version, quirks=frozenset({quirk}), tick_s=0.05))
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        st = cs.state("CP1")
        await eventually(lambda: st.failsafe is not None, what="fail-safe")
        assert sim.composite_a() == pytest.approx(6.0, abs=0.01)
        await sim.plug_in(EV)
        result = await cs.control.apply("CP1", 10.0)
        assert result.status == "accepted", result
        assert sim.composite_a() == pytest.approx(10.0, abs=0.01)
        await eventually(lambda: abs(sim.draw_a()[0] - 10.0) < 0.01, 1.0, "EV follows")
        zero = await cs.control.apply("CP1", 0.0)
        assert zero.status == "accepted", zero
        expected_zero = 6.0 if quirk == "no_resume_after_zero" else 0.1 if quirk == "no_zero_limit" else 0.0
        assert sim.composite_a() == pytest.approx(expected_zero, abs=0.01)
        assert cs.control.budget("CP1").value == pytest.approx(max(expected_zero, 0.0), abs=0.01)
        await eventually(
            lambda: sim.draw_a()[0] == (6.0 if quirk == "no_resume_after_zero" else 0.0),
            1.0,
            "EV paused (or at minimum)",
        )
        assert st.learned_quirks == ()
    finally:
        await sim.close()


@pytest.mark.parametrize(
    "quirk", ["txdefault_on_connector_0", "relative_profiles", "power_only", "no_zero_limit", "stack_level_zero_only"]
)
async def test_unconfigured_quirk_is_learnt(quirk: str, server_factory: Callable[..., Any]) -> None:
    events: list[Any] = []
    cs = await server_factory(make_site(), emit=events.append)
    sim = SimCharger(SimOptions("CP1", quirks=frozenset({quirk}), tick_s=0.05))
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        st = cs.state("CP1")
        await eventually(lambda: st.failsafe is not None, what="fail-safe (maybe after fallback)")
        if quirk == "txdefault_on_connector_0":  # only bites without a transaction
            result = await cs.control.apply("CP1", 10.0)
        else:
            await sim.plug_in(EV)
            result = await cs.control.apply("CP1", 0.0 if quirk == "no_zero_limit" else 10.0)
        assert result.status == "accepted", result
        if quirk in ("power_only", "stack_level_zero_only"):
            assert quirk not in st.learned_quirks  # known from the capabilities, nothing rejected
        else:
            assert quirk in st.learned_quirks
            assert st.last_rejection is not None and st.counters["profile_rejected"] >= 1
            tried = len(sim.record.profile_answers)
            assert sim.record.profile_answers.count("Accepted") >= 1 and tried <= 5  # no pointless retries
            assert any(e.kind == "quirk_learned" for e in events)
    finally:
        await sim.close()


async def test_charger_rejecting_everything_is_budgeted_at_its_max(server_factory: Callable[..., Any]) -> None:
    cs = await server_factory(make_site([{"id": "CP1", "max_a": 32}]))
    sim = SimCharger(SimOptions("CP1", reject_profiles=True))
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        await eventually(lambda: "SetChargingProfile" in sim.record.calls_received, what="fail-safe tried")
        await eventually(lambda: cs.state("CP1").last_rejection is not None, what="rejection recorded")
        await sim.plug_in(EV)
        result = await cs.control.apply("CP1", 10.0)
        assert result.status == "rejected"
        assert cs.control.budget("CP1").value == 32.0  # no fail-safe installed: the charger's own max
    finally:
        await sim.close()


async def test_slow_charger_times_out_and_stays_budgeted_high(server_factory: Callable[..., Any]) -> None:
    site = make_site(call_timeout_s=0.5)
    cs = await server_factory(site)
    sim = SimCharger(SimOptions("CP1", tick_s=0.05))
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        await eventually(lambda: cs.state("CP1").failsafe is not None, what="fail-safe")
        await sim.plug_in(EV)
        sim.o.slow_answer_s = 1.5
        result = await cs.control.apply("CP1", 20.0)
        assert result.status == "timeout"
        assert cs.control.budget("CP1").value == 20.0  # it may have applied it
        assert cs.control.budget("CP1").source == "unconfirmed profile"
    finally:
        await sim.close()


@pytest.mark.parametrize("quirks", [(), ("holds_last_limit",)])
async def test_the_holds_last_limit_quirk_holds_the_last_period_until_valid_to(quirks: tuple[str, ...]) -> None:
    """A schedule whose duration ends before its validTo: the rig charger with the quirk keeps the
    last period until validTo (as ``schedule_end="hold_last"``); without it, it falls back."""
    clock = ManualClock()
    sim = SimCharger(SimOptions("CP1", quirks=frozenset(quirks)), clock=clock)  # schedule_end: fall_back
    start = clock()
    profile = SimProfile(
        profile_id=101,
        connector_id=1,
        stack_level=1,
        purpose="TxDefaultProfile",
        kind="Absolute",
        unit="A",
        periods=((0, 10.0, None), (5, 16.0, None)),
        start_schedule=start,
        duration_s=10,
        valid_to=start + timedelta(seconds=60),
    )
    assert await sim.answer_profile(profile, {}) == "Accepted"
    clock.advance(7.0)
    assert sim.composite_a() == 16.0
    clock.advance(10.0)  # the duration is over, validTo is not
    assert sim.composite_a() == (16.0 if quirks else None)
    clock.advance(60.0)
    assert sim.composite_a() is None
