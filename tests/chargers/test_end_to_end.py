"""Boot → fail-safe → transaction → control profile → the EV follows, for 1.6 and 2.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import Wire, eventually, make_site

EV = EvParams(max_a=16, phases=3, battery_kwh=60, reaction_s=0.5)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_boot_failsafe_transaction_control_ev_follows(
    version: str, server_factory: Callable[..., Any], wire: Wire
) -> None:
    site = make_site()
    events: list[str] = []
    cs = await server_factory(site, emit=lambda e: events.append(e.kind))
    sim = SimCharger(SimOptions("CP1", version=version, tick_s=0.05))
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        st = cs.state("CP1")
        await eventually(lambda: st.failsafe is not None, what="fail-safe installed")
        assert st.ocpp_version == version and st.connected and st.vendor == "depotctl-hil"
        assert sim.composite_a() == 6.0
        assert st.capabilities.max_stack_level == 8 and "A" in st.capabilities.rate_units
        assert set(st.capabilities.measurands) == {
            "Current.Import",
            "Power.Active.Import",
            "Energy.Active.Import.Register",
            "SoC",
        }
        assert sim.meter_interval() == 1.0

        await sim.plug_in(EV, soc_pct=30, id_tag="TAG-BUS1")
        tx = st.transaction(1)
        assert tx is not None and tx.vehicle_id == "BUS-1"
        await eventually(lambda: sim.draw_a() == (6.0, 6.0, 6.0), 2.0, "EV at the fail-safe 6 A")

        result = await cs.control.apply("CP1", 12.0, source="test")
        assert result.status == "accepted", result
        assert result.spec is not None and result.spec.purpose == "TxProfile"
        assert str(result.spec.transaction_id) == str(tx.transaction_id)
        assert sim.composite_a() == 12.0
        assert sim.draw_a() == (6.0, 6.0, 6.0)  # not yet: the EV reacts after its delay
        await eventually(lambda: sim.draw_a() == (12.0, 12.0, 12.0), EV.reaction_s + 0.5, "EV follows")

        def measured() -> bool:
            cur = st.connectors[1].measured.currents()
            return all(c is not None and abs(c - 12.0) < 0.01 for c in cur)

        await eventually(measured, 3.0, "meter values report 12 A")
        assert st.phases_in_use(1) == 3
        m = st.connectors[1].measured
        assert m.soc_pct is not None and m.power_w is not None and m.energy_wh is not None

        session = cs.session("CP1")
        assert session is not None
        composite = await session.composite_schedule(1, 300)
        assert composite.ok, composite
        if version == "1.6":
            periods = composite.payload.charging_schedule["charging_schedule_period"]
        else:
            periods = composite.payload.schedule["charging_schedule_period"]
        ttl = int(site.ocpp.profile_ttl_s)
        assert [(p["start_period"], p["limit"]) for p in periods][:1] == [(0, 12.0)]
        assert any(p["limit"] == 6.0 and ttl - 2 <= p["start_period"] <= ttl + 1 for p in periods)  # then fail-safe

        again = await cs.control.apply("CP1", 12.3)
        assert again.status == "unchanged"  # inside the deadband, TTL not half gone
        budget = cs.control.budget("CP1")
        assert budget.value == 12.0 and budget.until is not None

        await sim.unplug()
        await eventually(lambda: st.transaction(1) is None, what="transaction ended")
        assert {
            "connected",
            "booted",
            "transaction_started",
            "transaction_ended",
            "failsafe_installed",
            "profile_accepted",
        } <= set(events)
    finally:
        await sim.close()
    await eventually(lambda: not cs.state("CP1").connected, what="disconnect noticed")
    assert wire.frames(version) > 20
