"""The daemon against the rig on a small line-to-line site, closed loop (issue 18).

A 480Y/277 V service; a 480 → 208Y/120 V delta-wye transformer (limit and meter on its primary)
feeds a panel of four 208 V Level 2 chargers, each between two lines (two on L1-L2, one on L2-L3,
one on L3-L1), simulated as line-to-line charge points (their EVs' one current flows on both
lines). At full power the four would put 85 A on the panel's L1 (80 A limit) and 32 A on each
primary line (20 A limit): the controller must manage, and only the phasor sums say how much.

The real daemon (in-process, real OCPP websockets on loopback, real Modbus TCP meters) runs for a
few seconds of a pinned clock while :class:`hil.rig.monitor.SafetyMonitor` samples the rig: no
node line above its rating beyond the reaction allowance (the rig's phasor monitor), no charger
allowing more than the daemon budgets; and, at every sample once the daemon plans, the limits the
chargers hold, drawn in full, keep every node's phasor line currents within its rating.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.config.loader import load_site, load_site_text
from controller.daemon.core import Daemon, DaemonOptions
from controller.model.site import Site
from hil.ev import EvParams
from hil.rig import BaseStep, Rig, RigDay, Visit, free_port, rig_site_text
from hil.rig.monitor import SafetyMonitor, Sample, allowed_loads_a, sample_world, watch
from hil.rig.plant import Phase3

PINNED_AT = datetime(2026, 9, 14, 15, 0, tzinfo=UTC)  # Mon 10:00 in Chicago, far from DST
EV_REACTION_S = 2.0
METER_POLL_S = 1.0
REACTION_ALLOWANCE_S = EV_REACTION_S + METER_POLL_S + 2.0
RUN_S = 6.0
"""Pinned-clock seconds the loop runs once every EV charges under the daemon's plan."""
BASE_HOLD_S = 2.0
"""The daemon holds each node's base load at its recent maximum over this window (5 min in the
product): the EVs' draw before their first meter values counts as base meanwhile, so a short
window lets a few seconds of run show the limits the phasor sums allow."""
NOISE_A = 0.3
"""The rig's base-load flicker, with a little to spare, allowed over the ratings in the limit check."""

SITE = """\
site: {name: Line-to-line test lot, timezone: America/Chicago, service: wye, voltage_v: 277}
grid: {limit_a: 60, margin_a: 2, meter: grid-meter}
meters:
  - {id: grid-meter, preset: janitza-umg96rm, modbus: {host: 127.0.0.1, port: 15020, unit: 1}}
  - {id: xfmr-meter, preset: carlo-gavazzi-em24, modbus: {host: 127.0.0.1, port: 15020, unit: 2}}
circuits:
  - id: xfmr
    limit_a: 20
    margin_a: 1
    meter: xfmr-meter
    transformer: {connection: delta-wye, ratio: 2.31}
  - {id: panel, parent: xfmr, limit_a: 80, margin_a: 2}
chargers:
  - {id: LL1, circuit: panel, phases: 1, phase_rotation: L1-L2, max_a: 32}
  - {id: LL2, circuit: panel, phases: 1, phase_rotation: L2-L3, max_a: 32}
  - {id: LL3, circuit: panel, phases: 1, phase_rotation: L3-L1, max_a: 32}
  - {id: LL4, circuit: panel, phases: 1, phase_rotation: L1-L2, max_a: 32}
failsafe: {charger_a: 6}
ocpp: {listen: 127.0.0.1:9000, security_profile: 0, profile_ttl_s: 12, meter_sample_s: 1}
control: {plan_every_s: 2}
storage: {path: depot.db}
"""


def pinned_clock() -> Callable[[], datetime]:
    """Starts at :data:`PINNED_AT`, runs at the pace of the monotonic clock (never the wall clock)."""
    t0 = time.monotonic()
    return lambda: PINNED_AT + timedelta(seconds=time.monotonic() - t0)


def ev208(max_a: float = 32.0) -> EvParams:
    return EvParams(max_a=max_a, phases=1, battery_kwh=80.0, reaction_s=EV_REACTION_S)


def day() -> RigDay:
    """Four EVs plugged in for the whole run; the depot's own load on the grid meter."""
    long_s = 24 * 3600.0
    return RigDay(
        long_s,
        base=(BaseStep(0.0, "grid", (8.0, 8.0, 8.0)),),
        visits=tuple(
            Visit(cid, 0.5, long_s, ev208(), need_kwh=60.0, soc_pct=20.0, id_tag=f"T-{cid}")
            for cid in ("LL1", "LL2", "LL3", "LL4")
        ),
    )


@dataclass
class Loop:
    rig: Rig
    daemon: Daemon
    site: Site
    monitor: SafetyMonitor
    over_limits: list[str] = field(default_factory=list)
    """Samples where the chargers' limits, drawn in full, would overload a node (phasor sums)."""
    peak_allowed: dict[str, float] = field(default_factory=dict)
    """Node → the highest line current the limits allowed at any sample [A]."""
    primary_a: list[float] = field(default_factory=list)
    """The transformer primary's busiest line at each sample under normal control [A]."""


@contextlib.asynccontextmanager
async def line_to_line_loop(tmp: Path, sim_options: dict[str, dict[str, Any]] | None = None) -> AsyncIterator[Loop]:
    clock = pinned_clock()
    site0 = load_site_text(SITE, "line-to-line.yaml").site
    rig = Rig(
        site0,
        day(),
        meter_ports={"127.0.0.1:15020": 0},
        clock=clock,
        sim_options=sim_options or {},
        tick_s=0.1,
    )
    await rig.start()
    try:
        src = tmp / "line-to-line.in.yaml"
        src.write_text(SITE)
        ocpp_port = free_port()
        text = rig_site_text(
            src,
            meter_ports=rig.meter_ports,
            ocpp_port=ocpp_port,
            api_port=free_port(),
            metrics_port=free_port(),
            storage_path=tmp / "depot.db",
        )
        site_path = tmp / "line-to-line.yaml"
        site_path.write_text(text)
        site = load_site(site_path).site
        options = DaemonOptions(
            clock=clock,
            serve_api=False,
            serve_metrics=False,
            handle_signals=False,
            plan_in_worker=False,
            base_hold_s=BASE_HOLD_S,
        )
        daemon = Daemon(site, site_path, options)
        await daemon.start()
        monitor = SafetyMonitor(reaction_allowance_s=REACTION_ALLOWANCE_S, grace_s=site.ocpp.call_timeout_s)
        loop = Loop(rig, daemon, site, monitor)
        watcher = asyncio.create_task(watch(monitor, lambda: _sample(loop), every_s=0.2))
        try:
            offline = await rig.connect_chargers(f"ws://127.0.0.1:{ocpp_port}/ocpp", keep_connected=True, timeout_s=15)
            assert not offline, f"chargers not connected: {offline}"
            yield loop
        finally:
            watcher.cancel()
            await asyncio.wait([watcher], timeout=5)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(daemon.stop(), 20)
    finally:
        await rig.stop()


def _sample(loop: Loop) -> Sample:
    """One step of the monitor, and the check on the limits themselves once the daemon plans."""
    sample = sample_world(loop.rig, loop.daemon, loop.site, loop.rig.t_s())
    if loop.daemon.plans.outcome is not None and not loop.daemon.failsafe.state.active:
        loop.primary_a.append(max(sample.loads_a["xfmr"]))
        for node, amps in allowed_loads_a(loop.rig, loop.site).items():
            rating = loop.site.node_limit_a(node)
            loop.peak_allowed[node] = max(loop.peak_allowed.get(node, 0.0), max(amps))
            if max(amps) > rating + NOISE_A:
                loop.over_limits.append(f"{sample.t_s:.1f} s: {node} {_fmt(amps)} A allowed > {rating:g} A")
    return sample


def _fmt(a: Phase3) -> str:
    return "/".join(f"{x:.1f}" for x in a)


async def _wait(pred: Callable[[], bool], timeout_s: float, what: str) -> None:
    end = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.1)


async def _run(loop: Loop) -> None:
    rig, daemon = loop.rig, loop.daemon
    await _wait(lambda: all(v.plugged for v in rig.visits), 20, "every EV plugged in")
    await _wait(lambda: daemon.plans.outcome is not None and not daemon.failsafe.state.active, 20, "normal control")
    await _wait(lambda: any(max(d) > 6.5 for d in rig.charger_draws().values()), 20, "an EV above its fail-safe")
    await asyncio.sleep(RUN_S)


@pytest.mark.parametrize(
    "report",
    ["both_lines", "first_line"],
    ids=["currents on both lines", "current on L1 only"],
)
async def test_line_to_line_chargers_stay_within_every_phasor_limit(tmp_path: Path, report: str) -> None:
    options = {cid: {"ll_current_report": report} for cid in ("LL1", "LL2", "LL3", "LL4")}
    async with line_to_line_loop(tmp_path, options) as loop:
        await _run(loop)
        rig, site = loop.rig, loop.site
        problems = [str(v) for v in loop.monitor.violations]
        assert not problems, "the phasor monitor saw:\n" + "\n".join(problems)
        assert not loop.over_limits, "limits over a node's phasor rating:\n" + "\n".join(loop.over_limits[:20])
        assert loop.monitor.samples > RUN_S / 0.2 / 2 and loop.monitor.budget_checks > 0
        # every charger is line-to-line, drawing one current on both of its lines
        assert all(ch.line_to_line for ch in site.chargers)
        draws = rig.charger_draws()
        assert all(d[0] == d[1] and d[2] == 0.0 for d in draws.values()), draws
        assert sum(v.delivered_kwh for v in rig.visits) > 0.0 or any(max(d) > 0 for d in draws.values())
        # the daemon raised limits above the fail-safe, up to what the primary's phasor sums allow
        peaks = rig.truth.peaks()
        xfmr = site.node_limit_a("xfmr")
        assert 6.0 < max(peaks["xfmr"]) <= xfmr + NOISE_A, peaks
        assert loop.peak_allowed["xfmr"] <= xfmr + NOISE_A
        # once raised, the primary stays used: a raise not drawn yet is no phantom base load that
        # the next plan would cut everyone back for (before the fix: 19 A, then 4 A a second later)
        first_high = next(i for i, a in enumerate(loop.primary_a) if a >= 0.75 * xfmr)
        assert min(loop.primary_a[first_high:]) >= 0.5 * xfmr, [round(a, 1) for a in loop.primary_a]
        # what a charger delivers is the line-to-line voltage × its line current: 208 V here
        sim = rig.sim("LL1")
        assert sim.o.line_to_line and sim.o.voltage_v == pytest.approx(277 * 3**0.5 / 2.31, rel=1e-9)
