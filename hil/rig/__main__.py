"""``python -m hil.rig --config config/demo-site.yaml``: the simulated depot alone, on the site
file's own ports, for a separately started daemon (``depotctl run --config …``) to control.

It serves the site's meters, connects every charger to the site's OCPP listener (reconnecting
until the daemon is there, and again after it restarts), plays the demo day (:func:`demo_day`),
prints one line per event, and on Ctrl-C or after ``--duration`` seconds prints the summary.
Exit status 2 for a bad site file, 1 when the meters' ports cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from controller.config.loader import load_site
from controller.config.problems import ConfigError
from controller.model.site import Site
from hil.rig.day import demo_day
from hil.rig.rig import Rig, RigEvent


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m hil.rig", description="The simulated depot (meters, chargers, EVs).")
    p.add_argument("--config", required=True, help="site file, e.g. config/demo-site.yaml")
    p.add_argument("--duration", type=float, default=180.0, metavar="S", help="length of the demo day [s]")
    p.add_argument("--ocpp-url", default=None, help="central system URL (default: the site's ocpp.listen + path)")
    p.add_argument("--seed", type=int, default=7, help="demo day seed")
    p.add_argument("--tick", type=float, default=0.1, metavar="S", help="coupling interval [s]")
    return p.parse_args(argv)


class Console:
    """Prints lines until stdout goes away (``| head``), then stays quiet."""

    def __init__(self) -> None:
        self.closed = False

    def line(self, text: object) -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True
            with contextlib.suppress(OSError):
                sys.stdout = open(os.devnull, "w")  # noqa: SIM115 — for the interpreter's own flush at exit

    def event(self, event: RigEvent) -> None:
        self.line(event)


async def run(site: Site, args: argparse.Namespace) -> int:
    day = demo_day(site, args.duration, seed=args.seed)
    console = Console()
    rig = Rig(site, day, ocpp_url=args.ocpp_url, tick_s=args.tick, on_event=console.event)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await rig.start()
    except (RuntimeError, OSError) as exc:
        print(f"cannot serve the site's meters: {exc}", file=sys.stderr)
        return 1
    try:
        await rig.connect_chargers(timeout_s=0.0, keep_connected=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
    finally:
        summary = rig.summary()
        await rig.stop()
        console.line("\n".join(summary.lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        site = load_site(args.config).site
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{args.config}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(site, args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
