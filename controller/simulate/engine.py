"""The time-stepped simulation: the daemon's loop without sockets, on a scenario's day.

Each step of ``step_s``: sessions arrive and leave; the policy decides (every
``control.plan_every_s``, and at once after an arrival, a departure or a shed) exactly as the
daemon's plan loop would; limits are dispatched as the daemon sends them (0.1 steps, AC below its
minimum = pause); the fast loop sheds when a node would be over ``limit − margin``; the vehicles
draw what their charger allows and they accept; every node and line is scored against its
breaker limit (margin not counted). A session that departs after the scenario's end is simulated
up to the end: its energy counts, and it is neither met nor missed (``SessionOutcome.past_end``).

Departure history: as the daemon keeps each vehicle's declared vs actual departures, the engine
keeps them per vehicle from the scenario's ``history:`` and from its sessions as they end; a
policy that uses them (``lp`` by default, ``departure_history=``) is shown each session's
departure as :func:`~controller.fleet.departure_estimate.planned_departure` makes it — earlier
than declared for a vehicle that habitually leaves early — and the others the declared one.

Loads are phasor sums (:mod:`controller.model.phasor`): each node's line current is the magnitude
of its base load (in phase with its lines' voltages to neutral) plus every session's line phasors
(:func:`~controller.model.phasor.charger_phasors`: a line-to-line charger 30° off its lines, a
transformer node on its primary). That magnitude is what the fast loop measures, what a node's
meter reports and what the violation count scores: the engine's *phasor monitor*.
"""

from __future__ import annotations

import cmath
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from controller.energy.arrivals import ArrivalForecast, PastSession
from controller.fleet.departure_estimate import DepartureSample, planned_departure
from controller.model.phasor import (
    Vec3,
    charger_phasors,
    line_angles_deg,
    node_ln_voltage_v,
    node_service,
    transformer_matrix,
)
from controller.model.site import GRID_ID, Charger, Site
from controller.model.snapshot import ExpectedArrival, PhaseCurrents
from controller.rules.shed import ChargerDraw, shed
from controller.simulate.arrivals import fleet_history
from controller.simulate.bill import BillMeter
from controller.simulate.forecast import day_ahead, pv_day_ahead
from controller.simulate.policies import LiveView, PlannerPolicy, Policy, View
from controller.simulate.result import SessionOutcome, SimResult, Violations
from controller.simulate.scenario import Scenario, ScenarioSession
from controller.simulate.vehicles import SimVehicle

ZERO: PhaseCurrents = (0.0, 0.0, 0.0)
BASE_WINDOW_S = 5 * 60  # the controller's base-load forecast: the maximum over this window


def _units(site: Site, bus: str) -> Vec3:
    a = [cmath.rect(1.0, math.radians(deg)) for deg in line_angles_deg(node_service(site, bus))]
    return (a[0], a[1], a[2])


def node_base_phasors(scenario: Scenario, t: datetime, *, pv: bool = True) -> dict[str, Vec3]:
    """True non-EV line current phasors per node [A], as its meter would see them: its own
    profile (in phase with the lines of its measuring bus — a transformer node's primary is on its
    parent's bus), else the sum of its children's (through its transformer, if it has one).

    ``pv``: the grid node's less the PV output (:func:`pv_phasors`); no other node sees it."""
    local = scenario.local(t)
    site = scenario.site
    out: dict[str, Vec3] = {}

    def base(node: str) -> Vec3:
        if node in out:
            return out[node]
        bus = GRID_ID if node == GRID_ID else site.circuit(node).parent
        profile = None
        if node == GRID_ID and (scenario.base_load.daily or scenario.base_load.dated):
            profile = scenario.base_load.at(local)
        elif node in scenario.circuit_base_load:
            profile = scenario.circuit_base_load[node].at(local)
        if profile is not None:
            u = _units(site, bus)
            value: Vec3 = (u[0] * profile[0], u[1] * profile[1], u[2] * profile[2])
        else:
            kids = [base(c.id) for c in site.children(node)]
            value = (sum((k[0] for k in kids), 0j), sum((k[1] for k in kids), 0j), sum((k[2] for k in kids), 0j))
            tr = site.transformer(node)
            if tr is not None and any(abs(x) > 0 for x in value):
                m = transformer_matrix(tr, node_service(site, bus))
                value = (
                    m[0][0] * value[0] + m[0][1] * value[1] + m[0][2] * value[2],
                    m[1][0] * value[0] + m[1][1] * value[1] + m[1][2] * value[2],
                    m[2][0] * value[0] + m[2][1] * value[1] + m[2][2] * value[2],
                )
        out[node] = value
        return value

    for node in site.node_ids():
        base(node)
    pv_kw = scenario.pv_kw(t) if pv else 0.0
    if pv_kw > 0:
        g = out[GRID_ID]
        p = pv_phasors(site, pv_kw)
        out[GRID_ID] = (g[0] - p[0], g[1] - p[1], g[2] - p[2])
    return out


def pv_phasors(site: Site, pv_kw: float) -> Vec3:
    """The PV output as line current phasors at the grid connection [A]: balanced over the
    service's lines (three, or two on split-phase), in phase with each line's voltage to neutral."""
    lines = 2 if site.site.service == "split-phase" else 3
    amps = pv_kw * 1000.0 / (lines * node_ln_voltage_v(site, GRID_ID))
    u = _units(site, GRID_ID)
    return (u[0] * amps, u[1] * amps, u[2] * amps if lines == 3 else 0j)


def grid_real_kw(site: Site, grid: Vec3) -> float:
    """Real power of line current phasors at the grid connection [kW] (each line's in-phase
    component × its voltage to neutral)."""
    v = node_ln_voltage_v(site, GRID_ID)
    return sum(in_phase_a(site, GRID_ID, grid)) * v / 1000.0


def node_base_a(scenario: Scenario, t: datetime) -> dict[str, PhaseCurrents]:
    """True non-EV current per node and line [A]: the magnitudes of :func:`node_base_phasors`
    (its own profile, else the sum of its children's)."""
    return {n: magnitudes(v) for n, v in node_base_phasors(scenario, t).items()}


def magnitudes(v: Vec3) -> PhaseCurrents:
    """|I| of each line [A], to 1 nA (a sum of unit phasors at ±120° is exact to that, not to the last bit)."""
    return (round(abs(v[0]), 9), round(abs(v[1]), 9), round(abs(v[2]), 9))


def metered_nodes(scenario: Scenario) -> tuple[str, ...]:
    """Nodes whose load the controller measures: the grid, and sub-metered or profiled circuits."""
    site = scenario.site
    return (GRID_ID, *(c.id for c in site.circuits if c.meter is not None or c.id in scenario.circuit_base_load))


@dataclass
class _Live:
    session: ScenarioSession
    vehicle: SimVehicle
    outcome: SessionOutcome
    limit: float = 0.0
    draw_a: PhaseCurrents = ZERO
    has_drawn: bool = False
    per_a: dict[str, Vec3] = field(default_factory=dict)  # line phasors per A at each node above it

    @property
    def amps(self) -> float:
        """Its line current now [A] (per phase for a three-phase draw)."""
        return max(self.draw_a)


@dataclass
class _BaseWindow:
    """Recent maximum per metered node, as the daemon would keep it."""

    window_s: float
    samples: deque[tuple[datetime, dict[str, PhaseCurrents]]] = field(default_factory=deque)

    def add(self, t: datetime, values: dict[str, PhaseCurrents]) -> dict[str, PhaseCurrents]:
        self.samples.append((t, values))
        while self.samples and (t - self.samples[0][0]).total_seconds() > self.window_s:
            self.samples.popleft()
        out: dict[str, PhaseCurrents] = {}
        for node in values:
            vals = [s[node] for _, s in self.samples]
            out[node] = (max(v[0] for v in vals), max(v[1] for v in vals), max(v[2] for v in vals))
        return out


def dispatch(site: Site, charger_id: str, limit: float) -> float:
    """What the daemon would send: down to a 0.1 step, an AC limit below the minimum pauses."""
    charger = site.charger(charger_id)
    value = max(0.0, int(limit * 10 + 1e-6) / 10)
    if charger.kind == "ac":
        return value if value >= charger.min_a else 0.0
    return value


class DepartureBook:
    """Per vehicle, its finished sessions' declared vs actual departure (what the daemon keeps in
    SQLite): the scenario's ``history:``, then each session of the scenario as it ends."""

    def __init__(self, scenario: Scenario) -> None:
        self.samples: dict[str, list[DepartureSample]] = {}
        for h in scenario.history:
            self.samples.setdefault(h.vehicle_id, []).append(DepartureSample(h.declared, h.actual))
        self.planned_earlier = 0  # decisions where a session was shown an earlier departure

    def ended(self, s: ScenarioSession) -> None:
        if s.vehicle_id is not None and s.declared_depart is not None:
            self.samples.setdefault(s.vehicle_id, []).append(DepartureSample(s.declared_depart, s.depart))

    def shown(self, s: ScenarioSession, now: datetime) -> ScenarioSession:
        """``s`` as a policy that uses the history sees it: its declared departure replaced by the
        departure to plan against."""
        if s.vehicle_id is None or s.declared_depart is None:
            return s
        at = planned_departure(s.declared_depart, self.samples.get(s.vehicle_id, ()), now).at
        if at == s.declared_depart:
            return s
        self.planned_earlier += 1
        return replace(s, declared_depart=at)


def _expected(
    forecast: ArrivalForecast, past: tuple[PastSession, ...], arrived: list[ScenarioSession],
    live: dict[str, _Live], t: datetime, scenario: Scenario,
) -> tuple[ExpectedArrival, ...]:
    """The vehicles still to come, as the daemon's plan loop asks for them: a vehicle plugged in
    or seen today is not expected again (a session without a vehicle id: its charger in use now or
    today)."""
    tz = scenario.tz
    today = t.astimezone(tz).date()
    here = [lv.session for lv in live.values()] + [s for s in arrived if s.arrive.astimezone(tz).date() == today]
    site = scenario.site
    return forecast.expected(past, t, tz, site.control.horizon_h, [(s.vehicle_id, s.charger_id) for s in here], site)


def run(
    scenario: Scenario,
    policy: Policy,
    *,
    progress: Callable[[float], None] | None = None,
    keep_series: bool = False,
    departure_history: bool | None = None,
    arrival_forecast: bool | None = None,
) -> SimResult:
    """Simulate ``scenario`` under ``policy``.

    ``departure_history``: show the policy each session's departure estimated from its vehicle's
    history (``control.departure_history``); None (default): for the planner (``lp``) only, the
    heuristics get the declared departures. ``arrival_forecast``: show the policy the vehicles still
    to come, forecast from earlier days as the daemon does (:mod:`controller.simulate.arrivals`;
    only the cost stage's demand charge uses it); None (default): for the planner only, where the
    site has a demand charge.
    """
    site = scenario.site
    use_history = isinstance(policy, PlannerPolicy) if departure_history is None else departure_history
    book = DepartureBook(scenario)
    use_arrivals = isinstance(policy, PlannerPolicy) if arrival_forecast is None else arrival_forecast
    past = fleet_history(scenario) if use_arrivals and site.tariff.demand is not None else ()
    forecast = ArrivalForecast()
    arrived: list[ScenarioSession] = []  # what the daemon's history and sessions would show
    tz = scenario.tz
    step = timedelta(seconds=scenario.step_s)
    plan_every = timedelta(seconds=site.control.plan_every_s)
    pending = sorted(scenario.sessions, key=lambda s: (s.arrive, s.index))
    live: dict[str, _Live] = {}
    done: list[SessionOutcome] = []
    window = _BaseWindow(BASE_WINDOW_S)
    metered = metered_nodes(scenario)
    violations = Violations()
    peak: dict[str, list[float]] = {n: [0.0, 0.0, 0.0] for n in site.node_ids()}
    decision_ms: list[float] = []
    series: dict[str, list[object]] = {"t": [], "grid_a": [], "energy": []}
    meter = BillMeter(site.tariff, scenario.prices, tz)
    next_decision = scenario.start
    replan = True
    t = scenario.start
    n_steps = 0
    wall0 = time.perf_counter()
    while t < scenario.end:
        # arrivals and departures
        for key in [k for k, lv in live.items() if lv.session.depart <= t]:
            gone = live.pop(key)
            done.append(gone.outcome)
            book.ended(gone.session)
            replan = True
        while pending and pending[0].arrive <= t:
            s = pending.pop(0)
            arrived.append(s)
            if s.depart <= t:
                continue
            outcome = SessionOutcome(
                s.key, s.charger_id, s.vehicle_id, s.arrive.astimezone(tz), s.depart.astimezone(tz), s.energy_kwh
            )
            vehicle = SimVehicle.for_session(site, s)
            per_a = session_phasors(site, site.charger(s.charger_id), vehicle.phases_used)
            live[s.key] = _Live(s, vehicle, outcome, per_a=per_a)
            replan = True

        pv_kw = scenario.pv_kw(t)
        base_ph = node_base_phasors(scenario, t)
        base = {n: magnitudes(v) for n, v in base_ph.items()}
        believed = window.add(t, {n: base[n] for n in metered})

        # plan loop
        if replan or t >= next_decision:
            view = View(
                now=t,
                site=site,
                base_a=believed,
                sessions=tuple(
                    LiveView(
                        book.shown(lv.session, t) if use_history else lv.session,
                        site.charger(lv.session.charger_id),
                        lv.outcome.delivered_kwh,
                        lv.draw_a if lv.has_drawn else None,
                        lv.limit,
                    )
                    for lv in live.values()
                ),
                next_decision_at=t + plan_every,
                forecast_a=day_ahead(scenario, t, metered),
                prices=scenario.prices,
                demand_peak_kw=meter.peak_so_far_kw,
                pv_kw=pv_kw if scenario.pv else None,
                pv_forecast_kw=pv_day_ahead(scenario, t),
                expected_arrivals=_expected(forecast, past, arrived, live, t, scenario) if past else (),
            )
            t0 = time.perf_counter()
            limits = policy.decide(view)
            decision_ms.append((time.perf_counter() - t0) * 1e3)
            for key, lv in live.items():
                lv.limit = dispatch(site, lv.session.charger_id, limits.get(key, 0.0))
            next_decision = t + plan_every
            replan = False

        # what each vehicle would draw under its limit
        for lv in live.values():
            lv.draw_a = lv.vehicle.draw_a(lv.limit, lv.outcome.delivered_kwh)

        # fast loop: the load at every node as a meter there would report it (each line's phasor
        # magnitude; unmetered circuits are judged on it too, as the daemon does from the
        # chargers' own meter values plus metered sub-circuits)
        if policy.sheds and live:
            totals = node_phasors_a(base_ph, live.values())
            measured = {n: magnitudes(v) for n, v in totals.items()}
            in_phase = {n: in_phase_a(site, n, totals[n]) for n in metered}  # meters' power per line
            draws = [
                ChargerDraw(k, lv.session.charger_id, lv.limit, lv.draw_a, lv.vehicle.phases_used)
                for k, lv in live.items()
            ]
            new_limits, events = shed(site, measured, draws, in_phase_a=in_phase)
            if events:
                for key, value in new_limits.items():
                    lv = live[key]
                    lv.limit = dispatch(site, lv.session.charger_id, value)
                    lv.draw_a = lv.vehicle.draw_a(lv.limit, lv.outcome.delivered_kwh)
                replan = True

        # the step happens: energy, loads, violations
        dt_s = scenario.step_s
        for lv in live.values():
            if any(a > 0 for a in lv.draw_a):
                lv.has_drawn = True
            lv.outcome.delivered_kwh += lv.vehicle.energy_kwh(lv.draw_a, dt_s)
        loads = node_loads_a(base_ph, live.values())
        consumption_kw = grid_real_kw(site, base_ph[GRID_ID]) + pv_kw  # the base load without PV
        consumption_kw += sum(lv.vehicle.grid_kw(lv.draw_a) for lv in live.values())
        meter.add(t, dt_s, consumption_kw, pv_kw, keep=keep_series)
        for node in site.node_ids():
            load = loads[node]
            limit = site.node_limit_a(node)
            for p in range(3):
                peak[node][p] = max(peak[node][p], load[p])
                excess = load[p] - limit
                if excess > 1e-6:
                    violations.count += 1
                    violations.worst_a = max(violations.worst_a, excess)
                    violations.ampere_seconds += excess * dt_s
                    label = f"{node} L{p + 1}"
                    violations.where[label] = violations.where.get(label, 0.0) + excess * dt_s
        if keep_series:
            series["t"].append(t)
            series["grid_a"].append(loads[GRID_ID])
            series["energy"].append({k: lv.outcome.delivered_kwh for k, lv in live.items()})
        n_steps += 1
        t += step
        if progress is not None:
            progress((t - scenario.start).total_seconds() / scenario.duration_s)

    # still plugged in at the end: departing after it, they are neither met nor missed (their energy
    # counts); one departing right at the end has departed and is judged
    for lv in live.values():
        lv.outcome.past_end = lv.session.past_end(scenario.end)
        done.append(lv.outcome)
    for s in pending:  # never arrived within the window: nothing delivered
        done.append(
            SessionOutcome(
                s.key,
                s.charger_id,
                s.vehicle_id,
                s.arrive.astimezone(tz),
                s.depart.astimezone(tz),
                s.energy_kwh,
                past_end=s.past_end(scenario.end),
            )
        )
    done.sort(key=lambda o: o.key)
    result = SimResult(
        scenario=scenario.name,
        policy=policy.name,
        sessions=done,
        violations=violations,
        peak_a={n: (v[0], v[1], v[2]) for n, v in peak.items()},
        decision_ms=decision_ms,
        steps=n_steps,
        wall_s=time.perf_counter() - wall0,
        bill=meter.bill(),
        priced=scenario.priced,
    )
    if keep_series:
        result.series = {**series, **meter.series}
    return result


def node_phasors_a(base: dict[str, Vec3], lives: Iterable[_Live]) -> dict[str, Vec3]:
    """Each node's line current phasors [A]: its base phasors plus every session's draw."""
    sums = {n: [v[0], v[1], v[2]] for n, v in base.items()}
    for lv in lives:
        amps = lv.amps
        if amps <= 0.0:
            continue
        for node, vec in lv.per_a.items():
            acc = sums[node]
            for p in range(3):
                acc[p] += vec[p] * amps
    return {n: (v[0], v[1], v[2]) for n, v in sums.items()}


def node_loads_a(base: dict[str, Vec3], lives: Iterable[_Live]) -> dict[str, PhaseCurrents]:
    """Each node's line current magnitudes [A]: its base phasors plus every session's draw."""
    return {n: magnitudes(v) for n, v in node_phasors_a(base, lives).items()}


def in_phase_a(site: Site, node: str, currents: Vec3) -> PhaseCurrents:
    """Each line current's component in phase with its voltage to neutral [A], as a meter that
    reports its power per line gives it (its measuring bus: a transformer node's primary)."""
    u = _units(site, GRID_ID if node == GRID_ID else site.circuit(node).parent)
    out = [(currents[p] * u[p].conjugate()).real for p in range(3)]
    return (out[0], out[1], out[2])


def session_phasors(site: Site, charger: Charger, phases_used: int) -> dict[str, Vec3]:
    """Line phasors per A at every node above ``charger`` for a session on ``phases_used`` phases."""
    return charger_phasors(site, charger, phases_used if charger.kind == "ac" else None)
