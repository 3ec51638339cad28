"""The fast loop: every meter poll, read the meters, judge health, shed an overload at once.

Each cycle: poll every meter concurrently (each read bounded by its hub), take the chargers' own
fresh meter values, work out the load at every node it is known at (:mod:`.loads`: each line's
current as its limit sees it — the phasor sum of what is behind it, on a transformer node its
primary), then in order: the fail-safe state machine (a stale or implausible grid meter, a failed
planner, broken storage), the overload shed (a node over ``limit − margin`` → the chargers under
it scaled down and sent at once, without waiting for the planner, :mod:`.overload`), the base load
the planner will see, metrics and history, then the bill (grid import and PV output,
:class:`~controller.daemon.ports.EnergyMeter`). The watchdog is petted only when a cycle completes.

:class:`FastLoop` owns what it works out (the held base load, its statistics) and publishes each
cycle's result as an :class:`~controller.daemon.ports.Observation`; what it needs of the other
parts is named in :class:`FastPorts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from controller.chargers.state import ChargerState, ConnectorState
from controller.daemon.draws import (
    RESTORED_MARGIN_S,
    ChargerBudgets,
    Measured,
    ev_estimate,
    max3,
    phases_used,
)
from controller.daemon.overload import shed_order
from controller.daemon.ports import (
    Clock,
    EnergyMeter,
    Monotonic,
    Observation,
    PlanHealth,
    Recorder,
    Spawn,
)
from controller.daemon.readings import note_load_changes, observe_measured, read_meters
from controller.daemon.sessions import REACTION_S, Sent, energy_register_wh, fresh_s
from controller.daemon.uncontrolled import Uncontrolled
from controller.meter.meters import SiteMeters
from controller.metrics import (
    DepotMetrics,
    add_exceeded,
    count_shed,
    observe_charger,
    observe_charger_safety,
)
from controller.model.site import Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.failsafe import CycleHealth, Transition
from controller.rules.loads import BaseHold, base_loads, exceeded, known_loads, node_meters

LOG = logging.getLogger("depotctl.daemon.fast")
__all__ = ["RESTORED_MARGIN_S", "FastLoop", "FastPorts", "fast_loop"]


class FastDispatch(Protocol):
    """What the fast loop asks of the dispatcher: its book (read-only), the draws it judges, the
    budgets of uncontrolled chargers, and the shed's decreases."""

    @property
    def sent(self) -> Mapping[str, Sent]: ...

    @property
    def uncontrolled(self) -> Mapping[str, Uncontrolled]: ...

    def current_limit(self, charger_id: str, connector: int) -> float: ...

    def can_lower_now(self, charger_id: str) -> bool: ...

    def observe_draws(
        self, now: datetime, max_age_s: float,
        measure: Callable[[Charger, int, ConnectorState], PhaseCurrents | None] | None = None,
    ) -> None: ...

    def uncontrolled_budget_a(
        self, charger_id: str, now: datetime, draw_a: PhaseCurrents | None, budget_a: PhaseCurrents,
        max_a: PhaseCurrents,
    ) -> PhaseCurrents: ...

    async def lower(
        self, charger_id: str, connector: int, wanted: float, source: str, *, probe: bool = False
    ) -> str: ...


class FailsafeSteps(Protocol):
    """The fail-safe guard, as the fast loop steps it (:class:`~controller.daemon.safety.FailsafeGuard`)."""

    def advance(self, health: CycleHealth, now: datetime, recover_cycles: int) -> Transition | None: ...

    def apply(self, tr: Transition) -> None: ...


@dataclass(frozen=True)
class FastPorts:
    site: Callable[[], Site]
    clock: Clock
    mono: Monotonic
    meters: Callable[[], SiteMeters]  # replaced on a reload that changes them
    states: Mapping[str, ChargerState]  # the central system's chargers (read)
    budgets: ChargerBudgets
    dispatch: FastDispatch
    failsafe: FailsafeSteps
    plans: PlanHealth
    recorder: Recorder
    storage_broken: Callable[[], bool]
    metrics: DepotMetrics
    spawn: Spawn
    replan: Callable[[], None]
    cycle_done: Callable[[bool, bool], None]  # (good, completed): the watchdog
    stop: asyncio.Event
    held_budgets_a: Callable[[], Mapping[str, PhaseCurrents]] = dict
    """The chargers commissioning runs hold, and what the planner counts each at (its maximum)."""
    reaction_of: Callable[[str], float] | None = None
    """Per charger, its EVs' reaction time [s] (the shed's allowance; None: the default for all)."""
    energy: EnergyMeter | None = None
    """The bill: told the grid and PV meters' power each cycle (after the shed: it never delays one)."""


@dataclass
class FastStats:
    cycles: int = 0
    cycle_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2000))
    shed_ms: deque[float] = field(default_factory=lambda: deque(maxlen=500))
    sheds: int = 0
    last_shed_at: datetime | None = None


@dataclass
class _ChargerRound:
    draws: dict[str, PhaseCurrents] = field(default_factory=dict)
    at_worst: dict[str, PhaseCurrents] = field(default_factory=dict)  # draws where measured (angle known) …
    at_worst_budget: dict[str, PhaseCurrents] = field(default_factory=dict)  # … worst case where not
    used: dict[str, int | None] = field(default_factory=dict)
    with_session: dict[str, PhaseCurrents] = field(default_factory=dict)
    with_session_low: dict[str, PhaseCurrents] = field(default_factory=dict)  # raises not drawn yet at the reading
    unknown_draw: set[str] = field(default_factory=set)
    budgets: dict[str, PhaseCurrents] = field(default_factory=dict)


class FastLoop:
    def __init__(self, ports: FastPorts, base_hold_s: float) -> None:
        self.ports = ports
        self.hold = BaseHold(base_hold_s)
        self.stats = FastStats()
        self.observation = Observation()
        self._ev_total_a: dict[str, float] = {}  # per metered node: the chargers' draw last noted
        self._unsettled_since: dict[str, float] = {}  # metered node → since when a draw below is unknown
        self._stale_nodes: set[str] = set()  # metered nodes whose meter has no usable reading

    async def cycle(self, dt_s: float) -> bool:
        """One cycle; returns whether it was good (no fault)."""
        p = self.ports
        site = p.site()
        readers = dict(p.meters().readers)
        results = await asyncio.gather(*(r.poll() for r in readers.values()))
        t_read = p.mono()
        now = p.clock()
        previous = (self.observation.grid_a, self.observation.grid_power_w)
        meters = read_meters(site, readers, results, now, previous, p.metrics, p.recorder)
        measure = Measured(now, fresh_s(site), site)
        p.dispatch.observe_draws(now, fresh_s(site), measure)
        chargers = self._charger_round(site, now, measure)
        note_load_changes(site, p.meters().readers, chargers.draws, self._ev_total_a, p.mono)

        loads = known_loads(site, meters.meter_a, chargers.at_worst, chargers.at_worst_budget, chargers.used)
        observe_measured(p.metrics, site, loads)
        for node, ph, _over in exceeded(site, loads):
            add_exceeded(p.metrics, node, ph, dt_s)
        base_now = base_loads(
            site, meters.meter_a, chargers.with_session, meters.in_phase, chargers.used, chargers.with_session_low
        )
        held = self.hold.add(t_read, self._settled(site, base_now, chargers.unknown_draw, t_read))
        grid_a, grid_power_w = meters.grid
        self.observation = Observation(loads, base_now, held, chargers.budgets, grid_a, grid_power_w)
        self._note_stale(site, meters.meter_a)

        health = CycleHealth(
            grid_meter_stale=meters.grid_stale,
            grid_meter_implausible=meters.grid_implausible,
            planner_failed=p.plans.planner_failed,
            storage_broken=p.storage_broken(),
            plan_stalled=p.plans.stalled(t_read),
        )
        transition = p.failsafe.advance(health, now, site.control.recover_cycles)
        if transition is not None:
            p.failsafe.apply(transition)  # fail-safe: every charger to its limit; normal: a plan at once
        self._shed(site, loads, now, t_read, measure, meters.in_phase)
        if p.energy is not None:
            grid_w = meters.power_w.get(site.grid.meter) if site.grid.meter is not None else None
            pv_w = meters.power_w.get(site.pv.meter) if site.pv is not None else None
            p.energy.metered(now, grid_w, pv_w)
        return not health.faults()

    def _charger_round(self, site: Site, now: datetime, measure: Measured) -> _ChargerRound:
        """Chargers: measured draws, budgets for those out of contact and those not under control."""
        p = self.ports
        out = _ChargerRound()
        under_test = p.held_budgets_a()
        for ch in site.chargers:
            st = p.states.get(ch.id)
            connected = st is not None and st.connected
            draw = measure.charger(ch, st) if st is not None and connected else None
            if draw is not None:
                out.draws[ch.id] = draw
            if st is not None:
                out.used[ch.id] = phases_used(st)
            commissioning = st is not None and connected and ch.id in under_test
            if commissioning:
                # a commissioning run has it: not planned, and for the planner at its maximum from
                # the start, so the others make room (its measured draw leaves the base load, as an
                # uncontrolled one's); the loads count it as any connected charger (below)
                out.with_session[ch.id] = out.with_session_low[ch.id] = draw or (0.0, 0.0, 0.0)
                out.budgets[ch.id] = under_test[ch.id]
            elif st is not None and connected and ch.id in p.dispatch.uncontrolled:
                # not planned: its measured draw stays load (subtracted here, added back as a budget,
                # so metered and unmetered nodes both carry it once); unknown → its maximum
                out.with_session[ch.id] = out.with_session_low[ch.id] = draw or (0.0, 0.0, 0.0)
                out.budgets[ch.id] = p.dispatch.uncontrolled_budget_a(
                    ch.id, now, draw, p.budgets.profiles_a(ch, now), p.budgets.max_a(ch)
                )
            elif st is not None and connected:
                reaction_s = p.reaction_of(ch.id) if p.reaction_of is not None else REACTION_S
                est = ev_estimate(site, p.dispatch.sent, ch, st, now, measure, reaction_s)
                if est is not None:
                    out.with_session[ch.id], known, out.with_session_low[ch.id] = est
                    if not known:
                        out.unknown_draw.add(ch.id)
            if not connected:
                out.budgets[ch.id] = p.budgets.offline_a(ch, now)
                out.unknown_draw.add(ch.id)  # it may be drawing; the meters see it, we don't
            if ch.id in out.budgets and not commissioning:
                out.at_worst_budget[ch.id] = out.budgets[ch.id] if draw is None else max3(out.budgets[ch.id], draw)
            elif st is not None:
                out.at_worst[ch.id], out.at_worst_budget[ch.id] = p.budgets.worst_parts_a(ch, st, now, measure)
            observe_charger(p.metrics, ch.id, connected, draw, energy_register_wh(st) if st is not None else None)
            observe_charger_safety(
                p.metrics, ch.id, uncontrolled=ch.id in p.dispatch.uncontrolled,
                clock_offset_s=st.clock_offset_s if st is not None else None,
                failsafe_installed=st.failsafe_confirmed if st is not None else False,
            )
        return out

    def _note_stale(self, site: Site, meter_a: Mapping[str, PhaseCurrents]) -> None:
        stale_nodes = {node for node, meter in node_meters(site).items() if meter not in meter_a}
        if stale_nodes - self._stale_nodes:
            LOG.warning("meter of %s stale: planning it as full", ", ".join(sorted(stale_nodes - self._stale_nodes)))
            self.ports.replan()  # the planner takes a node without a reading as full: at once, not next period
        self._stale_nodes = stale_nodes

    def _settled(
        self, site: Site, base: dict[str, PhaseCurrents], unknown_draw: set[str], t_s: float
    ) -> dict[str, PhaseCurrents]:
        """The base-load sample worth holding: a metered node with a charger below it whose draw is
        unknown (out of contact, or no meter values yet, e.g. just after a restart or a reconnect)
        would show that draw as base load, so its sample is left out — for at most the hold window,
        after which the conservative value is taken (a charger that never reports must not freeze
        the base). Right after a start, when nothing is held yet, the planner takes the value now,
        unreported draw included (:func:`~controller.rules.loads.with_unknown`)."""
        out = dict(base)
        for node in node_meters(site):
            if any(ch.id in unknown_draw for ch in site.chargers_under(node)):
                since = self._unsettled_since.setdefault(node, t_s)
                if t_s - since < self.hold.window_s:
                    out.pop(node, None)
            else:
                self._unsettled_since.pop(node, None)
        return out

    def _shed(
        self, site: Site, loads: dict[str, PhaseCurrents], now: datetime, t_read: float, measure: Measured,
        in_phase: dict[str, PhaseCurrents] | None = None,
    ) -> None:
        """Scale the sessions under an overloaded node down at once (:func:`~.overload.shed_order`)."""
        p = self.ports
        grid = (self.observation.grid_a, self.observation.grid_power_w)
        order = shed_order(site, p.states, p.dispatch, loads, measure, grid, in_phase, p.reaction_of)
        if order is None:
            return  # no overload, or already shed: waiting for the vehicles to react
        self.stats.sheds += 1
        self.stats.last_shed_at = now
        nodes = sorted({e.node_id for e in order.events})
        for node in nodes:
            count_shed(p.metrics, node)
        LOG.warning("overload: %s — shedding %d charger(s)", order.text, len(order.lowered))
        for node in nodes:
            p.recorder.event("overload", order.text, circuit_id=node)
        source = f"overload shed: {order.events[0].label}"

        async def dispatch() -> None:
            await asyncio.gather(*(
                p.dispatch.lower(order.where[sid][0], order.where[sid][1], v, source)
                for sid, v in order.lowered.items()
            ))
            self.stats.shed_ms.append((p.mono() - t_read) * 1000.0)

        p.spawn(dispatch())
        p.replan()



async def fast_loop(loop: FastLoop) -> None:
    """Run ``loop``'s cycles, one per meter poll period, until the stop event is set."""
    p = loop.ports
    last = p.mono()
    failing_since: float | None = None
    while not p.stop.is_set():
        t0 = p.mono()
        good = False
        completed = False
        try:
            good = await loop.cycle(min(max(0.0, t0 - last), 5.0))
            completed = True
            failing_since = None
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault: never followed by a watchdog ping; fail-safe if it persists
            LOG.exception("fast cycle failed")
            failing_since = t0 if failing_since is None else failing_since
            cycle_failed(loop, t0 - failing_since)
        last = t0
        loop.stats.cycles += 1
        loop.stats.cycle_ms.append((p.mono() - t0) * 1000.0)
        p.cycle_done(good, completed)
        period = min((m.poll_s for m in p.site().meters), default=1.0)
        delay = max(0.0, period - (p.mono() - t0))
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(p.stop.wait(), delay)


def cycle_failed(loop: FastLoop, failing_s: float) -> None:
    """A fast cycle raised. Once cycles have failed for as long as a meter may stay stale, the
    site goes to fail-safe (the meters are not being judged: they are as good as stale)."""
    p = loop.ports
    site = p.site()
    window_s = max((m.stale_after_s for m in site.meters), default=5.0)
    if failing_s < window_s:
        return
    try:
        transition = p.failsafe.advance(CycleHealth(cycle_failed=True), p.clock(), site.control.recover_cycles)
    except Exception:  # the state machine is pure and tiny; if even it fails, nothing more is safe here
        LOG.exception("fail-safe state machine failed")
        return
    if transition is not None:
        p.failsafe.apply(transition)
