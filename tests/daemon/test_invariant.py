"""The safety invariant of issue 12, checked under random faults.

A Hypothesis state machine drives the real daemon (in-process, real sockets) against the hil rig
through random sequences of faults; :class:`hil.rig.monitor.SafetyMonitor` samples the world every
0.2 s and the invariant is asserted after every step:

* (a) no node phase above its rated limit for longer than the reaction allowance (EV reaction
  time + meter poll + 2 s);
* (b) no charger allowed (by its own profiles, clock and EV) more than the controller budgets for
  it, beyond a grace of the OCPP call timeout (uncontrolled chargers: only (a));
* after a crash and restart, the restarted daemon knows every transaction the rig runs;
* both loops of the daemon keep running.

The steps: base-load steps on the metered nodes (kept feasible: the base plus every EV's charger at its fail-safe —
at its maximum for a charger that rejects profiles, at what it holds for one out of contact —
fits every node; no controller could do better), grid and sub-meter faults and their return,
charger link drops (short, and out of contact until reconnected), reboots, a charger that
starts/stops rejecting profiles or taking A limits (W only), clock offsets up to ± 5 min, late / never-answered / slow
SetChargingProfile answers, reloads (the SIGHUP path) with changed limits or fail-safe values, and
a crash + restart (the closest in-process kill -9: tasks cancelled, sockets reset, the store's
unwritten queue dropped; no fail-safe push, no flush; a new Daemon on the same file and database).

The world (rig + daemon) runs in an asyncio loop on a background thread; the synchronous state
machine calls into it with ``run_coroutine_threadsafe(...).result(timeout)`` — every wait bounded.
Clocks: both run on a pinned date advancing with the monotonic clock.

Profiles (tests/daemon/conftest.py): ``invariant`` by default (``make test``), ``invariant-soak``
with ``DEPOTCTL_SOAK=1`` (``make soak``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
import yaml
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from controller.config.loader import load_site, load_site_text
from controller.daemon.core import Daemon, DaemonOptions
from controller.model.site import Site, dc_phase_current_a
from controller.store import Store
from hil.ev import EvParams
from hil.rig import Rig, RigDay, Visit
from hil.rig.day import BaseStep
from hil.rig.monitor import ChargerSample, SafetyMonitor, Sample, Violation, charger_side_a, sample_world, watch
from hil.rig.plant import ZERO, Phase3, charger_grid_currents, node_loads, sim_ev, sim_max_a
from tests.daemon.rigged import DEMO, FAST, ev3, wait_for, write_site

T = TypeVar("T")

SOAK = os.environ.get("DEPOTCTL_SOAK", "") not in ("", "0")
PROFILE = "invariant-soak" if SOAK else "invariant"

PINNED_AT = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)  # Wed 14:00 in Amsterdam, far from DST
EV_REACTION_S = 3.0
METER_POLL_S = 1.0  # the demo site's poll_s
REACTION_ALLOWANCE_S = EV_REACTION_S + METER_POLL_S + 2.0
SAMPLE_EVERY_S = 0.2
SETTLE_S = 3.0
"""Real time the loop runs after every step, the monitor sampling."""
NOISE_A = 0.3
"""The rig's base-load flicker (± 0.1 A per node, summed up the tree) plus a little."""
DAY_S = 24 * 3600.0
NODES = ("grid", "feeder-a", "feeder-b", "board-a1")
GRID_METER, SUB_METER = "grid-meter", "feeder-b-meter"


def _ev1(max_a: float) -> EvParams:
    return EvParams(max_a=max_a, phases=1, battery_kwh=200.0, reaction_s=EV_REACTION_S)


VISITS = (
    Visit("CP07", 0.5, DAY_S, ev3(32.0, EV_REACTION_S), need_kwh=150.0, id_tag="T-CP07"),
    Visit("CP08", 0.5, DAY_S, ev3(32.0, EV_REACTION_S), need_kwh=150.0, id_tag="T-CP08"),
    Visit("CP09", 0.5, DAY_S, _ev1(16.0), need_kwh=100.0, id_tag="T-CP09"),
    Visit("DC01", 0.5, DAY_S, ev3(reaction_s=EV_REACTION_S), need_kwh=150.0, id_tag="0099AA01",
          vehicle_id="BUS-01", ev_max_kw=50.0),
    Visit("CP01", 0.5, DAY_S, ev3(16.0, EV_REACTION_S), need_kwh=60.0, id_tag="04A2B3C4", vehicle_id="VAN-01"),
    Visit("CP02", 0.5, DAY_S, _ev1(32.0), need_kwh=100.0, id_tag="T-CP02"),  # a 1-phase EV on a 3-phase charger
    Visit("CP04", 0.5, DAY_S, _ev1(32.0), need_kwh=100.0, id_tag="T-CP04"),
)
EV_CHARGERS = tuple(v.charger_id for v in VISITS)
BASE_NODES = ("grid", "feeder-b")
"""Nodes with a meter: the only ones whose own (non-EV) load a controller can see. An unmetered
circuit's own load is invisible (the site file has no way to state it), so the rig puts none there."""
BASE0 = {"grid": (20.0, 20.0, 20.0), "feeder-b": (10.0, 10.0, 10.0)}


def invariant_day() -> RigDay:
    """Seven EVs over every node (1- and 3-phase, AC and DC, OCPP 1.6 and 2.0.1) for the whole run."""
    return RigDay(
        DAY_S,
        base=tuple(BaseStep(0.0, node, a) for node, a in BASE0.items()),
        visits=VISITS,
        versions={"CP08": "2.0.1", "CP02": "2.0.1"},
    )


def pinned_clock() -> Callable[[], datetime]:
    """Starts at :data:`PINNED_AT`, runs at the pace of the monotonic clock (never the wall clock)."""
    t0 = time.monotonic()
    return lambda: PINNED_AT + timedelta(seconds=time.monotonic() - t0)


# --- feasibility: what any controller could keep --------------------------------------------------------------


def _own(a: float, phases: int) -> Phase3:
    return (a, a if phases >= 2 else 0.0, a if phases >= 3 else 0.0)


def worst_case_a(site: Site, rig: Rig, *, hostile: set[str], offline: set[str]) -> dict[str, Phase3]:
    """Per EV charger, the most it may draw whatever the controller does, on grid phases [A]: its
    fail-safe (capped by its EV); its EV's maximum if it rejects profiles; for one out of contact,
    also what it holds now (nothing can lower it)."""
    out: dict[str, Phase3] = {}
    for v in VISITS:
        ch = site.charger(v.charger_id)
        ev = sim_ev(site, ch, v.ev, v.ev_max_kw)
        top = min(ev.max_a, sim_max_a(site, ch))
        if v.charger_id in hostile:
            a = top
        elif ch.kind == "dc":
            a = min(top, dc_phase_current_a(site.failsafe.dc_kw, site.site.voltage_v, ch.efficiency,
                                            ch.power_factor))
        else:
            a = min(top, site.failsafe.charger_a)
        worst = charger_grid_currents(ch, _own(a, ev.phases))
        if v.charger_id in offline:
            held = charger_side_a(rig, v.charger_id, site)
            worst = (max(worst[0], held[0]), max(worst[1], held[1]), max(worst[2], held[2]))
        out[v.charger_id] = worst
    return out


def demand_a(site: Site, bases: dict[str, Phase3], worst: dict[str, Phase3]) -> dict[str, Phase3]:
    """Node → base plus every charger at its worst case [A per grid phase]."""
    loads = {n: list(a) for n, a in node_loads(site, bases, {}).items()}
    for cid, a in worst.items():
        for node in site.ancestors(site.charger(cid).circuit):
            for p in range(3):
                loads[node][p] += a[p]
    return {n: (a[0], a[1], a[2]) for n, a in loads.items()}


def room_a(site: Site, demand: dict[str, Phase3], node: str) -> float:
    """How far the node's worst case stays under its usable limit (the tightest phase) [A]."""
    return site.node_limit_a(node) - site.node_margin_a(node) - NOISE_A - max(demand[node])


def feasible(site: Site, demand: dict[str, Phase3]) -> bool:
    return all(room_a(site, demand, n) >= 0.0 for n in site.node_ids())


# --- the world in a background loop -----------------------------------------------------------------------------


class LoopThread:
    """An asyncio loop on its own thread; :meth:`call` runs a coroutine there and waits (bounded)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="invariant-world", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, make: Callable[[], Awaitable[T]], timeout_s: float, what: str) -> T:
        async def runner() -> T:
            return await make()

        fut = asyncio.run_coroutine_threadsafe(runner(), self.loop)
        try:
            return fut.result(timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise AssertionError(f"{what}: not done within {timeout_s:g} s") from None

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5.0)

        with contextlib.suppress(Exception):
            self.call(cancel_all, 10.0, "cancelling what is left")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self.loop.close()


def kill_store(store: Store) -> None:
    """What kill -9 leaves of the history writer: records not yet committed are gone. (Reaches into
    the writer: there is no public way to lose its queue, on purpose.)"""
    with store._cond:
        store._lost += len(store._queue)
        store._done += len(store._queue)
        store._queue.clear()
        store._closing = True
        store._cond.notify_all()
    store._thread.join(5.0)


@dataclass
class World:
    """The rig, the daemon in force (``None`` only inside a crash), the monitor, and the fault state."""

    tmp: Path
    clock: Callable[[], datetime] = field(default_factory=pinned_clock)
    rig: Rig | None = None
    daemon: Daemon | None = None
    site: Site | None = None
    site_path: Path | None = None
    ocpp_url: str = ""
    monitor: SafetyMonitor | None = None
    watcher: asyncio.Task[None] | None = None
    log: list[str] = field(default_factory=list)
    offline: set[str] = field(default_factory=set)
    rejecting: set[str] = field(default_factory=set)
    meter_faults: dict[str, str] = field(default_factory=dict)
    gateway_down: bool = False
    restarts: int = 0
    daemons: int = 0

    # --- life ---------------------------------------------------------------------------------------------
    def options(self) -> DaemonOptions:
        return DaemonOptions(clock=self.clock, serve_api=False, serve_metrics=False, handle_signals=False)

    async def start(self) -> None:
        site0 = load_site(DEMO).site
        self.rig = rig = Rig(site0, invariant_day(), meter_ports={"127.0.0.1:15020": 0}, clock=self.clock)
        await rig.start()
        self.site_path, ports = write_site(self.tmp, rig, FAST)
        self.ocpp_url = f"ws://127.0.0.1:{ports['ocpp']}/ocpp"
        self.site = load_site(self.site_path).site
        self.monitor = SafetyMonitor(reaction_allowance_s=REACTION_ALLOWANCE_S, grace_s=self.site.ocpp.call_timeout_s)
        self.daemon = await self._new_daemon()
        self.watcher = asyncio.create_task(watch(self.monitor, self.sample, every_s=SAMPLE_EVERY_S,
                                                 on_violation=self._violated))
        offline = await rig.connect_chargers(self.ocpp_url, keep_connected=True, timeout_s=20)
        assert not offline, f"chargers not connected: {offline}"
        await wait_for(lambda: all(r.plugged for r in rig.visits), 30, "every EV plugged in")
        d = self.daemon
        await wait_for(lambda: not d.failsafe.state.active, 30, "normal control")
        self.note(f"started: {len(VISITS)} EVs charging, normal control")

    async def _new_daemon(self) -> Daemon:
        assert self.site_path is not None
        d = Daemon(load_site(self.site_path).site, self.site_path, self.options())
        await d.start()
        self.daemons += 1
        return d

    async def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.wait([self.watcher], timeout=5)
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.daemon.stop(), 20)
        if self.rig is not None:
            await self.rig.stop()

    # --- the monitor ------------------------------------------------------------------------------------
    def sample(self) -> Sample:
        assert self.rig is not None and self.site is not None
        return sample_world(self.rig, self.daemon, self.site, self.rig.t_s())

    def _violated(self, v: Violation) -> None:
        self.note(f"VIOLATION {v}")

    def note(self, text: str) -> None:
        t = self.rig.t_s() if self.rig is not None else 0.0
        self.log.append(f"{t:7.1f} s  {text}")

    def problems(self) -> list[str]:
        assert self.monitor is not None
        out = [str(v) for v in self.monitor.violations]
        if self.watcher is not None and self.watcher.done():
            exc = None if self.watcher.cancelled() else self.watcher.exception()
            out.append(f"the monitor stopped: {exc!r}")
        if self.daemon is not None:
            for t in self.daemon._tasks:
                if t.done():
                    exc = None if t.cancelled() else t.exception()
                    out.append(f"the daemon's {t.get_name()} ended: {exc!r}")
        return out

    def trace(self) -> str:
        return "\n".join(self.log[-60:])

    async def check(self) -> None:
        problems = self.problems()
        if problems:
            raise AssertionError(
                "safety invariant broken:\n  " + "\n  ".join(problems) + "\nsteps (rig time):\n" + self.trace()
            )

    async def settle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    # --- feasibility ----------------------------------------------------------------------------------
    def demand(self, site: Site | None = None, bases: dict[str, Phase3] | None = None,
               hostile: set[str] | None = None) -> dict[str, Phase3]:
        assert self.rig is not None and self.site is not None
        site = site or self.site
        bases = bases if bases is not None else self.rig.own_base()
        worst = worst_case_a(site, self.rig, hostile=self.rejecting if hostile is None else hostile,
                             offline=self.offline)
        return demand_a(site, bases, worst)

    def meters_ok(self) -> bool:
        return not self.meter_faults and not self.gateway_down

    # --- steps --------------------------------------------------------------------------------------------
    async def base_step(self, node: str, share: Phase3) -> str:
        assert self.rig is not None and self.site is not None
        bases = self.rig.own_base()
        own = bases.get(node, ZERO)
        demand = self.demand(bases=bases)
        new = []
        for p in range(3):
            top = min(
                self.site.node_limit_a(a) - self.site.node_margin_a(a) - NOISE_A - (demand[a][p] - own[p])
                for a in self.site.ancestors(node)
            )
            value = round(max(0.0, top) * share[p], 1)
            if not self.meters_ok():
                value = min(value, own[p])  # a blind controller cannot see a step up: only down
            new.append(value)
        self.rig.set_base(node, (new[0], new[1], new[2]))
        return f"base {node}: {_fmt(own)} → {_fmt((new[0], new[1], new[2]))} A"

    async def meter_fault(self, meter: str, fault: str) -> str:
        assert self.rig is not None
        if fault == "gone":
            await self.rig.meter_server(GRID_METER).stop()  # the gateway: both meters
            self.gateway_down = True
            return "meter gateway gone (grid and sub-meter)"
        self.rig.sim_meter(meter).misbehave(fault)  # type: ignore[arg-type]
        self.meter_faults[meter] = fault
        return f"{meter}: {fault}"

    async def meters_back(self) -> str:
        assert self.rig is not None
        for meter in list(self.meter_faults):
            self.rig.sim_meter(meter).heal()
        if self.gateway_down:
            await self.rig.meter_server(GRID_METER).start()
        what = ", ".join([*self.meter_faults, *(["gateway"] if self.gateway_down else [])]) or "nothing"
        self.meter_faults.clear()
        self.gateway_down = False
        return f"meters back ({what})"

    async def link_blip(self, cid: str) -> str:
        assert self.rig is not None
        await self.rig.sim(cid).drop_link()
        return f"{cid}: link dropped (it reconnects by itself)"

    async def go_offline(self, cid: str) -> str:
        assert self.rig is not None
        keeper = self.rig._keepers.pop(cid, None)  # no public per-charger disconnect in the rig yet
        if keeper is not None:
            keeper.cancel()
            await asyncio.wait([keeper], timeout=5)
        await self.rig.sim(cid).drop_link()
        self.offline.add(cid)
        return f"{cid}: out of contact"

    async def come_back(self, cid: str) -> str:
        assert self.rig is not None
        self.offline.discard(cid)
        still = await self.rig.connect_chargers(self.ocpp_url, keep_connected=True, timeout_s=15)
        assert cid not in still, f"{cid} did not reconnect within 15 s"
        return f"{cid}: back in contact"

    async def reboot(self, cid: str, down_s: float) -> str:
        assert self.rig is not None
        await asyncio.wait_for(self.rig.sim(cid).reboot(down_s=down_s, timeout_s=5.0), down_s + 25.0)
        return f"{cid}: rebooted (down {down_s:g} s, every profile lost, transaction restarted)"

    async def set_rejecting(self, cid: str, on: bool) -> str:
        assert self.rig is not None and self.site is not None
        if on and not feasible(self.site, self.demand(hostile=self.rejecting | {cid})):
            return f"{cid}: not rejecting (the base load and it at its maximum would not fit: no controller could cope)"
        sim = self.rig.sim(cid)
        sim.update()
        sim.o.reject_profiles = on
        (self.rejecting.add if on else self.rejecting.discard)(cid)
        return f"{cid}: {'rejects every profile' if on else 'accepts profiles again'}"

    async def set_clock(self, cid: str, offset_s: float) -> str:
        assert self.rig is not None
        sim = self.rig.sim(cid)
        sim.update()
        before = sim.o.clock_offset_s
        sim.o.clock_offset_s = offset_s
        return f"{cid}: clock {before:+g} s → {offset_s:+g} s"

    async def set_watts_only(self, cid: str, on: bool) -> str:
        """The charger takes W limits only (and converts them by the phases its EV uses), unknown
        to the site file: the controller has to learn it from the rejections."""
        assert self.rig is not None
        sim = self.rig.sim(cid)
        sim.update()
        sim.o.quirks = sim.o.quirks | {"power_only"} if on else sim.o.quirks - {"power_only"}
        return f"{cid}: {'takes W limits only' if on else 'takes A limits again'}"

    async def set_answers(self, cid: str, how: str) -> str:
        assert self.rig is not None and self.site is not None
        sim = self.rig.sim(cid)
        sim.update()
        o = sim.o
        o.late_answer_s, o.never_answer_profiles, o.slow_answer_s = 0.0, False, 0.0
        if how == "late":
            o.late_answer_s = 2.0
        elif how == "after the timeout":
            o.late_answer_s = self.site.ocpp.call_timeout_s + 3.0
        elif how == "never":
            o.never_answer_profiles = True
        elif how == "slow":
            o.slow_answer_s = 1.0
        return f"{cid}: answers SetChargingProfile {how}"

    async def reload_limit(self, node: str, share: float) -> str:
        """A new rated limit for ``node``: between what its worst case needs and the demo's rating."""
        assert self.site is not None
        rated = load_site(DEMO).site.node_limit_a(node)
        lowest = max(self.demand()[node]) + self.site.node_margin_a(node) + NOISE_A
        limit = float(math.ceil(lowest + share * max(0.0, rated - lowest)))
        what = f"{node} limit {self.site.node_limit_a(node):g} → {limit:g} A"
        return await self.reload({"limit": (node, limit)}, what)

    async def reload(self, change: dict[str, Any], what: str) -> str:
        assert self.site_path is not None and self.daemon is not None and self.site is not None
        doc = yaml.safe_load(self.site_path.read_text())
        if "failsafe" in change:
            doc["failsafe"] = {**doc["failsafe"], **change["failsafe"]}
        if "limit" in change:
            node, limit = change["limit"]
            target = doc["grid"] if node == "grid" else next(c for c in doc["circuits"] if c["id"] == node)
            target["limit_a"] = limit
        text = yaml.safe_dump(doc, sort_keys=False)
        try:
            new = load_site_text(text, "reloaded site").site
        except Exception as exc:
            return f"reload skipped ({what}: the loader refuses it: {str(exc).splitlines()[0]})"
        if "failsafe" in change:  # the chargers may hold either value until the new one is confirmed
            both = load_site_text(yaml.safe_dump({**doc, "failsafe": {
                "charger_a": max(new.failsafe.charger_a, self.site.failsafe.charger_a),
                "dc_kw": max(new.failsafe.dc_kw, self.site.failsafe.dc_kw)}}, sort_keys=False), "worst").site
            if not feasible(both, self.demand(site=both)):
                return f"reload skipped ({what}: not feasible with the base load now)"
        elif not feasible(new, self.demand(site=new)):
            return f"reload skipped ({what}: not feasible with the base load now)"
        self.site_path.write_text(text)
        assert await self.daemon.reload(), "the daemon refused a valid site file"
        self.site = self.daemon.site
        return f"reload: {what}"

    async def crash_and_restart(self) -> str:
        d, self.daemon = self.daemon, None
        assert d is not None
        tasks = [*d._tasks, *d._spawned]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        if d.scheduler is not None:
            with contextlib.suppress(Exception):
                d.scheduler.shutdown(wait=False)
        for link in list(d.cs._links.values()):  # the process's sockets die with it: reset, no close frame
            link.ws.transport.abort()
        server = d.cs._server
        if server is not None:
            server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 5)
            d.cs._server = None
        await d.cs.control.close()  # cancels fail-safe retries (nothing sent)
        await d.meters.close()
        if d.recorder.store is not None:
            await asyncio.to_thread(kill_store, d.recorder.store)
        d.executor.shutdown(wait=False, cancel_futures=True)
        if d.planning.worker is not None:
            d.planning.worker.kill()  # a killed daemon's planner process dies with it (its pipe closes)
        self.daemon = await self._new_daemon()
        self.restarts += 1
        new = self.daemon
        online = [cid for cid in EV_CHARGERS if cid not in self.offline]
        await wait_for(lambda: all((s := new.cs.states.get(c)) is not None and s.connected for c in online), 20,
                       "the chargers reconnected to the restarted daemon")
        try:
            await wait_for(lambda: not self.lost_sessions(), 10, "the restarted daemon knows every transaction")
        except AssertionError:
            raise AssertionError(
                "sessions lost in a restart: " + "; ".join(self.lost_sessions()) + "\nsteps:\n" + self.trace()
            ) from None
        return "crash (kill -9 equivalent) and restart: every running transaction known again"

    def lost_sessions(self) -> list[str]:
        """Transactions the rig's chargers run that the daemon does not know (by id)."""
        assert self.rig is not None and self.daemon is not None
        out = []
        for cid, sim in self.rig.sims.items():
            st = self.daemon.cs.states.get(cid)
            for conn_id, c in sim.connectors.items():
                if c.tx is None:
                    continue
                tx = st.transaction(conn_id) if st is not None else None
                if tx is None or str(tx.transaction_id) != str(c.tx.transaction_id):
                    known = "none" if tx is None else str(tx.transaction_id)
                    out.append(f"{cid}/{conn_id} runs {c.tx.transaction_id}, the daemon knows {known}")
        return out


def _fmt(a: Phase3) -> str:
    return "/".join(f"{x:g}" for x in a)


# --- the state machine ------------------------------------------------------------------------------------------


@dataclass
class Totals:
    examples: int = 0
    steps: int = 0
    samples: int = 0
    budget_checks: int = 0
    restarts: int = 0
    rules: Counter[str] = field(default_factory=Counter)
    longest_overload_s: float = 0.0
    longest_over_budget_s: float = 0.0
    peak_utilisation: float = 0.0

    def add(self, w: World) -> None:
        m = w.monitor
        if m is None:
            return
        self.samples += m.samples
        self.budget_checks += m.budget_checks
        self.restarts += w.restarts
        self.longest_overload_s = max(self.longest_overload_s, m.longest_s["overload"])
        self.longest_over_budget_s = max(self.longest_over_budget_s, m.longest_s["over_budget"])
        self.peak_utilisation = max(self.peak_utilisation, m.peak_utilisation)


CHARGERS = st.sampled_from(EV_CHARGERS)
SHARE = st.floats(0.0, 1.0)


class InvariantMachine(RuleBasedStateMachine):
    lt: ClassVar[LoopThread]
    tmp: ClassVar[Path]
    totals: ClassVar[Totals]

    def __init__(self) -> None:
        super().__init__()
        self.world: World | None = None
        self.steps = 0

    # --- plumbing -------------------------------------------------------------------------------------
    def _w(self) -> World:
        assert self.world is not None
        return self.world

    def _step(self, name: str, make: Callable[[], Awaitable[str]], timeout_s: float = 60.0) -> None:
        w = self._w()
        text = self.lt.call(make, timeout_s, name)
        w.note(text)
        self.lt.call(lambda: w.settle(SETTLE_S), SETTLE_S + 10.0, "letting the loop run")
        self.steps += 1
        self.totals.steps += 1
        self.totals.rules[name] += 1

    @initialize()
    def start(self) -> None:
        self.totals.examples += 1
        tmp = self.tmp / f"example-{self.totals.examples}"
        tmp.mkdir()
        self.world = World(tmp)
        self.lt.call(self.world.start, 120.0, "starting the rig and the daemon")

    def teardown(self) -> None:
        w = self.world
        if w is None:
            return
        try:
            if w.monitor is not None and self.steps:  # an excursion begun in the last step gets its full allowance
                wait_s = max(REACTION_ALLOWANCE_S, w.monitor.grace_s) + 1.0
                self.lt.call(lambda: w.settle(wait_s), wait_s + 10.0, "the final settle")
                self.lt.call(w.check, 10.0, "the final check")
        finally:
            self.totals.add(w)
            self.lt.call(w.stop, 60.0, "stopping the rig and the daemon")
            summary = w.monitor.summary() if w.monitor is not None else "no monitor"
            print(f"\nexample {self.totals.examples}: {summary}\n" + "\n".join(w.log))  # shown with -s or on failure

    @invariant()
    def safe(self) -> None:
        if self.world is not None and self.world.monitor is not None:
            self.lt.call(self.world.check, 10.0, "checking the invariant")

    # --- rules ------------------------------------------------------------------------------------------
    @rule(node=st.sampled_from(BASE_NODES), share=st.tuples(SHARE, SHARE, SHARE))
    def base_step(self, node: str, share: Phase3) -> None:
        self._step("base_step", lambda: self._w().base_step(node, share))

    @rule(meter=st.sampled_from((GRID_METER, SUB_METER)),
          fault=st.sampled_from(("silent", "exception", "nan", "freeze", "gone")))
    def meter_fault(self, meter: str, fault: str) -> None:
        self._step("meter_fault", lambda: self._w().meter_fault(meter, fault))

    @precondition(lambda self: self.world is not None and not self.world.meters_ok())
    @rule()
    def meters_back(self) -> None:
        self._step("meters_back", lambda: self._w().meters_back())

    @rule(cid=CHARGERS)
    def link_blip(self, cid: str) -> None:
        if cid in self._w().offline:
            return
        self._step("link_blip", lambda: self._w().link_blip(cid))

    @rule(cid=CHARGERS)
    def go_offline(self, cid: str) -> None:
        if cid in self._w().offline:
            return
        self._step("go_offline", lambda: self._w().go_offline(cid))

    @precondition(lambda self: self.world is not None and bool(self.world.offline))
    @rule(data=st.data())
    def come_back(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self._w().offline)), label="charger")
        self._step("come_back", lambda: self._w().come_back(cid))

    @rule(cid=CHARGERS, down_s=st.sampled_from((0.0, 1.0, 4.0)))
    def reboot(self, cid: str, down_s: float) -> None:
        if cid in self._w().offline:
            return
        self._step("reboot", lambda: self._w().reboot(cid, down_s), timeout_s=down_s + 40.0)

    @rule(cid=CHARGERS, on=st.booleans())
    def rejecting(self, cid: str, on: bool) -> None:
        self._step("rejecting", lambda: self._w().set_rejecting(cid, on))

    @rule(cid=CHARGERS, offset_s=st.one_of(st.sampled_from((-300, -120, 0, 120, 300)), st.integers(-300, 300)))
    def clock_offset(self, cid: str, offset_s: int) -> None:
        if cid in self._w().offline:
            return  # a clock moved while out of contact cannot be measured by anyone
        self._step("clock_offset", lambda: self._w().set_clock(cid, float(offset_s)))

    @rule(cid=CHARGERS, on=st.booleans())
    def watts_only(self, cid: str, on: bool) -> None:
        self._step("watts_only", lambda: self._w().set_watts_only(cid, on))

    @rule(cid=CHARGERS, how=st.sampled_from(("promptly", "late", "after the timeout", "never", "slow")))
    def answers(self, cid: str, how: str) -> None:
        self._step("answers", lambda: self._w().set_answers(cid, how))

    @rule(node=st.sampled_from(NODES), share=SHARE)
    def reload_limit(self, node: str, share: float) -> None:
        self._step("reload", lambda: self._w().reload_limit(node, share))

    @rule(charger_a=st.sampled_from((4.0, 6.0, 8.0, 10.0)), dc_kw=st.sampled_from((5.0, 8.0)))
    def reload_failsafe(self, charger_a: float, dc_kw: float) -> None:
        w = self._w()
        change = {"failsafe": {"charger_a": charger_a, "dc_kw": dc_kw}}
        self._step("reload", lambda: w.reload(change, f"fail-safe {charger_a:g} A / {dc_kw:g} kW"))

    @rule()
    def crash_and_restart(self) -> None:
        self._step("crash_and_restart", lambda: self._w().crash_and_restart(), timeout_s=90.0)


# --- the tests --------------------------------------------------------------------------------------------------


def test_the_invariant_holds_under_random_faults(tmp_path: Path) -> None:
    lt = LoopThread()
    totals = Totals()
    machine = type("Machine", (InvariantMachine,), {"lt": lt, "tmp": tmp_path, "totals": totals})
    t0 = time.monotonic()
    try:
        run_state_machine_as_test(machine, settings=settings.get_profile(PROFILE))
    finally:
        lt.close()
        took = time.monotonic() - t0
        rules = ", ".join(f"{k} {v}" for k, v in sorted(totals.rules.items()))
        print(
            f"\ninvariant ({PROFILE}): {totals.examples} examples, {totals.steps} steps ({rules}); "
            f"{totals.restarts} restarts; monitor: {totals.samples} samples, {totals.budget_checks} budget checks, "
            f"longest overload {totals.longest_overload_s:.1f} s (allowed {REACTION_ALLOWANCE_S:g} s), "
            f"longest over-budget {totals.longest_over_budget_s:.1f} s, peak utilisation "
            f"{totals.peak_utilisation:.0%}; {took:.0f} s"
        )


# --- the monitor itself (pure) ----------------------------------------------------------------------------------

LIMITS = {"grid": 100.0}


def _at(t_s: float, load: Phase3, *chargers: ChargerSample) -> Sample:
    return Sample(t_s, {"grid": load}, LIMITS, chargers)


def test_an_overload_counts_only_once_it_outlasts_the_allowance() -> None:
    m = SafetyMonitor(reaction_allowance_s=6.0, grace_s=5.0)
    assert m.observe(_at(0.0, (101.0, 50.0, 50.0))) == []
    assert m.observe(_at(5.9, (105.0, 50.0, 50.0))) == []
    assert m.observe(_at(6.0, (99.0, 50.0, 50.0))) == []  # back under: that excursion is over
    assert m.observe(_at(6.2, (101.0, 50.0, 50.0))) == []
    found = m.observe(_at(12.4, (102.0, 50.0, 50.0)))
    assert [(v.kind, v.where, v.phase, v.since_s) for v in found] == [("overload", "grid", "L1", 6.2)]
    m.observe(_at(13.0, (104.0, 50.0, 50.0)))
    m.observe(_at(13.2, (90.0, 50.0, 50.0)))
    (v,) = m.violations
    assert v.value_a == 104.0 and v.until_s == 13.2 and v.lasted_s == pytest.approx(7.0)
    assert m.longest_s["overload"] == pytest.approx(6.8) and m.samples == 7


def test_a_charger_over_its_budget_counts_after_the_grace_and_beyond_the_rounding() -> None:
    m = SafetyMonitor(reaction_allowance_s=6.0, grace_s=5.0)
    ok = ChargerSample("CP1", (16.05, 16.05, 0.0), (16.0, 16.0, 16.0), "connected")
    assert m.observe(_at(0.0, ZERO, ok)) == [] and m.observe(_at(10.0, ZERO, ok)) == []  # rounding
    over = ChargerSample("CP1", (32.0, 32.0, 32.0), (6.0, 6.0, 6.0), "out of contact")
    assert m.observe(_at(11.0, ZERO, over)) == []
    found = m.observe(_at(16.2, ZERO, over))
    assert {(v.kind, v.where, v.phase) for v in found} == {("over_budget", "CP1", p) for p in ("L1", "L2", "L3")}
    assert "out of contact" in found[0].text and found[0].limit_a == pytest.approx(6.1)


def test_no_budget_means_nothing_to_compare() -> None:
    m = SafetyMonitor(reaction_allowance_s=6.0, grace_s=5.0)
    free = ChargerSample("CP1", (32.0, 32.0, 32.0), None, "uncontrolled: rejected a profile")
    for t in range(20):
        assert m.observe(_at(float(t), ZERO, free)) == []
    assert m.budget_checks == 0 and m.violations == []
    with pytest.raises(ValueError):
        m.observe(_at(3.0, ZERO))
