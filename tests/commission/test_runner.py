"""Commissioning against the rig: every hostile behaviour of ``hil/chargers`` is found by the
matching check (with the right ``ocpp_quirks`` line), a well-behaved charger passes every check
on OCPP 1.6 and 2.0.1 — all chargers on one central system, commissioned at once, on a pinned
clock. No limit sent is ever above the headroom at the moment it was sent. A run that could not
test what it was asked to (no EV charging without ``--no-ev``, no headroom) has not passed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from controller.chargers.profiles import FAILSAFE_PROFILE_ID, ProfileSpec
from controller.commission.html import site_lines
from controller.commission.report import CHECK_NAMES, EV_CHECKS, Check, Report
from controller.commission.runner import CommissionError, CommissionOptions, commission
from hil.chargers import SimCharger, SimOptions
from hil.chargers.composite import SimProfile
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
CALL_TIMEOUT_S = 2.0
"""The test site's ``ocpp.call_timeout_s`` (tests.chargers.conftest.make_site)."""


class KeepsPastValidTo(SimCharger):
    """A firmware that ignores ``validTo``: holding a schedule's last period (``hold_last``) it
    holds it until a newer profile replaces it — for ever (docs/safety.md, hazard 23)."""

    async def answer_profile(self, p: SimProfile, raw: dict[str, Any]) -> str:
        return await super().answer_profile(replace(p, valid_to=None), raw)


@dataclass(frozen=True)
class Case:
    cid: str
    sim: dict[str, Any] = field(default_factory=dict)
    ev: EvParams | None = EV
    no_ev: bool = False
    headroom: float | None = None
    site: dict[str, Any] = field(default_factory=dict)
    """More of the site file's charger entry."""
    firmware: type[SimCharger] = SimCharger


CASES = (
    Case("good16"),
    Case("good201", {"version": "2.0.1"}),
    Case("ahead", {"clock_offset_s": 120.0}),
    Case("behind", {"clock_offset_s": -120.0, "version": "2.0.1"}),
    Case("wonly", {"quirks": frozenset({"power_only"})}),
    Case("reject", {"reject_profiles": True}),
    Case("ignore", {"ignore_limits": True}),
    Case("noresume", {"quirks": frozenset({"no_resume_after_zero"})}),
    Case("hold", {"schedule_end": "hold_last"}),  # until validTo
    Case("forever", {"schedule_end": "hold_last"}, firmware=KeepsPastValidTo),
    Case("onephase", ev=EvParams(max_a=32, phases=1, reaction_s=0.25)),
    Case("slow", ev=EvParams(max_a=32, phases=3, reaction_s=1.8)),
    Case("noev", ev=None, no_ev=True),
    Case("tight", headroom=7.0),
    Case("dc", site={"kind": "dc", "max_kw": 20.0}),  # the rig's charger stands in for a DC one's input
    Case("relative", {"quirks": frozenset({"relative_profiles"})}),
    Case("conn0", {"quirks": frozenset({"txdefault_on_connector_0"})}, ev=None, no_ev=True),
    Case("absent", ev=None),  # no EV, and no --no-ev
    Case("mute", {"never_answer_profiles": True}, ev=None, no_ev=True),
    Case("late"),  # answers follows_limit's step up after the call timed out (applied at once)
)


def answer_the_step_up_late(sim: SimCharger) -> Callable[[ProfileSpec], None]:
    """A hook for :class:`LoopbackPort`: the charger answers the first raise that follows a
    decrease (follows_limit's step up) only after the central system's call timed out — it
    applies it at once all the same — and every other profile in time."""
    limits: list[float] = []
    late: list[float] = []

    def hook(spec: ProfileSpec) -> None:
        if spec.profile_id == FAILSAFE_PROFILE_ID:
            return
        limit = spec.max_planner_limit
        up_after_down = len(limits) >= 2 and limits[-1] < limits[-2] and limit > limits[-1]
        sim.o.late_answer_s = CALL_TIMEOUT_S + 1.0 if up_after_down and not late else 0.0
        if sim.o.late_answer_s:
            late.append(limit)
        limits.append(limit)

    return hook


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
    assert site.ocpp.call_timeout_s == CALL_TIMEOUT_S
    port = LoopbackPort(cs, clock, {c.cid: c.headroom for c in CASES if c.headroom is not None})
    sims = {c.cid: c.firmware(SimOptions(c.cid, tick_s=0.1, meter_interval_s=0.2, **c.sim), clock=clock) for c in CASES}
    port.before_send["late"] = answer_the_step_up_late(sims["late"])
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    seen: dict[str, list[Report]] = {c.cid: [] for c in CASES}
    try:
        await asyncio.gather(*(s.connect(url) for s in sims.values()))
        silent = ("reject_profiles", "never_answer_profiles")
        accepting = [c.cid for c in CASES if not any(c.sim.get(x) for x in silent)]  # (after quirk fall-backs)
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
    if table := os.environ.get("DEPOTCTL_COMMISSION_TABLE"):  # the closing note's table: every report, as JSON
        Path(table).write_text(json.dumps({cid: r.to_json() for cid, r in reports.items()}, indent=1))

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
        assert good.passed and good.ocpp_version == version and good.incomplete == ()
        assert good.quirks == () and good.ocpp_quirks_line == ""
        assert good.units == ("A", "W") and good.phases_in_use == 3
        assert good.reaction_s is not None and 0.25 <= good.reaction_s <= OPTIONS.reaction_bound_s
        assert site_lines(good) == []  # a reaction within 5 s: nothing to add (it would only shorten allowances)
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
    assert ignore.ocpp_quirks_line == "" and site_lines(ignore) == []
    assert ignore.reaction_s is None and "No reaction time is reported" in check(ignore, "follows_limit").detail

    all_passed_but(reports["noresume"], resume_after_zero="failed", profile_expiry="skipped")
    assert reports["noresume"].ocpp_quirks_line == "ocpp_quirks: [no_resume_after_zero]"

    hold = reports["hold"]  # holds the last period until validTo: failed, budgeted as holding (conservative)
    all_passed_but(hold, profile_expiry="failed")
    assert hold.ocpp_quirks_line == "ocpp_quirks: [holds_last_limit]"
    assert "holds the last period until validTo" in check(hold, "profile_expiry").detail
    all_passed_but(reports["forever"], profile_expiry="failed")  # ... past validTo: the quirk
    assert reports["forever"].ocpp_quirks_line == "ocpp_quirks: [holds_last_limit]"
    assert "past validTo" in check(reports["forever"], "profile_expiry").detail

    onephase = reports["onephase"]
    all_passed_but(onephase)
    assert onephase.phases_in_use == 1 and "divides a limit in W" in check(onephase, "phases_in_use").detail

    slow = reports["slow"]  # followed, slower than the run's 1 s: measured (the slowest step down), passed
    all_passed_but(slow)
    assert slow.reaction_s is not None and slow.reaction_s >= 1.8 and slow.ocpp_quirks_line == ""

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

    tight = reports["tight"]  # no room to test: incomplete, not passed
    all_passed_but(tight, follows_limit="skipped", profile_expiry="skipped")
    assert "headroom" in check(tight, "profile_expiry").detail
    assert not tight.passed and tight.state == "finished"
    assert [x.split(":")[0] for x in tight.incomplete] == ["follows_limit", "profile_expiry"], tight.incomplete
    assert Report.from_json(tight.to_json()).incomplete == tight.incomplete

    absent = reports["absent"]  # no EV without --no-ev: the EV checks were asked for, not made
    all_passed_but(absent, **{name: "skipped" for name in EV_CHECKS})
    assert not absent.passed and absent.to_json()["passed"] is False
    assert len(absent.incomplete) == 1 and "No EV charging" in absent.incomplete[0], absent.incomplete

    mute = reports["mute"]  # never answers: reported as not answering, no quirk tried
    all_passed_but(mute, failsafe_profile="failed", current_profile="failed", power_profile="failed",
                   **{name: "skipped" for name in EV_CHECKS})  # fmt: skip
    current = check(mute, "current_profile").detail
    assert "does not answer" in current and "no answer within 2 s" in current, current
    assert "without smart charging" not in current and mute.quirks == ()
    assert [r.status for r in port.sent if r.charger_id == "mute"] == ["timeout"] * 3  # fail-safe, A, W: no quirk

    late = reports["late"]  # its late-answered step up was in force: not "ignores its limit"
    all_passed_but(late, follows_limit="failed")
    assert "no answer within 2 s" in check(late, "follows_limit").detail and late.reaction_s is None
    assert [r.status for r in port.sent if r.charger_id == "late"].count("timeout") == 1


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
