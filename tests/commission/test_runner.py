"""Commissioning against the rig: every hostile behaviour of ``hil/chargers`` is found by the
matching check (with the right ``ocpp_quirks`` line), a well-behaved charger passes every check
on OCPP 1.6 and 2.0.1 — all chargers on one central system, commissioned at once, on a pinned
clock. No limit sent is ever above the headroom at the moment it was sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from controller.commission.report import CHECK_NAMES, EV_CHECKS, Check, Report
from controller.commission.runner import CommissionError, CommissionOptions, commission
from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import eventually, make_site
from tests.commission.harness import LoopbackPort
from tests.daemon.clocks import pinned_clock

OPTIONS = CommissionOptions(
    poll_s=0.05,
    clock_wait_s=1.5,
    probe_s=10.0,
    ev_wait_s=1.5,
    reaction_limit_s=1.0,
    follow_steps=2,
    min_hold_s=0.8,
    resume_limit_s=3.0,
    expiry_s=1.0,
)
EV = EvParams(max_a=32, phases=3, reaction_s=0.25)


@dataclass(frozen=True)
class Case:
    cid: str
    sim: dict[str, Any] = field(default_factory=dict)
    ev: EvParams | None = EV
    no_ev: bool = False
    headroom: float | None = None
    site: dict[str, Any] = field(default_factory=dict)
    """More of the site file's charger entry."""


CASES = (
    Case("good16"),
    Case("good201", {"version": "2.0.1"}),
    Case("ahead", {"clock_offset_s": 120.0}),
    Case("behind", {"clock_offset_s": -120.0, "version": "2.0.1"}),
    Case("wonly", {"quirks": frozenset({"power_only"})}),
    Case("reject", {"reject_profiles": True}),
    Case("ignore", {"ignore_limits": True}),
    Case("noresume", {"quirks": frozenset({"no_resume_after_zero"})}),
    Case("hold", {"schedule_end": "hold_last"}),
    Case("onephase", ev=EvParams(max_a=32, phases=1, reaction_s=0.25)),
    Case("slow", ev=EvParams(max_a=32, phases=3, reaction_s=1.8)),
    Case("noev", ev=None, no_ev=True),
    Case("tight", headroom=7.0),
    Case("dc", site={"kind": "dc", "max_kw": 20.0}),  # the rig's charger stands in for a DC one's input
    Case("relative", {"quirks": frozenset({"relative_profiles"})}),
    Case("conn0", {"quirks": frozenset({"txdefault_on_connector_0"})}, ev=None, no_ev=True),
)


def statuses(report: Report) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def check(report: Report, name: str) -> Check:
    found = report.check(name)
    assert found is not None, f"{report.charger}: no check {name}"
    return found


def all_passed_but(report: Report, **other: str) -> None:
    """Every check passed except those named (with the status they must have)."""
    expected = {name: other.get(name, "passed") for name in CHECK_NAMES}
    assert statuses(report) == expected, "\n".join(f"{c.name} {c.status}: {c.detail}" for c in report.checks)


async def test_every_rig_behaviour_is_found(server_factory: Callable[..., Any]) -> None:
    clock = pinned_clock()
    site = make_site([{"id": c.cid, **c.site} for c in CASES], ttl_s=60.0)
    cs = await server_factory(site, clock=clock)
    port = LoopbackPort(cs, clock, {c.cid: c.headroom for c in CASES if c.headroom is not None})
    sims = {c.cid: SimCharger(SimOptions(c.cid, tick_s=0.1, meter_interval_s=0.2, **c.sim), clock=clock) for c in CASES}
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    seen: dict[str, list[Report]] = {c.cid: [] for c in CASES}
    try:
        await asyncio.gather(*(s.connect(url) for s in sims.values()))
        accepting = [c.cid for c in CASES if not c.sim.get("reject_profiles")]  # (after quirk fall-backs)
        await eventually(lambda: all(cs.state(cid).failsafe is not None for cid in accepting), 5.0, "fail-safes")
        await asyncio.gather(*(sims[c.cid].plug_in(c.ev) for c in CASES if c.ev is not None))
        runs = [
            commission(
                port,
                c.cid,
                no_ev=c.no_ev,
                options=OPTIONS,
                progress=seen[c.cid].append,
                controller_version="test-1",
            )
            for c in CASES
        ]
        reports = {r.charger: r for r in await asyncio.gather(*runs)}
    finally:
        await asyncio.gather(*(s.close() for s in sims.values()))

    for rec in port.sent:  # never above the headroom at the moment of sending
        assert rec.spec.max_planner_limit <= rec.headroom + 1e-6, rec
    for cid, progress in seen.items():  # the report so far, after every check, while running
        assert [len(r.checks) for r in progress] == list(range(len(CHECK_NAMES) + 1)), cid
        assert all(r.state == "running" and r.finished is None for r in progress)
    for r in reports.values():
        assert r.state == "finished" and r.error is None and r.finished is not None
        assert r.controller_version == "test-1" and r.vendor == "depotctl-hil"
        assert Report.from_json(r.to_json()) == r

    for cid, version in (("good16", "1.6"), ("good201", "2.0.1")):
        good = reports[cid]
        all_passed_but(good)
        assert good.passed and good.ocpp_version == version
        assert good.quirks == () and good.ocpp_quirks_line == ""
        assert good.units == ("A", "W") and good.phases_in_use == 3
        assert good.reaction_s is not None and 0.2 <= good.reaction_s <= OPTIONS.reaction_bound_s
        assert good.clock_offset_s is not None and abs(good.clock_offset_s) < 1.0

    for cid, offset in (("ahead", 120.0), ("behind", -120.0)):
        all_passed_but(reports[cid], clock="failed")
        assert reports[cid].clock_offset_s == pytest.approx(offset, abs=1.0)
        assert reports[cid].ocpp_quirks_line == ""

    wonly = reports["wonly"]
    all_passed_but(wonly, current_profile="failed")
    assert wonly.units == ("W",) and wonly.ocpp_quirks_line == "ocpp_quirks: [power_only]"

    reject = reports["reject"]
    skipped = {name: "skipped" for name in EV_CHECKS - {"phases_in_use"}}
    all_passed_but(reject, failsafe_profile="failed", current_profile="failed", power_profile="failed", **skipped)
    assert reject.units == () and "without smart charging" in check(reject, "current_profile").detail

    ignore = reports["ignore"]
    assert statuses(ignore)["ignores_limit"] == "failed" and statuses(ignore)["follows_limit"] == "failed"
    assert isinstance(m := check(ignore, "ignores_limit").measured, float) and m > 10.0
    assert ignore.ocpp_quirks_line == ""

    all_passed_but(reports["noresume"], resume_after_zero="failed", profile_expiry="skipped")
    assert reports["noresume"].ocpp_quirks_line == "ocpp_quirks: [no_resume_after_zero]"

    all_passed_but(reports["hold"], profile_expiry="failed")
    assert reports["hold"].ocpp_quirks_line == "ocpp_quirks: [holds_last_limit]"

    onephase = reports["onephase"]
    all_passed_but(onephase)
    assert onephase.phases_in_use == 1 and "divides a limit in W" in check(onephase, "phases_in_use").detail

    slow = reports["slow"]
    all_passed_but(slow, follows_limit="failed")
    assert slow.reaction_s is not None and slow.reaction_s >= 1.5 and slow.ocpp_quirks_line == ""

    noev = reports["noev"]
    all_passed_but(noev, **{name: "skipped" for name in EV_CHECKS})
    assert noev.passed and noev.no_ev and all("--no-ev" in c.detail for c in noev.checks if c.name in EV_CHECKS)

    dc = reports["dc"]
    a_only = {name: "skipped" for name in ("current_profile", "phases_in_use", "min_current", "resume_after_zero")}
    all_passed_but(dc, **a_only)
    assert dc.units == ("W",) and dc.passed and dc.reaction_s is not None
    assert check(dc, "follows_limit").detail.startswith("Steps down to 10.0 kW")

    for cid, quirk in (("relative", "relative_profiles"), ("conn0", "txdefault_on_connector_0")):
        found = reports[cid]  # rejected in A and in W as sent: found by trying the quirks, as the controller does
        all_passed_but(found, **({name: "skipped" for name in EV_CHECKS} if cid == "conn0" else {}))
        assert found.ocpp_quirks_line == f"ocpp_quirks: [{quirk}]"  # not the internal relative_failsafe
        assert f"Accepted only with quirk {quirk}." in check(found, "current_profile").detail

    tight = reports["tight"]
    all_passed_but(tight, follows_limit="skipped", profile_expiry="skipped")
    assert "headroom" in check(tight, "profile_expiry").detail


async def test_refused_before_anything_is_sent(server_factory: Callable[..., Any]) -> None:
    clock = pinned_clock()
    cs = await server_factory(make_site([{"id": "CP1"}]), clock=clock)
    port = LoopbackPort(cs, clock)
    with pytest.raises(CommissionError, match="unknown charger 'NOPE'"):
        await commission(port, "NOPE", options=OPTIONS)
    with pytest.raises(CommissionError, match="charger CP1 is not connected"):
        await commission(port, "CP1", options=OPTIONS)
    sim = SimCharger(SimOptions("CP1"), clock=clock)
    await sim.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        with pytest.raises(CommissionError, match="charger CP1 has no connector 2"):
            await commission(port, "CP1", connector=2, options=OPTIONS)
    finally:
        await sim.close()
    assert port.sent == []


async def test_a_lost_charger_aborts_the_run_and_a_cancelled_run_sends_nothing_more(
    server_factory: Callable[..., Any],
) -> None:
    clock = pinned_clock()
    cs = await server_factory(make_site([{"id": "GONE"}, {"id": "STOP"}], ttl_s=60.0), clock=clock)
    port = LoopbackPort(cs, clock)
    sims = {cid: SimCharger(SimOptions(cid, tick_s=0.1, meter_interval_s=0.2), clock=clock) for cid in ("GONE", "STOP")}
    following = asyncio.Event()
    try:
        for s in sims.values():
            await s.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
        await eventually(lambda: all(cs.state(cid).failsafe is not None for cid in sims), what="fail-safes")
        for s in sims.values():
            await s.plug_in(EV)
        cut: list[asyncio.Task[None]] = []

        def on_gone(r: Report) -> None:
            if r.check("power_profile") is not None and not cut:
                cut.append(asyncio.create_task(sims["GONE"].drop_link()))

        def on_stop(r: Report) -> None:
            if r.check("follows_limit") is not None:
                following.set()

        gone = asyncio.create_task(commission(port, "GONE", options=OPTIONS, progress=on_gone))
        stop = asyncio.create_task(commission(port, "STOP", options=OPTIONS, progress=on_stop))
        await asyncio.wait_for(following.wait(), 15.0)
        stop.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stop
        received = len(sims["STOP"].record.profiles_received)
        report = await asyncio.wait_for(gone, 15.0)
        assert report.state == "aborted" and report.error == "charger GONE disconnected", report.error
        assert not report.passed and report.finished is not None
        assert [c.name for c in report.checks][:5] == list(CHECK_NAMES[:5])
        await asyncio.sleep(1.0)  # longer than any wait of a step
        assert len(sims["STOP"].record.profiles_received) == received  # nothing more was sent
        held = sims["STOP"].store.profiles
        assert any(p.profile_id == 1 and p.stack_level == 0 and p.valid_to is None for p in held)  # the fail-safe
        assert all(p.valid_to is not None for p in held if p.profile_id != 1)  # the run's end by themselves
    finally:
        await asyncio.gather(*(s.close() for s in sims.values()))
