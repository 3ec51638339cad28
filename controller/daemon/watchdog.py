"""systemd's watchdog and READY (``Type=notify``, ``WatchdogSec=``), from the fast loop's cycles.

The watchdog is petted only when a fast cycle completed (a cycle that raised is a fault, never
followed by a ping) and the plan loop is alive; READY is sent after the first good cycle.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from controller.daemon.ports import Monotonic
from controller.daemon.sdnotify import Notifier

LOG = logging.getLogger("depotctl.daemon")


def watchdog_interval_s(environ: Mapping[str, str] | None = None) -> float:
    """Half of systemd's ``WATCHDOG_USEC`` [s]; 1 s when it is not set."""
    env = os.environ if environ is None else environ
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    return usec / 2_000_000.0 if usec > 0 else 1.0


class Watchdog:
    def __init__(
        self, notifier: Notifier, mono: Monotonic, stalled: Callable[[float], bool], every_s: float | None = None
    ) -> None:
        self.notifier = notifier
        self.mono = mono
        self.stalled = stalled
        self.every_s = watchdog_interval_s() if every_s is None else every_s
        self.ready = False
        self._last = 0.0

    def cycle_done(self, good: bool, completed: bool = True) -> None:
        """A fast-loop cycle ended: pet the watchdog if it completed and the plan loop is alive;
        READY after the first good one."""
        now = self.mono()
        if completed and not self.stalled(now) and now - self._last >= self.every_s:
            self.notifier.watchdog()
            self._last = now
        if good and not self.ready:
            self.ready = True
            self.notifier.ready("first good control cycle")
            LOG.info("ready: first good control cycle")
