"""The daemon: one asyncio process tying meters, planner and chargers together (``depotctl run``).

:class:`Daemon` is the composition root: it builds the parts, wires each to the narrow ports of
the others (:mod:`.ports`) and runs the lifecycle. The parts, each the one writer of its state:

* ``cs`` — the OCPP central system (the chargers' state, the charger-side book of profiles);
* ``dispatch`` (:mod:`.dispatch`) — the book of what each session was sent, and the rules for
  changing it; ``failsafe`` (:mod:`.safety`) — the fail-safe state;
* ``fast`` (:mod:`.fast`) — the **fast loop**, every meter poll: read every meter, judge health
  (the fail-safe state machine), shed at once on an overload, feed metrics and history; it
  publishes an :class:`~.ports.Observation`; ``budgets`` (:mod:`.draws`) — what chargers whose
  draw is not measured may draw;
* ``plans`` (:mod:`.plan_loop`) — the **plan loop**, every ``control.plan_every_s`` and at once on
  an arrival, a departure, a connection change, a shed or a reload: build the Snapshot, plan (in
  a worker process that keeps the HiGHS model warm, ``planning``, :mod:`.planning`), dispatch;
  it publishes a :class:`~.ports.PlanOutcome`;
* ``sessions`` (:mod:`.history`) — the open sessions and the chargers' link state, from the
  central system's events; ``fleet`` (:mod:`.fleet`) — departures, schedules, the API's fleet
  face; ``recorder`` (:mod:`.record`) — the history store; ``watchdog`` (:mod:`.watchdog`) — systemd;
* ``bill`` (:mod:`.bill`) — what energy costs and what the site produces: the prices file, the
  billing period's peak, the cost of import, the PV history; fed by the fast loop, read by the plan
  loop (the planner's prices, peak and PV), the status and ``/metrics``;
* ``commission`` (:mod:`.commission`) — commissioning runs: a charger under test is held (left
  out of the plan, budgeted at its maximum, sent nothing by the dispatcher) until its run ends;
  the shed, the fail-safe, a disconnect or a stop cancel a run; what runs found (quirks, each
  charger's reaction time) feeds the dispatcher, the fast loop and the plan.

Lifecycle: :meth:`Daemon.run` opens the history store and restores what a previous run left
(open sessions, accepted profiles, departures), starts the central system, the meters,
``/metrics``, the API and the background jobs (:mod:`.jobs`), then runs the two loops until
SIGTERM. Decision priority, top to bottom: fail-safe → overload shed → plan → idle. SIGHUP
re-reads the site file (a bad file is logged and the old one kept); SIGTERM stops planning,
leaves every charger on its fail-safe limit, flushes storage and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.api.models import StatusResponse, UpstreamInfo
from controller.chargers.clock import utc_now
from controller.chargers.events import ChargerEvent
from controller.chargers.server import CentralSystem
from controller.commission.runner import CommissionOptions
from controller.config.loader import load_site
from controller.daemon import fast, jobs, plan_loop
from controller.daemon.bill import Bill, BillPorts
from controller.daemon.commission import Commissioning, CommissionPorts
from controller.daemon.dispatch import Dispatcher
from controller.daemon.draws import RESTORED_MARGIN_S, ChargerBudgets
from controller.daemon.fleet import FleetPorts, FleetService
from controller.daemon.history import SessionBook, seed_transactions
from controller.daemon.planning import Planning
from controller.daemon.record import PushHistory, StoreRecorder
from controller.daemon.safety import FailsafeGuard
from controller.daemon.sdnotify import Notifier
from controller.daemon.status import StatusFace, build_status
from controller.daemon.upstream_status import upstream_info
from controller.daemon.watchdog import Watchdog
from controller.meter.hub import quiet_pymodbus
from controller.meter.meters import SiteMeters
from controller.metrics import DepotMetrics
from controller.metrics.server import MetricsServer, start_metrics_server
from controller.metrics.update import observe_site
from controller.metrics.upstream import UpstreamCollector
from controller.model.site import PHASES, Site
from controller.planner.worker import PlanWorker
from controller.store import ChargerRecord, Restored
from controller.store.commission import CommissionStore
from controller.upstream.caps import CapBook
from controller.upstream.caps_site import site_ratings
from controller.upstream.proxy import Proxy, ProxyOptions
from controller.upstream.store import UpstreamStore

if TYPE_CHECKING:
    from controller.api.auth import Auth
    from controller.api.server import ApiServer

LOG = logging.getLogger("depotctl.daemon")
BASE_HOLD_S = 60.0
"""The base load the planner sees is its maximum over this window [s]: it rides out the lag
between the grid meter (every second) and the chargers' own meter values (every
``ocpp.meter_sample_s``), and a load that comes and goes."""
STOP_PUSH_S = 5.0


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
    commission: CommissionOptions = field(default_factory=CommissionOptions)
    """Timings and thresholds of commissioning runs (tests shrink them)."""
    upstream: ProxyOptions = field(default_factory=ProxyOptions)
    """Local-controller mode's timings (the upstream links' back-off; tests shrink them)."""


class Daemon:
    def __init__(self, site: Site, config_path: str | Path, options: DaemonOptions | None = None) -> None:
        self.options = options or DaemonOptions()
        self.clock = self.options.clock
        self.mono = self.options.monotonic
        self.site = site  # the site file in force (a reload replaces it)
        self.config_path = Path(config_path)
        self.config_loaded_at = self.clock()
        self.started_at = self.clock()
        self.notifier = self.options.notifier or Notifier()
        self.metrics = DepotMetrics()
        self.replan = asyncio.Event()  # set: plan now (read by the plan loop)
        self.stop_event = asyncio.Event()
        self.reload_event = asyncio.Event()
        self.meters = SiteMeters(site, clock=self.mono)  # replaced on a reload that changes them
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="depotctl-plan")
        self.planning = Planning(PlanWorker() if self.options.plan_in_worker else None, self.executor, self.mono)
        self._build_parts()
        self.commission = Commissioning(CommissionPorts(
            site=self._site, clock=self.clock, state=self.cs.state, session=self.cs.session, control=self.cs.control,
            dispatch=self.dispatch, observation=lambda: self.fast.observation, failsafe=self.failsafe,
            replan=self.replan.set, recorder=self.recorder, max_a=self.budgets.max_a, states=self.cs.states,
            options=self.options.commission,
        ))
        self.fleet = FleetService(FleetPorts(
            site=self._site, clock=self.clock, recorder=self.recorder, replan=self.replan.set,
            states=self.cs.states, sessions=self.sessions, outcome=lambda: self.plans.outcome, status=self.status,
        ))
        self.plans = plan_loop.PlanLoop(self._plan_ports())
        self.watchdog = Watchdog(self.notifier, self.mono, self.plans.stalled)
        self.fast = fast.FastLoop(self._fast_ports(), self.options.base_hold_s)
        self.status_face = self._status_face()
        self.auth: Auth | None = None  # the API's tokens, once it serves
        self.api_server: ApiServer | None = None
        self.metrics_server: MetricsServer | None = None
        self.scheduler: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Task[object]] = set()

    # --- wiring -------------------------------------------------------------------------------
    def _site(self) -> Site:
        return self.site

    def _build_parts(self) -> None:
        self.recorder = StoreRecorder(self.clock)
        self.cs = CentralSystem(self.site, clock=self.clock, emit=self._on_charger_event)
        self.dispatch = Dispatcher(
            control=self.cs.control, states=self.cs.states, site=self._site, clock=self.clock,
            observe=PushHistory(self.recorder, self.metrics, self.clock), request_replan=self.replan.set,
            reaction_of=lambda cid: self.commission.reaction_s(cid), held=lambda cid: self.commission.holds(cid),
            overridden=lambda cid, why: self.commission.abort(cid, f"{why}: the site's safety comes first"),
        )
        self.failsafe = FailsafeGuard(
            self.clock(), recorder=self.recorder, metrics=self.metrics, notifier=self.notifier,
            enter=self._failsafe_entered, leave=self.replan.set,
        )
        self.sessions = SessionBook(self.cs.states, self.recorder, self.dispatch.session_ended, self.replan.set)
        self.budgets = ChargerBudgets(self._site, self.cs.states, self.cs.control)
        self.bill = Bill(BillPorts(self._site, self.recorder, self.metrics, self.config_path.parent))
        self.caps: CapBook | None = None
        self.proxy: Proxy | None = None
        if self.site.ocpp.upstream is not None:  # local-controller mode: the CSMS behind every charger
            self.caps = CapBook(self.clock, ratings=site_ratings(self._site))
            store = UpstreamStore(self.site.storage.path)
            self.proxy = Proxy(self._site, store, self.cs.control, self.caps, self.clock, self.options.upstream)
            self.cs.relays = self.proxy

    def _on_charger_event(self, event: ChargerEvent) -> None:
        if self.proxy is not None:
            self.proxy.on_event(event)
        self.sessions.on_event(event)
        self.commission.on_event(event.kind, event.charger_id)

    def _failsafe_entered(self, reason: str) -> None:
        """Every charger to its fail-safe limit; a commissioning run ends first."""
        self.commission.abort_all(f"fail-safe: {reason}")
        self.spawn(self.dispatch.failsafe(reason))

    def _plan_ports(self) -> plan_loop.PlanPorts:
        return plan_loop.PlanPorts(
            site=self._site, clock=self.clock, mono=self.mono, states=self.cs.states, dispatch=self.dispatch,
            fleet=self.fleet, observation=lambda: self.fast.observation, planner=self.planning,
            failsafe=self.failsafe, sessions=self.sessions, recorder=self.recorder, metrics=self.metrics,
            wake=self.replan, stop=self.stop_event, held=self.commission.held,
            held_budgets_a=self.commission.held_budgets_a, reaction_of=self.commission.reaction_s,
            costs=self.bill.cost_inputs, refresh_costs=self.bill.refresh,
            caps=self.caps,
        )

    def _fast_ports(self) -> fast.FastPorts:
        return fast.FastPorts(
            site=self._site, clock=self.clock, mono=self.mono, meters=lambda: self.meters, states=self.cs.states,
            budgets=self.budgets, dispatch=self.dispatch, failsafe=self.failsafe, plans=self.plans,
            recorder=self.recorder, storage_broken=lambda: self.recorder.broken, metrics=self.metrics,
            spawn=self.spawn, replan=self.replan.set, cycle_done=self._cycle_done, stop=self.stop_event,
            held_budgets_a=self.commission.held_budgets_a, reaction_of=self.commission.reaction_s,
            energy=self.bill,
        )

    def _cycle_done(self, good: bool, completed: bool) -> None:
        """A fast cycle ended: the watchdog; a completed one published its observation now (what
        a commissioning run's headroom rests on, :meth:`~.commission.Commissioning.observed`)."""
        self.watchdog.cycle_done(good, completed)
        if completed:
            self.commission.observed(self.clock())

    def _status_face(self) -> StatusFace:
        return StatusFace(
            site=self._site, clock=self.clock, run=self, failsafe=self.failsafe,
            observed=lambda: self.fast.observation, loop=self.fast.stats, plans=self.plans,
            planning=self.planning, meters=lambda: self.meters.status(), states=self.cs.states,
            failsafe_installed=self.cs.control.failsafe_installed, dispatch=self.dispatch,
            delivered_kwh=self.sessions.delivered_kwh, store=lambda: self.recorder.store,
            commissioned=self.commission.commissioned, bill=self.bill.status,
            upstream=self._upstream_info,
        )

    def _upstream_info(self) -> UpstreamInfo | None:
        return upstream_info(self.proxy) if self.proxy is not None else None

    def _job_ports(self) -> jobs.JobPorts:
        return jobs.JobPorts(
            site=self._site, clock=self.clock, recorder=self.recorder, upcoming=self.fleet.upcoming,
            replan=self.replan.set,
        )

    def status(self) -> StatusResponse:
        """The status now (the API's, ``depotctl status``'s and the demo's)."""
        return build_status(self.status_face)

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open storage, restore, start the servers and the loops (returns once they run)."""
        quiet_pymodbus()
        self._open_store()
        if self.proxy is not None:  # what a previous run left undelivered, before any charger connects
            await self.proxy.open()
            self.metrics.registry.register(UpstreamCollector(self.proxy.status))
        await self.cs.start()
        LOG.info("OCPP central system on %s:%d%s", self.cs.host, self.cs.port, self.site.ocpp.path)
        if self.options.serve_metrics:
            self.metrics_server = start_metrics_server(self.metrics.registry, self.site.metrics.listen)
            LOG.info("metrics on %s", self.metrics_server.url)
        if self.options.serve_api:
            await self._start_api()
        self._init_series()
        self.failsafe.publish()
        self.scheduler = jobs.start_jobs(self._job_ports())
        self.planning.start()  # spawns the planner process; it imports while the rest starts
        self._tasks = [
            asyncio.create_task(fast.fast_loop(self.fast), name="fast loop"),
            asyncio.create_task(plan_loop.plan_loop(self.plans), name="plan loop"),
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
                await self._serve_until_event()
        finally:
            await self.stop()
            if self.options.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        return 0

    async def _serve_until_event(self) -> None:
        """Wait for a reload, a stop or a loop's end; reload, or stop when a loop died."""
        reload_wait = asyncio.create_task(self.reload_event.wait())
        stop_wait = asyncio.create_task(self.stop_event.wait())
        done, _pending = await asyncio.wait([reload_wait, stop_wait, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
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
        await self.commission.stop()  # a run leaves its charger on its fail-safe, its report says why
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        try:
            await asyncio.wait_for(self.dispatch.failsafe("controller stopping"), STOP_PUSH_S)
        except TimeoutError:
            LOG.warning("stopping: not every charger confirmed its fail-safe limit within %.0f s", STOP_PUSH_S)
        self.recorder.event("info", "controller stopped")
        self.sessions.all_offline(self.clock())
        self.bill.flush(self.clock())  # the window in progress and today's cost, for the next start
        await self.cs.stop()
        if self.proxy is not None:
            await self.proxy.close()
        await self.meters.close()
        if self.api_server is not None:
            with contextlib.suppress(Exception):
                await self.api_server.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        await self.recorder.close()
        await asyncio.to_thread(self.planning.close)  # bounded: asks, then terminates, then kills
        self.executor.shutdown(wait=False, cancel_futures=True)
        LOG.info("stopped")

    async def _start_api(self) -> None:
        from controller.api.assemble import daemon_app
        from controller.api.auth import Auth
        from controller.api.server import ApiServer

        auth = Auth.load(self.site)  # a bad api.tokens_file: TokensFileError (an OSError), nothing served
        self.auth = auth  # re-read on SIGHUP (reload)
        server = ApiServer(daemon_app(self.status, self.fleet, auth, self.commission), self.site.api.listen)
        await server.start()
        self.api_server = server
        LOG.info("API on %s", server.url)

    def _open_store(self) -> None:
        now = self.clock()
        try:  # the commissioning reports (before the history writer has the file): used from the start
            self.commission.load(CommissionStore(self.site.storage.path), now)
        except Exception:  # history, not control: the daemon runs without them
            LOG.exception("commissioning reports in %s not read", self.site.storage.path)
        self.bill.open(self.site.storage.path, now)  # the period's peak, today's cost, PV history (before the writer)
        restored = self.recorder.open(self.site.storage.path, now)
        self._restore(restored, now)
        self.bill.start(now)  # the prices file
        for warning in self.fleet.restore(restored, now):  # departures and schedules set through the API
            LOG.warning("restoring departures: %s", warning)
        for ch in self.site.chargers:
            self.recorder.put(
                ChargerRecord(ch.id, ch.circuit, ch.kind, ch.phases, ch.connectors, ch.max_a, ch.max_kw, now)
            )
            self.sessions.link(ch.id, False, False, now)  # nothing is connected to a controller that was down
        self.recorder.event("info", f"controller started (config {self.config_path})")

    def _restore(self, restored: Restored, now: datetime) -> None:
        """What the chargers accepted before the restart (budgeted until it has surely ended) and
        the sessions still open."""
        margin = timedelta(seconds=RESTORED_MARGIN_S)
        for cid, by_connector in restored.in_force.items():
            for connector, profiles in by_connector.items():
                for p in profiles:  # still in force on the charger, perhaps: budget it after a reconnect too
                    schedule = p.planner_schedule
                    if p.is_failsafe or p.valid_until is None or schedule is None or now >= p.valid_until + margin:
                        continue
                    self.cs.control.note_restored(cid, connector, max(schedule), p.valid_until + margin)
        self.budgets.restore(restored)
        known = {ch.id for ch in self.site.chargers}
        self.sessions.seed(seed_transactions(self.cs.state, restored.open_sessions, known))
        if restored.open_sessions:
            LOG.info("restored %d open session(s) from %s", len(self.sessions.open), self.site.storage.path)

    # --- reload -------------------------------------------------------------------------------
    async def reload(self) -> bool:
        """Re-read the site file; keep the old one if the new one is bad."""
        self.notifier.reloading()
        try:
            loaded = load_site(self.config_path)
        except Exception as exc:  # the loader reports every problem in its message
            LOG.error("reload of %s refused, still running on the previous file:\n%s", self.config_path, exc)
            self.recorder.event("config_reload", f"refused: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            await self.bill.reload(self.clock())  # the prices file is read again all the same
            self.notifier.ready("reload refused: running on the previous site file")
            return False
        new = loaded.site
        old = self.site
        for what, a, b in (
            ("ocpp.listen", old.ocpp.listen, new.ocpp.listen),
            ("api.listen", old.api.listen, new.api.listen),
            ("metrics.listen", old.metrics.listen, new.metrics.listen),
            ("storage.path", old.storage.path, new.storage.path),
            ("ocpp.upstream", old.ocpp.upstream is not None, new.ocpp.upstream is not None),
        ):
            if a != b:
                LOG.warning("reload: %s changed (%s → %s): takes effect at the next restart", what, a, b)
        self.site = new
        self.cs.reload(new)
        if self.proxy is not None and new.ocpp.upstream is not None:
            self.proxy.reload()  # passwords, offline_authorize; a new url for links made from now on
        self.commission.reloaded()  # a run of a charger the file no longer has ends
        await self.bill.reload(self.clock())  # the prices file is read again (a bad one: the old prices stay)
        if self.auth is not None:
            self.auth.reload(new)  # api.tokens_file: a bad one is logged, the old tokens stay
        if old.meters != new.meters:
            old_meters, self.meters = self.meters, SiteMeters(new, clock=self.mono)
            await old_meters.close()
        self.planning.reset()  # the model's shape may have changed; the held base load stays
        self.config_loaded_at = self.clock()
        self._init_series()
        self.recorder.event("config_reload", f"applied {self.config_path}")
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
