"""``depotctl``: the command-line entry point.

A bad file or argument prints one clear message and exits 2, with nothing started or written.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from controller import __version__
from controller.config import load_site
from controller.config.reading import read_or_report
from controller.config.schema import SiteFile
from controller.config.tree import render_tree

EXIT_USAGE = 2

# Sub-commands owned by other packages: each module has ``register(subparsers) -> None`` that adds
# its parser(s) with ``set_defaults(func=handler)``; a handler takes the parsed args, returns an
# exit status (2 for a bad file or argument).
COMMAND_MODULES: tuple[str, ...] = (
    "controller.daemon.cli",
    "controller.simulate.cli",
    "controller.meter.probe",
    "controller.client.status",
    "controller.fleet.cli",
    "controller.client.depart",
    "controller.client.commission",
)
RIG_COMMAND_MODULES: tuple[str, ...] = ("hil.demo",)
"""Sub-commands of the test rig (``depotctl demo``): registered only where the rig is importable —
a source checkout; the wheel ships ``controller`` alone, and its ``depotctl`` offers no ``demo``."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line, without the usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _cmd_check_config(args: argparse.Namespace) -> int:
    loaded = read_or_report(load_site, args.file, "nothing started")
    if loaded is None:
        return EXIT_USAGE
    print(render_tree(loaded.site))
    for warning in loaded.warnings:
        print(warning.format(loaded.filename), file=sys.stderr)
    count = len(loaded.warnings)
    suffix = f" with {count} warning{'s' if count != 1 else ''}" if count else ""
    print(f"{loaded.filename}: OK{suffix}")
    return 0


def _cmd_schema(args: argparse.Namespace) -> int:
    schema = SiteFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="depotctl", description="Load management for EV fleet depots.")
    parser.add_argument("--version", action="version", version=f"depotctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("check-config", help="validate a site file and print its circuit tree")
    p.add_argument("file", metavar="FILE", help="site file (YAML)")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("schema", help="print the JSON Schema of the site file")
    p.set_defaults(func=_cmd_schema)

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    for module in RIG_COMMAND_MODULES:
        rig = _rig_module(module)
        if rig is not None:
            rig.register(sub)
    return parser


def _rig_module(name: str) -> ModuleType | None:
    """The rig's module ``name``, or None where the rig is not importable (an installed wheel)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        if exc.name is not None and (exc.name == top or name.startswith(exc.name + ".") or exc.name == name):
            return None
        raise  # the rig is there but something it needs is not: a broken checkout, say so


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `depotctl simulate … | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
