"""The fail-safe state in force, and what a change of it does (the state machine itself is pure:
:mod:`controller.rules.failsafe`).

:class:`FailsafeGuard` is the one writer of the fail-safe state: the fast loop steps it every
cycle with what the cycle found (:class:`~controller.rules.failsafe.CycleHealth`). Entering fail-safe is
logged, recorded, shown in the metrics and to systemd, and sends every charger its fail-safe limit
(``enter``, in the background); leaving it asks for a plan at once (``leave``). Everything else
reads the state through :class:`~controller.daemon.ports.FailsafeView`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from controller.daemon.ports import Recorder
from controller.daemon.sdnotify import Notifier
from controller.metrics import DepotMetrics
from controller.metrics.update import observe_failsafe
from controller.rules.failsafe import CycleHealth, FailsafeState, Transition, starting, step
from controller.store.records import EventKind

LOG = logging.getLogger("depotctl.daemon")


class FailsafeGuard:
    def __init__(
        self,
        now: datetime,
        *,
        recorder: Recorder,
        metrics: DepotMetrics,
        notifier: Notifier,
        enter: Callable[[str], None],
        leave: Callable[[], None],
    ) -> None:
        self._state = starting(now)
        self.recorder = recorder
        self.metrics = metrics
        self.notifier = notifier
        self.enter = enter
        self.leave = leave

    @property
    def state(self) -> FailsafeState:
        return self._state

    def publish(self) -> None:
        """Show the state in force in the metrics (at start)."""
        observe_failsafe(self.metrics, self._state.active, self._state.reason)

    def advance(self, health: CycleHealth, now: datetime, recover_cycles: int) -> Transition | None:
        """Step the state machine (pure; no effect beyond the state). See :meth:`apply`."""
        self._state, transition = step(self._state, health, now, recover_cycles)
        return transition

    def apply(self, tr: Transition) -> None:
        """What a transition does: the log, history, metrics and systemd; fail-safe limits on entry,
        a plan at once on exit."""
        kind: EventKind = "failsafe_enter" if tr.to == "failsafe" else "failsafe_exit"
        if tr.to == "failsafe":
            LOG.error("FAIL-SAFE: %s — every charger to its fail-safe limit", tr.reason)
        else:
            LOG.warning("back to normal control (%s)", tr.reason)
        self.recorder.event(kind, tr.reason)
        observe_failsafe(self.metrics, tr.to == "failsafe", tr.reason)
        self.notifier.status(f"fail-safe: {tr.reason}" if tr.to == "failsafe" else "normal")
        if tr.to == "failsafe":
            self.enter(tr.reason)
        else:
            self.leave()

    def step(self, health: CycleHealth, now: datetime, recover_cycles: int) -> Transition | None:
        """:meth:`advance`, then :meth:`apply` the transition if there is one."""
        transition = self.advance(health, now, recover_cycles)
        if transition is not None:
            self.apply(transition)
        return transition
