"""``python -m hil.meter``: serve simulated meters on a loopback port until interrupted.

Example: ``python -m hil.meter --port 15020 eastron-sdm630:1 carlo-gavazzi-em340:2 --base-a 20 25 18``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from hil.meter.device import SimMeter
from hil.meter.server import MeterSimServer


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hil.meter", description="Simulated Modbus meters on 127.0.0.1.")
    p.add_argument("meters", nargs="+", metavar="PRESET:UNIT", help="e.g. eastron-sdm630:1")
    p.add_argument("--port", type=int, default=15020)
    p.add_argument("--framer", choices=("tcp", "rtu"), default="tcp")
    p.add_argument("--base-a", type=float, nargs=3, default=(20.0, 20.0, 20.0), metavar=("L1", "L2", "L3"))
    p.add_argument("--voltage-v", type=float, nargs=3, default=(230.0, 230.0, 230.0), metavar=("L1", "L2", "L3"))
    return p.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sims = []
    for spec in args.meters:
        preset, _, unit = spec.partition(":")
        sim = SimMeter(int(unit or 1), preset)
        sim.set_load(base_a=args.base_a)
        sim.set_voltage(args.voltage_v)
        sims.append(sim)
    server = MeterSimServer(sims, port=args.port, framer=args.framer)
    port = await server.start()
    print(f"simulated meters on 127.0.0.1:{port}: {', '.join(args.meters)}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parse(argv)))


if __name__ == "__main__":
    main()
