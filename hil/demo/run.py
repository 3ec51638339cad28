"""The demo's run: the whole simulated depot with the real daemon, live in the terminal.

One asyncio loop runs the :class:`~hil.rig.Rig` (simulated meters over Modbus TCP, chargers over
OCPP, EVs and the wiring between them) playing :func:`~hil.rig.demo_day`, and the real
:class:`~controller.daemon.core.Daemon` on a copy of the site file re-pointed at the rig — every
port a free loopback port, storage in a temporary directory — so the demo runs beside a real
daemon or another demo. The status page (:func:`controller.client.view.render_status`) is redrawn twice a
second with a demo panel under it; without a terminal (or with ``--no-live``) one status line is
printed every 10 s instead. At the end (``--duration`` reached or Ctrl-C) both are stopped and the
ground truth is reported: energy, departures, per node the worst load and any time above rating.

:meth:`Demo.run` returns the exit status: 0 after a run, 1 when the rig or the daemon could not
start or the daemon died (the command, :mod:`hil.demo.command`, answers 2 for a bad site file or
argument).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, RenderableType
from rich.live import Live

from controller.client.view import render_status
from controller.config import load_site
from controller.daemon.core import Daemon, DaemonOptions
from controller.fleet.book import FleetError
from controller.model.site import Site
from hil.demo.view import (
    DaemonReport,
    DemoFrame,
    FitHeight,
    NodeTruth,
    agenda,
    demo_panel,
    status_line,
    summary_lines,
    upcoming,
)
from hil.rig import Rig, RigEvent, demo_day, free_port, rig_site_text
from hil.rig.config import endpoint

EXIT_FAILED = 1
DEFAULT_DAY_S = 300.0
"""Length of the rig's day when the demo runs until Ctrl-C [s]."""
LINE_EVERY_S = 10.0
"""Status line interval without a live view [s]."""
FRAME_EVERY_S = 0.5
"""Live view refresh [s]."""
POLL_S = 0.2
"""How often the demo looks at the daemon (plans, fail-safe) and the clock [s]."""
STOP_BOUND_S = 15.0
"""Longest wait for the daemon to stop [s]."""
CONNECT_S = 20.0
"""Longest wait for the chargers' first connection [s]."""
LOGGED_EVENTS = frozenset({"base", "depart"})
"""Rig events printed as they happen without a live view (the rest are in the summary)."""
LOG = logging.getLogger("depotctl.demo")


# ---------------------------------------------------------------- what the demo notes


@dataclass
class Tracker:
    """What the demo notes while it runs: rig events, every plan's time, fail-safe episodes."""

    recent: deque[RigEvent] = field(default_factory=lambda: deque(maxlen=6))
    plan_ms: list[float] = field(default_factory=list)
    failsafe_episodes: int = 0
    normal_after_s: float | None = None
    notes: deque[str] = field(default_factory=lambda: deque(maxlen=3))
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    """Log records at ERROR or worse while the live view ran, printed once it is gone."""
    _plan: object | None = None
    _active: bool = True

    def sample(self, d: Daemon, t_s: float) -> None:
        """Look at the daemon: a new plan, a fail-safe entry or exit."""
        outcome = d.plans.outcome
        plan = outcome.plan if outcome is not None else None
        if plan is not None and plan is not self._plan:
            self._plan = plan
            self.plan_ms.append(plan.stats.total_ms)
        active = d.failsafe.state.active
        if active != self._active:
            if not active and self.normal_after_s is None:
                self.normal_after_s = t_s
            elif active and self.normal_after_s is not None:
                self.failsafe_episodes += 1
            self._active = active


class _NoteHandler(logging.Handler):
    """Log records (warnings and worse) into the live panel's notes."""

    def __init__(self, tracker: Tracker, clock: Callable[[], float]) -> None:
        super().__init__(logging.WARNING)
        self.tracker, self.clock = tracker, clock

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage().splitlines()[0] if record.getMessage() else record.name
        line = f"{self.clock():6.1f} s  {record.levelname} {record.name}: {msg}"
        self.tracker.notes.append(line)
        if record.levelno >= logging.ERROR:
            self.tracker.errors.append(line)


@contextlib.contextmanager
def _logging(handler: logging.Handler) -> Iterator[None]:
    """Warnings and worse from every logger to ``handler`` only, for the demo's duration."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers, root.level = [handler], logging.WARNING
    try:
        yield
    finally:
        root.handlers, root.level = saved


# ---------------------------------------------------------------- the run


class Demo:
    """Rig + daemon in one loop; :meth:`run` returns the exit status."""

    def __init__(self, site_path: Path, site: Site, *, duration_s: float, seed: int, console: Console,
                 live: bool) -> None:
        self.site_path, self.site = site_path, site
        self.duration_s, self.seed = duration_s, seed
        self.console, self.live = console, live
        self.tracker = Tracker()
        self.stop = asyncio.Event()
        self.stop_reason = ""
        self.page: RenderableType = ""
        self.rig: Rig | None = None
        self.urls = ("", "")

    def t_s(self) -> float:
        return self.rig.t_s() if self.rig is not None else 0.0

    def out(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def fail(self, text: str) -> int:
        self.console.print(f"depotctl demo: {text}", markup=False, highlight=False, style="bold red")
        return EXIT_FAILED

    async def run(self) -> int:
        tmp = Path(tempfile.mkdtemp(prefix="depotctl-demo-"))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            return await self._run(tmp)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
            shutil.rmtree(tmp, ignore_errors=True)

    def _on_signal(self, sig: int) -> None:
        if not self.stop.is_set():
            self.stop_reason = f"{signal.Signals(sig).name} received"
            self.stop.set()

    def _on_event(self, ev: RigEvent) -> None:
        if ev.kind in ("start", "stop", "link"):
            return
        self.tracker.recent.append(ev)
        if not self.live and ev.kind in LOGGED_EVENTS:
            self.out(f"t {ev.t_s:5.0f} s  {ev.kind:<7} {ev.text}")

    async def _run(self, tmp: Path) -> int:
        site = self.site
        day = demo_day(site, self.duration_s or DEFAULT_DAY_S, seed=self.seed)
        ports = {"ocpp": free_port(), "api": free_port(), "metrics": free_port()}
        ocpp_url = f"ws://127.0.0.1:{ports['ocpp']}{site.ocpp.path}"
        meters = {endpoint(m): 0 for m in site.meters if m.modbus.serial is None}
        try:
            rig = Rig(site, day, meter_ports=meters, ocpp_url=ocpp_url, on_event=self._on_event, seed=self.seed)
            await rig.start()
        except (OSError, RuntimeError, ValueError) as exc:
            return self.fail(f"the simulated depot could not start: {exc}")
        self.rig = rig
        daemon: Daemon | None = None
        daemon_task: asyncio.Task[int] | None = None
        try:
            path = tmp / "demo-site.yaml"
            path.write_text(
                rig_site_text(self.site_path, meter_ports=rig.meter_ports, ocpp_port=ports["ocpp"],
                              api_port=ports["api"], metrics_port=ports["metrics"], storage_path=tmp / "depot.db"),
                encoding="utf-8",
            )
            daemon = Daemon(load_site(path).site, path, DaemonOptions(handle_signals=False))
            api, metrics = f"http://127.0.0.1:{ports['api']}", f"http://127.0.0.1:{ports['metrics']}"
            self.urls = (f"{api}/api/v1/status", f"{metrics}/metrics")
            self.out(
                f"depotctl demo: {site.site.name}, {len(site.chargers)} chargers, a depot day in {day.duration_s:g} s "
                f"(seed {self.seed}); status page {api}/  API {self.urls[0]}  metrics {self.urls[1]}"
            )
            daemon_task = asyncio.create_task(daemon.run(), name="daemon")
            code = await self._connect(rig, ocpp_url, daemon_task)
            if code == 0:
                self._set_departures(daemon, rig)
                await self._watch(daemon, daemon_task)
                code = self._daemon_failure(daemon_task)
        finally:
            stopped = await self._stop_daemon(daemon_task, daemon)
            await rig.stop()
        if code or daemon is None:
            return code or EXIT_FAILED
        self.out(f"stopped after {rig.t_s():.1f} s ({self.stop_reason or 'duration reached'})"
                 + ("" if stopped else f"; the daemon did not stop within {STOP_BOUND_S:g} s"))
        report = DaemonReport(
            plans=daemon.plans.plans, plan_ms=tuple(self.tracker.plan_ms), sheds=daemon.fast.stats.sheds,
            failsafe_episodes=self.tracker.failsafe_episodes, normal_after_s=self.tracker.normal_after_s,
            status=daemon.status(),
        )
        for line in summary_lines(rig.summary(), report):
            self.out(line)
        return 0

    def _set_departures(self, daemon: Daemon, rig: Rig) -> None:
        """Tell the daemon when each known vehicle leaves and what it needs, as a fleet manager would.

        The demo's 1.6 chargers cannot pass a departure on (2.0.1 ones do, NotifyEVChargingNeeds).
        The demo sets the one-offs through the daemon's fleet service, which the fleet API's
        departure route calls too (called once the daemon runs: its start restores the book from
        storage). Anonymous tags stay unknown: the planner assumes the default dwell for them.
        """
        known = {v.id for v in self.site.vehicles}
        for visit in rig.day.visits:
            if visit.vehicle_id is None or visit.vehicle_id not in known:
                continue
            try:
                daemon.fleet.set_departure(visit.vehicle_id, rig.at(visit.depart_s), visit.need_kwh, None)
            except FleetError as exc:
                LOG.warning("departure of %s not set: %s", visit.vehicle_id, exc)

    async def _connect(self, rig: Rig, url: str, daemon_task: asyncio.Task[int]) -> int:
        """Connect the chargers (they keep reconnecting); 1 if the daemon died meanwhile."""
        connect = asyncio.create_task(rig.connect_chargers(url, keep_connected=True, timeout_s=CONNECT_S))
        stop_wait = asyncio.create_task(self.stop.wait())
        await asyncio.wait({connect, daemon_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        stop_wait.cancel()
        if daemon_task.done():
            connect.cancel()
            return self._daemon_failure(daemon_task) or self.fail("the daemon stopped during start-up")
        if not connect.done():  # Ctrl-C during start-up: the keepers go with the rig
            connect.cancel()
            return 0
        offline = connect.result()
        if offline:
            LOG.warning("not connected after %.0f s (still trying): %s", CONNECT_S, ", ".join(offline))
        return 0

    def _daemon_failure(self, task: asyncio.Task[int]) -> int:
        """1 with a message if the daemon task ended before the demo asked it to (an exception at
        start, e.g. a port in use, or a control loop that died)."""
        if not task.done():
            return 0
        if task.cancelled():
            return self.fail("the daemon was cancelled")
        exc = task.exception()
        if exc is not None:
            return self.fail(f"the daemon could not run: {type(exc).__name__}: {exc}")
        return self.fail("the daemon stopped on its own (a control loop died; see the log above)")

    async def _watch(self, daemon: Daemon, daemon_task: asyncio.Task[int]) -> None:
        """Until the duration, Ctrl-C or the daemon's end: sample, redraw, print status lines."""
        assert self.rig is not None
        events = agenda(self.rig.day)
        end = self.duration_s if self.duration_s > 0 else math.inf
        next_frame = next_line = 0.0
        live = self._live() if self.live else contextlib.nullcontext()
        handler: logging.Handler = _NoteHandler(self.tracker, self.t_s) if self.live else _stderr_handler()
        with _logging(handler), live as view:
            while not self.stop.is_set() and not daemon_task.done():
                t = self.t_s()
                if t >= end:
                    break
                self.tracker.sample(daemon, t)
                now = time.monotonic()
                if isinstance(view, Live) and now >= next_frame:
                    next_frame = now + FRAME_EVERY_S
                    self.page = self._frame(daemon, events)
                elif view is None and now >= next_line:
                    next_line = now + LINE_EVERY_S
                    self.out(status_line(daemon.status(), t, self.duration_s))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), POLL_S)
            self.tracker.sample(daemon, self.t_s())
            if not self.live and not daemon_task.done():
                self.out(status_line(daemon.status(), self.t_s(), self.duration_s))
        for line in self.tracker.errors:
            self.out(line)

    def _live(self) -> Live:
        # auto refresh renders in rich's own thread, off the event loop; the page it draws is built
        # from a status snapshot in the loop (see _frame), so the thread never reads live state
        return Live(get_renderable=lambda: self.page, console=self.console, refresh_per_second=1 / FRAME_EVERY_S,
                    screen=True, redirect_stdout=False, redirect_stderr=False)

    def _frame(self, daemon: Daemon, events: list[tuple[float, str]]) -> RenderableType:
        assert self.rig is not None
        rig, t = self.rig, self.t_s()
        loads, exceeded = rig.loads(), rig.exceeded_s
        nodes = tuple(
            NodeTruth(n, loads[n], rig.truth.limits[n], rig.truth.max_utilisation[n], exceeded[n])
            for n in self.site.node_ids()
        )
        frame = DemoFrame(
            elapsed_s=t, duration_s=self.duration_s, day_s=rig.day.duration_s, nodes=nodes,
            upcoming=upcoming(events, t), recent=tuple(self.tracker.recent), api_url=self.urls[0],
            metrics_url=self.urls[1], notes=tuple(self.tracker.notes),
        )
        panel = demo_panel(frame)
        return FitHeight(render_status(daemon.status(), extra=panel), panel)

    async def _stop_daemon(self, task: asyncio.Task[int] | None, daemon: Daemon | None) -> bool:
        """Stop the daemon (it leaves every charger on its fail-safe limit), bounded; False on timeout."""
        if task is None or daemon is None or task.done():
            return True
        daemon.request_stop()
        try:
            await asyncio.wait_for(asyncio.shield(task), STOP_BOUND_S)
        except TimeoutError:
            task.cancel()
            return False
        except Exception as exc:  # at start: reported by _daemon_failure; while stopping: logged
            LOG.warning("the daemon ended with %r", exc)
        return True


def _stderr_handler() -> logging.Handler:
    """Errors to stderr (without a live view; the overload warnings are counted in the status line)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.ERROR)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


__all__ = ["EXIT_FAILED", "Demo", "Tracker"]
