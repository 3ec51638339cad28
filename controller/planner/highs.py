"""Making HiGHS solver objects without HiGHS writing to our standard output.

highspy prints a copyright banner straight to file descriptor 1 the first time a ``Highs`` object
is made in a process, whatever ``output_flag`` says. That would corrupt machine-readable output
(``depotctl simulate --json``) and the daemon's logs, so the first object is made with fd 1
pointed at /dev/null; HiGHS never prints the banner again in that process.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
from typing import Any

import highspy


@functools.cache
def _swallow_banner() -> None:
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()  # type: ignore[no-untyped-call]
            with_libc = ctypes.CDLL(None)
            with_libc.fflush(None)  # the banner may sit in C's stdout buffer
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def new_highs(time_limit_s: float | None = None) -> Any:
    """A silent ``highspy.Highs`` with one thread and, if given, a time limit [s]."""
    _swallow_banner()
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    if time_limit_s is not None:
        h.setOptionValue("time_limit", float(time_limit_s))
    return h
