"""Meter read throughput and latency over loopback Modbus TCP.

Runs the simulated meter (``python -m hil.meter``) in a separate process on a free loopback port
and reads it through :class:`controller.meter.hub.ModbusHub` + :class:`MeterReader` as the daemon
would, back to back (no poll interval):

- ``one meter``: one Eastron SDM630 (one 76-register request per poll);
- ``10 meters, one gateway``: ten units behind one connection, polled concurrently (the hub's
  lock serialises them, as an RTU gateway would).

A "read" is one full meter poll (all its requests, decode, plausibility). Latency is per poll,
including the wait for the hub's lock.

    .venv/bin/python bench/meter.py [--seconds 3] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.meter.hub import ModbusHub
from controller.meter.plausibility import bounds_for
from controller.meter.reader import MeterReader
from controller.model.site import Meter, ModbusLink


@dataclass(frozen=True)
class Result:
    scenario: str
    meters: int
    polls: int
    errors: int
    reads_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


async def start_simulator(specs: list[str]) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hil.meter", "--port", "0", *specs,
        stdout=asyncio.subprocess.PIPE,
        cwd=str(Path(__file__).resolve().parent.parent),
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
    port = int(line.split("127.0.0.1:")[1].split(":")[0])
    return proc, port


async def run_scenario(name: str, units: int, seconds: float) -> Result:
    proc, port = await start_simulator([f"eastron-sdm630:{u}" for u in range(1, units + 1)])
    try:
        link = ModbusLink(host="127.0.0.1", port=port, unit=1, timeout_s=1.0)
        hub = ModbusHub(link)
        readers = [
            MeterReader(
                Meter(id=f"m{u}", modbus=ModbusLink(host="127.0.0.1", port=port, unit=u, timeout_s=1.0),
                      preset="eastron-sdm630"),
                hub,
                bounds_for(100.0),
            )
            for u in range(1, units + 1)
        ]  # fmt: skip
        for r in readers:  # connect and warm up
            await r.poll()
        latencies: list[float] = []
        errors = 0
        deadline = time.perf_counter() + seconds

        async def loop(r: MeterReader) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                result = await r.poll()
                latencies.append(time.perf_counter() - t0)
                if result.reading is None:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop(r) for r in readers))
        elapsed = time.perf_counter() - started
        await hub.close()
    finally:
        proc.terminate()
        await proc.wait()
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    return Result(
        scenario=name,
        meters=units,
        polls=len(latencies),
        errors=errors,
        reads_per_s=len(latencies) / elapsed,
        p50_ms=statistics.median(ms),
        p99_ms=percentile(ms, 0.99),
        max_ms=ms[-1],
    )


async def main_async(seconds: float) -> list[Result]:
    return [
        await run_scenario("one meter", 1, seconds),
        await run_scenario("10 meters, one gateway", 10, seconds),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each scenario [s]")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = asyncio.run(main_async(args.seconds))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    print(f"{'scenario':<24} {'meters':>6} {'polls':>7} {'errors':>6} {'reads/s':>9} {'p50 ms':>7} {'p99 ms':>7}")
    for r in results:
        print(
            f"{r.scenario:<24} {r.meters:>6} {r.polls:>7} {r.errors:>6} {r.reads_per_s:>9.0f} "
            f"{r.p50_ms:>7.2f} {r.p99_ms:>7.2f}"
        )


if __name__ == "__main__":
    main()
