"""Commissioning inside the daemon: one acceptance run per charger at a time, while the site runs on.

:class:`Commissioning` is the part (``Daemon.commission``). It

* **runs** :func:`controller.commission.runner.commission` as an asyncio task per charger, on a
  :class:`~controller.commission.port.CommissionPort` made of the daemon's own parts
  (:class:`_RunPort`: the charger server's state and sessions, its
  :class:`~controller.chargers.control.Control` — every profile of the run goes through
  ``Control.send_spec``, so the book of what the charger may hold stays whole, and every one
  accepted is recorded in the history, so a restart budgets it (hazard 8) — and the fast loop's
  last observation for :meth:`Commissioning.headroom_a`, with what the chargers drew when it was
  taken (:meth:`Commissioning.observed`); a cancel, even before the run's first step, ends it);
* **holds** the charger while its run goes on (:meth:`Commissioning.holds`): the dispatcher sends it
  nothing of its own (no plan limit, no refresh, no probe), the plan leaves it out and the fast
  loop budgets it at its maximum on its lines for the planner, so the other chargers make room.
  Safety still wins: when the overload shed or the fail-safe acts on it, or it disconnects,
  reconnects, reboots or leaves the site file (a reload), the run is cancelled (the runner leaves
  it on its fail-safe) and its report says why (state aborted). When the run ends the charger is
  back under normal control at once (a re-plan);
* **keeps** every report: the latest per charger in memory (a running one with its checks so
  far), every one in SQLite (:class:`~controller.store.commission.CommissionStore`: written when
  the run starts and when it ends; a run a crash interrupted is marked aborted at the next start);
* **uses what was learnt** (at start from SQLite, and after every finished run): the latest
  finished report's quirks go to ``Control.learn``, and each charger's reaction time
  (:meth:`Commissioning.reaction_s`) is the site file's ``reaction_s``, else the latest one
  measured by a run whose ``follows_limit`` passed — never below
  :data:`~controller.daemon.sessions.REACTION_S` (a measurement only ever lengthens the
  allowance) — else ``REACTION_S``; the dispatcher, the "ignores its limit" judgement, the learnt
  vehicle maxima and the shed read it;
* **answers** the API (:class:`~controller.api.faces.CommissionFace`) and the status
  (:meth:`Commissioning.commissioned`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from controller import __version__
from controller.api.faces import CommissionRefused
from controller.chargers.control import ApplyResult, Budget
from controller.chargers.planning import grid_currents, session_id
from controller.chargers.profiles import ProfileSpec, Target
from controller.chargers.session import MEASURANDS, OcppSession
from controller.chargers.state import ChargerState
from controller.commission.report import CHECK_NAMES, Report
from controller.commission.runner import CommissionError, CommissionOptions, commission
from controller.daemon.draws import add3, max3, min3
from controller.daemon.headroom import RESERVE_A, OwnDraw, beyond_a, headroom, with_others
from controller.daemon.ports import Clock, FailsafeView, Observation, Recorder
from controller.daemon.sessions import REACTION_S, Sent, budget_grid_a, fresh_s, reacted
from controller.daemon.status import Commissioned
from controller.model.site import Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.store import accepted_profile
from controller.store.commission import CommissionStore

LOG = logging.getLogger("depotctl.daemon.commission")
STOP_WAIT_S = 5.0
"""At a stop, how long the daemon waits for a cancelled run to leave its charger [s]."""
INTERRUPTED = "the controller stopped during the run"
REACTION_CHANGE_S = 1.0
"""A measured reaction time that moved by at least this much [s] (and a quarter) is a change."""
CLOCK_CHANGE_S = 30.0
"""A clock offset that moved by more than this [s] is a change."""
OBSERVATION_MAX_CYCLES = 3.0
"""The headroom is 0 when the fast loop's last observation is older than this many of its cycles
(its meters' shortest poll interval): its cycles are failing, the loads are not known now."""
SAMPLE_SLACK = 0.5
"""A run's charger's reading counts as its draw when the loads were measured only if it was at
most (1 + this) of the run's meter intervals (``CommissionOptions.sample_s``) old then: one
interval, and half of one more for the way (a charger that did not take the run's interval reports
less often: its older readings say nothing of what its EV draws now)."""


class ChargerControl(Protocol):
    """What the part asks of :class:`~controller.chargers.control.Control`."""

    def target(self, charger_id: str, connector: int | None = None) -> Target: ...

    def failsafe_spec(self, charger_id: str) -> ProfileSpec: ...

    async def send_spec(self, charger_id: str, spec: ProfileSpec, *, urgent: bool = True) -> ApplyResult: ...

    def learn(self, charger_id: str, quirks: Iterable[str]) -> None: ...

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget: ...

    def phases_in_use(self, charger_id: str, connector: int) -> int | None: ...


class DispatchBook(Protocol):
    """The dispatcher, as a run takes a charger over (and gives it back), and its book: what each
    session was last sent (a raise its EV may not have followed yet)."""

    def forget_charger(self, charger_id: str, *, taken_over: bool = True) -> None: ...

    @property
    def sent(self) -> Mapping[str, Sent]: ...


@dataclass(frozen=True)
class CommissionPorts:
    site: Callable[[], Site]
    clock: Clock
    state: Callable[[str], ChargerState]
    session: Callable[[str], OcppSession | None]
    control: ChargerControl
    dispatch: DispatchBook
    observation: Callable[[], Observation]  # the fast loop's last
    failsafe: FailsafeView
    replan: Callable[[], None]
    recorder: Recorder
    max_a: Callable[[Charger], PhaseCurrents]  # a charger at its maximum, on grid L1..L3 (ChargerBudgets)
    states: Mapping[str, ChargerState]  # the charger server's (read)
    options: CommissionOptions = field(default_factory=CommissionOptions)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    version: str = __version__


@dataclass
class _Run:
    charger_id: str
    report: Report
    task: asyncio.Task[None] | None = None
    why: str | None = None
    """Why it was cancelled (None: it was not)."""


@dataclass(frozen=True)
class _Seen:
    """The fast loop's observation as :meth:`Commissioning.observed` noted it: when, and what each
    connector of a connected charger drew then (grid A; None: no reading fresh enough) — while a
    run goes on."""

    observation: Observation
    at: datetime
    draws_a: dict[tuple[str, int], PhaseCurrents | None]


class _RunPort:
    """The daemon as a run sees it (:class:`~controller.commission.port.CommissionPort`)."""

    def __init__(self, part: Commissioning) -> None:
        self.part = part
        self.ports = part.ports

    @property
    def site(self) -> Site:
        return self.ports.site()

    def charger(self, charger_id: str) -> Charger | None:
        try:
            return self.ports.site().charger(charger_id)
        except KeyError:
            return None

    def state(self, charger_id: str) -> ChargerState:
        return self.ports.state(charger_id)

    def session(self, charger_id: str) -> OcppSession | None:
        return self.ports.session(charger_id)

    def target(self, charger_id: str, connector: int | None = None) -> Target:
        return self.ports.control.target(charger_id, connector)

    def failsafe_spec(self, charger_id: str) -> ProfileSpec:
        return self.ports.control.failsafe_spec(charger_id)

    async def send_spec(self, charger_id: str, spec: ProfileSpec) -> ApplyResult:
        """Through Control (its book), counted by the other runs' headroom from the moment it is
        asked for; accepted, recorded like the dispatcher's pushes (a restart budgets it)."""
        key = (charger_id, spec.connector_id)
        offers = self.part.offers
        offers[key] = [*offers.get(key, []), spec.max_planner_limit]
        try:
            result = await self.ports.control.send_spec(charger_id, spec)
        finally:
            left = offers.get(key, [])
            if spec.max_planner_limit in left:
                left.remove(spec.max_planner_limit)
            if not left:
                offers.pop(key, None)
        if result.status == "accepted":
            self.ports.recorder.put(
                accepted_profile(
                    charger_id,
                    result.spec or spec,
                    self.ports.clock(),
                    clock_offset_s=self.ports.state(charger_id).clock_offset_s,
                )
            )
        return result

    def headroom_a(self, charger_id: str, connector: int) -> float:
        return self.part.headroom_a(charger_id, connector)

    def clock(self) -> datetime:
        return self.ports.clock()

    async def sleep(self, seconds: float) -> None:
        await self.ports.sleep(seconds)


class Commissioning:
    """The part (see the module). ``store`` is set at start (:meth:`load`); without one nothing is
    kept beyond memory."""

    def __init__(self, ports: CommissionPorts) -> None:
        self.ports = ports
        self.store: CommissionStore | None = None
        self._runs: dict[str, _Run] = {}
        self._latest: dict[str, Report] = {}
        self._finished: dict[str, list[Report]] = {}  # per charger: its last two finished reports, newest first
        self._reaction: dict[str, float] = {}  # per charger: the latest measured reaction time
        self._writes: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seen: _Seen | None = None
        self.offers: dict[tuple[str, int], list[float]] = {}
        """Per (charger, connector), the profiles a run is sending now (their highest limit,
        planner units): counted by the other runs' headroom before Control's book has them."""

    # --- what the other parts ask -----------------------------------------------------------------
    def holds(self, charger_id: str) -> bool:
        """A run holds the charger now (the dispatcher sends it nothing of its own)."""
        return charger_id in self._runs

    def held(self) -> frozenset[str]:
        return frozenset(self._runs)

    def held_budgets_a(self) -> dict[str, PhaseCurrents]:
        """The held chargers at their maximum on their lines (grid A), plus the headroom's reserve
        (:data:`~controller.daemon.headroom.RESERVE_A`) on each: what the planner counts them at —
        so the plan leaves the run's lines that little slack for a flickering load, which would
        otherwise have the shed end the run."""
        site = self.ports.site()
        out: dict[str, PhaseCurrents] = {}
        for cid in self._runs:
            try:
                top = self.ports.max_a(site.charger(cid))
            except KeyError:
                continue
            with_reserve = [a + RESERVE_A if a > 0.0 else 0.0 for a in top]
            out[cid] = (with_reserve[0], with_reserve[1], with_reserve[2])
        return out

    def reaction_s(self, charger_id: str) -> float:
        """How long the charger's EVs take to follow a new limit [s]: the site file's
        ``reaction_s`` (the site's own word, even below 5 s: ``check-config`` warns), else the
        latest measurement of a run whose ``follows_limit`` passed but never below
        :data:`~controller.daemon.sessions.REACTION_S` — a measurement may only lengthen the
        allowance (the EV plugged in then is not every EV the charger will see, and a fast
        measurement may be a charger that ignores its limit) — else ``REACTION_S``."""
        try:
            own = self.ports.site().charger(charger_id).reaction_s
        except KeyError:
            own = None
        if own is not None:
            return own
        return max(REACTION_S, self._reaction.get(charger_id, REACTION_S))

    def commissioned(self, charger_id: str) -> Commissioned:
        """For the status: running now, else how its latest run went (aborted counts as failed)."""
        if charger_id in self._runs:
            return "running"
        latest = self._latest.get(charger_id)
        if latest is None:
            return "never"
        return "passed" if latest.passed else "failed"

    def headroom_a(self, charger_id: str, connector: int) -> float:
        """The most the connector may be offered now (:func:`~controller.daemon.headroom.headroom`,
        from the fast loop's last observation as :meth:`observed` noted it): its own draw as it
        was when the loads were measured (the least of that and any reading since; a reading more
        than a run's meter interval old then: not measured), the other held chargers and the
        chargers whose EVs are still following a raise at their profiles' worst case
        (:meth:`_others_beyond_a`). 0 in fail-safe, for a charger the site file does not have,
        and when the observation is not known to be recent (older than
        :data:`OBSERVATION_MAX_CYCLES` fast cycles, or not noted)."""
        p = self.ports
        site = p.site()
        try:
            ch = site.charger(charger_id)
        except KeyError:
            return 0.0
        if p.failsafe.state.active:
            return 0.0
        now = p.clock()
        seen = self._seen
        if seen is None or seen.observation is not p.observation():
            return 0.0
        if (now - seen.at).total_seconds() > OBSERVATION_MAX_CYCLES * _cycle_s(site):
            return 0.0
        b = p.control.connector_budget(charger_id, connector, now)
        bound = budget_grid_a(site, ch, b.value, b.unit)
        used = p.control.phases_in_use(charger_id, connector)
        then = seen.draws_a.get((charger_id, connector))
        conn = p.state(charger_id).connectors.get(connector)
        if then is None or conn is None:
            own = OwnDraw(None, bound, used)
        else:
            since = grid_currents(ch, conn, now, timedelta(seconds=self._run_fresh_s()), site)
            low = then if since is None else min3(then, since)
            high = then if since is None else max3(then, since)
            own = OwnDraw(min3(low, bound), bound, used, high_a=high)
        others = self._others_beyond_a(site, charger_id, connector, seen, now)
        loads, power = with_others(site, seen.observation.loads_a, seen.observation.grid_power_w, others)
        return headroom(site, ch, loads, own, power)

    def _others_beyond_a(
        self, site: Site, charger_id: str, connector: int, seen: _Seen, now: datetime
    ) -> dict[str, PhaseCurrents]:
        """Per charger, what its connectors (but ``connector`` of ``charger_id``) may draw beyond
        what the observation saw, on its grid lines [A] — their worst case less what they drew
        then: a held charger's (its profiles, and what a run is sending it now), and a connector
        whose EV may not yet follow a raise of the dispatcher's (its readings not newer than the
        raise plus its reaction time)."""
        p = self.ports
        out: dict[str, PhaseCurrents] = {}
        for cid, st in p.states.items():
            if not st.connected:
                continue
            try:
                ch = site.charger(cid)
            except KeyError:
                continue
            held = cid in self._runs
            for conn_id, conn in st.connectors.items():
                if conn_id < 1 or (cid, conn_id) == (charger_id, connector):
                    continue
                if not held:
                    tx = conn.transaction
                    sent = p.dispatch.sent.get(session_id(cid, tx.transaction_id)) if tx is not None else None
                    raised = sent is not None and (sent.previous is None or sent.limit > sent.previous)
                    if sent is None or not raised or reacted(conn, sent, self.reaction_s(cid)):
                        continue
                b = p.control.connector_budget(cid, conn_id, now)
                offered = [*self.offers.get((cid, conn_id), []), *self.offers.get((cid, 0), [])]
                more = beyond_a(site, ch, max([b.value, *offered]), b.unit, seen.draws_a.get((cid, conn_id)))
                out[cid] = add3(out[cid], more) if cid in out else more
        return out

    def observed(self, at: datetime) -> None:
        """The fast loop's cycle that ended at ``at`` published its observation: noted, with what
        every connected charger's connectors drew then while a run goes on (a held charger's
        reading only if at most a run's meter interval old, any other's as the fast loop takes
        it). Its loads hold those draws: the headroom adds back, or counts beyond, these."""
        p = self.ports
        draws: dict[tuple[str, int], PhaseCurrents | None] = {}
        if self._runs:
            site = p.site()
            run_age, site_age = timedelta(seconds=self._run_fresh_s()), timedelta(seconds=fresh_s(site))
            for cid, st in p.states.items():
                try:
                    ch = site.charger(cid)
                except KeyError:
                    continue
                if not st.connected:
                    continue
                age = run_age if cid in self._runs else site_age
                for conn_id, conn in st.connectors.items():
                    if conn_id >= 1:
                        draws[(cid, conn_id)] = grid_currents(ch, conn, at, age, site)
        self._seen = _Seen(p.observation(), at, draws)

    def _run_fresh_s(self) -> float:
        return (1.0 + SAMPLE_SLACK) * self.ports.options.sample_s

    # --- runs ------------------------------------------------------------------------------------
    def start(self, charger_id: str, *, connector: int = 1, no_ev: bool = False) -> Report:
        """Start a run of ``charger_id`` (its first report, state running; the run goes on in a task).
        :class:`~controller.api.faces.CommissionRefused` (404, 409) when it cannot start."""
        p = self.ports
        site = p.site()
        try:
            ch = site.charger(charger_id)
        except KeyError:
            raise CommissionRefused(404, f"unknown charger {charger_id!r}") from None
        if charger_id in self._runs:
            raise CommissionRefused(409, f"a commissioning of {charger_id} is already running")
        if p.session(charger_id) is None:
            raise CommissionRefused(409, f"charger {charger_id} is not connected")
        if not 1 <= connector <= ch.connectors:
            raise CommissionRefused(409, f"charger {charger_id} has {ch.connectors} connector(s), not {connector}")
        fs = p.failsafe.state
        if fs.active:
            raise CommissionRefused(
                409, f"the site is in fail-safe ({fs.reason}): commissioning {charger_id} waits until it is in control"
            )
        report = Report(charger=charger_id, started=p.clock(), no_ev=no_ev, controller_version=p.version)
        run = _Run(charger_id, report)
        self._runs[charger_id] = run
        self._latest[charger_id] = report
        p.dispatch.forget_charger(charger_id)  # from now on it runs under what the run sends it
        run.task = self._background(self._run(run, connector, no_ev), f"commission {charger_id}")
        run.task.add_done_callback(lambda task: self._ended(run, task))
        self._save(report)
        LOG.warning(
            "commissioning %s (connector %d%s): left out of the plan, budgeted at its maximum",
            charger_id,
            connector,
            ", no EV" if no_ev else "",
        )
        p.recorder.event("info", f"commissioning of {charger_id} started", charger_id=charger_id)
        p.replan()  # the others make room now
        return report

    async def _run(self, run: _Run, connector: int, no_ev: bool) -> None:
        p = self.ports
        report = run.report
        try:
            report = await commission(
                _RunPort(self),
                run.charger_id,
                connector=connector,
                no_ev=no_ev,
                options=p.options,
                progress=lambda r: self._progress(run, r),
                controller_version=p.version,
            )
        except asyncio.CancelledError:  # abort(): the run ends here, with what it had
            report = run.report
            run.why = run.why or "cancelled"
            self._background(self._restore_sampling(run.charger_id), f"sampling {run.charger_id}")
        except CommissionError as exc:
            report = run.report
            run.why = str(exc)
        except Exception as exc:  # a bug in a check must not take the daemon down
            LOG.exception("commissioning of %s failed", run.charger_id)
            report = run.report
            run.why = f"the run failed: {type(exc).__name__}: {exc}"
        report = replace(report, started=run.report.started)  # one run, one row: the start the API gave
        if run.why is not None:
            report = replace(report, state="aborted", error=run.why)
        if report.finished is None:
            report = replace(report, finished=p.clock())
        self._finish(run, report)

    def _ended(self, run: _Run, task: asyncio.Task[None]) -> None:
        """The run's task is done. Cancelled before :meth:`_run` took its first step (an abort in
        the turn the run started), nothing ended the run: ended here, as :meth:`_run` does."""
        if task.cancelled() and self._runs.get(run.charger_id) is run:
            why = run.why or "cancelled"
            self._finish(run, replace(run.report, state="aborted", error=why, finished=self.ports.clock()))

    async def _restore_sampling(self, charger_id: str) -> None:
        """After a cancelled run: the site's meter interval again (the run asked for a short one)."""
        session = self.ports.session(charger_id)
        if session is None:
            return
        try:
            await asyncio.wait_for(
                session.configure_sampling(self.ports.site().ocpp.meter_sample_s, MEASURANDS), STOP_WAIT_S
            )
        except Exception:  # a charger that does not answer now: it keeps the run's interval
            LOG.warning("%s: meter sampling not restored after its commissioning was cancelled", charger_id)

    def _background(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _progress(self, run: _Run, report: Report) -> None:
        if self._runs.get(run.charger_id) is run:
            run.report = replace(report, started=run.report.started)
            self._latest[run.charger_id] = run.report

    def _finish(self, run: _Run, report: Report) -> None:
        """The run ended: the charger back under control at once, the report kept, what it found used."""
        p = self.ports
        cid = run.charger_id
        if self._runs.get(cid) is run:
            del self._runs[cid]
            # what the dispatcher's book learnt of it during the run (a push queued before the run
            # that landed in it) is not what it runs under now: Control's book is
            p.dispatch.forget_charger(cid, taken_over=False)
        run.report = report
        self._latest[cid] = report
        if report.state == "finished":
            self._finished[cid] = [report, *self._finished.get(cid, [])][:2]
            self._use(report)
        p.replan()
        outcome = "passed" if report.passed else f"aborted: {report.error}" if report.state == "aborted" else "failed"
        (LOG.info if report.passed else LOG.warning)("commissioning of %s %s", cid, outcome)
        p.recorder.event("info", f"commissioning of {cid} {outcome}", charger_id=cid)
        self._save(report)

    def abort(self, charger_id: str, why: str) -> None:
        """Cancel the charger's run (if one goes on); its report says ``why``."""
        run = self._runs.get(charger_id)
        if run is None or run.task is None or run.task.done() or run.why is not None:
            return  # none, or already being cancelled (the first reason stands)
        run.why = why
        LOG.warning("commissioning of %s cancelled: %s", charger_id, why)
        run.task.cancel()

    def abort_all(self, why: str) -> None:
        for cid in list(self._runs):
            self.abort(cid, why)

    def reloaded(self) -> None:
        """The site file was read again: a run of a charger it no longer has is cancelled (the
        plan, the loads and the budgets no longer count that charger at all)."""
        site = self.ports.site()
        known = {ch.id for ch in site.chargers}
        for cid in list(self._runs):
            if cid not in known:
                self.abort(cid, f"charger {cid} is no longer in the site file (reload)")

    def on_event(self, kind: str, charger_id: str) -> None:
        """A charger event (from the central system): a run ends when its charger goes away."""
        if charger_id not in self._runs:
            return
        if kind == "disconnected":
            self.abort(charger_id, f"charger {charger_id} disconnected during the run")
        elif kind == "replaced":
            self.abort(charger_id, f"charger {charger_id} reconnected during the run")
        elif kind == "booted":
            self.abort(charger_id, f"charger {charger_id} rebooted during the run")

    async def stop(self) -> None:
        """Cancel every run (the daemon stops) and wait, bounded, for them and their reports."""
        self.abort_all(INTERRUPTED)
        tasks = [t for t in self._tasks if not t.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_WAIT_S)
        if self._writes is not None:
            await asyncio.wait([self._writes], timeout=STOP_WAIT_S)

    # --- what was learnt ---------------------------------------------------------------------------
    def _use(self, report: Report) -> None:
        """A finished report's quirks to Control (from now on), its reaction time to the rules
        (:func:`measured_reaction_s`)."""
        cid = report.charger
        measured = measured_reaction_s(report)
        if measured is not None:
            self._reaction[cid] = measured
        if report.quirks:
            try:
                self.ports.control.learn(cid, report.quirks)
            except ValueError as exc:
                LOG.error("commissioning of %s: %s", cid, exc)

    def load(self, store: CommissionStore, now: datetime) -> None:
        """At start, before the history writer opens the database: the reports SQLite keeps (a run
        still "running" there was interrupted: aborted now), and what the latest finished ones
        found, put to use. No database yet: nothing to read (the history writer creates it)."""
        self.store = store
        if not store.exists:
            return
        for report in store.close_unfinished(INTERRUPTED, now):
            LOG.warning("commissioning of %s started %s did not end: %s", report.charger, report.started, INTERRUPTED)
        known = {ch.id for ch in self.ports.site().chargers}
        for cid, report in store.latest().items():
            self._latest[cid] = report
            finished = store.history(cid, 20, state="finished")
            self._finished[cid] = finished[:2]
            measured = next((m for r in finished if (m := measured_reaction_s(r)) is not None), None)
            if measured is not None:
                self._reaction[cid] = measured
            if finished and cid in known and finished[0].quirks:
                try:
                    self.ports.control.learn(cid, finished[0].quirks)
                except ValueError as exc:
                    LOG.error("commissioning of %s: %s", cid, exc)

    def _save(self, report: Report) -> None:
        """Write ``report`` behind the ones before it (in a worker thread; never in the way of a run)."""
        store = self.store
        if store is None:
            return
        before = self._writes

        async def write() -> None:
            if before is not None:
                await asyncio.wait([before])
            try:
                await asyncio.to_thread(store.save, report)
            except Exception:  # history, not control: logged, the run goes on
                LOG.exception("commissioning of %s: the report could not be stored", report.charger)

        self._writes = asyncio.create_task(write(), name=f"commission report {report.charger}")

    # --- the API's face ------------------------------------------------------------------------------
    @property
    def site(self) -> Site:
        return self.ports.site()

    def latest(self, charger_id: str) -> tuple[Report, list[str]] | None:
        report = self._latest.get(charger_id)
        if report is None:
            return None
        before = next((r for r in self._finished.get(charger_id, []) if r.started < report.started), None)
        return report, changes(before, report)

    async def history(self, charger_id: str, limit: int) -> list[Report]:
        stored = await asyncio.to_thread(self.store.history, charger_id, limit) if self.store is not None else []
        run = self._runs.get(charger_id)
        if run is not None:  # the running one as it is now, not as it was stored at its start
            stored = [run.report, *(r for r in stored if r.started != run.report.started)][:limit]
        return stored

    def site_report(self) -> list[Report]:
        return [self._latest[ch.id] for ch in self.ports.site().chargers if ch.id in self._latest]


def measured_reaction_s(report: Report) -> float | None:
    """The reaction time ``report`` measured, if its ``follows_limit`` passed (a run whose EV did
    not follow its limits measured nothing worth using); None otherwise."""
    follows = report.check("follows_limit")
    if report.reaction_s is None or follows is None or follows.passed is not True:
        return None
    return report.reaction_s


def _cycle_s(site: Site) -> float:
    """The fast loop's period: its meters' shortest poll interval [s]."""
    return min((m.poll_s for m in site.meters), default=1.0)


def changes(before: Report | None, now: Report) -> list[str]:
    """What ``now`` says differently from ``before`` (the charger's previous finished report), one
    line each: boot information (a firmware update …), each check whose outcome changed, quirks
    needed or no longer needed, phases, units, a reaction time or clock offset that moved. Empty
    without a previous report; while ``now`` runs, only its checks so far and its boot information."""
    if before is None:
        return []
    out: list[str] = []
    for attr, label in (
        ("ocpp_version", "OCPP version"),
        ("vendor", "vendor"),
        ("model", "model"),
        ("firmware", "firmware"),
    ):
        old, new = getattr(before, attr), getattr(now, attr)
        if new is not None and old != new:
            out.append(f"{label}: {old or 'unknown'} → {new}")
    for name in CHECK_NAMES:
        old_check, new_check = before.check(name), now.check(name)
        if old_check is None or new_check is None or old_check.status == new_check.status:
            continue
        line = f"{name}: {old_check.status} before, {new_check.status} now"
        if new_check.passed is False and new_check.detail:
            line += f" ({new_check.detail})"
        out.append(line)
    if now.state != "finished":
        return out
    for quirk in sorted(set(now.quirks) - set(before.quirks)):
        out.append(f"new quirk {quirk} (add it to the site file: {now.ocpp_quirks_line})")
    for quirk in sorted(set(before.quirks) - set(now.quirks)):
        out.append(f"quirk {quirk} no longer needed")
    if before.phases_in_use is not None and now.phases_in_use is not None and before.phases_in_use != now.phases_in_use:
        out.append(f"phases in use: {before.phases_in_use} → {now.phases_in_use}")
    if before.units and now.units and set(before.units) != set(now.units):
        out.append(f"units accepted: {', '.join(before.units)} → {', '.join(now.units)}")
    if before.reaction_s is not None and now.reaction_s is not None:
        moved = abs(now.reaction_s - before.reaction_s)
        if moved >= REACTION_CHANGE_S and moved >= 0.25 * before.reaction_s:
            out.append(f"EV reaction: {before.reaction_s:.1f} s → {now.reaction_s:.1f} s")
    if (
        before.clock_offset_s is not None
        and now.clock_offset_s is not None
        and abs(now.clock_offset_s - before.clock_offset_s) > CLOCK_CHANGE_S
    ):
        out.append(f"clock offset: {before.clock_offset_s:+.0f} s → {now.clock_offset_s:+.0f} s")
    return out


__all__ = ["CommissionPorts", "Commissioning", "changes", "measured_reaction_s"]
