"""``depotctl run --config FILE``: the daemon in the foreground (systemd runs it like this)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from controller.config import load_site
from controller.config.reading import read_or_report

EXIT_USAGE = 2


def configure_logging(level: str) -> None:
    """One line per record on stdout; journald adds its own timestamps when it is the reader."""
    under_journald = bool(os.environ.get("JOURNAL_STREAM"))
    fmt = "%(levelname)s %(name)s: %(message)s" if under_journald else "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level.upper()), format=fmt, stream=sys.stdout, force=True)
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))


def _cmd_run(args: argparse.Namespace) -> int:
    loaded = read_or_report(load_site, args.config, "nothing started")
    if loaded is None:
        return EXIT_USAGE
    configure_logging(args.log_level)
    for warning in loaded.warnings:
        logging.getLogger("depotctl").warning("%s", warning.format(loaded.filename))
    from controller.daemon.core import Daemon

    daemon = Daemon(loaded.site, args.config)
    try:
        return asyncio.run(daemon.run())
    except OSError as exc:  # a port in use, a storage directory not writable
        print(f"depotctl: cannot start: {exc}", file=sys.stderr)
        return 1


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run the controller (meters, planner, chargers) in the foreground")
    p.add_argument("--config", required=True, metavar="FILE", help="site file (YAML)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=_cmd_run)
