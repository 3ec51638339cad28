"""The daemon under load: ``depotctl run`` against N simulated chargers and a simulated grid meter.

For each size N: generate a site (:mod:`bench.sites`: N AC chargers, 3/4 of them 3-phase 32 A,
on several feeders, grid and feeder limits that bind, one Eastron SDM630 grid meter on Modbus
TCP polled every second, ``ocpp.meter_sample_s`` 10, ``control.plan_every_s`` 10,
``ocpp.profile_ttl_s`` 120, security profile 0), start the hil rig in THIS process (sims ticking
every second, charger-side message validation off, the meter answering from a thread of its own:
a real meter answers whatever the chargers do, and the rig's loop, carrying 500 simulated
chargers, held its answers up to ~150 ms — the fast loop's cycle measured the rig, not the daemon)
and the daemon as a SUBPROCESS (``python -m controller.cli run --config FILE``, logging to a temp
file), connect every charger (kept connected), plug an EV into 4 of every 5, and wait until the
daemon is out of fail-safe and has planned every session. Then, over ``--seconds``:

* daemon CPU from ``/proc/PID/stat`` (utime + stime over wall time, % of one core — its planner
  process and other children included) and peak RSS from ``/proc/PID/status`` (VmRSS, sampled
  every second; the children's added);
* every 10 s the grid's own base load steps up by what puts the most loaded grid phase, as the rig
  has it at that moment, ``max(10 A, 3 % of the limit)`` above ``limit − margin`` (back down 5 s
  later): the daemon sheds (once per cycle while the meter still shows the overload);
* at the end, from the status API: ``loop.cycle_ms_p50/p99``, ``loop.shed_ms_p50/p99`` (overloaded
  meter reading → every shed profile acknowledged) and ``loop.sheds`` (percentiles over the
  daemon's recent history, start-up included), ``plan.total_ms`` of the last plan; the daemon's
  plans in the window (and the wait p99 over its life, start-up storm included): p50/p99 of the
  planner's own time and of the plan loop's wait (worker process: pickling and pipe included), where the
  last plan was made, its HiGHS status and iterations, and how many plans fell back (CBC,
  heuristic, worker trouble) and why; from ``/metrics``: profile pushes/s and the mean plan time
  over the window.

Beside the daemon's figures, the same kind of snapshot (the site file, one session on each
plugged charger, as the daemon sees them: best effort, EVs drawing, no departure) is planned
alone in the bench process before the rig starts: cold once, then ``BENCH_WARM_RUNS`` warm
cycles; the table shows its warm p50/p99 and the ratio daemon plan-wait p99 / bench warm p50.

The status API and ``/metrics`` are read only outside the CPU window (they cost the daemon CPU).

    .venv/bin/python bench/loop.py [--sizes 100,500] [--seconds 60] [--json] [--keep] [--profile DIR]

``--sizes 500`` runs the 500-charger size only (about 2.5 min). ``--keep`` keeps each size's
site file, daemon log and history database; ``--profile DIR`` runs the daemon under cProfile
(its event-loop thread only, not the planner process) into DIR/daemon-N.prof.
The machine is shared: the load average at start and end is printed beside the results.

Targets (issue): 500 chargers at a 1 s meter poll with daemon CPU ≤ 50 % of one core and
RSS ≤ 200 MB; shed latency p99 ≤ 200 ms at 100 chargers; at 500 chargers (issue 13) the plan
wait p99 inside the daemon ≤ 3× the bench's warm p50 for the same sessions, no CBC fall-back,
fast-loop cycle p99 ≤ 100 ms. Exits 1 (with the daemon's log tail)
when a run fails; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

# bench/ holds ocpp.py: keep the folder off the path, or it would shadow the ocpp package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench.sites import METER_ENDPOINT, Endpoints, dump, loop_site, to_site  # noqa: E402
from controller.config.loader import load_site  # noqa: E402
from controller.daemon.sessions import BEST_EFFORT_PRIORITY  # noqa: E402
from controller.model.site import GRID_ID, Site  # noqa: E402
from controller.model.snapshot import SessionState, Snapshot  # noqa: E402
from controller.planner.plan import plan  # noqa: E402
from controller.planner.state import PlannerState  # noqa: E402
from hil.ev import EvParams  # noqa: E402
from hil.rig import BaseStep, Rig, RigDay, free_port  # noqa: E402
from hil.rig.plant import sim_ev  # noqa: E402

PLUGGED_SHARE = (4, 5)
"""An EV is plugged into charger i when ``i % 5 < 4``."""
GRID_BASE_SHARE = 0.10
"""The grid's own (non-EV) base load, as a share of its limit (L1; L2, L3 a little less)."""
STEP_EVERY_S = 10.0
STEP_HOLD_S = 5.0
STEP_FIRST_S = 2.0
WARMUP_S = 12.0
"""After the daemon first planned every session: let the profiles land and the EVs follow."""
RIG_TICK_S = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
T = TypeVar("T")

TARGET_CPU_PCT = 50.0
TARGET_RSS_MB = 200.0
TARGET_SHED_P99_MS = 200.0
TARGET_PLAN_RATIO = 3.0
TARGET_CYCLE_P99_MS = 100.0
BENCH_WARM_RUNS = 20
BENCH_NOW = datetime(2026, 12, 7, 17, 0, tzinfo=UTC)


class BenchError(RuntimeError):
    pass


@dataclass
class Row:
    chargers: int
    sessions: int = 0
    cycle_p50_ms: float | None = None
    cycle_p99_ms: float | None = None
    plan_last_ms: float | None = None
    plan_mean_ms: float | None = None
    plan_max_le_ms: float | None = None
    """Upper bound of the slowest plan in the window (the smallest histogram bucket holding them all)."""
    plans: int = 0
    plan_p50_ms: float | None = None
    """The daemon's planner time (SolveStats.total_ms, in the worker) over the measured window."""
    plan_p99_ms: float | None = None
    wait_p50_ms: float | None = None
    """What the daemon's plan loop waited for each plan (pickling and the worker's pipe included)."""
    wait_p99_ms: float | None = None
    plans_life: int = 0
    life_wait_p99_ms: float | None = None
    """The plan wait p99 over the daemon's life (start-up storm and cold builds included)."""
    fallbacks: int = 0
    fallback_reasons: dict[str, int] = field(default_factory=dict)
    cbc_used: bool = False
    planned_in: str | None = None
    plan_status: str | None = None
    plan_iterations: int | None = None
    bench_cold_ms: float | None = None
    bench_warm_p50_ms: float | None = None
    bench_warm_p99_ms: float | None = None
    sheds: int = 0
    sheds_in_window: int = 0
    steps: int = 0
    shed_p50_ms: float | None = None
    shed_p99_ms: float | None = None
    cpu_pct: float = 0.0
    rss_peak_mb: float = 0.0
    rss_hwm_mb: float = 0.0
    cycles_per_s: float = 0.0
    pushes_per_s: float = 0.0
    rig_cpu_pct: float = 0.0
    failsafe_entries: int = 0
    failsafe_at_end: bool = False
    setup_s: float = 0.0
    window_s: float = 0.0
    grid_limit_a: float = 0.0
    notes: list[str] = field(default_factory=list)


# --- the daemon process ---------------------------------------------------------------------------


class DaemonProc:
    def __init__(
        self, site_path: Path, log_path: Path, api_url: str, metrics_url: str, profile_to: Path | None = None
    ) -> None:
        self.site_path = site_path
        self.profile_to = profile_to
        self.log_path = log_path
        self.api_url = api_url
        self.metrics_url = metrics_url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        _LIVE.append(self)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("WATCHDOG_USEC", None)
        profile = ["-m", "cProfile", "-o", str(self.profile_to)] if self.profile_to is not None else []
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                # as a depot PC runs it: no packages of the optional extras (bench/as_installed.py)
                [sys.executable, *profile, str(_HERE / "as_installed.py"), "run", "--config", str(self.site_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=str(_HERE.parent),
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise BenchError(f"depotctl run exited (code {code})")

    async def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (it pushes fail-safe limits to the still running sims first), then SIGKILL."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        end = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < end:
            await asyncio.sleep(0.1)
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 5)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)

    async def status(self, timeout_s: float = 15.0) -> dict[str, Any]:
        body = await asyncio.to_thread(_get, self.api_url + "/api/v1/status", timeout_s)
        data: dict[str, Any] = json.loads(body)
        return data

    async def metrics(self, timeout_s: float = 15.0) -> str:
        return (await asyncio.to_thread(_get, self.metrics_url + "/metrics", timeout_s)).decode()

    def family(self) -> list[int]:
        """The daemon and its live child processes (the planner worker)."""
        pids = [self.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    raw = (entry / "stat").read_text()
                    if int(raw[raw.rindex(")") + 2 :].split()[1]) == self.pid:
                        pids.append(int(entry.name))
        return pids

    def cpu_s(self) -> float:
        """utime + stime of the daemon (all its threads) and its live children [s]."""
        total = 0.0
        for pid in self.family():
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/stat").read_text()
                fields = raw[raw.rindex(")") + 2 :].split()
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) [MB], the daemon's and its children's added."""
        rss = hwm = 0.0
        for pid in self.family():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1]) / 1024.0
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1]) / 1024.0
        return rss, hwm

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return "(no log)"
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


_LIVE: list[DaemonProc] = []
"""Every daemon started: killed on the way out whatever happened."""


def _get(url: str, timeout_s: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:
        body: bytes = r.read()
        return body


def buckets(text: str, name: str) -> dict[float, float]:
    """A histogram's cumulative bucket counts: upper bound ``le`` [s] → count."""
    out: dict[float, float] = {}
    prefix = name + "_bucket{"
    for line in text.splitlines():
        if line.startswith(prefix) and 'le="' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            with contextlib.suppress(ValueError, IndexError):
                out[float(le)] = out.get(float(le), 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def slowest_le_s(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The smallest bucket bound holding every observation made between two scrapes."""
    total = after.get(math.inf, 0.0) - before.get(math.inf, 0.0)
    if total <= 0:
        return None
    for le in sorted(after):
        if after[le] - before.get(le, 0.0) >= total:
            return le
    return math.inf


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of ``name`` (any labels) in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and line[len(name) : len(name) + 1] in ("{", " "):
            with contextlib.suppress(ValueError, IndexError):
                total += float(line.rsplit(" ", 1)[1])
    return total


# --- waiting, bounded -----------------------------------------------------------------------------


async def wait_until(
    pred: Callable[[], Awaitable[bool]], timeout_s: float, what: str, daemon: DaemonProc, step_s: float = 1.0
) -> float:
    t0 = time.monotonic()
    last_exc: BaseException | None = None
    while True:
        daemon.check_alive()
        try:
            if await pred():
                return time.monotonic() - t0
        except (OSError, ValueError) as exc:
            last_exc = exc
        if time.monotonic() - t0 > timeout_s:
            extra = f" (last error: {last_exc!r})" if last_exc is not None else ""
            raise BenchError(f"timed out after {timeout_s:.0f} s waiting for {what}{extra}")
        await asyncio.sleep(step_s)


# --- one size -------------------------------------------------------------------------------------


def _grid_base(site: Site) -> tuple[float, float, float]:
    a = site.grid.limit_a * GRID_BASE_SHARE
    return (round(a, 1), round(a * 0.9, 1), round(a * 0.8, 1))


async def _plug_all(rig: Rig, site: Site, ids: list[str], timeout_s: float) -> None:
    slots = asyncio.Semaphore(32)

    async def one(i: int, cid: str) -> None:
        async with slots:
            sim = rig.sim(cid)
            ev = sim_ev(
                site,
                site.charger(cid),
                EvParams(max_a=32.0, phases=3, battery_kwh=300.0, reaction_s=1.0 + (i % 5) * 0.5),
            )
            await sim.plug_in(ev, soc_pct=20.0, id_tag=f"T{i:04d}", timeout_s=10.0)

    await asyncio.wait_for(asyncio.gather(*(one(i, cid) for i, cid in enumerate(ids))), timeout_s)


def _q(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=100, method="inclusive")[q - 1])


def bench_snapshots(site: Site, plugged: list[str], cycles: int) -> list[Snapshot]:
    """The daemon's kind of snapshot, planned alone: one best-effort session on each plugged
    charger (no departure, no need: the daemon's 300 kWh EVs at 20 %), drawing 29 A on the phases
    it uses, the grid's own base load; then ``cycles`` more, 10 s apart, the base load and the
    delivered energy moving a little."""
    base = _grid_base(site)
    sessions = []
    for i, cid in enumerate(plugged):
        ch = site.charger(cid)
        phases = 3 if ch.phases == 3 else 1
        drawn = (29.4, 29.4, 29.4) if phases == 3 else (29.4, 0.0, 0.0)
        sessions.append(SessionState(
            session_id=f"{cid}:{i}", charger_id=cid, arrived_at=BENCH_NOW - timedelta(minutes=2),
            priority=BEST_EFFORT_PRIORITY, phases_used=phases, measured_a=drawn, energy_delivered_kwh=0.2,
            soc_pct=20.0,
        ))
    out = []
    for k in range(cycles + 1):
        now = BENCH_NOW + timedelta(seconds=10 * k)
        wobble = 1.0 + 0.01 * ((k * 7) % 5 - 2)
        out.append(Snapshot(
            site=site, now=now, base_load_a={GRID_ID: tuple(v * wobble for v in base)},  # type: ignore[dict-item]
            sessions=tuple(replace(s, energy_delivered_kwh=s.energy_delivered_kwh + 0.08 * k) for s in sessions),
            next_plan_at=now + timedelta(seconds=site.control.plan_every_s),
        ))
    return out


def bench_plan(site: Site, plugged: list[str]) -> tuple[float, float, float]:
    """(cold, warm p50, warm p99) [ms] of the daemon's kind of snapshot planned in this process."""
    snaps = bench_snapshots(site, plugged, BENCH_WARM_RUNS)
    t0 = time.perf_counter()
    _, state = plan(snaps[0], PlannerState())
    cold = (time.perf_counter() - t0) * 1e3
    warm = []
    for snap in snaps[1:]:
        t0 = time.perf_counter()
        _, state = plan(snap, state)
        warm.append((time.perf_counter() - t0) * 1e3)
    q = statistics.quantiles(warm, n=100, method="inclusive")
    return cold, statistics.median(warm), q[98]


async def run_size(n: int, seconds: float, work: Path, verbose: bool, profile_dir: Path | None = None) -> Row:
    row = Row(chargers=n)
    tmp = Path(tempfile.mkdtemp(prefix=f"loop{n}-", dir=work))
    ends = Endpoints(
        ocpp_port=free_port(),
        api_port=free_port(),
        metrics_port=free_port(),
        meter_port=METER_ENDPOINT[1],
        storage_path=tmp / "depot.db",
    )
    data = loop_site(n, ends)
    site0 = to_site(data)
    base0 = _grid_base(site0)
    row.grid_limit_a = site0.grid.limit_a
    day = RigDay(7 * 86400.0, base=(BaseStep(0.0, GRID_ID, base0),))
    rig = Rig(
        site0, day, meter_ports={f"{METER_ENDPOINT[0]}:{METER_ENDPOINT[1]}": 0}, tick_s=RIG_TICK_S, meter_threads=True
    )
    for sim in rig.sims.values():
        sim.o.validate_messages = False  # the sims share the cores with the daemon; real chargers are fast
    daemon: DaemonProc | None = None
    plugged0 = [ch.id for i, ch in enumerate(site0.chargers) if i % PLUGGED_SHARE[1] < PLUGGED_SHARE[0]]
    row.bench_cold_ms, row.bench_warm_p50_ms, row.bench_warm_p99_ms = await asyncio.to_thread(
        bench_plan, site0, plugged0
    )
    _say(verbose, f"N={n}: the same snapshot alone: cold {row.bench_cold_ms:.0f} ms, "
                  f"warm p50 {row.bench_warm_p50_ms:.0f} ms p99 {row.bench_warm_p99_ms:.0f} ms")
    t_setup = time.monotonic()
    try:
        await rig.start()
        data["meters"][0]["modbus"]["port"] = rig.meter_ports[f"{METER_ENDPOINT[0]}:{METER_ENDPOINT[1]}"]
        site_path = tmp / "site.yaml"
        site_path.write_text(dump(data))
        site = load_site(site_path).site  # what the daemon will read
        daemon = DaemonProc(
            site_path,
            tmp / "daemon.log",
            f"http://127.0.0.1:{ends.api_port}",
            f"http://127.0.0.1:{ends.metrics_port}",
            None if profile_dir is None else profile_dir / f"daemon-{n}.prof",
        )
        daemon.start()
        d = daemon

        async def api_up() -> bool:
            await d.status()
            return True

        await wait_until(api_up, 60, "the daemon's status API", d, step_s=0.5)
        _say(verbose, f"N={n}: daemon up (pid {d.pid}); connecting {n} chargers")
        offline = await rig.connect_chargers(
            f"ws://127.0.0.1:{ends.ocpp_port}{site.ocpp.path}", keep_connected=True, timeout_s=180, concurrency=32
        )
        if offline:
            raise BenchError(f"{len(offline)} charger(s) not connected after 180 s: {', '.join(offline[:10])} …")

        async def failsafe_profiles() -> bool:
            return all(s.store.profiles for s in rig.sims.values())

        await wait_until(failsafe_profiles, 120, "every charger's fail-safe profile", d, step_s=0.5)
        plugged = [ch.id for i, ch in enumerate(site.chargers) if i % PLUGGED_SHARE[1] < PLUGGED_SHARE[0]]
        _say(verbose, f"N={n}: all connected; plugging {len(plugged)} EVs")
        await _plug_all(rig, site, plugged, 180)
        row.sessions = len(plugged)

        async def planned_all() -> bool:
            st = await d.status()
            plan = st.get("plan") or {}
            connected = sum(1 for c in st["chargers"] if c["connected"])
            return (
                not st["failsafe"]["active"]
                and connected == n
                and plan.get("sessions") == len(plugged)
                and plan.get("solver") not in (None, "none")
            )

        await wait_until(planned_all, 180, f"normal mode with a plan for all {len(plugged)} sessions", d, step_s=2.0)
        _say(verbose, f"N={n}: planned all sessions after {time.monotonic() - t_setup:.0f} s; warming up")
        await asyncio.sleep(WARMUP_S)
        d.check_alive()
        row.setup_s = time.monotonic() - t_setup

        # --- the measured window (no API calls to the daemon inside it) ---
        before = await d.status()
        metrics0 = await d.metrics()
        log0 = d.log_size()
        usable = site.grid.limit_a - site.grid.margin_a
        overshoot = max(10.0, 0.03 * site.grid.limit_a)
        steps_up = [STEP_FIRST_S + k * STEP_EVERY_S for k in range(int(seconds // STEP_EVERY_S) + 1)]
        steps_up = [t for t in steps_up if t + STEP_HOLD_S <= seconds]
        events = sorted([(t, "up") for t in steps_up] + [(t + STEP_HOLD_S, "down") for t in steps_up])
        rss_peak = 0.0
        rig_cpu0 = time.process_time()
        cpu0, w0 = d.cpu_s(), time.monotonic()
        next_mem = w0
        while (el := time.monotonic() - w0) < seconds:
            d.check_alive()
            while events and events[0][0] <= el:
                _, kind = events.pop(0)
                if kind == "up":
                    load = rig.loads()[GRID_ID]
                    step = max(overshoot, usable - max(load) + overshoot)
                    rig.set_base(GRID_ID, (base0[0] + step, base0[1] + step, base0[2] + step))
                    row.steps += 1
                    _say(
                        verbose,
                        f"N={n}: t={el:5.1f} s grid {max(load):.0f} A of usable {usable:.0f} A: base +{step:.0f} A",
                    )
                else:
                    rig.set_base(GRID_ID, base0)
            if time.monotonic() >= next_mem:
                rss, _ = d.memory_mb()
                rss_peak = max(rss_peak, rss)
                next_mem += 1.0
            await asyncio.sleep(0.05)
        cpu1, w1 = d.cpu_s(), time.monotonic()
        rig_cpu = time.process_time() - rig_cpu0
        rss, hwm = d.memory_mb()
        rss_peak = max(rss_peak, rss)
        rig.set_base(GRID_ID, base0)
        after = await d.status()
        metrics1 = await d.metrics()
        window_log = d.log_since(log0)

        wall = w1 - w0
        row.window_s = wall
        row.cpu_pct = 100.0 * (cpu1 - cpu0) / wall
        row.rig_cpu_pct = 100.0 * rig_cpu / wall
        row.rss_peak_mb = rss_peak
        row.rss_hwm_mb = hwm
        loop = after["loop"]
        row.cycle_p50_ms, row.cycle_p99_ms = loop["cycle_ms_p50"], loop["cycle_ms_p99"]
        row.shed_p50_ms, row.shed_p99_ms = loop["shed_ms_p50"], loop["shed_ms_p99"]
        row.sheds = loop["sheds"]
        row.sheds_in_window = loop["sheds"] - before["loop"]["sheds"]
        row.cycles_per_s = (loop["cycles"] - before["loop"]["cycles"]) / wall
        pl = after.get("plan") or {}
        row.plan_last_ms = pl.get("total_ms")
        row.plans_life = int(pl.get("plans_last_hour") or 0)
        in_window = row.plans_life - int((before.get("plan") or {}).get("plans_last_hour") or 0)
        totals = list(pl.get("recent_total_ms") or [])[-in_window:] if in_window > 0 else []
        waits = list(pl.get("recent_wait_ms") or [])[-in_window:] if in_window > 0 else []
        row.plan_p50_ms, row.plan_p99_ms = _q(totals, 50), _q(totals, 99)
        row.wait_p50_ms, row.wait_p99_ms = _q(waits, 50), _q(waits, 99)
        row.life_wait_p99_ms = pl.get("wait_ms_p99")
        row.fallbacks = int(pl.get("fallbacks_last_hour") or 0)
        row.fallback_reasons = dict(pl.get("fallback_reasons_last_hour") or {})
        row.cbc_used = any("cbc" in why.lower() for why in row.fallback_reasons) or pl.get("solver") == "cbc"
        row.planned_in, row.plan_status, row.plan_iterations = pl.get("planned_in"), pl.get("status"), pl.get(
            "iterations"
        )
        pushes = metric_sum(metrics1, "depot_profile_pushes_total") - metric_sum(metrics0, "depot_profile_pushes_total")
        row.pushes_per_s = pushes / wall
        plan_n = metric_sum(metrics1, "depot_plan_duration_seconds_count") - metric_sum(
            metrics0, "depot_plan_duration_seconds_count"
        )
        plan_s = metric_sum(metrics1, "depot_plan_duration_seconds_sum") - metric_sum(
            metrics0, "depot_plan_duration_seconds_sum"
        )
        row.plans = int(plan_n)
        row.plan_mean_ms = 1000.0 * plan_s / plan_n if plan_n else None
        le = slowest_le_s(
            buckets(metrics0, "depot_plan_duration_seconds"), buckets(metrics1, "depot_plan_duration_seconds")
        )
        row.plan_max_le_ms = None if le is None else le * 1000.0
        row.failsafe_entries = window_log.count("FAIL-SAFE")
        row.failsafe_at_end = bool(after["failsafe"]["active"])
        if row.failsafe_at_end:
            row.notes.append(f"fail-safe at the end: {after['failsafe']['reason']}")
        errors = [ln for ln in window_log.splitlines() if " ERROR " in ln or " CRITICAL " in ln or "Traceback" in ln]
        if errors:
            row.notes.append(f"{len(errors)} error line(s) in the window, first: {errors[0][:200]}")
        return row
    except BaseException:
        if daemon is not None:
            print(f"\n--- daemon log tail ({daemon.log_path}) ---\n{daemon.log_tail()}\n---", file=sys.stderr)
        raise
    finally:
        # The rig first: its chargers' keep-connected tasks stop cleanly while their links are up
        # (cancelled mid-reconnect, a sim's close() swallows the cancellation and it never ends).
        try:
            await rig.stop()
        finally:
            if daemon is not None:
                try:
                    await daemon.stop()
                finally:
                    daemon.kill()


def _say(verbose: bool, text: str) -> None:
    if verbose:
        print(text, file=sys.stderr, flush=True)


# --- report ---------------------------------------------------------------------------------------


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "–" if v is None else format(v, fmt)


def table(rows: list[Row]) -> str:
    lines = [
        "| chargers | sessions | cycle p50 ms | cycle p99 ms | plan ms (last) | sheds | shed p50 ms | shed p99 ms "
        "| CPU % of one core | RSS MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.chargers} | {r.sessions} | {_f(r.cycle_p50_ms)} | {_f(r.cycle_p99_ms)} "
            f"| {_f(r.plan_last_ms, '.0f')} | {r.sheds} | {_f(r.shed_p50_ms)} | {_f(r.shed_p99_ms)} "
            f"| {r.cpu_pct:.1f} | {r.rss_peak_mb:.0f} |"
        )
    return "\n".join(lines)


def details(rows: list[Row]) -> str:
    lines = [
        "| chargers | grid limit A | window s | base steps | sheds in window | cycles/s | plans (mean / max ≤ ms) "
        "| pushes/s | RSS HWM MB | rig CPU % | fail-safe entries |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.chargers} | {r.grid_limit_a:.0f} | {r.window_s:.0f} | {r.steps} | {r.sheds_in_window} "
            f"| {r.cycles_per_s:.2f} | {r.plans} ({_f(r.plan_mean_ms, '.0f')} / {_f(r.plan_max_le_ms, '.0f')}) "
            f"| {r.pushes_per_s:.1f} "
            f"| {r.rss_hwm_mb:.0f} | {r.rig_cpu_pct:.0f} | {r.failsafe_entries} |"
        )
    return "\n".join(lines)


def plans_table(rows: list[Row]) -> str:
    lines = [
        "| chargers | sessions | daemon plans (life) | window: planner p50 / p99 ms | window: plan wait p50 / p99 ms "
        "| life: wait p99 ms | bench alone: cold / warm p50 / p99 ms | window wait p99 / bench warm p50 | last plan "
        "| fell back (life) | CBC used |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for r in rows:
        ratio = (
            None if r.wait_p99_ms is None or not r.bench_warm_p50_ms else r.wait_p99_ms / r.bench_warm_p50_ms
        )
        last = f"{r.plan_status or '–'}, {r.plan_iterations if r.plan_iterations is not None else '–'} it., "
        last += r.planned_in or "–"
        lines.append(
            f"| {r.chargers} | {r.sessions} | {r.plans_life} | {_f(r.plan_p50_ms, '.0f')} / {_f(r.plan_p99_ms, '.0f')} "
            f"| {_f(r.wait_p50_ms, '.0f')} / {_f(r.wait_p99_ms, '.0f')} | {_f(r.life_wait_p99_ms, '.0f')} "
            f"| {_f(r.bench_cold_ms, '.0f')} / {_f(r.bench_warm_p50_ms, '.0f')} / {_f(r.bench_warm_p99_ms, '.0f')} "
            f"| {_f(ratio, '.2f')} | {last} | {r.fallbacks} | {'yes' if r.cbc_used else 'no'} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> str:
    def mark(ok: bool) -> str:
        return "✓" if ok else "✗"

    parts = []
    for r in rows:
        if r.chargers == 500:
            parts.append(f"500: CPU ≤ {TARGET_CPU_PCT:g} % {mark(r.cpu_pct <= TARGET_CPU_PCT)} ({r.cpu_pct:.1f} %)")
            ok = r.rss_peak_mb <= TARGET_RSS_MB
            parts.append(f"500: RSS ≤ {TARGET_RSS_MB:g} MB {mark(ok)} ({r.rss_peak_mb:.0f} MB)")
            if r.wait_p99_ms is not None and r.bench_warm_p50_ms:
                ratio = r.wait_p99_ms / r.bench_warm_p50_ms
                parts.append(f"500: plan p99 in the daemon ≤ {TARGET_PLAN_RATIO:g}× the bench's warm "
                             f"{mark(ratio <= TARGET_PLAN_RATIO)} ({ratio:.2f}×)")
            parts.append(f"500: no CBC fall-back {mark(not r.cbc_used)}")
            p99 = r.cycle_p99_ms
            ok = p99 is not None and p99 <= TARGET_CYCLE_P99_MS
            parts.append(f"500: cycle p99 ≤ {TARGET_CYCLE_P99_MS:g} ms {mark(ok)} ({_f(p99)} ms)")
        if r.chargers == 100:
            p99 = r.shed_p99_ms
            ok = p99 is not None and p99 <= TARGET_SHED_P99_MS
            parts.append(f"100: shed p99 ≤ {TARGET_SHED_P99_MS:g} ms {mark(ok)} ({_f(p99)} ms)")
    return "targets: " + ("; ".join(parts) if parts else "(run sizes 100 and 500 to judge them)")


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


async def main_async(args: argparse.Namespace, work: Path) -> list[Row]:
    rows = []
    for n in args.sizes:
        rows.append(await run_size(n, args.seconds, work, not args.quiet, args.profile))
    return rows


def run_bounded(coro: Coroutine[Any, Any, T], cleanup_s: float = 60.0) -> T:
    """``asyncio.run`` whose clean-up is bounded: tasks that ignore cancellation are reported and
    left behind instead of hanging the benchmark (``asyncio.run`` waits for them forever)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        try:
            tasks = asyncio.all_tasks(loop)
            for t in tasks:
                t.cancel()
            if tasks:
                _, pending = loop.run_until_complete(asyncio.wait(tasks, timeout=cleanup_s))
                if pending:
                    names = ", ".join(sorted(t.get_name() for t in pending)[:5])
                    print(f"bench/loop.py: {len(pending)} task(s) ignored cancellation ({names} …)", file=sys.stderr)
                    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
            for closing in (loop.shutdown_asyncgens(), loop.shutdown_default_executor()):
                loop.run_until_complete(asyncio.wait([loop.create_task(closing)], timeout=10.0))
        finally:
            loop.close()
            for d in _LIVE:
                d.kill()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x.strip()], default=[100, 500])
    ap.add_argument("--seconds", type=float, default=60.0, help="measured window per size [s]")
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (site files, daemon logs)")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ap.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the daemon under cProfile (its event-loop thread), writing DIR/daemon-N.prof (slows it down)",
    )
    args = ap.parse_args(argv)
    if args.seconds < STEP_FIRST_S + STEP_HOLD_S:
        ap.error(f"--seconds must be at least {STEP_FIRST_S + STEP_HOLD_S:g}")
    _raise_fd_limit()
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="depotctl-bench-loop-"))
    load_start = os.getloadavg()
    try:
        rows = run_bounded(main_async(args, work))
    except Exception as exc:
        print(f"bench/loop.py: FAILED: {exc!r} (files in {work})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench/loop.py: interrupted (files in {work})", file=sys.stderr)
        return 1
    load_end = os.getloadavg()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(
            json.dumps(
                {
                    "cpu_count": os.cpu_count(),
                    "loadavg_start": load_start,
                    "loadavg_end": load_end,
                    "rows": [asdict(r) for r in rows],
                },
                indent=2,
            )
        )
        return 0
    print(table(rows))
    print()
    print(details(rows))
    print()
    print(plans_table(rows))
    print()
    print(targets(rows))
    print(
        f"load average (1/5/15 min) at start {'/'.join(f'{x:.2f}' for x in load_start)}, "
        f"at end {'/'.join(f'{x:.2f}' for x in load_end)} ({os.cpu_count()} cores; the sims share them)"
    )
    for r in rows:
        for why, count in r.fallback_reasons.items():
            print(f"N={r.chargers}: {count} plan(s) fell back: {why}")
        for note in r.notes:
            print(f"N={r.chargers}: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
