"""The demo as a command: ``depotctl demo`` in a source checkout, ``python -m hil.demo`` (``make demo``).

The demo is part of the test rig, not of the product: the wheel ships no ``hil`` package, and the
``depotctl`` command offers ``demo`` only where ``hil`` is importable. Exit status: 0 after a
run, 1 when the rig or the daemon could not start or the daemon died, 2 for a bad site file or
argument.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from controller.config import load_site
from controller.config.reading import read_or_report

EXIT_USAGE = 2
DEFAULT_CONFIG = Path("config") / "demo-site.yaml"
HELP = "run the simulated depot with the real controller, live in the terminal"


def default_config() -> Path:
    """``config/demo-site.yaml`` in the current directory, else in the checkout this rig is part of."""
    here = DEFAULT_CONFIG
    if here.exists():
        return here
    beside = Path(__file__).resolve().parents[2] / DEFAULT_CONFIG
    return beside if beside.exists() else here


def run_demo(args: argparse.Namespace, prog: str = "depotctl demo") -> int:
    """Run the demo the parsed options ask for; the exit status."""
    if args.duration < 0:
        print(f"{prog}: --duration must be 0 (until Ctrl-C) or more seconds", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.config) if args.config else default_config()
    loaded = read_or_report(load_site, str(path), "nothing started")
    if loaded is None:
        return EXIT_USAGE
    from hil.demo.run import Demo  # the daemon and the rig: imported only when the demo runs

    console = Console()
    demo = Demo(path, loaded.site, duration_s=args.duration, seed=args.seed, console=console,
                live=console.is_terminal and not args.no_live)
    return asyncio.run(demo.run())


def add_options(p: argparse.ArgumentParser) -> None:
    """The demo's options (``depotctl demo`` and ``python -m hil.demo`` share them)."""
    p.add_argument("--config", metavar="FILE", help=f"site file (default {DEFAULT_CONFIG})")
    p.add_argument("--duration", type=float, default=0.0, metavar="S",
                   help="seconds to run, also the length of the simulated day (default 0: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=7, metavar="N", help="seed of the simulated day (default 7)")
    p.add_argument("--no-live", action="store_true", help="print a status line every 10 s instead of the live view")


def register(sub: Any) -> None:
    """Add ``depotctl demo`` (the ``depotctl`` command registers it where ``hil`` is importable)."""
    p = sub.add_parser("demo", help=HELP)
    add_options(p)
    p.set_defaults(func=run_demo)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hil.demo``: the same options and exit status as ``depotctl demo``."""
    parser = argparse.ArgumentParser(prog="python -m hil.demo", description=HELP)
    add_options(parser)
    try:
        return run_demo(parser.parse_args(argv), parser.prog)
    except KeyboardInterrupt:
        return 130

