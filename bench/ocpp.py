"""OCPP central-system benchmark: N simulated chargers on loopback, one server process.

For each size N: start the central system in this process, start a worker process that connects N
simulated chargers at once (half 1.6, half 2.0.1), boots them, plugs an EV into each and reports
meter values every ``--meter-s`` seconds; then measure

* connect-all: "go" → every charger connected, booted and set up (capabilities read, sampling
  configured, fail-safe profile accepted);
* push-to-all: a new limit sent to all N chargers in parallel → every confirmation received
  (median and worst of ``--pushes`` pushes);
* server CPU seconds per minute at steady state (meter values flowing, no pushes), from this
  process's CPU time (all its threads) over ``--steady-s`` seconds;
* a reconnect storm (every link cut, every charger reconnecting and booting at once): time until
  all are set up again, the worst event-loop lag meanwhile (what a control loop in this process
  would suffer) and the time of one ``apply`` issued during the storm.

``--upstream``: local-controller mode (issue 17). The rig's CSMS runs in a third process and every
charger is proxied to it (one upstream link per charger, every charger message forwarded, the
CSMS's answers relayed back); the same figures, plus the time until every upstream link is up and
whether every transaction got the CSMS's id. The CPU figures stay this (depotctl's) process's.

Usage: ``python bench/ocpp.py [--sizes 100,500,1000] [--steady-s 60] [--upstream] [--json]``.
Targets (issue 6): 1000 chargers, push-to-all ≤ 2 s, server CPU ≤ 25 % of one core (15 s/min);
(issue 17) the same push-to-all ≤ 2 s with upstream on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# This file is called ocpp.py: keep its folder off the path, or it would shadow the ocpp package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from controller.chargers.clock import utc_now  # noqa: E402
from controller.chargers.server import CentralSystem  # noqa: E402
from controller.model.site import Charger, Grid, Ocpp, Site, SiteInfo, Upstream  # noqa: E402
from controller.upstream.caps import CapBook  # noqa: E402
from controller.upstream.proxy import Proxy  # noqa: E402
from controller.upstream.store import UpstreamStore  # noqa: E402


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def bench_site(n: int, meter_s: int, upstream_url: str | None = None) -> Site:
    chargers = tuple(
        Charger(id=f"CP{i:04d}", circuit="grid", kind="ac", phases=3, phase_rotation="L1-L2-L3", max_a=32.0)
        for i in range(n)
    )
    return Site(
        site=SiteInfo("bench", "UTC"),
        grid=Grid(limit_a=100_000.0),
        chargers=chargers,
        ocpp=Ocpp(
            listen="127.0.0.1:0", security_profile=0, meter_sample_s=meter_s, call_timeout_s=5.0,
            upstream=Upstream(url=upstream_url, security_profile=0) if upstream_url else None,
        ),
    )


# --- worker: the rig's CSMS (a separate process, --upstream) ---------------------------------------


async def csms_worker() -> None:
    """The back office. In the field it runs elsewhere; here it shares the cores, so it runs niced
    (it checks every frame against the OCPP schemas, which costs more than anything measured)."""
    from hil.csms import CsmsOptions, SimCsms

    os.nice(10)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    csms = SimCsms(utc_now, CsmsOptions(call_timeout_s=10.0))
    await csms.start()
    print(f"url {csms.url}", flush=True)
    while (await reader.readline()).decode().strip() == "count":
        txs = csms.transactions()
        numbered = sum(1 for t in txs if isinstance(t.transaction_id, int) and t.transaction_id >= 100_001)
        print(f"transactions {len(txs)} {numbered} violations {len(csms.violations())}", flush=True)
    await csms.stop()


# --- worker: the simulated chargers (a separate process) -----------------------------------------


async def worker(url: str, n: int, meter_s: float) -> None:
    from hil.chargers import SimCharger, SimOptions, reconnect_storm
    from hil.ev import EvParams

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sims = [
        SimCharger(
            SimOptions(
                f"CP{i:04d}",
                version="2.0.1" if i % 2 else "1.6",
                tick_s=5.0,
                meter_interval_s=meter_s,
                validate_messages=False,  # the chargers' CPU is not what is measured; they share the cores
            )
        )
        for i in range(n)
    ]
    print("ready", flush=True)
    await reader.readline()  # "go"
    await asyncio.gather(*(s.connect(url, timeout_s=60) for s in sims))
    print("connected", flush=True)
    ev = EvParams(max_a=32, phases=3, battery_kwh=300, reaction_s=2.0)
    await asyncio.gather(*(s.plug_in(ev, soc_pct=20, id_tag=f"TAG{i}", timeout_s=60) for i, s in enumerate(sims)))
    print("plugged", flush=True)
    while True:
        command = (await reader.readline()).decode().strip()
        if command == "storm":  # depot power cut: every link drops, every charger reconnects at once
            await reconnect_storm(sims[1:], url, timeout_s=120)  # CP0000 stays, to be controlled meanwhile
            print("stormed", flush=True)
            continue
        break  # "quit" (or the pipe closed)
    await asyncio.gather(*(s.close() for s in sims), return_exceptions=True)
    print("closed", flush=True)


# --- the measuring side ---------------------------------------------------------------------------


async def _line(proc: asyncio.subprocess.Process, timeout: float) -> str:
    assert proc.stdout is not None
    raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not raw:
        raise RuntimeError("worker exited")
    return raw.decode().strip()


async def _wait_until(pred: Any, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


async def run_size(n: int, steady_s: float, meter_s: int, pushes: int, upstream: bool = False) -> dict[str, Any]:
    csms_proc = None
    proxy = None
    tmp = None
    if upstream:
        import tempfile

        csms_proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--csms-worker", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        upstream_url = (await _line(csms_proc, 60)).removeprefix("url ")
        site = bench_site(n, meter_s, upstream_url)
        tmp = tempfile.TemporaryDirectory(prefix="depotctl-bench-")
    else:
        site = bench_site(n, meter_s)
    cs = CentralSystem(site, host="127.0.0.1", port=0, boot_grace_s=5.0)
    if tmp is not None:
        proxy = Proxy(lambda: site, UpstreamStore(Path(tmp.name) / "depot.db"), cs.control, CapBook(utc_now), utc_now)
        await proxy.open()
        cs.relays = proxy
    await cs.start()
    url = f"ws://127.0.0.1:{cs.port}/ocpp"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        url,
        str(n),
        str(meter_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None
    ids = [ch.id for ch in site.chargers]
    try:
        assert await _line(proc, 60) == "ready"
        t0 = time.monotonic()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        await _wait_until(lambda: len(cs.connected()) == n, 120)
        t_connected = time.monotonic() - t0
        await _wait_until(lambda: all(cs.state(c).failsafe is not None for c in ids), 120)
        t_setup = time.monotonic() - t0
        assert await _line(proc, 120) == "connected"
        assert await _line(proc, 120) == "plugged"
        await _wait_until(lambda: all(cs.state(c).transaction(1) is not None for c in ids), 60)
        upstream_row: dict[str, Any] = {}
        if proxy is not None and csms_proc is not None:
            await _wait_until(lambda: sum(1 for x in proxy.status() if x.connected) == n, 120)
            upstream_row["upstream_all_up_s"] = round(time.monotonic() - t0, 3)
            assert csms_proc.stdin is not None
            csms_proc.stdin.write(b"count\n")
            await csms_proc.stdin.drain()
            _, total, numbered, _, violations = (await _line(csms_proc, 30)).split()
            upstream_row.update(csms_transactions=int(total), csms_numbered=int(numbered),
                                csms_violations=int(violations), queue_messages=proxy.queue_depth())

        # steady state: meter values only
        await asyncio.sleep(min(meter_s, steady_s))  # let the first round of meter values settle in
        before = cs.counters["event_meter_values"]
        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.sleep(steady_s)
        cpu_steady = time.process_time() - cpu0
        wall_steady = time.monotonic() - wall0
        meter_msgs = cs.counters["event_meter_values"] - before

        push_times: list[float] = []
        push_cpu: list[float] = []
        statuses: dict[str, int] = {}
        for k in range(pushes):
            limit = 10.0 + 2 * k
            c0, p0 = time.process_time(), time.monotonic()
            results = await asyncio.gather(*(cs.control.apply(c, limit) for c in ids))
            push_times.append(time.monotonic() - p0)
            push_cpu.append(time.process_time() - c0)
            for r in results:
                statuses[r.status] = statuses.get(r.status, 0) + 1
            await asyncio.sleep(1.0)

        # reconnect storm: how long until all are set up again, and does the loop stall?
        installed = cs.counters["event_failsafe_installed"]
        lag = _LagProbe()
        probe = asyncio.create_task(lag.run())
        s0 = time.monotonic()
        proc.stdin.write(b"storm\n")
        await proc.stdin.drain()
        await asyncio.sleep(0.2)
        a0 = time.monotonic()
        one = await cs.control.apply(ids[0], 7.0)
        apply_during_storm = time.monotonic() - a0
        await _wait_until(lambda: cs.counters["event_failsafe_installed"] - installed >= n - 1, 180)
        storm_setup = time.monotonic() - s0
        assert await _line(proc, 180) == "stormed"
        probe.cancel()
        proc.stdin.write(b"quit\n")
        await proc.stdin.drain()
        await _line(proc, 60)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await cs.stop()
        if proxy is not None:
            await proxy.close()
        if csms_proc is not None:
            if csms_proc.returncode is None:
                csms_proc.kill()
            await csms_proc.wait()
        if tmp is not None:
            tmp.cleanup()
    return {
        "upstream": upstream,
        "chargers": n,
        "connect_all_s": round(t_connected, 3),
        "setup_all_s": round(t_setup, 3),
        "push_median_s": round(statistics.median(push_times), 3),
        "push_max_s": round(max(push_times), 3),
        "push_cpu_s": round(max(push_cpu), 3),
        "push_statuses": statuses,
        "steady_cpu_s_per_min": round(cpu_steady * 60.0 / wall_steady, 2),
        "steady_cpu_pct_core": round(100.0 * cpu_steady / wall_steady, 1),
        "meter_msgs_per_s": round(meter_msgs / wall_steady, 1),
        "storm_setup_all_s": round(storm_setup, 3),
        "storm_max_loop_lag_s": round(lag.max_lag, 3),
        "storm_apply_s": round(apply_during_storm, 3),
        "storm_apply_status": one.status,
        **upstream_row,
    }


class _LagProbe:
    """Measures how late the event loop wakes a 50 ms timer: the stall the control loop would see."""

    def __init__(self) -> None:
        self.max_lag = 0.0

    async def run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            self.max_lag = max(self.max_lag, time.monotonic() - t - 0.05)


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| chargers | connect all [s] | set up all [s] | push-to-all median / max [s] | "
        "server CPU steady [s/min] (% core) | meter msgs/s | storm: all set up again [s] / max loop lag [s] |"
    )
    lines = [head, "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['chargers']} | {r['connect_all_s']:.2f} | {r['setup_all_s']:.2f} | "
            f"{r['push_median_s']:.2f} / {r['push_max_s']:.2f} | "
            f"{r['steady_cpu_s_per_min']:.1f} ({r['steady_cpu_pct_core']:.1f} %) | {r['meter_msgs_per_s']:.0f} | "
            f"{r['storm_setup_all_s']:.2f} / {r['storm_max_loop_lag_s']:.2f} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in args.sizes:
        row = await run_size(n, args.steady_s, args.meter_s, args.pushes, args.upstream)
        rows.append(row)
        if not args.json:
            print(f"N={n}: {row}", file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    _raise_fd_limit()
    if argv and argv[0] == "--worker":
        asyncio.run(worker(argv[1], int(argv[2]), float(argv[3])))
        return 0
    if argv and argv[0] == "--csms-worker":
        asyncio.run(csms_worker())
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[100, 500, 1000])
    parser.add_argument("--steady-s", type=float, default=60.0, help="steady-state CPU window [s]")
    parser.add_argument("--meter-s", type=int, default=10, help="meter value interval [s]")
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--upstream", action="store_true", help="local-controller mode: proxied to the rig's CSMS")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    rows = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2))
    else:
        print(_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
