"""The fast loop: every meter poll, read the meters, judge health, shed an overload at once.

Each cycle: poll every meter concurrently (each read bounded by its hub), take the chargers' own
fresh meter values, work out the load at every node it is known at (:mod:`.loads`: each line's
current as its limit sees it — the phasor sum of what is behind it, on a transformer node its
primary), then in order: the fail-safe state machine (a stale or implausible grid meter, a failed planner, broken
storage), the overload shed (a node over ``limit − margin`` → the chargers under it scaled down
and sent at once, without waiting for the planner), the base load the planner will see, metrics
and history. The watchdog is petted only when a cycle completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from controller.chargers.planning import grid_currents, session_id
from controller.chargers.state import ChargerState, ConnectorState
from controller.daemon.dispatch import IGNORE_TOLERANCE_A, IGNORE_TOLERANCE_KW
from controller.daemon.line_loads import in_phase_a
from controller.daemon.loads import PhaseCurrents, base_loads, exceeded, known_loads, node_meters
from controller.daemon.sessions import REACTION_S, budget_grid_a, energy_register_wh, fresh_s, reacted
from controller.failsafe import CycleHealth, step
from controller.meter.errors import Implausible
from controller.metrics import (
    add_exceeded,
    count_shed,
    observe_charger,
    observe_charger_safety,
    observe_grid,
    observe_meter,
)
from controller.model.site import PHASES, Charger, Site
from controller.shed import ChargerDraw, kw_usable_a, shed
from controller.store import MeterSample, restored_budget

if TYPE_CHECKING:
    from controller.daemon.core import Daemon

LOG = logging.getLogger("depotctl.daemon.fast")
LOAD_CHANGE_A = 2.0  # the chargers' summed draw moving this much tells a frozen meter apart
RESTORED_MARGIN_S = 30.0
"""A profile from before a restart counts this long past its recorded end (clock offset, skew)."""
IDLE_STATUSES = frozenset({"Available", "Unavailable", "Faulted", "Reserved"})
PLAN_STALL_PERIODS = 5.0
"""A plan older than this many ``plan_every_s`` while sessions run is a fault (fail-safe)."""


async def fast_loop(d: Daemon) -> None:
    last = d.mono()
    failing_since: float | None = None
    while not d.stop_event.is_set():
        t0 = d.mono()
        good = False
        completed = False
        try:
            good = await fast_cycle(d, min(max(0.0, t0 - last), 5.0))
            completed = True
            failing_since = None
        except asyncio.CancelledError:
            raise
        except Exception:  # a fault: never followed by a watchdog ping; fail-safe if it persists
            LOG.exception("fast cycle failed")
            failing_since = t0 if failing_since is None else failing_since
            cycle_failed(d, t0 - failing_since)
        last = t0
        d.stats.cycles += 1
        d.stats.cycle_ms.append((d.mono() - t0) * 1000.0)
        d.cycle_done(good, completed)
        period = min((m.poll_s for m in d.site.meters), default=1.0)
        delay = max(0.0, period - (d.mono() - t0))
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(d.stop_event.wait(), delay)


def cycle_failed(d: Daemon, failing_s: float) -> None:
    """A fast cycle raised. Once cycles have failed for as long as a meter may stay stale, the
    site goes to fail-safe (the meters are not being judged: they are as good as stale)."""
    window_s = max((m.stale_after_s for m in d.site.meters), default=5.0)
    if failing_s < window_s:
        return
    now = d.clock()
    try:
        d.fs, transition = step(d.fs, CycleHealth(cycle_failed=True), now, d.site.control.recover_cycles)
    except Exception:  # the state machine is pure and tiny; if even it fails, nothing more is safe here
        LOG.exception("fail-safe state machine failed")
        return
    if transition is not None:
        d.note_transition(transition)
        d.spawn(d.dispatch_failsafe(transition.reason))


def plan_stalled(d: Daemon, t_s: float) -> bool:
    """Sessions run, but the plan loop has not finished a plan for ``PLAN_STALL_PERIODS`` periods."""
    if not any(
        st.connected and any(c.transaction is not None for k, c in st.connectors.items() if k >= 1)
        for st in d.cs.states.values()
    ):
        return False
    return t_s - d.last_plan_mono > PLAN_STALL_PERIODS * d.site.control.plan_every_s


class Measured:
    """Each connector's fresh grid current, worked out once per cycle (the loads, the base-load
    estimate, the shed and the dispatcher all ask for it)."""

    def __init__(self, now: datetime, max_age_s: float, site: Site | None = None) -> None:
        self.now = now
        self.max_age = timedelta(seconds=max_age_s)
        self.site = site
        self._memo: dict[tuple[str, int], PhaseCurrents | None] = {}

    def __call__(self, ch: Charger, conn_id: int, conn: ConnectorState) -> PhaseCurrents | None:
        key = (ch.id, conn_id)
        if key not in self._memo:
            self._memo[key] = grid_currents(ch, conn, self.now, self.max_age, self.site)
        return self._memo[key]

    def charger(self, ch: Charger, st: ChargerState) -> PhaseCurrents | None:
        """All the charger's connectors (None if none is fresh), as :func:`grid_draw_a`."""
        total: PhaseCurrents | None = None
        for conn_id, conn in st.connectors.items():
            if conn_id < 1:
                continue
            g = self(ch, conn_id, conn)
            if g is not None:
                total = g if total is None else _add3(total, g)
        return total


def worst_draw_parts_a(
    d: Daemon, ch: Charger, st: ChargerState, now: datetime, measure: Measured
) -> tuple[PhaseCurrents, PhaseCurrents]:
    """A connected charger's grid current, connector by connector: measured where fresh, else —
    if the connector may be drawing (a transaction, or a status that is not idle) — what it may
    draw by its own profiles; never 0 for a connector nothing fresh is known of. In two parts:
    what is measured (its angle known from the site model) and what is budgeted (only bounded:
    counted by magnitude at every node above it)."""
    measured_a: PhaseCurrents = (0.0, 0.0, 0.0)
    budget_a: PhaseCurrents = (0.0, 0.0, 0.0)
    for conn_id, conn in st.connectors.items():
        if conn_id < 1:
            continue
        measured = measure(ch, conn_id, conn)
        if measured is not None:
            measured_a = _add3(measured_a, measured)
        elif conn.transaction is not None or conn.status not in IDLE_STATUSES:
            b = d.cs.control.connector_budget(ch.id, conn_id, now)
            budget_a = _add3(budget_a, budget_grid_a(d.site, ch, b.value, b.unit))
    return measured_a, budget_a


def phases_used(st: ChargerState) -> int | None:
    """The phases the charger's vehicles draw on, as far as their transactions tell (the most of
    them; None while any is unknown). It matters only on a delta bus: a single-phase vehicle there
    draws between two lines."""
    known: list[int] = []
    for conn_id, conn in st.connectors.items():
        tx = conn.transaction
        if conn_id < 1 or tx is None:
            continue
        if tx.phases_known is None:
            return None
        known.append(tx.phases_known)
    return max(known) if known else None


def _add3(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _max3(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def max_budget_a(d: Daemon, ch: Charger) -> PhaseCurrents:
    """A charger at its own maximum (what an uncontrolled one may draw when its draw is unknown)."""
    fs = d.site.failsafe.dc_kw if ch.kind == "dc" else d.site.failsafe.charger_a
    top = ch.max_kw if ch.kind == "dc" else ch.max_a
    return budget_grid_a(d.site, ch, top if top is not None else fs, "kW" if ch.kind == "dc" else "A")


def offline_budget_a(d: Daemon, ch: Charger, now: datetime) -> PhaseCurrents:
    """Worst-case grid current of a charger out of contact (DESIGN §3 rule 2)."""
    st = d.cs.states.get(ch.id)
    if st is not None and (st.failsafe is not None or st.accepted or st.connected_at is not None):
        b = d.cs.control.budget(ch.id, now)  # seen during this run: what it accepted, then fail-safe
        return budget_grid_a(d.site, ch, b.value, b.unit)
    fs = d.site.failsafe.dc_kw if ch.kind == "dc" else d.site.failsafe.charger_a
    unit = "kW" if ch.kind == "dc" else "A"
    top = ch.max_kw if ch.kind == "dc" else ch.max_a
    value = restored_budget(  # what it accepted before a restart, per connector, whole schedules
        d.restored,
        ch.id,
        connectors=ch.connectors,
        failsafe_limit=fs,
        max_limit=top if top is not None else fs,
        now=now,
        margin_s=RESTORED_MARGIN_S,
    )
    return budget_grid_a(d.site, ch, value, unit)


async def fast_cycle(d: Daemon, dt_s: float) -> bool:
    """One cycle; returns whether it was good (no fault)."""
    site = d.site
    readers = dict(d.meters.readers)
    results = await asyncio.gather(*(r.poll() for r in readers.values()))
    t_read = d.mono()
    now = d.clock()

    meter_a: dict[str, PhaseCurrents] = {}
    in_phase: dict[str, PhaseCurrents] = {}  # per metered node: each line's current in phase with its voltage
    node_of = {meter: node for node, meter in node_meters(site).items()}
    grid_implausible = False
    for (mid, reader), res in zip(readers.items(), results, strict=True):
        status = reader.status()
        label = "ok" if res.reading is not None else (res.error.kind if res.error else "error").replace(" ", "_")
        observe_meter(d.metrics, mid, label, status.age_s if status.age_s is not None else 1e9)
        if status.usable is not None:
            r = status.usable
            meter_a[mid] = (r.current_a[0], r.current_a[1], r.current_a[2])
            d.put(MeterSample(mid, now, meter_a[mid], r.total_power_w))
            node = node_of.get(mid)
            got = None if node is None else in_phase_a(site, node, meter_a[mid], r.power_w, r.voltage_v)
            if node is not None and got is not None:
                in_phase[node] = got
        if mid == site.grid.meter and isinstance(res.error, Implausible):
            grid_implausible = True
    grid_meter = site.grid.meter
    grid_stale = grid_meter is not None and grid_meter not in meter_a
    if grid_meter is not None and grid_meter in meter_a:
        d.grid_a = meter_a[grid_meter]
        reading = readers[grid_meter].status().usable
        d.grid_power_w = reading.total_power_w if reading is not None else None
        observe_grid(d.metrics, d.grid_a, d.grid_power_w)
    elif grid_meter is not None:
        d.grid_a = None

    # chargers: measured draws, budgets for those out of contact and those not under control
    max_age = fresh_s(site)
    measure = Measured(now, max_age, site)
    d.dispatch.observe_draws(now, max_age, measure)
    draws: dict[str, PhaseCurrents] = {}
    at_worst: dict[str, PhaseCurrents] = {}  # every charger's draw where measured (its angle known) …
    at_worst_budget: dict[str, PhaseCurrents] = {}  # … and its worst case where not (by magnitude)
    used: dict[str, int | None] = {}
    with_session: dict[str, PhaseCurrents] = {}
    unknown_draw: set[str] = set()
    budgets: dict[str, PhaseCurrents] = {}
    for ch in site.chargers:
        st = d.cs.states.get(ch.id)
        connected = st is not None and st.connected
        draw = measure.charger(ch, st) if st is not None and connected else None
        if draw is not None:
            draws[ch.id] = draw
        if st is not None:
            used[ch.id] = phases_used(st)
        if st is not None and connected and ch.id in d.dispatch.uncontrolled:
            # not planned: its measured draw stays load (subtracted here, added back as a budget,
            # so metered and unmetered nodes both carry it once); unknown → its maximum
            with_session[ch.id] = draw or (0.0, 0.0, 0.0)
            b = d.cs.control.budget(ch.id, now)
            budgets[ch.id] = d.dispatch.uncontrolled_budget_a(
                ch.id, now, draw, budget_grid_a(site, ch, b.value, b.unit), max_budget_a(d, ch)
            )
        elif st is not None and connected:
            est = _ev_estimate(d, ch, st, now, measure)
            if est is not None:
                with_session[ch.id], known = est
                if not known:
                    unknown_draw.add(ch.id)
        if not connected:
            budgets[ch.id] = offline_budget_a(d, ch, now)
            unknown_draw.add(ch.id)  # it may be drawing; the meters see it, we don't
        if ch.id in budgets:
            at_worst_budget[ch.id] = budgets[ch.id] if draw is None else _max3(budgets[ch.id], draw)
        elif st is not None:
            at_worst[ch.id], at_worst_budget[ch.id] = worst_draw_parts_a(d, ch, st, now, measure)
        observe_charger(d.metrics, ch.id, connected, draw, energy_register_wh(st) if st is not None else None)
        observe_charger_safety(
            d.metrics, ch.id, uncontrolled=ch.id in d.dispatch.uncontrolled,
            clock_offset_s=st.clock_offset_s if st is not None else None,
            failsafe_installed=st.failsafe_confirmed if st is not None else False,
        )
    _note_load_changes(d, draws)

    loads = known_loads(site, meter_a, at_worst, at_worst_budget, used)
    d.measured = loads
    observe_measured(d)
    for node, p, _over in exceeded(site, loads):
        d.exceeded_s[(node, p)] = d.exceeded_s.get((node, p), 0.0) + dt_s
        add_exceeded(d.metrics, node, p, dt_s)
    d.base_now = base_loads(site, meter_a, with_session, in_phase, used)
    d.budgets = budgets
    d.hold.add(t_read, _settled(d, d.base_now, unknown_draw, t_read))
    stale_nodes = {node for node, meter in node_meters(site).items() if meter not in meter_a}
    if stale_nodes - d.stale_nodes:
        LOG.warning("meter of %s stale: planning it as full", ", ".join(sorted(stale_nodes - d.stale_nodes)))
        d.replan.set()  # the planner takes a node without a reading as full: at once, not next period
    d.stale_nodes = stale_nodes

    # fail-safe state machine
    health = CycleHealth(
        grid_meter_stale=grid_stale,
        grid_meter_implausible=grid_implausible,
        planner_failed=d.planner_failed,
        storage_broken=d.store is not None and d.store.broken,
        plan_stalled=plan_stalled(d, t_read),
    )
    d.fs, transition = step(d.fs, health, now, site.control.recover_cycles)
    if transition is not None:
        d.note_transition(transition)
        if transition.to == "failsafe":
            d.spawn(d.dispatch_failsafe(transition.reason))
        else:
            d.replan.set()

    # overload shed
    _shed(d, loads, now, t_read, measure, in_phase)
    return not health.faults()


def observe_measured(d: Daemon) -> None:
    """Circuit load and headroom metrics from what is measured, where it is known (the plan's
    figures stand for the other nodes; called after each plan too, so measured wins)."""
    for node, load in d.measured.items():
        usable = d.site.node_limit_a(node) - d.site.node_margin_a(node)
        for p, phase in enumerate(PHASES):
            d.metrics.circuit_load.labels(node, phase).set(load[p])
            d.metrics.circuit_headroom.labels(node, phase).set(usable - load[p])


def _settled(
    d: Daemon, base: dict[str, PhaseCurrents], unknown_draw: set[str], t_s: float
) -> dict[str, PhaseCurrents]:
    """The base-load sample worth holding: a metered node with a charger below it whose draw is
    unknown (out of contact, or no meter values yet, e.g. just after a restart or a reconnect)
    would show that draw as base load, so its sample is left out — for at most the hold window, after which
    the conservative value is taken (a charger that never reports must not freeze the base).
    Right after a start, when nothing is held yet, the planner takes the value now, unreported
    draw included (:func:`~controller.daemon.loads.with_unknown`)."""
    out = dict(base)
    meters = node_meters(d.site)
    for node in meters:
        if any(ch.id in unknown_draw for ch in d.site.chargers_under(node)):
            since = d.unsettled_since.setdefault(node, t_s)
            if t_s - since < d.hold.window_s:
                out.pop(node, None)
        else:
            d.unsettled_since.pop(node, None)
    return out


def _ev_estimate(
    d: Daemon, ch: Charger, st: ChargerState, now: datetime, measure: Measured
) -> tuple[PhaseCurrents, bool] | None:
    """What the charger's planned sessions draw now, for the base-load subtraction.

    A charger's meter values arrive every ``ocpp.meter_sample_s``, the grid meter's every second:
    right after a limit went up, the grid meter already sees the vehicle draw more while its last
    reported current is the old one, and ``meter − EV`` would show a phantom base load that the
    planner then holds for a minute. Until a reading newer than the change (plus the vehicle's
    reaction time) arrives, the session counts at the larger of its reading and its new limit —
    or, after a limit went *down* and the vehicle had time to react, at the smaller: else the
    old, higher reading would hide base load and the next plan would undo the shed.
    Returns the estimate and whether every session's draw is known, or None without sessions.
    """
    total = [0.0, 0.0, 0.0]
    any_session = False
    known = True
    for conn_id, conn in st.connectors.items():
        tx = conn.transaction
        if conn_id < 1 or tx is None:
            continue
        any_session = True
        measured = measure(ch, conn_id, conn)
        known = known and measured is not None
        est = measured or (0.0, 0.0, 0.0)
        sent = d.dispatch.sent.get(session_id(ch.id, tx.transaction_id))
        if sent is not None:
            if measured is None or not reacted(conn, sent, REACTION_S):
                cap = budget_grid_a(d.site, ch, sent.limit, "kW" if ch.kind == "dc" else "A")
                lowered = sent.previous is not None and sent.limit < sent.previous
                if not lowered:  # it may already draw up to its new limit
                    est = (max(est[0], cap[0]), max(est[1], cap[1]), max(est[2], cap[2]))
                elif now >= sent.changed_at + timedelta(seconds=REACTION_S):  # it has come down by now
                    est = (min(est[0], cap[0]), min(est[1], cap[1]), min(est[2], cap[2]))
            else:
                # the vehicle had time to follow its limit: what it draws beyond it (a charger that
                # ignores its profile) stays in the base load, so the planner never hands it out again
                unit = "kW" if ch.kind == "dc" else "A"
                tol = IGNORE_TOLERANCE_KW if ch.kind == "dc" else IGNORE_TOLERANCE_A
                cap = budget_grid_a(d.site, ch, sent.limit + tol, unit)
                est = (min(est[0], cap[0]), min(est[1], cap[1]), min(est[2], cap[2]))
        for p in range(3):
            total[p] += est[p]
    return ((total[0], total[1], total[2]), known) if any_session else None


def _note_load_changes(d: Daemon, draws: dict[str, PhaseCurrents]) -> None:
    """Tell each meter when the chargers below it moved: a meter frozen while they move is lying.

    The chargers' readings lag the meter by up to a sample interval (OCPP meter values against a
    Modbus poll every second): the move is dated that much earlier, so a meter that showed the
    change *before* the chargers reported it is not taken for frozen."""
    lag_s = d.site.ocpp.meter_sample_s + 1.0
    for node, meter_id in node_meters(d.site).items():
        total = sum(sum(draws.get(ch.id, (0.0, 0.0, 0.0))) for ch in d.site.chargers_under(node))
        if abs(total - d.ev_total_a.get(node, 0.0)) > LOAD_CHANGE_A:
            d.ev_total_a[node] = total
            reader = d.meters.readers.get(meter_id)
            if reader is not None:
                reader.note_load_change(d.mono() - lag_s)


def _shed(
    d: Daemon, loads: dict[str, PhaseCurrents], now: datetime, t_read: float, measure: Measured,
    in_phase: dict[str, PhaseCurrents] | None = None,
) -> None:
    """Scale the sessions under an overloaded node down at once (only ever lower, never deadbanded).

    Each session counts at the limit it runs under as far as the dispatcher knows (its book, else
    what its connector may draw by the charger's own profiles) and at its measured draw, or that
    limit where no fresh draw is known — never at the charger-wide worst case. Loads are line
    currents as the node's limit sees them (phasor sums, :mod:`controller.shed`); ``in_phase``:
    per metered node, each line current's part in phase with its voltage, where the meter tells."""
    site = d.site
    draws: list[ChargerDraw] = []
    where: dict[str, tuple[str, int]] = {}
    answered: set[str] = set()  # sessions whose readings show their answer to their last limit
    for cid, st in d.cs.states.items():
        if not st.connected:
            continue
        try:
            ch = site.charger(cid)
        except KeyError:  # accept_unknown: not in the site file, not shed here
            continue
        for conn_id, conn in st.connectors.items():
            tx = conn.transaction
            if conn_id < 1 or tx is None:
                continue
            sid = session_id(cid, tx.transaction_id)
            limit = d.dispatch.current_limit(cid, conn_id)
            measured = measure(ch, conn_id, conn)
            sent = d.dispatch.sent.get(sid)
            if measured is not None and sent is not None and reacted(conn, sent, REACTION_S):
                answered.add(sid)
            unit = "kW" if ch.kind == "dc" else "A"
            draw = measured if measured is not None else budget_grid_a(site, ch, limit, unit)
            draws.append(ChargerDraw(sid, cid, limit, draw, tx.phases_known))
            where[sid] = (cid, conn_id)
    if not draws:
        return
    tighter = kw_usable_a(site, d.grid_a, d.grid_power_w) if d.grid_a is not None else {}
    new_limits, events = shed(site, loads, draws, tighter, in_phase)
    if not events:
        return
    limits = {x.key: x.limit for x in draws}
    drawn = {x.key: max(x.draw_a) for x in draws}
    # lower, or already at it in our book but drawing above it once it had time to follow it (its
    # profile lapsed, or was lost): the limit is sent again
    lowered = {
        sid: v for sid, v in new_limits.items()
        if v < limits[sid] - 0.05
        or (sid in answered and site.charger(where[sid][0]).kind == "ac" and v <= limits[sid]
            and drawn[sid] > limits[sid] + IGNORE_TOLERANCE_A)
    }
    if not lowered:
        return  # already shed: waiting for the vehicles to react
    d.stats.sheds += 1
    d.stats.last_shed_at = now
    nodes = sorted({e.node_id for e in events})
    for node in nodes:
        count_shed(d.metrics, node)
    text = ", ".join(f"{e.label} {e.load_a:.1f} A > {e.usable_a:.1f} A" for e in events)
    LOG.warning("overload: %s — shedding %d charger(s)", text, len(lowered))
    for node in nodes:
        d.record_event("overload", text, circuit_id=node)
    source = f"overload shed: {events[0].label}"

    async def dispatch() -> None:
        await asyncio.gather(*(d.dispatch.lower(where[sid][0], where[sid][1], v, source) for sid, v in lowered.items()))
        d.stats.shed_ms.append((d.mono() - t_read) * 1000.0)

    d.spawn(dispatch())
    d.replan.set()
