"""Reading a site (or scenario) file for a command: every problem printed, nothing started.

Commands call :func:`read_or_report` and stop with exit status 2 when it returns ``None``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO, TypeVar

from controller.config.problems import ConfigError

T = TypeVar("T")


def read_or_report(load: Callable[[str], T], path: str, outcome: str, err: TextIO | None = None) -> T | None:
    """``load(path)``, or ``None`` after printing why not: each problem as ``FILE:LINE:COL: path:
    message`` and a last line saying ``outcome`` (e.g. "nothing started"), or one line naming an
    unreadable file."""
    out = err or sys.stderr
    try:
        return load(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem.format(exc.filename), file=out)
        n = len(exc.errors)
        print(f"{exc.filename}: {n} error{'s' if n != 1 else ''}, {outcome}", file=out)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        print(f"depotctl: cannot read {path}: {reason}", file=out)
    return None
