"""The controller disappears → every charger falls back to the fail-safe when the TTL ends;
reconnects replace old connections; the budget follows the profile's life."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from hil.chargers import SimCharger, SimOptions, reconnect_storm
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site

EV = EvParams(max_a=16, phases=3, reaction_s=0.3)


async def test_server_closed_chargers_fall_back_when_ttl_ends(server_factory: Callable[..., Any]) -> None:
    ttl = 3.0
    site = make_site([{"id": "CP1"}, {"id": "CP2"}], ttl_s=ttl)
    cs = await server_factory(site)
    sims = [
        SimCharger(SimOptions("CP1", version="1.6", tick_s=0.05)),
        SimCharger(SimOptions("CP2", version="2.0.1", tick_s=0.05)),
    ]
    for sim in sims:
        await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        for sim in sims:
            cid = sim.o.charger_id
            await eventually(lambda cid=cid: cs.state(cid).failsafe is not None, what=f"{cid} fail-safe")
            await sim.plug_in(EV, id_tag="TAG-BUS1")
        results = await asyncio.gather(*(cs.control.apply(s.o.charger_id, 16.0) for s in sims))
        assert [r.status for r in results] == ["accepted", "accepted"]
        loop = asyncio.get_running_loop()
        applied_at = loop.time()
        for sim in sims:
            await eventually(lambda sim=sim: sim.draw_a()[0] == 16.0, 1.0, "EV at 16 A")
        budget = cs.control.budget("CP1")
        assert budget.value == 16.0 and budget.source == "accepted profile"
        assert budget.until is not None
        assert cs.control.budget("CP1", budget.until + timedelta(seconds=0.1)).value == 6.0

        await cs.stop()  # the controller dies
        await eventually(lambda: not any(s.connected() for s in sims), 3.0, "links closed")
        assert all(s.composite_a() == 16.0 for s in sims)  # still valid before the TTL
        for sim in sims:
            await eventually(lambda sim=sim: sim.composite_a() == 6.0, ttl + 1.0, "fail-safe after TTL")
            await eventually(lambda sim=sim: sim.draw_a() == (6.0, 6.0, 6.0), 1.0, "EV at fail-safe")
        elapsed = loop.time() - applied_at
        assert ttl - 0.5 <= elapsed <= ttl + 2.0, elapsed
    finally:
        for sim in sims:
            await sim.close()


async def test_reconnect_replaces_the_old_connection(server_factory: Callable[..., Any]) -> None:
    cs = await server_factory(make_site())
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    first, second = SimCharger(SimOptions("CP1")), SimCharger(SimOptions("CP1", version="2.0.1"))
    await first.connect(url)
    await eventually(lambda: cs.state("CP1").failsafe is not None, what="fail-safe")
    old_session = cs.session("CP1")
    await second.connect(url)
    try:
        await eventually(lambda: not first.connected(), 3.0, "old link closed")
        assert cs.session("CP1") is not old_session and cs.counters["replaced"] == 1
        await asyncio.sleep(0.1)
        st = cs.state("CP1")
        assert st.connected and st.ocpp_version == "2.0.1"
        await eventually(lambda: second.composite_a() == 6.0, what="new link set up")
    finally:
        await first.close()
        await second.close()


async def test_reconnect_storm_does_not_stall_control(server_factory: Callable[..., Any]) -> None:
    n = 60
    site = make_site([{"id": f"CP{i}"} for i in range(n)])
    cs = await server_factory(site, frame_hook=None)
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    sims = [SimCharger(SimOptions(f"CP{i}", version="1.6" if i % 2 else "2.0.1", tick_s=1.0)) for i in range(n)]
    await asyncio.gather(*(s.connect(url) for s in sims))
    try:
        await eventually(lambda: all(cs.state(f"CP{i}").failsafe for i in range(n)), 10.0, "all set up")
        await sims[0].plug_in(EV)
        for s in sims[1:]:
            s.store.profiles.clear()  # as if rebooted without keeping profiles: the server must reinstall
        loop = asyncio.get_running_loop()
        storm = asyncio.create_task(reconnect_storm(sims[1:], url, timeout_s=10))
        await asyncio.sleep(0)
        t0 = loop.time()
        result = await cs.control.apply("CP0", 10.0)
        assert result.status == "accepted" and loop.time() - t0 < 1.0
        await asyncio.wait_for(storm, 15.0)
        await eventually(lambda: all(s.composite_a() == 6.0 for s in sims[1:]), 15.0, "fail-safe re-installed")
        assert cs.counters["connections"] == 2 * n - 1
    finally:
        await asyncio.gather(*(s.close() for s in sims))
