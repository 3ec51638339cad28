"""The daemon: one asyncio process tying meters, planner and chargers together (``depotctl run``).

Lifecycle: :meth:`Daemon.run` opens the history store and restores what a previous run left
(open sessions, accepted profiles), starts the OCPP central system, the meters, ``/metrics``, the
API and the background jobs, then runs two loops until SIGTERM:

* the **fast loop** (:mod:`.fast`), every meter poll: read every meter, judge health (the
  fail-safe state machine), shed at once on an overload, feed metrics and history;
* the **plan loop** (:mod:`.plan_loop`), every ``control.plan_every_s`` and at once on an
  arrival, a departure, a connection change, a shed or a reload: build the Snapshot, plan (in a
  worker process that keeps the HiGHS model warm, so the fast loop and OCPP keep running and
  keep their GIL), dispatch.

Decision priority, top to bottom: fail-safe → overload shed → plan → idle.
SIGHUP re-reads the site file (a bad file is logged and the old one kept); SIGTERM stops
planning, leaves every charger on its fail-safe limit, flushes storage and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from controller.chargers.clock import utc_now
from controller.chargers.control import ApplyResult
from controller.chargers.events import ChargerEvent
from controller.chargers.planning import session_id
from controller.chargers.server import CentralSystem
from controller.chargers.state import ChargerState
from controller.config.loader import load_site
from controller.daemon.dispatch import Dispatcher
from controller.daemon.fast import RESTORED_MARGIN_S, plan_stalled
from controller.daemon.fleet import FleetService
from controller.daemon.history import OpenSession, seed_transactions, session_started, session_stopped
from controller.daemon.loads import BaseHold, PhaseCurrents
from controller.daemon.plan_loop import Planning
from controller.failsafe import FailsafeState, Transition, starting
from controller.fleet.departures import DepartureNeed
from controller.meter.hub import quiet_pymodbus
from controller.meter.meters import SiteMeters
from controller.metrics import DepotMetrics
from controller.metrics.server import MetricsServer, start_metrics_server
from controller.metrics.update import count_push, observe_failsafe, observe_site
from controller.model.site import PHASES, Site
from controller.model.snapshot import Plan, SessionState
from controller.planner.worker import PlanWorker
from controller.sdnotify import Notifier
from controller.store import ChargerRecord, ChargerStatus, Event, Restored, Store, accepted_profile, restore
from controller.store.records import EventKind

LOG = logging.getLogger("depotctl.daemon")
BASE_HOLD_S = 60.0
"""The base load the planner sees is its maximum over this window [s]: it rides out the lag
between the grid meter (every second) and the chargers' own meter values (every
``ocpp.meter_sample_s``), and a load that comes and goes."""
STOP_PUSH_S = 5.0


@dataclass
class LoopStats:
    cycles: int = 0
    cycle_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    shed_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    sheds: int = 0
    last_shed_at: datetime | None = None
    plans: int = 0


@dataclass
class DaemonOptions:
    """What tests, the demo and the benchmark change; the defaults are the product."""

    clock: Callable[[], datetime] = utc_now
    monotonic: Callable[[], float] = time.monotonic
    notifier: Notifier | None = None
    serve_api: bool = True
    serve_metrics: bool = True
    handle_signals: bool = True
    base_hold_s: float = BASE_HOLD_S
    plan_in_worker: bool = True
    """Plan in a worker process (the product); off: in a thread of the daemon, as before."""


class Daemon:
    def __init__(self, site: Site, config_path: str | Path, options: DaemonOptions | None = None) -> None:
        self.options = options or DaemonOptions()
        self.clock = self.options.clock
        self.mono = self.options.monotonic
        self.site = site
        self.config_path = Path(config_path)
        self.config_loaded_at = self.clock()
        self.started_at = self.clock()
        self.notifier = self.options.notifier or Notifier()
        self.metrics = DepotMetrics()
        self.fs: FailsafeState = starting(self.clock())
        self.last_plan: Plan | None = None
        self.last_sessions: tuple[SessionState, ...] = ()
        self.learned: dict[str, float] = {}  # per session: the vehicle's own maximum, learnt
        self.hold = BaseHold(self.options.base_hold_s)
        self.measured: dict[str, PhaseCurrents] = {}
        self.grid_a: PhaseCurrents | None = None
        self.grid_power_w: float | None = None
        self.stats = LoopStats()
        self.exceeded_s: dict[tuple[str, int], float] = {}
        self.planner_failed = False
        self.last_plan_mono = self.mono()  # the plan loop's liveness (fast.plan_stalled)
        self.open_sessions: dict[str, OpenSession] = {}
        self.restored = Restored()
        self.replan = asyncio.Event()
        self.stop_event = asyncio.Event()
        self.reload_event = asyncio.Event()
        self.ready = False
        self.store: Store | None = None
        self.cs = CentralSystem(site, clock=self.clock, emit=self._on_charger_event)
        self.dispatch = Dispatcher(
            control=self.cs.control,
            states=self.cs.states,
            site=lambda: self.site,
            clock=self.clock,
            observe=self._observe_push,
            request_replan=self.replan.set,
        )
        self.fleet = FleetService(self)
        self.meters = SiteMeters(site, clock=self.mono)
        self.metrics_server: MetricsServer | None = None
        self.api_server: object | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="depotctl-plan")
        self.planning = Planning(PlanWorker() if self.options.plan_in_worker else None, self.executor, self.mono)
        self._watchdog_every_s = _watchdog_interval_s()
        self._last_watchdog = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[object]] = set()
        self.ev_total_a: dict[str, float] = {}  # per metered node: the chargers' draw last noted
        self.base_now: dict[str, PhaseCurrents] = {}
        self.stale_nodes: set[str] = set()  # metered nodes whose meter has no usable reading
        self.budgets: dict[str, PhaseCurrents] = {}  # chargers out of contact, worst case
        self.unsettled_since: dict[str, float] = {}  # metered node → since when a draw below is unknown
        self.at_risk_vehicles: set[str] = set()
        self.risk_reported: set[str] = set()  # vehicles whose at-risk departure was logged
        self.upcoming: list[DepartureNeed] = []
        self.link_state: dict[str, tuple[bool, bool]] = {}  # charger → (connected, faulted) last stored
        self.scheduler: Any = None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open storage, restore, start the servers and the loops (returns once they run)."""
        quiet_pymodbus()
        self._open_store()
        await self.cs.start()
        LOG.info("OCPP central system on %s:%d%s", self.cs.host, self.cs.port, self.site.ocpp.path)
        if self.options.serve_metrics:
            self.metrics_server = start_metrics_server(self.metrics.registry, self.site.metrics.listen)
            LOG.info("metrics on %s", self.metrics_server.url)
        if self.options.serve_api:
            await self._start_api()
        self._init_series()
        observe_failsafe(self.metrics, True, self.fs.reason)
        from controller.daemon.fast import fast_loop
        from controller.daemon.jobs import start_jobs
        from controller.daemon.plan_loop import plan_loop

        self.scheduler = start_jobs(self)
        self.planning.start()  # spawns the planner process; it imports while the rest starts
        self._tasks = [
            asyncio.create_task(fast_loop(self), name="fast loop"),
            asyncio.create_task(plan_loop(self), name="plan loop"),
        ]
        gc.collect()
        gc.freeze()  # the start-up objects never die: keep the collector off them (less loop lag)
        self.notifier.status("starting: waiting for good meter readings")

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT (or :meth:`request_stop`), stop gracefully."""
        loop = asyncio.get_running_loop()
        if self.options.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.request_stop)
            loop.add_signal_handler(signal.SIGINT, self.request_stop)
            loop.add_signal_handler(signal.SIGHUP, self.reload_event.set)
        try:
            await self.start()
            while not self.stop_event.is_set():
                reload_wait = asyncio.create_task(self.reload_event.wait())
                stop_wait = asyncio.create_task(self.stop_event.wait())
                done, _pending = await asyncio.wait(
                    [reload_wait, stop_wait, *self._tasks], return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in (reload_wait, stop_wait):
                    if waiter not in done:
                        waiter.cancel()
                for task in self._tasks:
                    if task in done and not task.cancelled() and task.exception() is not None:
                        LOG.critical("%s died", task.get_name(), exc_info=task.exception())
                        self.stop_event.set()
                if self.reload_event.is_set() and not self.stop_event.is_set():
                    self.reload_event.clear()
                    await self.reload()
        finally:
            await self.stop()
            if self.options.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        return 0

    def request_stop(self) -> None:
        self.stop_event.set()

    def spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        """Run ``coro`` in the background (a shed, a fail-safe push), keeping a reference."""
        task: asyncio.Task[object] = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    async def stop(self) -> None:
        """Stop planning, leave every charger on its fail-safe limit, flush storage."""
        self.stop_event.set()
        self.notifier.stopping()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        try:
            await asyncio.wait_for(self.dispatch_failsafe("controller stopping"), STOP_PUSH_S)
        except TimeoutError:
            LOG.warning("stopping: not every charger confirmed its fail-safe limit within %.0f s", STOP_PUSH_S)
        self.record_event("info", "controller stopped")
        for cid, (_, faulted) in list(self.link_state.items()):
            self._link_state(cid, False, faulted, self.clock())
        await self.cs.stop()
        await self.meters.close()
        if self.api_server is not None:
            with contextlib.suppress(Exception):
                await self.api_server.stop()  # type: ignore[attr-defined]
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.store is not None:
            await self.store.aclose()
        await asyncio.to_thread(self.planning.close)  # bounded: asks, then terminates, then kills
        self.executor.shutdown(wait=False, cancel_futures=True)
        LOG.info("stopped")

    async def _start_api(self) -> None:
        from controller.api.app import create_app
        from controller.api.auth import Auth, protect_status
        from controller.api.fleet_routes import fleet_router, install_error_handlers
        from controller.api.server import ApiServer
        from controller.daemon.status import build_status

        auth = Auth.load(self.site)  # a bad api.tokens_file: TokensFileError (an OSError), nothing served
        self.fleet.auth = auth  # re-read on SIGHUP (reload)
        status = auth.scoped_status(lambda: build_status(self), lambda: self.site)
        app = create_app(status, routers=[fleet_router(self.fleet, auth)])
        protect_status(app, auth)
        install_error_handlers(app)
        server = ApiServer(app, self.site.api.listen)
        await server.start()
        self.api_server = server
        LOG.info("API on %s", server.url)

    def _open_store(self) -> None:
        path = Path(self.site.storage.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.restored = restore(path, self.clock())
        self.store = Store(path)
        now = self.clock()
        known = {ch.id for ch in self.site.chargers}
        margin = timedelta(seconds=RESTORED_MARGIN_S)
        for cid, by_connector in self.restored.in_force.items():
            for connector, profiles in by_connector.items():
                for p in profiles:  # still in force on the charger, perhaps: budget it after a reconnect too
                    schedule = p.planner_schedule
                    if p.is_failsafe or p.valid_until is None or schedule is None or now >= p.valid_until + margin:
                        continue
                    self.cs.control.note_restored(cid, connector, max(schedule), p.valid_until + margin)
        for book in seed_transactions(self.cs.state, self.restored.open_sessions, known):
            self.open_sessions[book.start.session_id] = book
        if self.restored.open_sessions:
            LOG.info("restored %d open session(s) from %s", len(self.open_sessions), path)
        for warning in self.fleet.restore(now):  # departures and schedules set through the API
            LOG.warning("restoring departures: %s", warning)
        for ch in self.site.chargers:
            self.put(ChargerRecord(ch.id, ch.circuit, ch.kind, ch.phases, ch.connectors, ch.max_a, ch.max_kw, now))
            self._link_state(ch.id, False, False, now)  # nothing is connected to a controller that was down
        self.record_event("info", f"controller started (config {self.config_path})")

    # --- reload -------------------------------------------------------------------------------
    async def reload(self) -> bool:
        """Re-read the site file; keep the old one if the new one is bad."""
        self.notifier.reloading()
        try:
            loaded = load_site(self.config_path)
        except Exception as exc:  # the loader reports every problem in its message
            LOG.error("reload of %s refused, still running on the previous file:\n%s", self.config_path, exc)
            self.record_event("config_reload", f"refused: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            self.notifier.ready("reload refused: running on the previous site file")
            return False
        new = loaded.site
        old = self.site
        for what, a, b in (
            ("ocpp.listen", old.ocpp.listen, new.ocpp.listen),
            ("api.listen", old.api.listen, new.api.listen),
            ("metrics.listen", old.metrics.listen, new.metrics.listen),
            ("storage.path", old.storage.path, new.storage.path),
        ):
            if a != b:
                LOG.warning("reload: %s changed (%s → %s): takes effect at the next restart", what, a, b)
        self.site = new
        self.cs.reload(new)
        self.fleet.reload_tokens(new)  # api.tokens_file: a bad one is logged, the old tokens stay
        if old.meters != new.meters:
            old_meters, self.meters = self.meters, SiteMeters(new, clock=self.mono)
            await old_meters.close()
        self.planning.reset()  # the model's shape may have changed; the held base load stays
        self.config_loaded_at = self.clock()
        self._init_series()
        self.record_event("config_reload", f"applied {self.config_path}")
        LOG.info("reloaded %s", self.config_path)
        self.replan.set()
        self.notifier.ready("reloaded")
        return True

    def _init_series(self) -> None:
        """Drop series of what the site no longer has; start every node's counters at 0 (so
        ``rate()`` and ``increase()`` see the first overload, not just the second)."""
        observe_site(self.metrics, self.site)
        for node in self.site.node_ids():
            self.metrics.overload_sheds.labels(node)
            for phase in PHASES:
                self.metrics.limit_exceeded.labels(node, phase)

    # --- fail-safe ----------------------------------------------------------------------------
    def note_transition(self, tr: Transition) -> None:
        kind: EventKind = "failsafe_enter" if tr.to == "failsafe" else "failsafe_exit"
        if tr.to == "failsafe":
            LOG.error("FAIL-SAFE: %s — every charger to its fail-safe limit", tr.reason)
        else:
            LOG.warning("back to normal control (%s)", tr.reason)
        self.record_event(kind, tr.reason)
        observe_failsafe(self.metrics, tr.to == "failsafe", tr.reason)
        self.notifier.status(f"fail-safe: {tr.reason}" if tr.to == "failsafe" else "normal")

    async def dispatch_failsafe(self, reason: str) -> None:
        """Every running session to min(what it may draw, its fail-safe limit): never a raise."""
        await self.dispatch.failsafe(reason)

    def _observe_push(self, charger_id: str, connector: int, limit: float, result: ApplyResult) -> None:
        """Metrics and history of one push (called by the dispatcher)."""
        if result.status != "unchanged" and result.status != "superseded":
            count_push(self.metrics, charger_id, result.status)
        if result.status == "accepted" and result.spec is not None:
            self.put(accepted_profile(charger_id, result.spec, self.clock()))
        elif result.status == "rejected":
            self.record_event("reject", f"profile rejected: {result.detail}", charger_id=charger_id)

    # --- departures ---------------------------------------------------------------------------
    def departure_of(self, vehicle_id: str, after: datetime) -> DepartureNeed | None:
        return self.fleet.departure_of(vehicle_id, after)

    # --- charger events (called synchronously from the OCPP receive loops) --------------------
    def _on_charger_event(self, ev: ChargerEvent) -> None:
        kind = ev.kind
        st0 = self.cs.states.get(ev.charger_id)
        if kind == "failsafe_installed" and st0 is not None and st0.failsafe is not None:
            self.put(accepted_profile(ev.charger_id, st0.failsafe.spec, st0.failsafe.accepted_at))
        if kind in ("connected", "disconnected", "booted", "ev_needs", "transaction_started", "transaction_ended"):
            self.replan.set()
        st = self.cs.states.get(ev.charger_id)
        if kind in ("connected", "disconnected", "status") and st is not None:
            self._link_state(ev.charger_id, st.connected, _faulted(st), ev.at)
        connector = int(ev.detail.get("connector", 1) or 1)
        if kind == "transaction_started" and st is not None:
            book = session_started(st, connector, ev.at)
            if book is not None:
                self.open_sessions[book.start.session_id] = book
                self.put(book.start)
        elif kind == "transaction_ended":
            sid = session_id(ev.charger_id, str(ev.detail.get("transaction_id")))
            self._end_session(sid, ev.at, _opt_float(ev.detail.get("meter_stop_wh")))
        elif kind == "status" and st is not None:
            status = str(ev.detail.get("status", ""))
            conn = st.connectors.get(connector)
            if status in ("Available", "Unavailable", "Faulted") and conn is not None and conn.transaction is not None:
                sid = session_id(ev.charger_id, conn.transaction.transaction_id)
                if sid in self.open_sessions and self.open_sessions[sid].restored:
                    # a session restored from history that ended while we were away
                    conn.transaction = None
                    self._end_session(sid, ev.at, None)
                    self.replan.set()
        elif kind == "profile_rejected":
            self.record_event("reject", str(ev.detail.get("reason", "")), charger_id=ev.charger_id)

    def _link_state(self, charger_id: str, connected: bool, faulted: bool, at: datetime) -> None:
        """History of each charger's link and fault state (availability in the daily report)."""
        if self.link_state.get(charger_id) != (connected, faulted):
            self.link_state[charger_id] = (connected, faulted)
            self.put(ChargerStatus(charger_id, at, connected, faulted))

    def _end_session(self, sid: str, at: datetime, meter_stop_wh: float | None) -> None:
        book = self.open_sessions.pop(sid, None)
        self.dispatch.session_ended(sid)
        if book is not None:
            self.put(session_stopped(book, at, meter_stop_wh))

    # --- history ------------------------------------------------------------------------------
    def put(self, record: object) -> None:
        if self.store is not None:
            self.store.put(record)  # type: ignore[arg-type]

    def record_event(
        self, kind: EventKind, detail: str, *, charger_id: str | None = None, circuit_id: str | None = None
    ) -> None:
        self.put(Event(self.clock(), kind, detail, charger_id, circuit_id))

    # --- systemd ------------------------------------------------------------------------------
    def cycle_done(self, good: bool, completed: bool = True) -> None:
        """A fast-loop cycle ended: pet the watchdog if it completed (an exception is a fault, never
        followed by a ping) and the plan loop is alive; READY after the first good one."""
        now = self.mono()
        if completed and not plan_stalled(self, now) and now - self._last_watchdog >= self._watchdog_every_s:
            self.notifier.watchdog()
            self._last_watchdog = now
        if good and not self.ready:
            self.ready = True
            self.notifier.ready("first good control cycle")
            LOG.info("ready: first good control cycle")


def _watchdog_interval_s() -> float:
    import os

    try:
        usec = int(os.environ.get("WATCHDOG_USEC", "0"))
    except ValueError:
        usec = 0
    return usec / 2_000_000.0 if usec > 0 else 1.0


def _faulted(st: ChargerState) -> bool:
    return any(c.status == "Faulted" for c in st.connectors.values())


def _opt_float(v: object) -> float | None:
    try:
        return None if v is None else float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
