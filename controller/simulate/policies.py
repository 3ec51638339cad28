"""Who decides the limits in a simulation: the real planner, or a heuristic to compare with.

Every policy sees the same :class:`View` (what the daemon would know at that moment: measured
base load as a recent maximum, declared departures, delivered energy, measured draws) and returns
a limit per session: A per phase for AC, kW for DC.

A ↔ kW goes through the charger's own connection (:func:`controller.model.phasor.draw`): a 208 V
line-to-line charger takes 208 W per A, a DC charger behind a transformer its secondary's voltage.
The heuristics are handed each session's line phasors per A at every node above it
(:func:`controller.model.phasor.charger_phasors`), so that they keep every node's phasor limit
(:mod:`controller.simulate.allocate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from controller.model.phasor import charger_phasors, draw
from controller.model.site import Charger, Site, Tariff
from controller.model.snapshot import ExpectedArrival, PhaseCurrents, SessionState, Snapshot
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from controller.rules.learn import learned_max_a
from controller.simulate import allocate
from controller.simulate.scenario import ScenarioSession
from controller.simulate.vehicles import dc_a_per_kw


@dataclass(frozen=True)
class LiveView:
    """One plugged-in session as the controller knows it."""

    session: ScenarioSession
    charger: Charger
    delivered_kwh: float
    measured_a: PhaseCurrents | None  # None until it has drawn current
    limit: float = 0.0  # what it was last sent (A per phase or kW)

    @property
    def key(self) -> str:
        return self.session.key


@dataclass(frozen=True)
class View:
    now: datetime
    site: Site
    base_a: Mapping[str, PhaseCurrents]  # what the controller believes: recent maximum per metered node
    sessions: tuple[LiveView, ...]
    next_decision_at: datetime
    forecast_a: Mapping[str, tuple[tuple[datetime, PhaseCurrents], ...]] = field(default_factory=dict)
    prices: tuple[tuple[datetime, float], ...] = ()  # dated prices (Snapshot.prices)
    demand_peak_kw: float | None = None  # highest completed window average of grid import so far
    pv_kw: float | None = None  # PV output now (None: no PV)
    pv_forecast_kw: tuple[tuple[datetime, float], ...] = ()  # the day-ahead PV forecast
    expected_arrivals: tuple[ExpectedArrival, ...] = ()  # vehicles still to come (history)


class Policy(Protocol):
    name: str
    sheds: bool  # does the fast loop run under this policy?

    def decide(self, view: View) -> dict[str, float]: ...


def known_vehicle_max(site: Site, vehicle_id: str | None) -> tuple[float | None, float | None]:
    """The vehicle's highest current and power as the controller knows them: from the site
    file's vehicle list (a car that is not registered there is learnt from its draw, as in the
    daemon — the scenario's ``ev_max_a`` is the car's physics, not something the site is told)."""
    known = next((v for v in site.vehicles if v.id == vehicle_id), None) if vehicle_id else None
    return (known.max_a, known.max_kw) if known is not None else (None, None)


def vehicle_max(
    site: Site, lv: LiveView, learned: dict[str, float] | None = None
) -> tuple[float | None, float | None]:
    """What the controller knows of the vehicle's highest current [A] and power [kW]: a
    registered vehicle's figures, lowered to what the car is seen to draw below its limit — the
    daemon's rule (``controller.rules.learn.learned_max_a``, sticky in ``learned``, per session key, A
    per phase), so no policy is told the car's maximum the field would not tell it."""
    ev_max_a, ev_max_kw = known_vehicle_max(site, lv.session.vehicle_id)
    memo = learned if learned is not None else {}
    prev = memo.get(lv.key)
    seen: float | None = prev
    if lv.measured_a is not None:
        per_a = 1.0 if lv.charger.kind == "ac" else to_limit(site, lv.charger, 1.0)  # kW per A (DC)
        min_a = lv.charger.min_a if lv.charger.kind == "ac" else 0.0
        seen = learned_max_a(prev, lv.limit / per_a, max(lv.measured_a), min_a)
    if seen is None:
        memo.pop(lv.key, None)
    else:
        memo[lv.key] = seen
        if lv.charger.kind == "ac":
            ev_max_a = seen if ev_max_a is None or seen < ev_max_a else ev_max_a
        else:
            kw = seen * to_limit(site, lv.charger, 1.0)
            ev_max_kw = kw if ev_max_kw is None or kw < ev_max_kw else ev_max_kw
    return ev_max_a, ev_max_kw


def session_cap_a(
    site: Site, lv: LiveView, learned: dict[str, float] | None = None, *, learn: bool = True
) -> float:
    """Highest per-phase grid current the vehicle may draw on this charger as far as the
    controller knows [A]: the charger's maximum, a registered vehicle's, or (``learn``) what it
    is seen to draw (every controlling policy learns the same way)."""
    ch = lv.charger
    ev_max_a, ev_max_kw = vehicle_max(site, lv, learned) if learn else known_vehicle_max(site, lv.session.vehicle_id)
    if ch.kind == "ac":
        caps = [c for c in (ch.max_a, ev_max_a) if c is not None]
        return min(caps) if caps else 0.0
    kws = [k for k in (ch.max_kw, ev_max_kw) if k is not None]
    return min(kws) * dc_a_per_kw(site, ch) if kws else 0.0


def to_limit(site: Site, charger: Charger, current_a: float) -> float:
    """Per-phase grid current → the charger's limit unit (A for AC, kW for DC)."""
    if charger.kind == "ac":
        return current_a
    return current_a / dc_a_per_kw(site, charger)


def _deadline(view: View, lv: LiveView) -> datetime:
    s = lv.session
    return s.declared_depart or (s.arrive + timedelta(hours=view.site.control.default_dwell_h))


def _demands(view: View, learned: dict[str, float]) -> list[allocate.Demand]:
    out = []
    for lv in view.sessions:
        ch = lv.charger
        if lv.delivered_kwh >= lv.session.energy_kwh - 1e-6:
            continue  # the vehicle is done
        # the phases the controller believes it uses: measured once it draws, else every wired one
        used = min(lv.session.ev_phases, max(1, ch.phases)) if ch.kind == "ac" and lv.measured_a else None
        d = draw(view.site, ch, used if ch.kind == "ac" else None)
        per_a = charger_phasors(view.site, ch, used if ch.kind == "ac" else None)
        cap_a = session_cap_a(view.site, lv, learned)
        out.append(
            allocate.Demand(
                key=lv.key,
                charger=ch,
                phases=d.lines,
                cap_a=cap_a,
                min_a=ch.min_a if ch.kind == "ac" else 0.0,
                deadline=_deadline(view, lv),
                nodes=view.site.ancestors(ch.circuit),
                need_kwh=lv.session.energy_kwh - lv.delivered_kwh,
                max_kw=to_limit(view.site, ch, cap_a) if ch.kind == "dc" else cap_a * d.volts_v / 1000,
                coefs=tuple(
                    ((node, p), vec[p]) for node, vec in per_a.items() for p in range(3) if abs(vec[p]) > 1e-12
                ),
            )
        )
    return out


def _limits(view: View, alloc: Mapping[str, float]) -> dict[str, float]:
    out = {lv.key: 0.0 for lv in view.sessions}
    for lv in view.sessions:
        if lv.key in alloc:
            out[lv.key] = to_limit(view.site, lv.charger, alloc[lv.key])
    return out


Allocator = Callable[[list[allocate.Demand], dict[allocate.Key, float]], dict[str, float]]


@dataclass
class Heuristic:
    """A load manager without a plan: shares the room left now by ``allocator``'s rule."""

    name: str
    allocator: Allocator
    sheds: bool = True
    learned: dict[str, float] = field(default_factory=dict)  # per session: the car's own maximum [A]

    def decide(self, view: View) -> dict[str, float]:
        room = allocate.residual_a(view.site, view.base_a)
        return _limits(view, self.allocator(_demands(view, self.learned), room))


def equal_share_policy() -> Heuristic:
    return Heuristic("equal-share", allocate.equal_share)


def edf_policy() -> Heuristic:
    return Heuristic("edf", allocate.edf)


def llf_policy() -> Heuristic:
    return Heuristic("llf", allocate.llf)


@dataclass
class Uncontrolled:
    name: str = "uncontrolled"
    sheds: bool = False

    def decide(self, view: View) -> dict[str, float]:
        # without load management a charger offers its maximum (or a registered vehicle's): it
        # learns nothing from the draw
        return {
            lv.key: to_limit(view.site, lv.charger, session_cap_a(view.site, lv, learn=False)) for lv in view.sessions
        }


@dataclass
class PlannerPolicy:
    """The real planner, fed the snapshot the daemon would build."""

    name: str = "lp"
    sheds: bool = True
    state: PlannerState = field(default_factory=PlannerState)
    learned: dict[str, float] = field(default_factory=dict)  # per session: the car's own maximum [A]
    solvers_used: dict[str, int] = field(default_factory=dict)
    ignore_tariff: bool = False  # plan as if the site had no tariff (the bill is still the site's)
    _untariffed: tuple[Site, Site] | None = field(default=None, repr=False)

    def decide(self, view: View) -> dict[str, float]:
        result, self.state = plan(self.snapshot(view), self.state)
        self.solvers_used[result.stats.solver] = self.solvers_used.get(result.stats.solver, 0) + 1
        return {sp.session_id: sp.limit.value for sp in result.sessions}

    def snapshot(self, view: View) -> Snapshot:
        """The snapshot the daemon would build at this moment (it learns each car's maximum)."""
        sessions = []
        for lv in view.sessions:
            s = lv.session
            ev_max_a, ev_max_kw = vehicle_max(view.site, lv, self.learned)
            sessions.append(
                SessionState(
                    session_id=lv.key,
                    charger_id=s.charger_id,
                    connector=s.connector,
                    vehicle_id=s.vehicle_id,
                    arrived_at=s.arrive,
                    departure_at=s.declared_depart,
                    energy_need_kwh=max(0.0, s.energy_kwh - lv.delivered_kwh),
                    priority=s.priority,
                    phases_used=s.ev_phases if lv.measured_a is not None else None,
                    ev_max_a=ev_max_a,
                    ev_max_kw=ev_max_kw,
                    measured_a=lv.measured_a,
                    energy_delivered_kwh=lv.delivered_kwh,
                    soc_pct=100.0 * (s.battery_kwh - s.energy_kwh + lv.delivered_kwh) / s.battery_kwh,
                    battery_kwh=s.battery_kwh,
                )
            )
        site = view.site
        if self.ignore_tariff:  # one untariffed copy per site: the planner keeps its state per Site
            if self._untariffed is None or self._untariffed[0] is not view.site:
                self._untariffed = (view.site, replace(site, tariff=Tariff(currency=site.tariff.currency)))
            site = self._untariffed[1]
        return Snapshot(
            site=site,
            now=view.now,
            base_load_a=dict(view.base_a),
            sessions=tuple(sessions),
            next_plan_at=view.next_decision_at,
            base_load_forecast_a=dict(view.forecast_a),
            prices=() if self.ignore_tariff else view.prices,
            demand_peak_kw=None if self.ignore_tariff else view.demand_peak_kw,
            pv_kw=view.pv_kw,
            pv_forecast_kw=view.pv_forecast_kw,
            expected_arrivals=() if self.ignore_tariff else view.expected_arrivals,
        )
