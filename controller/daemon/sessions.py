"""What the planner is told about each plugged-in vehicle, and what chargers out of contact may draw.

Pure functions of the central system's charger states, the site and ``now``:

* :func:`plan_sessions` — one :class:`SessionState` per running transaction on a *connected*
  charger, completed with what the daemon knows beyond OCPP: the vehicle's next departure and its
  energy need from the fleet schedule (unless the EV announced its own, ISO 15118), its state of
  charge and battery size, and a learned per-vehicle maximum when it draws clearly less than it
  is allowed (:mod:`controller.rules.learn`); in local-controller mode, its ``cap``: what the
  operator's CSMS allows it over the horizon (:func:`capped`, a :class:`CapSource`).
* :class:`DepartureHistory` — per vehicle, its recent sessions' declared vs actual departure, and
  per running session the departure declared for it; :func:`plan_sessions` plans against
  :func:`~controller.fleet.departure_estimate.planned_departure` (earlier than declared where the
  vehicle habitually leaves early; docs/departures.md).
* :func:`grid_draw_a` — a charger's measured grid current, from fresh meter values.
* :func:`budget_grid_a` — a budget (A per phase or kW) as grid current on the charger's lines.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal, Protocol

from controller.chargers.planning import grid_currents, session_id, session_states
from controller.chargers.state import ChargerState, ConnectorState
from controller.fleet.departure_estimate import (
    DEFAULT_RULE,
    DepartureEstimate,
    DepartureSample,
    EstimateRule,
    planned_departure,
)
from controller.fleet.departures import DepartureNeed, energy_to_deliver_kwh
from controller.model.site import Charger, Site, Vehicle
from controller.model.snapshot import NO_VEHICLE_PRIORITY, PhaseCurrents, SessionState
from controller.rules.learn import VEHICLE_LIMITED_GAP_A, learned_max_a
from controller.rules.line_loads import amps_per_kw
from controller.store.records import DeclaredDeparture
from controller.store.restore import PastDeparture
from controller.upstream.caps_site import session_units

SOC_MAX_AGE_S = 600.0  # a state of charge changes slowly: ten minutes old is still useful
REACTION_S = 5.0
"""A measured draw counts against a limit only this long after the limit was sent [s]: the default
reaction time, for a charger whose site file says none (``reaction_s``) and that no commissioning
measured (:meth:`controller.daemon.commission.Commissioning.reaction_s`)."""

Reaction = Callable[[str], float]
"""Charger id → how long its EVs take to follow a new limit [s]."""

BEST_EFFORT_PRIORITY = NO_VEHICLE_PRIORITY + 1
"""Priority of a session nobody stated a departure or a need for (1 = most important)."""

DepartureLookup = Callable[[str, datetime], DepartureNeed | None]
"""(vehicle id, after) → the vehicle's next departure, or None."""


class CapSource(Protocol):
    """Upper bounds from outside depotctl (the CSMS's profiles, :class:`controller.upstream.caps.CapBook`)."""

    def cap_steps(
        self,
        charger_id: str,
        connector_id: int,
        transaction_id: str | None,
        *,
        unit: Literal["A", "kW"],
        phases_used: int,
        voltage_v: float,
        start: datetime,
        end: datetime,
        sharing: int | None = None,
    ) -> tuple[tuple[datetime, float], ...]: ...


@dataclass(frozen=True)
class Sent:
    """The limit last sent for a session (planner units), when it changed, and from what."""

    limit: float
    changed_at: datetime
    previous: float | None = None


class DepartureHistory:
    """What the daemon knows of its vehicles' departures: declared vs actual, per vehicle.

    * ``samples``: per vehicle, its last ``rule.window`` finished sessions that had a declared
      departure (oldest first), seeded from SQLite (:attr:`Restored.departure_history`) and grown
      as sessions end.
    * ``declared``: per running session of a known vehicle, the departure declared for it. Noted
      by :func:`plan_sessions` each plan; replaced by a new declaration only while the old one is
      still ahead — once it has passed, the vehicle overstayed it, and the schedule's next
      occurrence (tomorrow's 06:30) is not what this session declared. Each change is written
      through ``put`` (a :class:`DeclaredDeparture`; the store fills in the actual departure from
      the session's ``SessionStop``), so a restart keeps it.
    * ``estimates``: per running session, the departure the last plan used (status, readiness).

    Only the daemon's event loop touches it.
    """

    def __init__(
        self,
        put: Callable[[DeclaredDeparture], object] | None = None,
        rule: EstimateRule = DEFAULT_RULE,
    ) -> None:
        self.put = put
        self.rule = rule
        self.samples: dict[str, deque[DepartureSample]] = {}
        self.declared: dict[str, DeclaredDeparture] = {}
        self.charger_of: dict[str, str] = {}  # running session → its charger
        self.estimates: dict[str, DepartureEstimate] = {}

    def seed(
        self,
        past: Mapping[str, Iterable[PastDeparture]],
        open_declared: Mapping[str, DeclaredDeparture] | None = None,
        charger_of: Mapping[str, str] | None = None,
    ) -> None:
        """Start from the database's history (replacing what is held): per vehicle its past
        sessions, per open session (on ``charger_of[session]``) its declared departure."""
        self.samples = {}
        for vehicle_id, rows in past.items():
            for row in sorted(rows, key=lambda r: r.actual_at):
                self._add(vehicle_id, DepartureSample(row.declared_at, row.actual_at))
        chargers = charger_of or {}
        self.declared = {sid: d for sid, d in (open_declared or {}).items() if sid in chargers}
        self.charger_of = {sid: chargers[sid] for sid in self.declared}
        self.estimates = {}

    def history(self, vehicle_id: str) -> tuple[DepartureSample, ...]:
        return tuple(self.samples.get(vehicle_id, ()))

    def _add(self, vehicle_id: str, sample: DepartureSample) -> None:
        q = self.samples.get(vehicle_id)
        if q is None:
            q = self.samples[vehicle_id] = deque(maxlen=self.rule.window)
        q.append(sample)

    def note(self, sid: str, charger_id: str, vehicle_id: str, declared_at: datetime, now: datetime) -> None:
        """The departure declared for running session ``sid`` as of ``now`` (see the class)."""
        prev = self.declared.get(sid)
        if prev is not None and prev.vehicle_id == vehicle_id and (
            prev.declared_at == declared_at or prev.declared_at <= now
        ):
            return
        record = DeclaredDeparture(sid, vehicle_id, declared_at)
        self.declared[sid] = record
        self.charger_of[sid] = charger_id
        if self.put is not None:
            self.put(record)

    def plan_against(
        self, sid: str, charger_id: str, vehicle_id: str, declared_at: datetime, now: datetime, use_history: bool
    ) -> datetime:
        """Note ``declared_at`` for the session and return the departure to plan against:
        :func:`planned_departure` from the vehicle's history, or ``declared_at`` when
        ``use_history`` is off."""
        self.note(sid, charger_id, vehicle_id, declared_at, now)
        if not use_history:
            self.estimates.pop(sid, None)
            return declared_at
        estimate = planned_departure(declared_at, self.history(vehicle_id), now, self.rule)
        self.estimates[sid] = estimate
        return estimate.at

    def ended(self, sid: str, at: datetime) -> DepartureSample | None:
        """Session ``sid`` ended (its vehicle left) at ``at``: one more sample of its vehicle."""
        self.estimates.pop(sid, None)
        self.charger_of.pop(sid, None)
        declared = self.declared.pop(sid, None)
        if declared is None:
            return None
        sample = DepartureSample(declared.declared_at, at)
        self._add(declared.vehicle_id, sample)
        return sample

    def follow(self, states: Mapping[str, ChargerState], now: datetime) -> None:
        """End every noted session whose transaction is gone from its charger (the transaction
        ended — a stop makes the daemon re-plan at once, so ``now`` is within a plan's latency of
        it; the store has the exact time from the ``SessionStop``). A session on a charger the
        site no longer has is forgotten without a sample; one on a disconnected charger that
        still shows its transaction is kept."""
        for sid in list(self.declared):
            st = states.get(self.charger_of.get(sid, ""))
            if st is None:
                self.declared.pop(sid, None)
                self.charger_of.pop(sid, None)
                self.estimates.pop(sid, None)
                continue
            running = any(
                c.transaction is not None and session_id(st.charger_id, c.transaction.transaction_id) == sid
                for c in st.connectors.values()
            )
            if not running:
                self.ended(sid, now)


def reacted(conn: ConnectorState, sent: Sent, reaction_s: float) -> bool:
    """Every current reading of the connector is newer than the last change of its limit plus the
    vehicle's reaction time: what it shows is the vehicle's answer to that limit."""
    m = conn.measured
    readings = [r.at for r in (*m.current_a, m.current_unphased_a) if r is not None]
    return bool(readings) and min(readings) >= sent.changed_at + timedelta(seconds=reaction_s)


def fresh_s(site: Site) -> float:
    """How old a charger's meter value may be and still count [s]: three sample intervals, as
    :func:`controller.chargers.planning.session_states` judges it."""
    return 3.0 * site.ocpp.meter_sample_s


def energy_register_wh(st: ChargerState) -> float | None:
    """The charger's energy register summed over its connectors [Wh]; None if never reported."""
    regs = [c.measured.energy_wh.value for c in st.connectors.values() if c.measured.energy_wh is not None]
    return sum(regs) if regs else None


def grid_draw_a(
    charger: Charger, st: ChargerState, now: datetime, max_age_s: float, site: Site | None = None
) -> PhaseCurrents | None:
    """Measured grid current of all the charger's connectors, or None if none is fresh (with
    ``site``: a single-phase vehicle on a delta bus counted on both of its lines, as
    :func:`~controller.chargers.planning.grid_currents`)."""
    max_age = timedelta(seconds=max_age_s)
    total = [0.0, 0.0, 0.0]
    seen = False
    for connector_id, conn in st.connectors.items():
        if connector_id < 1:
            continue
        g = grid_currents(charger, conn, now, max_age, site)
        if g is None:
            continue
        seen = True
        for p in range(3):
            total[p] += g[p]
    return (total[0], total[1], total[2]) if seen else None


def budget_grid_a(site: Site, charger: Charger, value: float, unit: str) -> PhaseCurrents:
    """A budget in planner units as grid current: AC on its wired lines (a line-to-line charger's
    current flows in both of its lines), DC on all three at its bus's voltage."""
    if unit == "kW":
        a = value * amps_per_kw(site, charger)
        return (a, a, a)
    out = [0.0, 0.0, 0.0]
    for gp in charger.grid_phases:
        out[gp] += value
    return (out[0], out[1], out[2])


def plan_sessions(
    site: Site,
    states: Mapping[str, ChargerState],
    now: datetime,
    *,
    departure_of: DepartureLookup,
    sent: Mapping[str, Sent],
    learned: dict[str, float],
    uncontrolled: frozenset[str] = frozenset(),
    departures: DepartureHistory | None = None,
    use_history: bool = True,
    reaction_of: Reaction | None = None,
    caps: CapSource | None = None,
) -> tuple[SessionState, ...]:
    """Sessions on connected chargers, ready for the planner's Snapshot.

    ``learned``: per session, a vehicle's own maximum learnt so far (planner units); updated here.
    ``uncontrolled``: chargers that reject or ignore limits: not planned (their draw is budgeted
    as load, :func:`uncontrolled_budget_a`).
    ``departures``: the vehicles' departure history. Given, every session of a known vehicle with a
    declared departure (schedule, one-off or the EV's own) has it noted there, and is planned
    against :meth:`DepartureHistory.plan_against` — earlier than declared where the vehicle's
    history says so and ``use_history`` (``control.departure_history``) is on; sessions that
    ended since the last call become history (:meth:`DepartureHistory.follow`).
    ``reaction_of``: per charger, its EVs' reaction time (a reading counts towards a learnt
    maximum only after it); None: :data:`REACTION_S` for all.
    ``caps``: local-controller mode: each session's ``cap`` over the planning horizon
    (:func:`capped`); None: no caps.
    """
    connected = {cid: st for cid, st in states.items() if st.connected and cid not in uncontrolled}
    vehicles = {v.id: v for v in site.vehicles}
    chargers = {ch.id: ch for ch in site.chargers}
    out = []
    for s in session_states(site, connected, now):
        conn = connected[s.charger_id].connectors[s.connector]
        vehicle = vehicles.get(s.vehicle_id) if s.vehicle_id else None
        updates = _stated(s, conn, vehicle, now, departure_of)
        declared_at = updates.get("departure_at", s.departure_at)
        if departures is not None and s.vehicle_id is not None and isinstance(declared_at, datetime):
            planned_at = departures.plan_against(
                s.session_id, s.charger_id, s.vehicle_id, declared_at, now, use_history
            )
            if planned_at != declared_at:
                updates["departure_at"] = planned_at
        reaction_s = reaction_of(s.charger_id) if reaction_of is not None else REACTION_S
        updates |= _learned(site, chargers[s.charger_id], s, conn, now, sent, learned, reaction_s)
        out.append(replace(s, **updates) if updates else s)  # type: ignore[arg-type]
    for sid in [k for k in learned if k not in {x.session_id for x in out}]:
        del learned[sid]
    if caps is not None:
        out = capped(site, connected, out, now, caps)
    if departures is not None:
        departures.follow(states, now)
    return tuple(out)


def capped(
    site: Site, states: Mapping[str, ChargerState], sessions: Iterable[SessionState], now: datetime, caps: CapSource
) -> list[SessionState]:
    """Each session with its ``cap`` from ``caps`` over ``now`` … ``now + control.horizon_h``, in its
    unit (:func:`controller.upstream.caps_site.session_units`: A per used phase — the wired phases
    while the vehicle's are unknown — or kW). A charger-wide cap is shared equally by the sessions
    on that charger (their sum stays under it)."""
    sessions = list(sessions)
    end = now + timedelta(hours=site.control.horizon_h)
    per_charger = Counter(s.charger_id for s in sessions)
    out = []
    for s in sessions:
        conn = states[s.charger_id].connectors.get(s.connector)
        tx = conn.transaction if conn is not None else None
        units = session_units(site, site.charger(s.charger_id), s.phases_used)
        cap = caps.cap_steps(
            s.charger_id, s.connector, None if tx is None else str(tx.transaction_id), unit=units.unit,
            phases_used=units.phases_used, voltage_v=units.voltage_v, start=now, end=end,
            sharing=per_charger[s.charger_id],
        )
        out.append(replace(s, cap=cap) if cap else s)
    return out


def _stated(
    s: SessionState, conn: ConnectorState, vehicle: Vehicle | None, now: datetime, departure_of: DepartureLookup
) -> dict[str, object]:
    """What is known of the session beyond OCPP: its state of charge, its vehicle's battery, and —
    unless the EV announced its own — the vehicle's next departure and its energy need; a session
    nobody stated anything for is best effort."""
    tx = conn.transaction
    soc_r = conn.measured.soc_pct
    soc = soc_r.value if soc_r is not None and (now - soc_r.at).total_seconds() <= SOC_MAX_AGE_S else None
    updates: dict[str, object] = {}
    if soc is not None and 0.0 <= soc <= 100.0:
        updates["soc_pct"] = soc
    if vehicle is not None and vehicle.battery_kwh:
        updates["battery_kwh"] = vehicle.battery_kwh
    announced = tx is not None and (tx.departure_at is not None or tx.energy_need_kwh is not None)
    if vehicle is not None and not announced:
        need = departure_of(vehicle.id, now)
        if need is not None:
            updates["departure_at"] = need.at
            if need.priority is not None:
                updates["priority"] = need.priority
            energy = energy_to_deliver_kwh(need, vehicle, soc if "soc_pct" in updates else None)
            if energy is not None:
                # a schedule's energy_kwh is for the whole stay; a SoC target is what remains
                if need.energy_kwh is not None:
                    energy = max(0.0, energy - s.energy_delivered_kwh)
                updates["energy_need_kwh"] = energy
    stated = updates.get("departure_at", s.departure_at) is not None or (
        updates.get("energy_need_kwh", s.energy_need_kwh) is not None
    )
    if not stated:
        # nothing stated (no schedule, no departure set, nothing from the EV): best effort,
        # after every session whose driver, fleet manager or EV said when and how much
        updates["priority"] = max(s.priority, BEST_EFFORT_PRIORITY)
    return updates


def _learned(
    site: Site, ch: Charger, s: SessionState, conn: ConnectorState, now: datetime, sent: Mapping[str, Sent],
    learned: dict[str, float], reaction_s: float = REACTION_S,
) -> dict[str, object]:
    """The vehicle's learnt maximum as the session's own (noted in ``learned``), where it is lower."""
    cap = _learned_cap(
        site, ch, s, sent.get(s.session_id), conn, now, learned.get(s.session_id),
        site.failsafe.dc_kw if ch.kind == "dc" else site.failsafe.charger_a, reaction_s,
    )
    if cap is None:
        learned.pop(s.session_id, None)
        return {}
    learned[s.session_id] = cap
    if ch.kind == "ac" and (s.ev_max_a is None or cap < s.ev_max_a):
        return {"ev_max_a": cap}
    if ch.kind == "dc" and (s.ev_max_kw is None or cap < s.ev_max_kw):
        return {"ev_max_kw": cap}
    return {}


def _learned_cap(
    site: Site, charger: Charger, s: SessionState, sent: Sent | None, conn: ConnectorState,
    now: datetime, prev: float | None, failsafe: float, reaction_s: float = REACTION_S,
) -> float | None:
    """The vehicle's own maximum (planner units) when it draws clearly less than its limit.

    Sticky: a cap stays while the vehicle leaves its growth room unused, and is given back as
    soon as it draws into that room (it wants more) — a cap that came and went every cycle would
    make the vehicle's limit swing between its cap and the charger's maximum. A draw at the
    charger's fail-safe limit (``failsafe``, planner units) teaches nothing: the charger may be
    obeying its fail-safe profile instead of ours (a clock ahead of ours, a profile lost in a
    reboot), and a vehicle maximum learnt from that would hold it there.
    """
    if sent is None or s.measured_a is None:
        return prev
    if not reacted(conn, sent, reaction_s):
        return prev  # the reading may predate the limit (or the vehicle's reaction to it)
    per_unit = 1.0 if charger.kind == "ac" else amps_per_kw(site, charger)
    drawn_a = max(s.measured_a)
    if prev is None and abs(drawn_a - failsafe * per_unit) <= VEHICLE_LIMITED_GAP_A:
        return None
    seen_a = learned_max_a(
        None if prev is None else prev * per_unit, sent.limit * per_unit, drawn_a,
        charger.min_a if charger.kind == "ac" else 0.0,
    )
    return None if seen_a is None else seen_a / per_unit
