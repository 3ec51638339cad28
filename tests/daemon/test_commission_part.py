"""The daemon's commissioning part (controller/daemon/commission.py) one step at a time: a daemon
built as ``depotctl run`` builds it, simulated chargers over OCPP on loopback, its history in
SQLite, runs held at their first wait (tests/daemon/bare.py) — the test plays the fast loop.

Demo site: feeder-b (100 A, 4 A margin, metered) carries CP07 and CP08 (3-phase, 32 A) and CP09
(1-phase on L3, 16 A); the headroom keeps a 1 A reserve, so 95 A of each line are usable.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from controller.chargers.planning import session_id
from controller.chargers.profiles import ProfileSpec, control_profile
from controller.commission.report import Check, Report
from controller.commission.runner import CommissionOptions
from controller.daemon.commission import _RunPort
from controller.daemon.core import Daemon
from controller.daemon.headroom import RESERVE_A
from controller.daemon.ports import Observation
from controller.daemon.sessions import REACTION_S, Sent
from controller.model.site import GRID_ID
from controller.store import restore
from controller.store.commission import CommissionStore
from hil.ev import EvParams
from tests.daemon.bare import Bare, bare_daemon
from tests.daemon.clocks import PINNED_AT
from tests.daemon.rigged import DEMO, FAST, wait_for

OPTIONS = CommissionOptions(sample_s=1)
T0 = PINNED_AT - timedelta(days=60)  # earlier runs
GRID = (100.0, 100.0, 100.0)  # the grid has room to spare: feeder-b is the tight node


def usable(b: Bare) -> float:
    site = b.daemon.site
    return site.node_limit_a("feeder-b") - site.node_margin_a("feeder-b") - RESERVE_A


async def held(b: Bare, *chargers: str) -> None:
    """Runs of ``chargers`` under way (their first check made), held at their first wait."""
    b.hold()
    part = b.daemon.commission
    for cid in chargers:
        part.start(cid, no_ev=True)

    def under_way() -> bool:
        return all((latest := part.latest(cid)) is not None and latest[0].checks for cid in chargers)

    await wait_for(under_way, 5, "the runs' first checks")


def profile(d: Daemon, charger_id: str, limit_a: float) -> ProfileSpec:
    """A control profile at ``limit_a`` for the next minute, as a run builds one."""
    st = d.cs.state(charger_id)
    return control_profile(
        d.cs.control.target(charger_id, 1),
        now=d.clock(),
        limit=limit_a,
        ttl_s=60.0,
        connector_id=1,
        clock_offset_s=st.clock_offset_s,
    )


async def test_a_cancel_in_the_turn_a_run_starts_ends_it(tmp_path: Path) -> None:
    async with bare_daemon(tmp_path, ("CP07",), commission=OPTIONS) as b:
        part = b.daemon.commission
        part.start("CP07", no_ev=True)
        part.abort("CP07", "overload shed: feeder-b L1: the site's safety comes first")  # before its first step
        await wait_for(lambda: not part.holds("CP07"), 2, "the run to end")
        latest = part.latest("CP07")
        assert latest is not None
        report = latest[0]
        assert (report.state, report.error) == ("aborted", "overload shed: feeder-b L1: the site's safety comes first")
        assert part.commissioned("CP07") == "failed" and report.finished is not None


async def test_the_own_draw_added_back_is_what_it_drew_when_the_loads_were_measured(tmp_path: Path) -> None:
    """Review finding 2: CP07 drew 16 A; the run brought its EV down to 6 A, but its last reading
    (meter values every 10 s: it did not take the run's 1 s) still says 16 A. Feeder-b's meter
    shows 79 A (its own 6 A in it): 22 A of room, not the 32 A that adding back 16 A gives."""
    slow = {**FAST, "ocpp": {**FAST["ocpp"], "meter_sample_s": 10}}
    async with bare_daemon(tmp_path, ("CP07",), overrides=slow, commission=OPTIONS) as b:
        await held(b, "CP07")
        d = b.daemon
        assert (await d.cs.control.send_spec("CP07", profile(d, "CP07", 32.0))).status == "accepted"
        loads = {"feeder-b": (79.0, 79.0, 79.0), GRID_ID: GRID}

        b.reads("CP07", 16.0, age_s=8.0)  # fresh by the site's 30 s, not by the run's 1 s
        b.observe(loads)
        assert d.commission.headroom_a("CP07", 1) == usable(b) - 79.0  # not measured: nothing added back

        b.reads("CP07", 6.0, age_s=0.3)  # what it drew when the loads were measured …
        b.observe(loads)
        b.reads("CP07", 16.0)  # … and a reading since (its EV went up again)
        assert d.commission.headroom_a("CP07", 1) == usable(b) - 79.0 + 6.0  # the least of them


async def test_runs_and_raises_on_one_feeder_count_each_other_at_their_profiles(tmp_path: Path) -> None:
    """Review finding 5: CP07 and CP08 are both commissioned while the plan raises CP09 (16 A, L3);
    each reads 6 A. CP08's run offers 32 A: from the moment it asks, CP07's headroom counts CP08 at
    32 A, not at the 6 A it drew; CP09 (its EV not yet following the raise) at 16 A on L3."""
    async with bare_daemon(tmp_path, ("CP07", "CP08", "CP09"), commission=OPTIONS) as b:
        d = b.daemon
        await b.sims["CP09"].plug_in(EvParams(max_a=16.0, phases=1, battery_kwh=60.0), id_tag="T-CP09")
        await wait_for(lambda: d.cs.state("CP09").transaction(1) is not None, 5, "CP09's transaction")
        await held(b, "CP07", "CP08")
        assert (await d.cs.control.apply("CP09", 16.0)).status == "accepted"
        tx = d.cs.state("CP09").transaction(1)
        assert tx is not None
        d.dispatch.sent[session_id("CP09", tx.transaction_id)] = Sent(16.0, b.now(), 6.0)  # the plan's raise
        for cid in ("CP07", "CP08", "CP09"):
            b.reads(cid, 6.0, age_s=0.3)
        b.observe({"feeder-b": (50.0, 50.0, 50.0), GRID_ID: GRID})

        b.sims["CP08"].o.slow_answer_s = 0.5
        sending = asyncio.create_task(_RunPort(d.commission).send_spec("CP08", profile(d, "CP08", 32.0)))
        await asyncio.sleep(0.1)
        assert not sending.done()
        # L3: the rest 50 − 6 (its own, measured) … + CP08's 32 − 6 + CP09's 16 − 6
        expected = usable(b) - (50.0 + 26.0 + 10.0) + 6.0
        assert d.commission.headroom_a("CP07", 1) == pytest.approx(expected)  # while CP08's profile is on its way
        assert (await sending).status == "accepted"
        assert d.commission.headroom_a("CP07", 1) == pytest.approx(expected)


async def test_a_runs_profiles_are_budgeted_after_a_restart(tmp_path: Path) -> None:
    """Review finding 3 (hazard 8): every profile a run has accepted goes in the history, as the
    dispatcher's pushes do — a controller killed mid-run budgets it after its restart."""
    async with bare_daemon(tmp_path, ("CP08",), commission=OPTIONS) as b:
        d = b.daemon
        await held(b, "CP08")
        spec = profile(d, "CP08", 32.0)
        assert (await _RunPort(d.commission).send_spec("CP08", spec)).status == "accepted"
        assert d.recorder.store is not None and await d.recorder.store.aflush()
        after_restart = restore(b.storage, b.now() + timedelta(seconds=10))
        kept = after_restart.in_force.get("CP08", {}).get(1, ())
        assert [(p.planner_schedule, p.valid_until) for p in kept] == [((32.0,), spec.expires_at)]


async def test_no_headroom_on_an_observation_not_known_to_be_recent(tmp_path: Path) -> None:
    """Review finding 9: the fast loop's cycles fail (no new observation for more than three of its
    1 s cycles), or one was published that the part was not told of: nothing may be offered."""
    async with bare_daemon(tmp_path, ("CP07",), commission=OPTIONS) as b:
        await held(b, "CP07")
        d = b.daemon
        loads = {"feeder-b": (50.0, 50.0, 50.0), GRID_ID: GRID}
        b.observe(loads)
        assert d.commission.headroom_a("CP07", 1) == 32.0
        b.advance(2.5)
        assert d.commission.headroom_a("CP07", 1) == 32.0  # within three cycles
        b.advance(1.0)
        assert d.commission.headroom_a("CP07", 1) == 0.0
        b.observe(loads)
        assert d.commission.headroom_a("CP07", 1) == 32.0
        d.fast.observation = Observation(loads_a=loads)  # published, its cycle not ended
        assert d.commission.headroom_a("CP07", 1) == 0.0


async def test_a_reload_that_drops_a_held_charger_ends_its_run(tmp_path: Path) -> None:
    """Review finding 9: the site file no longer has CP08 — neither the plan nor the loads count it
    any more; its run must not go on unbudgeted."""
    async with bare_daemon(tmp_path, ("CP07", "CP08"), commission=OPTIONS) as b:
        await held(b, "CP07", "CP08")
        data = yaml.safe_load(b.site_path.read_text())
        data["chargers"] = [ch for ch in data["chargers"] if ch["id"] != "CP08"]
        b.site_path.write_text(yaml.safe_dump(data, sort_keys=False))
        assert await b.daemon.reload()
        part = b.daemon.commission
        await wait_for(lambda: not part.holds("CP08"), 2, "CP08's run to end")
        latest = part.latest("CP08")
        assert latest is not None
        assert (latest[0].state, latest[0].error) == ("aborted", "charger CP08 is no longer in the site file (reload)")
        assert part.holds("CP07")


def _finished(cid: str, reaction_s: float, follows: bool | None, days: int = 0) -> Report:
    start = T0 + timedelta(days=days)
    checks = (Check("connects", True, "1.6"), Check("follows_limit", follows, reaction_s))
    return Report(cid, start, start + timedelta(minutes=5), "finished", checks, reaction_s=reaction_s)


async def test_a_measured_reaction_only_lengthens_the_allowance_and_only_from_a_run_that_followed(
    tmp_path: Path,
) -> None:
    """Review finding 1: a measurement below 5 s is used as 5 s; one from a run whose
    ``follows_limit`` did not pass (a charger that ignores its limit "reacts" in no time) not at
    all; the site file's own line is the site's word (check-config warns below 5 s)."""
    store = CommissionStore(tmp_path / "depot.db")
    for report in (
        _finished("CP07", 0.4, True),
        _finished("CP08", 7.5, True),
        _finished("CP09", 0.05, False),
        _finished("CP01", 6.0, True),
        _finished("CP01", 9.0, False, days=1),
    ):
        store.save(report)
    over = {**FAST, "chargers": [{**ch, "reaction_s": 2.5} if ch["id"] == "CP02" else ch for ch in _chargers()]}
    async with bare_daemon(tmp_path, overrides=over) as b:
        d = b.daemon
        d.commission.load(store, b.now())
        got = {cid: d.commission.reaction_s(cid) for cid in ("CP07", "CP08", "CP09", "CP01", "CP02", "CP03")}
        assert got == {"CP07": REACTION_S, "CP08": 7.5, "CP09": REACTION_S, "CP01": 6.0, "CP02": 2.5, "CP03": 5.0}
        assert {cid: d.dispatch.reaction(cid) for cid in got} == got


def _chargers() -> list[dict[str, object]]:
    chargers: list[dict[str, object]] = yaml.safe_load(DEMO.read_text())["chargers"]
    return chargers
