"""The rig: plant arithmetic, meters over real Modbus, a closed loop with the real central system,
ground-truth accounting, the demo day, the re-pointed site file."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.chargers.server import CentralSystem
from controller.config.loader import load_site, load_site_text
from controller.meter.meters import SiteMeters
from controller.model.site import Site, dc_phase_current_a
from hil.chargers.composite import RunningTx
from hil.ev import EvParams, EvState
from hil.rig import Announce, BaseStep, Rig, RigDay, Visit, demo_day, free_port, max_energy_kwh, rig_site_text
from hil.rig.__main__ import main as rig_main
from hil.rig.plant import GroundTruth, meter_currents, node_loads, sim_ev, sim_max_a
from tests.chargers.conftest import eventually

SITE = """\
version: 1
site: {name: rig test, timezone: UTC, voltage_v: 230}
grid: {limit_a: 100, margin_a: 2, meter: grid-meter}
meters:
  - {id: grid-meter, preset: eastron-sdm630, modbus: {host: 127.0.0.1, port: 15020, unit: 1}}
  - {id: feeder-meter, preset: carlo-gavazzi-em340, modbus: {host: 127.0.0.1, port: 15020, unit: 2}}
circuits:
  - {id: feeder, limit_a: 50, meter: feeder-meter}
  - {id: sub, parent: feeder, limit_a: 32}
chargers:
  - {id: CP1, circuit: sub, phases: 3, phase_rotation: L2-L3-L1, max_a: 32}
  - {id: CP2, circuit: feeder, phases: 1, phase_rotation: L3, max_a: 16}
  - {id: DC1, circuit: grid, kind: dc, max_kw: 30, efficiency: 0.95, power_factor: 0.99}
failsafe: {charger_a: 16, dc_kw: 10}
ocpp: {listen: "127.0.0.1:19000", security_profile: 0, meter_sample_s: 1, call_timeout_s: 2}
vehicles: [{id: VAN-1, id_tags: [TAG-VAN1]}]
api: {listen: "127.0.0.1:18080"}
metrics: {listen: "127.0.0.1:19464"}
"""
ENDPOINT = "127.0.0.1:15020"
EV = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.4)


@pytest.fixture
def site() -> Site:
    return load_site_text(SITE).site


def approx3(a: tuple[float, float, float], b: tuple[float, float, float], tol: float = 0.02) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


async def site_meters(tmp_path: Path, rig: Rig) -> SiteMeters:
    """The daemon's meter readers, pointed at the rig through a re-pointed site file."""
    src = tmp_path / "site.yaml"
    src.write_text(SITE)
    text = rig_site_text(
        src,
        meter_ports=rig.meter_ports,
        ocpp_port=free_port(),
        api_port=free_port(),
        metrics_port=free_port(),
        storage_path=tmp_path / "depot.db",
    )
    return SiteMeters(load_site_text(text).site)


async def read_a(meters: SiteMeters, meter_id: str) -> tuple[float, float, float]:
    result = await meters.reader(meter_id).poll()
    assert result.reading is not None, result.error
    return result.reading.current_a


# --- plant -----------------------------------------------------------------------------------------


def test_node_loads_sum_children_and_rotate_phases(site: Site) -> None:
    base = {"grid": (1.0, 2.0, 3.0), "feeder": (10.0, 0.0, 0.0), "sub": (0.0, 0.0, 5.0)}
    draws = {"CP1": (10.0, 20.0, 30.0), "CP2": (7.0, 99.0, 99.0)}  # CP2 is 1-phase: L2/L3 are not wired
    loads = node_loads(site, base, draws)
    assert loads["sub"] == (30.0, 10.0, 25.0)  # CP1 L1→grid L2, L2→L3, L3→L1
    assert loads["feeder"] == (40.0, 10.0, 32.0)  # + own 10 on L1, CP2's 7 A on grid L3
    assert loads["grid"] == (41.0, 12.0, 35.0)
    assert meter_currents(site, loads) == {"grid-meter": loads["grid"], "feeder-meter": loads["feeder"]}
    with pytest.raises(KeyError, match="nope"):
        node_loads(site, {"nope": (1.0, 1.0, 1.0)}, {})


def test_dc_is_a_three_phase_load_at_its_grid_current(site: Site) -> None:
    dc = site.charger("DC1")
    grid_a = dc_phase_current_a(30.0, 230.0, 0.95, 0.99)
    assert sim_max_a(site, dc) == pytest.approx(grid_a)
    ev = sim_ev(site, dc, EV, ev_max_kw=20.0)
    assert ev.phases == 3 and ev.max_a == pytest.approx(dc_phase_current_a(20.0, 230.0, 0.95, 0.99))
    # a W limit the controller sends becomes, in the sim, the grid current at that power
    assert 10_000.0 / (3 * ev.voltage_v) == pytest.approx(dc_phase_current_a(10.0, 230.0, 0.95, 0.99))
    assert node_loads(site, {}, {"DC1": (grid_a, grid_a, grid_a)})["grid"] == pytest.approx((grid_a,) * 3)
    assert sim_ev(site, site.charger("CP2"), EV).phases == 1  # a 3-phase EV on a 1-phase charger


def test_ground_truth_counts_time_above_the_rating_not_the_margin(site: Site) -> None:
    truth = GroundTruth(site)
    zero = dict.fromkeys(site.node_ids(), (0.0, 0.0, 0.0))
    high = {**zero, "grid": (99.0, 101.0, 0.0), "sub": (40.0, 0.0, 0.0)}  # 99 A: inside the margin, not over
    assert {(n, p, up) for n, p, up, _ in truth.observe(high, 1.0)} == {("grid", 1, True), ("sub", 0, True)}
    truth.hold(high, 2.5)
    assert truth.observe(zero, 3.5) == [("grid", 1, False, 1.0), ("sub", 0, False, 1.0)]
    truth.hold(zero, 10.0)
    assert truth.exceeded()["grid"] == (0.0, 2.5, 0.0) and truth.exceeded()["sub"] == (2.5, 0.0, 0.0)
    assert truth.max_utilisation["grid"] == pytest.approx(1.01)
    assert truth.max_utilisation["sub"] == pytest.approx(40.0 / 32.0)
    assert truth.peaks()["grid"] == (99.0, 101.0, 0.0)


# --- the rig on a fake clock -------------------------------------------------------------------------


async def test_exceedance_and_base_steps_on_the_rig_clock(site: Site) -> None:
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    now = [0.0]

    def clock() -> datetime:
        return t0 + timedelta(seconds=now[0])

    day = RigDay(10.0, (BaseStep(0.0, "grid", (10.0, 10.0, 10.0)), BaseStep(5.0, "feeder", (55.0, 0.0, 0.0))))
    async with Rig(site, day, meter_ports={ENDPOINT: 0}, clock=clock, tick_s=0.02, noise_a=0.0) as rig:
        now[0] = 4.0
        rig.tick()
        assert rig.loads()["grid"] == (10.0, 10.0, 10.0) and rig.exceeded_s["grid"] == (0.0, 0.0, 0.0)
        now[0] = 5.0
        rig.tick()  # the feeder step: 55 A on a 50 A feeder, 65 A on the grid
        assert rig.loads()["feeder"] == (55.0, 0.0, 0.0)
        now[0] = 7.5
        rig.set_base("feeder", (0.0, 0.0, 0.0))  # overrides the day's step from now on
        assert rig.exceeded_s["feeder"] == pytest.approx((2.5, 0.0, 0.0))
        assert rig.exceeded_s["grid"] == (0.0, 0.0, 0.0)  # 65 A < 100 A
        now[0] = 9.0
        rig.tick()
        assert rig.exceeded_s["feeder"] == pytest.approx((2.5, 0.0, 0.0))
        s = rig.summary()
        assert s.max_utilisation["feeder"] == pytest.approx(1.1) and s.max_load_a["grid"][0] == 65.0
        assert s.exceeded_s["feeder"][0] == pytest.approx(2.5) and s.elapsed_s == 9.0


async def test_base_load_flickers_within_the_noise(site: Site) -> None:
    day = RigDay(1.0, (BaseStep(0.0, "grid", (10.0, 10.0, 0.0)),))
    async with Rig(site, day, meter_ports={ENDPOINT: 0}, noise_a=0.2, seed=3) as rig:
        seen = set()
        for _ in range(5):
            rig.tick()
            grid = rig.loads()["grid"]
            assert rig.sim_meter("grid-meter").state.current_a == pytest.approx(grid)
            assert all(abs(a - 10.0) <= 0.2 for a in grid[:2]) and grid[2] == 0.0  # a zero load stays zero
            seen.add(grid)
        assert len(seen) == 5  # a real meter's registers never sit still


async def test_a_visit_whose_charger_stays_offline_is_missed(site: Site) -> None:
    t0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    now = [0.0]
    day = RigDay(3.0, visits=(Visit("CP1", 1.0, 2.0, EV, need_kwh=0.1, id_tag="T1"),))
    kinds: list[str] = []
    rig = Rig(
        site,
        day,
        meter_ports={ENDPOINT: 0},
        clock=lambda: t0 + timedelta(seconds=now[0]),
        tick_s=0.01,
        on_event=lambda e: kinds.append(e.kind),
    )
    async with rig:
        for t in (0.5, 1.0, 1.5, 2.0, 2.5):
            now[0] = t
            await asyncio.sleep(0.05)
        await eventually(lambda: rig.visits[0].departed, 1.0, "departed")
        s = rig.summary()
    assert (s.departures_met, s.departures_total, s.energy_requested_kwh) == (0, 1, 0.1)
    assert not s.visits[0].plugged and "MISSED (never plugged in)" in "\n".join(s.lines())
    assert kinds.count("arrive") == 1 and "depart" in kinds
    with pytest.raises(ValueError, match=r"no meter of the site at 10\.0\.0\.1:502"):
        Rig(site, meter_ports={"10.0.0.1:502": 0})


async def test_meters_read_base_plus_ev_draw_over_modbus(site: Site, tmp_path: Path) -> None:
    async with Rig(site, meter_ports={ENDPOINT: 0}, tick_s=0.05, noise_a=0.0) as rig:
        meters = await site_meters(tmp_path, rig)
        try:
            rig.set_base("grid", (5.0, 6.0, 7.0))
            rig.set_base("sub", (1.0, 0.0, 0.0))
            sim = rig.sim("CP1")  # an EV drawing 10 A on the charger's L1..L3, injected without OCPP
            c = sim.connectors[1]
            c.ev = EvParams(max_a=10, reaction_s=1000.0)
            c.ev_state = EvState(sim.t_s(), 50.0, draw_a=10.0, offered_a=10.0, applied_a=10.0)
            c.tx = RunningTx("tx", sim.clock())
            await asyncio.sleep(0.15)  # a couple of coupling ticks
            assert approx3(await read_a(meters, "grid-meter"), (16.0, 16.0, 17.0))
            assert approx3(await read_a(meters, "feeder-meter"), (11.0, 10.0, 10.0))
            assert rig.sim_meter("feeder-meter").state.base_a == (1.0, 0.0, 0.0)
            assert rig.meter_server("grid-meter") is rig.meter_server("feeder-meter")  # one gateway, 2 units
            rig.sim_meter("grid-meter").misbehave("exception")
            assert (await meters.reader("grid-meter").poll()).reading is None
        finally:
            await meters.close()


# --- closed loop with the real central system -------------------------------------------------------


async def test_closed_loop_with_the_central_system(site: Site, tmp_path: Path) -> None:
    events: list[tuple[str, str, Mapping[str, object]]] = []
    cs = CentralSystem(
        site, host="127.0.0.1", port=0, boot_grace_s=0.3, emit=lambda e: events.append((e.kind, e.charger_id, e.detail))
    )
    await cs.start()
    port = cs.port
    day = RigDay(
        60.0,
        (BaseStep(0.0, "grid", (20.0, 20.0, 20.0)),),
        (
            Visit("CP1", 0.0, 60.0, EV, need_kwh=1.0, id_tag="TAG-VAN1"),
            Visit("CP2", 0.0, 2.0, EV, need_kwh=0.0005, announce=Announce(50.0, 0.5)),
            Visit("DC1", 0.0, 60.0, EV, need_kwh=0.5, ev_max_kw=30.0),
        ),
        versions={"CP2": "2.0.1"},
    )
    rig_events: list[str] = []
    rig = Rig(
        site, day, meter_ports={ENDPOINT: 0}, tick_s=0.05, noise_a=0.0, on_event=lambda e: rig_events.append(e.kind)
    )
    await rig.start()
    meters = await site_meters(tmp_path, rig)
    cs2: CentralSystem | None = None
    try:
        url = f"ws://127.0.0.1:{port}/ocpp"
        assert await rig.connect_chargers(url, timeout_s=5.0, keep_connected=True) == []
        # the vehicles waited for their chargers, then plugged in; CP2's announced its needs (2.0.1)
        await eventually(lambda: all(r.plugged for r in rig.visits), 5.0, "every vehicle plugged in")
        await eventually(lambda: any(k == "ev_needs" for k, _, _ in events), 3.0, "NotifyEVChargingNeeds")
        dc_10kw = dc_phase_current_a(10.0, 230.0, 0.95, 0.99)

        def grid_expected(cp1_a: float, dc_a: float, cp2_a: float) -> tuple[float, float, float]:
            return (20.0 + cp1_a + dc_a, 20.0 + cp1_a + dc_a, 20.0 + cp1_a + dc_a + cp2_a)

        async def grid_reads(expected: tuple[float, float, float]) -> bool:
            return approx3(await read_a(meters, "grid-meter"), expected, 0.05)

        async def grid_becomes(expected: tuple[float, float, float], timeout_s: float) -> None:
            end = asyncio.get_running_loop().time() + timeout_s
            while not await grid_reads(expected):
                got = await read_a(meters, "grid-meter")
                assert asyncio.get_running_loop().time() < end, f"grid meter reads {got}, expected {expected}"
                await asyncio.sleep(0.05)

        # fail-safe: 16 A on AC, 10 kW on DC; CP2 leaves at 2 s with more than it needed
        await eventually(lambda: rig.sim("CP1").draw_a() == (16.0, 16.0, 16.0), 4.0, "CP1 at the fail-safe")
        await eventually(lambda: rig.visits[1].departed, 4.0, "CP2 departed")
        await eventually(lambda: rig.sim("DC1").draw_a()[0] == pytest.approx(dc_10kw), 3.0, "DC1 at 10 kW")
        await grid_becomes(grid_expected(16.0, dc_10kw, 0.0), 1.0)

        loop = asyncio.get_running_loop()
        result = await cs.control.apply("CP1", 8.0, source="test")
        assert result.status == "accepted", result
        applied = loop.time()
        while not await grid_reads(grid_expected(8.0, dc_10kw, 0.0)):
            assert loop.time() - applied < EV.reaction_s + 2.0, "meter reading did not drop"
            await asyncio.sleep(0.05)
        assert loop.time() - applied >= EV.reaction_s - 0.1  # the EV reacted after its delay, not before
        assert (await cs.control.apply("DC1", 20.0)).status == "accepted"
        dc_20kw = dc_phase_current_a(20.0, 230.0, 0.95, 0.99)
        await eventually(lambda: rig.sim("DC1").draw_a()[0] == pytest.approx(dc_20kw), 3.0, "DC1 at 20 kW")

        # the daemon restarts: the chargers come back by themselves
        await cs.stop()
        await eventually(lambda: not rig.sim("CP1").connected(), 3.0, "links down")
        cs2 = restarted = CentralSystem(site, host="127.0.0.1", port=port, boot_grace_s=0.3)
        await restarted.start()
        await eventually(lambda: len(restarted.connected()) == 3, 5.0, "chargers reconnected")
    finally:
        await meters.close()
        await rig.stop()
        for server in (cs, cs2):
            if server is not None:
                await server.stop()
    needs = [d for k, cid, d in events if k == "ev_needs" and cid == "CP2"]
    assert needs and needs[0]["energy_wh"] == 500
    s = rig.summary()
    assert (s.departures_met, s.departures_total) == (1, 1)
    cp2 = s.visits[1]
    assert cp2.departed and cp2.met and 0.0005 <= cp2.delivered_kwh < 0.01
    assert s.energy_requested_kwh == pytest.approx(1.5005)
    assert 0.0 < s.energy_delivered_kwh < 0.5 and set(s.exceeded_s) == set(site.node_ids())
    assert {"start", "arrive", "announce", "depart", "link", "stop"} <= set(rig_events)


# --- the demo day -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_site() -> Site:
    return load_site(Path(__file__).parents[2] / "config" / "demo-site.yaml").site


def test_demo_day_is_deterministic(demo_site: Site) -> None:
    assert demo_day(demo_site, 180.0) == demo_day(demo_site, 180.0)
    assert demo_day(demo_site, 180.0, seed=1) != demo_day(demo_site, 180.0)


def test_demo_day_shape(demo_site: Site) -> None:
    day = demo_day(demo_site, 180.0)
    assert sorted(v.charger_id for v in day.visits) == sorted(ch.id for ch in demo_site.chargers)
    assert all(v.arrive_s < 60.0 and 120.0 <= v.depart_s < 180.0 for v in day.visits)
    site_tags = {t for veh in demo_site.vehicles for t in veh.id_tags}
    assert site_tags <= {v.id_tag for v in day.visits}
    assert next(v for v in day.visits if v.charger_id == "DC01").vehicle_id == "BUS-01"
    assert [cid for cid, ver in day.versions.items() if ver == "2.0.1"] == ["CP03", "CP06", "CP09"]
    assert all(v.announce is not None and v.announce.energy_kwh == v.need_kwh for v in day.visits)
    assert any(v.ev.phases == 1 and demo_site.charger(v.charger_id).phases == 3 for v in day.visits)

    # the limits bind: the chargers together can draw more than the grid on every phase
    full = {ch.id: (sim_max_a(demo_site, ch),) * 3 for ch in demo_site.chargers}
    assert min(node_loads(demo_site, {}, full)["grid"]) > demo_site.grid.limit_a

    # needs: most could be met alone, not all
    alone = [v.need_kwh <= max_energy_kwh(demo_site, v) for v in day.visits]
    assert 1 <= alone.count(False) <= 2 and all(0.0 < v.need_kwh < 2.0 for v in day.visits)

    # grid base rises then falls; one step on feeder-b at ~45 %, removed later
    grid = [s.a[0] for s in day.base if s.node == "grid"]
    assert max(grid) > grid[0] and max(grid) > grid[-1]
    fb = [s for s in day.base if s.node == "feeder-b"]
    on, off = fb[1], fb[2]
    assert on.t_s == pytest.approx(81.0) and "overload" in on.note and off.t_s > on.t_s and off.a == fb[0].a
    feeder_b_base = node_loads(demo_site, day.base_at(on.t_s), {})["feeder-b"]
    under = {ch.id: full[ch.id] for ch in demo_site.chargers_under("feeder-b")}
    with_evs = node_loads(demo_site, day.base_at(on.t_s), under)["feeder-b"]
    limit, margin = demo_site.node_limit_a("feeder-b"), demo_site.node_margin_a("feeder-b")
    assert max(feeder_b_base) < limit - margin  # sheddable: the base alone fits
    assert min(with_evs) > limit  # with the EVs drawing it would not
    assert day.base_at(on.t_s)["feeder-b"][0] > day.base_at(on.t_s - 1)["feeder-b"][0] + 30


def test_day_validation(site: Site) -> None:
    with pytest.raises(ValueError, match="overlap"):
        RigDay(10.0, visits=(Visit("CP1", 0, 5, EV, 1.0), Visit("CP1", 4, 8, EV, 1.0))).validate(site)
    with pytest.raises(ValueError, match=r"unknown node 'attic'.*unknown charger 'XX'"):
        RigDay(10.0, (BaseStep(0, "attic", (1.0, 1.0, 1.0)),), (Visit("XX", 0, 5, EV, 1.0),)).validate(site)


# --- the site file for a daemon next to the rig -------------------------------------------------------


def test_rig_site_text_moves_every_endpoint(tmp_path: Path) -> None:
    src = Path(__file__).parents[2] / "config" / "demo-site.yaml"
    text = rig_site_text(
        src,
        meter_ports={"127.0.0.1:15020": 41001},
        ocpp_port=41002,
        api_port=41003,
        metrics_port=41004,
        storage_path=tmp_path / "x.db",
    )
    moved, orig = load_site_text(text).site, load_site(src).site
    assert {(m.modbus.host, m.modbus.port, m.modbus.unit) for m in moved.meters} == {
        ("127.0.0.1", 41001, 1),
        ("127.0.0.1", 41001, 2),
    }
    assert (moved.ocpp.listen, moved.api.listen, moved.metrics.listen) == (
        "127.0.0.1:41002",
        "127.0.0.1:41003",
        "127.0.0.1:41004",
    )
    assert moved.storage.path == str(tmp_path / "x.db") and moved.ocpp.security_profile == 0
    assert (moved.chargers, moved.circuits, moved.vehicles, moved.schedules) == (
        orig.chargers,
        orig.circuits,
        orig.vehicles,
        orig.schedules,
    )
    assert free_port() > 0


def test_main_rejects_a_bad_site_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: {name: x}\n")
    assert rig_main(["--config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
