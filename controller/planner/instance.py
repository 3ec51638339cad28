"""Turn a Snapshot into plain arrays: sessions with bounds and needs, nodes with capacities.

Everything that interprets the site model or cleans inputs lives here, so the LP, the repair and
the fallback all work on the same numbers. Bad inputs never raise: they are cleaned to the safe
side and reported in ``warnings``.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt

from controller.model import phasor
from controller.model.site import GRID_ID, PHASES, Charger, Site, Vehicle
from controller.model.snapshot import NO_VEHICLE_PRIORITY, SessionState, Snapshot
from controller.planner.bill import Bill, build_bill
from controller.planner.slots import SlotGrid, build_slots, horizon_end
from controller.planner.steps import Steps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
DEFAULT_AC_MAX_A = 32.0
DEFAULT_DC_MAX_KW = 50.0
NodePhasors = tuple[tuple[str, phasor.Vec3], ...]
OVERDUE_MIN_S = 1800.0  # a session past its declared departure is planned to stay at least this long
OVERDUE_STAY_SHARE = 0.5  # …and, when its need does not fit in that at full rate, this share of its stay so far


@dataclass(frozen=True)
class SessionParams:
    """One session as the LP sees it. The decision unit is A per phase (AC) or kW (DC)."""

    session_id: str
    charger: Charger
    kind: str
    grid_phases: tuple[int, ...]
    nodes: tuple[str, ...]  # the charger's circuit and every ancestor up to the grid
    amps_per_unit: float  # grid current on each used phase per unit of decision
    kwh_per_unit_h: float  # energy per unit of decision per hour
    grid_kw_per_unit: float  # grid active power per unit of decision
    min_unit: float  # semi-continuous minimum (AC min_a; 0 for DC)
    max_unit: float
    max_source: str
    need_kwh: float
    need_known: bool
    departure: datetime
    priority: int
    delivered_kwh: float = 0.0  # already in the vehicle this session: need is shared relative to the whole request
    arrived_s: float | None = None  # when it plugged in [unix s], if known
    soc_pct: float | None = None  # with battery_kwh: the charge tapers near full (see taper_caps)
    battery_kwh: float | None = None
    phasors: NodePhasors = ()  # per node above it: line phasors per unit of decision
    # other draws the session may turn out to have (a three-phase plan for a car that may use one
    # phase): every limit row holds for each of them as well
    alt_phasors: tuple[NodePhasors, ...] = ()
    # how far [rad] the current may sit off the angle in ``phasors``: acos(charger power factor)
    spread_rad: float = 0.0


@dataclass(frozen=True)
class LineRows:
    """The limit rows on line currents: ``sum_s a[q, s] x[s] <= scale[q] * room`` (see
    :func:`controller.model.phasor.facets`). A node-line whose loads all sit at one angle (a
    European wye site) has one exact row; one with line-to-line chargers or behind a transformer
    has one row per facet of the inner polygon. ``source[q]`` is the (node, line) whose room the
    row takes, or ``None`` for an explicit constraint (its room is in ``fixed_cap``).
    """

    a: FloatArray  # (q, n)
    scale: FloatArray  # (q,)
    source: tuple[tuple[str, int] | None, ...]
    fixed_cap: FloatArray  # (q,) room of explicit constraints (0 for node rows)
    labels: tuple[str, ...]
    keys: tuple[str, ...]  # identity of each row (label and facet), for model reuse


@dataclass
class Instance:
    site: Site
    now: datetime
    grid: SlotGrid
    sessions: list[SessionParams]
    skipped: list[tuple[SessionState, str]]
    node_ids: tuple[str, ...]
    base_a: dict[str, tuple[float, float, float]]  # effective, cleaned
    cap_a: dict[str, tuple[float, float, float]]  # limit - margin - base, >= 0
    overloads: list[str]
    grid_kw_cap: float | None  # kW left for EVs at the grid, >= 0; None = no kW limit
    prices: FloatArray | None
    warnings: list[str] = field(default_factory=list)
    cap_slots_a: dict[str, FloatArray] = field(default_factory=dict)  # node → (3, slots), from a forecast
    bill: Bill | None = None  # what a plan costs per slot (None: nothing priced, no cost stage)
    outside_caps: FloatArray | None = None  # (n, slots) SessionState.cap per slot (inf: none); None: no caps

    @property
    def cost_stage(self) -> bool:
        """Whether the planner runs its cost stage: something is priced that the plan can change."""
        return self.site.control.plan_cost and self.bill is not None and self.bill.priced

    @property
    def n(self) -> int:
        return len(self.sessions)

    def slot_caps_a(self, node: str, phase: int) -> FloatArray:
        """Room for EVs on ``node``/``phase`` in every slot: the forecast's where there is one,
        else the measured room held over the horizon."""
        forecast = self.cap_slots_a.get(node)
        if forecast is not None:
            row: FloatArray = forecast[phase]
            return row
        return np.full(self.grid.count, self.cap_a[node][phase], dtype=np.float64)

    # Per-session columns and the node rows, derived once per Instance (one plan() call: an
    # Instance is never changed after build_instance). Read-only, so no caller can change them.

    @cached_property
    def session_ids(self) -> tuple[str, ...]:
        return tuple(p.session_id for p in self.sessions)

    @cached_property
    def departure_s(self) -> FloatArray:
        return _frozen([p.departure.timestamp() for p in self.sessions])

    @cached_property
    def need_kwh(self) -> FloatArray:
        return _frozen([p.need_kwh for p in self.sessions])

    @cached_property
    def delivered_kwh(self) -> FloatArray:
        return _frozen([p.delivered_kwh for p in self.sessions])

    @cached_property
    def max_unit(self) -> FloatArray:
        return _frozen([p.max_unit for p in self.sessions])

    @cached_property
    def min_unit(self) -> FloatArray:
        return _frozen([p.min_unit for p in self.sessions])

    @cached_property
    def slot_max(self) -> FloatArray:
        """(n, slots) the most each session may take in each slot: its maximum, or the outside
        cap (``SessionState.cap``) where lower (an AC cap below the minimum current is 0)."""
        top = np.repeat(self.max_unit[:, None], self.grid.count, axis=1)
        if self.outside_caps is not None:
            top = np.minimum(top, self.outside_caps)
        top.flags.writeable = False
        return top

    @cached_property
    def kwh_per_unit_h(self) -> FloatArray:
        return _frozen([p.kwh_per_unit_h for p in self.sessions])

    @cached_property
    def amps_per_unit(self) -> FloatArray:
        return _frozen([p.amps_per_unit for p in self.sessions])

    @cached_property
    def grid_kw_per_unit(self) -> FloatArray:
        return _frozen([p.grid_kw_per_unit for p in self.sessions])

    @cached_property
    def priorities(self) -> tuple[int, ...]:
        return tuple(p.priority for p in self.sessions)

    @cached_property
    def is_ac(self) -> npt.NDArray[np.bool_]:
        out = np.array([p.kind == "ac" for p in self.sessions], dtype=bool)
        out.flags.writeable = False
        return out

    @cached_property
    def line_rows(self) -> LineRows:
        """The limit rows for the lines some session loads, in tree order (parents first, then by
        line), then the site's explicit constraints. A function of the site and each session's
        charger and draw: the last one is remembered for the same site (they rarely change from
        one cycle to the next; the objects compared are those :func:`_drawn` remembers)."""
        memo = _site_memo(self.site)
        key = tuple((p.charger.id, p.phasors, p.alt_phasors, p.spread_rad, p.amps_per_unit) for p in self.sessions)
        if memo.rows is not None and memo.rows_key == key:
            return memo.rows
        rows = self._line_rows()
        memo.rows_key, memo.rows = key, rows
        return rows

    def _line_rows(self) -> LineRows:
        # sessions with the same draw (charger connection, phases, unit) share every coefficient
        kinds: dict[tuple[NodePhasors, tuple[NodePhasors, ...], float], list[int]] = {}
        for s, p in enumerate(self.sessions):
            kinds.setdefault((p.phasors, p.alt_phasors, p.spread_rad), []).append(s)
        members = [np.array(v, dtype=np.int64) for v in kinds.values()]
        groups: dict[tuple[str, int], list[tuple[int, complex, float]]] = {}
        for k, (main, alts, spread) in enumerate(kinds):
            for variant in (main, *alts):
                for node, vec in variant:
                    for ln in range(3):
                        if abs(vec[ln]) > 1e-12:
                            groups.setdefault((node, ln), []).append((k, vec[ln], spread))
        order = {node: i for i, node in enumerate(self.node_ids)}
        cols: list[dict[int, float]] = []  # per row: kind → coefficient
        scale: list[float] = []
        source: list[tuple[str, int] | None] = []
        fixed: list[float] = []
        labels: list[str] = []
        keys: list[str] = []
        for node, ln in sorted(groups, key=lambda key: (order.get(key[0], 0), key[1])):
            items = groups[(node, ln)]
            label = node_label(node, ln)
            arithmetic = self.site.node_limit_sum(node) == "arithmetic"
            rows = (phasor.Facet(1 + 0j, 1.0),) if arithmetic else phasor.facets([c for _, c, _ in items])
            # one angle: its exact row is the sum of magnitudes, safe at any angle (a spread changes nothing)
            exact = len(rows) == 1 and rows[0].scale == 1.0
            if not exact and any(sp > 0.0 for *_, sp in items):
                # loads at several angles, some of them only known within ±acos(pf): the arc must
                # hold every angle they may take, and each row the largest projection in their range
                rows = phasor.facets([e for _, c, sp in items for e in phasor.spread_ends(c, sp)])
            for j, f in enumerate(rows):
                col: dict[int, float] = {}
                for k, c, sp in items:  # the largest of a session's possible draws
                    v = abs(c) if arithmetic else phasor.facet_coefficient(c, f, sp)
                    if v > 1e-12:
                        col[k] = max(col.get(k, 0.0), v)
                cols.append(col)
                scale.append(f.scale)
                source.append((node, ln))
                fixed.append(0.0)
                labels.append(label)
                keys.append(label if arithmetic else f"{label}#{j}@{f.direction.real:.9f},{f.direction.imag:.9f}")
        a = np.zeros((len(cols), self.n))
        for q, col in enumerate(cols):
            for k, v in col.items():
                a[q, members[k]] = v
        by_charger: dict[str, list[int]] = {}
        for s, p in enumerate(self.sessions):
            by_charger.setdefault(p.charger.id, []).append(s)
        explicit: list[dict[int, float]] = []
        for con in self.site.constraints:
            given = [  # the coefficients as the constraint gives them (no power-factor spread)
                (s, complex(coef) * self.sessions[s].amps_per_unit)
                for cid, coef in con.terms for s in by_charger.get(cid, ())
            ]
            room = max(0.0, con.limit_a - con.margin_a)
            label = f"limit {con.id}"
            for k, f in enumerate(phasor.facets([c for _, c in given])):
                col = {}
                for s, c in given:
                    col[s] = col.get(s, 0.0) + (c * f.direction.conjugate()).real
                explicit.append({s: v for s, v in col.items() if v > 1e-12})
                scale.append(f.scale)
                source.append(None)
                fixed.append(room * f.scale)
                labels.append(label)
                keys.append(f"{label}#{k}@{f.direction.real:.9f},{f.direction.imag:.9f}")
        if explicit:
            b = np.zeros((len(explicit), self.n))
            for q, col in enumerate(explicit):
                if col:
                    b[q, list(col)] = list(col.values())
            a = np.vstack([a, b])
        a.flags.writeable = False
        return LineRows(
            a=a, scale=_frozen(scale), source=tuple(source), fixed_cap=_frozen(fixed),
            labels=tuple(labels), keys=tuple(keys),
        )

    def row_caps(self) -> tuple[FloatArray, FloatArray]:
        """Room per line row now (q,) and per slot (q, slots)."""
        lr = self.line_rows
        q = len(lr.source)
        cap = np.array(lr.fixed_cap, dtype=np.float64)
        cap_t = np.repeat(cap[:, None], self.grid.count, axis=1)
        for i, src in enumerate(lr.source):
            if src is None:
                continue
            node, ln = src
            cap[i] = self.cap_a[node][ln] * lr.scale[i]
            cap_t[i] = self.slot_caps_a(node, ln) * lr.scale[i]
        assert cap.shape == (q,)
        return cap, cap_t


def node_label(node: str, line: int) -> str:
    return f"grid {PHASES[line]}" if node == GRID_ID else f"circuit {node} {PHASES[line]}"


def _frozen(values: list[float]) -> FloatArray:
    out = np.array(values, dtype=np.float64)
    out.flags.writeable = False
    return out


def _finite_pos(x: float | None) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v >= 0.0 else None


def _base_loads(
    site: Site, snap: Snapshot, warnings: list[str]
) -> dict[str, tuple[float, float, float]]:
    """Measured non-EV load per node, cleaned; a parent carries at least what its children carry.

    Negative readings are clamped to 0 (meter minus EV current can dip below 0). NaN or infinite
    readings, and no reading at all for a node that has a meter, are unknown load: the node is
    taken as fully loaded (never as 0). A node without a meter carries what its children carry.
    """
    nodes = site.node_ids()
    out: dict[str, list[float]] = {}
    for node in nodes:
        raw = snap.base_load_a.get(node)
        vals = [0.0, 0.0, 0.0]
        metered = site.grid.meter if node == GRID_ID else site.circuit(node).meter
        if raw is None and metered is not None:
            warnings.append(f"base load {node}: no reading from meter {metered}: node taken as full")
            raw = (math.nan, math.nan, math.nan)
        if raw is not None:
            for ph in range(3):
                try:
                    v = float(raw[ph])
                except (TypeError, ValueError, IndexError):
                    v = math.nan
                if not math.isfinite(v):
                    warnings.append(f"base load {node} {PHASES[ph]} unknown: node taken as full")
                    v = site.node_limit_a(node)
                elif v < 0.0:
                    warnings.append(f"base load {node} {PHASES[ph]} negative ({v:.1f} A): taken as 0")
                    v = 0.0
                vals[ph] = v
        out[node] = vals
    for node in reversed(nodes):  # children before parents
        if node == GRID_ID:
            continue
        circ = site.circuit(node)
        pv = out[circ.parent]
        # a transformer parent's limit and meter are on its primary, the child on its secondary
        child = out[node]
        cv = phasor.primary_bound_a(site, circ.parent, (child[0], child[1], child[2]))
        for ph in range(3):
            # measured parent load already includes the child's; only lift it when it is lower
            pv[ph] = max(pv[ph], cv[ph])
    return {k: (v[0], v[1], v[2]) for k, v in out.items()}


def overdue_departure(
    s: SessionState, now: datetime, declared: datetime, dwell: timedelta, full_kw: float
) -> datetime:
    """When a session still present after its declared departure (``declared`` <= ``now``) is planned
    to leave, under ``when_short: complete``: arrival + the default ``dwell``, and at least
    :data:`OVERDUE_MIN_S` from now — or, where its remaining need does not fit in that at its full
    rate ``full_kw`` (kWh per hour), at least :data:`OVERDUE_STAY_SHARE` of the time it has been
    present (from its arrival, else from ``declared``): one that has stayed long is likely to stay on,
    and planned as leaving within 30 min it would wait at zero behind every need that can still be
    met there. A need that fits stays due within 30 min (so it is completed); an unknown or invalid
    need keeps the 30 min (docs/planner.md, "A session past its declared departure")."""
    floor_s = OVERDUE_MIN_S
    need = _finite_pos(s.energy_need_kwh)
    if need is not None and full_kw > 0.0 and need / full_kw * 3600.0 > OVERDUE_MIN_S:
        present_s = (now - (s.arrived_at or declared)).total_seconds()
        floor_s = max(OVERDUE_MIN_S, OVERDUE_STAY_SHARE * present_s)
    return max((s.arrived_at or now) + dwell, now + timedelta(seconds=floor_s))


def _session_params(
    s: SessionState, ch: Charger, site: Site, now: datetime, vehicles: dict[str, Vehicle],
    nodes: tuple[str, ...], warnings: list[str], dwell: timedelta | None = None,
) -> SessionParams:
    veh = vehicles.get(s.vehicle_id) if s.vehicle_id is not None else None
    ev_max_a = None if s.ev_max_a is None else _finite_pos(s.ev_max_a)
    ev_max_kw = None if s.ev_max_kw is None else _finite_pos(s.ev_max_kw)
    veh_max_a = _finite_pos(veh.max_a) if veh else None
    veh_max_kw = _finite_pos(veh.max_kw) if veh else None
    full, d, phasors, alt = _drawn(site, ch, s.phases_used)
    # the smallest candidate maximum wins, the first of equals (as ``min`` picks it)
    if ch.kind == "dc":
        eff = ch.efficiency if ch.efficiency > 0 else 1.0
        pf = ch.power_factor if ch.power_factor > 0 else 1.0
        amps_per_unit = 1000.0 / (eff * pf * d.volts_v)
        kwh_per_unit_h = 1.0
        grid_kw_per_unit = 1.0 / eff
        min_unit = 0.0
        if ch.max_kw is not None:
            max_unit, max_source = ch.max_kw, "charger max"
        elif ch.max_a is not None:
            max_unit, max_source = ch.max_a / amps_per_unit, "charger max"
        else:
            max_unit, max_source = DEFAULT_DC_MAX_KW, "charger default max"
        for v in (ev_max_kw, veh_max_kw):
            if v is not None and v < max_unit:
                max_unit, max_source = v, "vehicle max"
        for a in (ev_max_a, veh_max_a):
            if a is not None and a / amps_per_unit < max_unit:
                max_unit, max_source = a / amps_per_unit, "vehicle max"
    else:
        amps_per_unit = 1.0
        kwh_per_unit_h = d.volts_v / 1000.0
        grid_kw_per_unit = kwh_per_unit_h
        min_unit = max(0.0, ch.min_a)
        if ch.max_a is not None:
            max_unit, max_source = ch.max_a, "charger max"
        elif ch.max_kw is not None:
            max_unit, max_source = ch.max_kw * 1000.0 / full.volts_v, "charger max"
        else:
            max_unit, max_source = DEFAULT_AC_MAX_A, "charger default max"
        for a in (ev_max_a, veh_max_a):
            if a is not None and a < max_unit:
                max_unit, max_source = a, "vehicle max"
        for kw in (ev_max_kw, veh_max_kw):
            if kw is not None and kw * 1000.0 / d.volts_v < max_unit:
                max_unit, max_source = kw * 1000.0 / d.volts_v, "vehicle max"
    phases = d.lines
    max_unit = max(0.0, max_unit)
    if ch.kind == "ac" and max_unit < min_unit - 1e-9:
        max_unit, max_source = 0.0, f"{max_source} below charger min"

    if dwell is None:
        dwell = timedelta(hours=max(0.0, site.control.default_dwell_h))
    departure = s.departure_at
    if departure is None:
        departure = (s.arrived_at or now) + dwell
        if departure <= now:
            departure = now + dwell
    elif departure <= now and site.control.when_short == "complete":
        # still here after its declared departure, so it was not met by then (else its need is 0):
        # when it leaves is unknown — plan it like a session without a departure (arrival + the
        # default dwell), due within OVERDUE_MIN_S at the earliest, later if it has stayed long and
        # its need does not fit in that (overdue_departure). Due now instead would make its need
        # unreachable and put it last among the departures to meet (measured on the ACN days,
        # where most drivers stay hours past their estimate).
        departure = overdue_departure(s, now, departure, dwell, max_unit * kwh_per_unit_h)
        warnings.append(f"session {s.session_id}: departure in the past, planned as unknown")
    elif departure <= now:  # when_short: share — due now, its shortfall shared like the others'
        warnings.append(f"session {s.session_id}: departure in the past, charging as soon as possible")

    need = _finite_pos(s.energy_need_kwh)
    need_known = need is not None
    if s.energy_need_kwh is not None and need is None:
        warnings.append(f"session {s.session_id}: energy need invalid ({s.energy_need_kwh}): taken as 0")
        need, need_known = 0.0, True
    if need is None:
        battery = _finite_pos(veh.battery_kwh) if veh else None
        hours = max(0.25, (departure - now).total_seconds() / 3600.0)
        need = battery if battery is not None else max_unit * kwh_per_unit_h * hours
    try:
        priority = max(1, int(s.priority))
    except (TypeError, ValueError):
        priority = NO_VEHICLE_PRIORITY
    return SessionParams(
        session_id=s.session_id, charger=ch, kind=ch.kind, grid_phases=tuple(phases), nodes=nodes,
        amps_per_unit=amps_per_unit, kwh_per_unit_h=kwh_per_unit_h, grid_kw_per_unit=grid_kw_per_unit,
        min_unit=min_unit, max_unit=max_unit, max_source=max_source, need_kwh=need,
        need_known=need_known, departure=departure, priority=int(priority),
        delivered_kwh=_finite_pos(s.energy_delivered_kwh) or 0.0,
        arrived_s=s.arrived_at.timestamp() if s.arrived_at is not None and s.arrived_at.tzinfo is not None else None,
        soc_pct=None if s.soc_pct is None else _soc(s.soc_pct),
        battery_kwh=(None if s.battery_kwh is None else _finite_pos(s.battery_kwh))
        or (_finite_pos(veh.battery_kwh) if veh else None),
        phasors=phasors, alt_phasors=alt,
        spread_rad=math.acos(ch.power_factor) if 0.0 < ch.power_factor < 1.0 else 0.0,
    )


def _drawn(
    site: Site, ch: Charger, phases_used: int | None
) -> tuple[phasor.Draw, phasor.Draw, NodePhasors, tuple[NodePhasors, ...]]:
    """How a session on ``ch`` draws: the charger's own rating (every wired line), the draw with
    the vehicle's phases, its line phasors per unit of decision at every node above it, and the
    other draws it may turn out to have. A function of the site, the charger and the phase count
    only: remembered per site (the same site object from cycle to cycle)."""
    memo = _site_memo(site)
    key: tuple[str, object] = (ch.id, phases_used)
    cacheable = True
    try:
        hit = memo.draws.get(key)
    except TypeError:  # an unhashable phase count: computed (and refused) below
        hit, cacheable = None, False
    if hit is not None and hit[0] is ch:
        return hit[1]
    full = phasor.draw(site, ch)
    d = full if ch.kind == "dc" else phasor.draw(site, ch, phases_used)
    if ch.kind == "dc":
        eff = ch.efficiency if ch.efficiency > 0 else 1.0
        pf = ch.power_factor if ch.power_factor > 0 else 1.0
        amps_per_unit = 1000.0 / (eff * pf * d.volts_v)
    else:
        amps_per_unit = 1.0
    used = phases_used if ch.kind == "ac" else None
    phasors = _scaled(phasor.charger_phasors(site, ch, used), amps_per_unit)
    alts: list[NodePhasors] = []
    three_phase_ac = ch.kind == "ac" and len(full.lines) > 1 and not ch.line_to_line
    if three_phase_ac and (used is None or used < 1):
        # the vehicle may turn out to use one phase: on a delta bus it then draws between two
        # lines, at another angle than the three-phase draw planned — the rows hold for both
        one = _scaled(phasor.charger_phasors(site, ch, 1), amps_per_unit)
        if one != phasors:
            alts.append(one)
    if three_phase_ac and (used is None or used <= 1) and len(full.lines) == 3 \
            and phasor.node_service(site, ch.circuit) == "delta":
        # on a delta bus a one-phase car draws between the charger's first line and the one its
        # N terminal is wired to: the second by convention, the third if the installer chose so
        first, third = full.lines[0], full.lines[2]
        other = phasor.lift(site, ch.circuit, phasor.pair_signature(site, ch.circuit, first, third))
        alts.append(_scaled(other, amps_per_unit))
    alt = tuple(alts)
    out = (full, d, phasors, alt)
    if cacheable:
        memo.draws[key] = (ch, out)
    return out


@dataclass
class _SiteMemo:
    """What the planner derives from the site alone, kept while the site object is the same."""

    site: weakref.ref[Site] | None = None
    draws: dict[tuple[str, object], tuple[Charger, tuple[phasor.Draw, phasor.Draw, NodePhasors,
                                                          tuple[NodePhasors, ...]]]] = field(default_factory=dict)
    rows_key: tuple[object, ...] | None = None
    rows: LineRows | None = None


_MEMO = threading.local()


def _site_memo(site: Site) -> _SiteMemo:
    memo: _SiteMemo | None = getattr(_MEMO, "memo", None)
    if memo is None or memo.site is None or memo.site() is not site:
        memo = _SiteMemo(site=weakref.ref(site))
        _MEMO.memo = memo
    return memo


def _scaled(per_node: dict[str, phasor.Vec3], k: float) -> NodePhasors:
    return tuple((node, (v[0] * k, v[1] * k, v[2] * k)) for node, v in per_node.items())


def _soc(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or not 0.0 <= value <= 100.0:
        return None
    return float(value)


TAPER_FROM_SOC_PCT = 80.0  # a lithium battery charges at full rate up to about here (CC phase) …
TAPER_FLOOR = 0.1  # … then its acceptance falls roughly linearly towards 0 at full (CV); a DC
# charge keeps about this share of its power to the end, an AC one its minimum current


def taper_caps(p: SessionParams, grid: SlotGrid) -> FloatArray | None:
    """Per-slot share of ``max_unit`` the battery can take, along the fastest possible charge.

    Charging at full rate from the present state of charge reaches the taper soonest, so these
    caps never promise more than the battery accepts, however the plan spreads the charge.
    ``None`` when the state of charge or the battery size is unknown.
    """
    if p.soc_pct is None or p.battery_kwh is None or p.battery_kwh <= 0:
        return None
    soc = p.soc_pct / 100.0
    start = TAPER_FROM_SOC_PCT / 100.0
    # AC: the on-board charger keeps at least the pilot minimum until full; DC tapers further
    floor = min(1.0, p.min_unit / p.max_unit) if p.kind == "ac" and p.max_unit > 0 else TAPER_FLOOR
    caps = np.ones(grid.count)
    for k, hours in enumerate(grid.hours.tolist()):
        if soc <= start:
            share = 1.0
        elif p.kind == "ac":  # linear towards 0 at full, held at the minimum current
            share = max(floor, (1.0 - soc) / (1.0 - start))
        else:  # linear down to the floor at full
            share = max(floor, 1.0 - (1.0 - floor) * (soc - start) / (1.0 - start))
        caps[k] = share
        soc = min(1.0, soc + p.max_unit * share * p.kwh_per_unit_h * hours / p.battery_kwh)
    return caps


def build_instance(snap: Snapshot) -> Instance:
    site = snap.site
    control = site.control
    now = snap.now
    warnings: list[str] = []
    chargers = {c.id: c for c in site.chargers}
    vehicles = {v.id: v for v in site.vehicles}
    ancestors: dict[str, tuple[str, ...]] = {}
    for circ in site.circuits:
        try:
            ancestors[circ.id] = site.ancestors(circ.id)
        except KeyError:
            warnings.append(f"circuit {circ.id}: parent missing")
    ancestors[GRID_ID] = (GRID_ID,)

    sessions: list[SessionParams] = []
    states: list[SessionState] = []  # parallel to ``sessions``
    skipped: list[tuple[SessionState, str]] = []
    seen: set[str] = set()
    dwell: timedelta | None
    try:
        dwell = timedelta(hours=max(0.0, control.default_dwell_h))
    except (TypeError, ValueError, OverflowError):  # each session then says so (held at 0)
        dwell = None
    for s in snap.sessions:
        if s.session_id in seen:
            warnings.append(f"session {s.session_id}: duplicate id ignored")
            continue
        seen.add(s.session_id)
        ch = chargers.get(s.charger_id)
        if ch is None or ch.circuit not in ancestors:
            skipped.append((s, "unknown charger"))
            warnings.append(f"session {s.session_id}: unknown charger {s.charger_id}")
            continue
        try:
            sessions.append(
                _session_params(s, ch, site, now, vehicles, ancestors[ch.circuit], warnings, dwell)
            )
            states.append(s)
        except (TypeError, ValueError, OverflowError, AttributeError) as exc:  # e.g. a naive datetime
            skipped.append((s, "invalid session data"))
            warnings.append(f"session {s.session_id}: invalid data ({exc}), held at 0")

    base = _base_loads(site, snap, warnings)
    node_ids = site.node_ids()
    cap: dict[str, tuple[float, float, float]] = {}
    overloads: list[str] = []
    for node in node_ids:
        room = site.node_limit_a(node) - site.node_margin_a(node)
        vals = []
        for ph in range(3):
            c = room - base[node][ph]
            if c < -1e-9:
                label = "grid" if node == GRID_ID else f"circuit {node}"
                overloads.append(f"{label} {PHASES[ph]}: base load {base[node][ph]:.1f} A > {room:.1f} A")
            vals.append(max(0.0, c))
        cap[node] = (vals[0], vals[1], vals[2])

    grid_kw_cap: float | None = None
    if site.grid.limit_kw is not None:
        base_kw = sum(base[GRID_ID]) * phasor.node_ln_voltage_v(site, GRID_ID) / 1000.0
        grid_kw_cap = site.grid.limit_kw - base_kw
        if grid_kw_cap < 0:
            overloads.append(f"grid kW: base load {base_kw:.1f} kW > {site.grid.limit_kw:.1f} kW")
        grid_kw_cap = max(0.0, grid_kw_cap)

    next_plan = snap.next_plan_at or now + timedelta(seconds=control.plan_every_s)
    if next_plan <= now:
        next_plan = now + timedelta(seconds=max(1.0, control.plan_every_s))
    end = horizon_end(now, [p.departure for p in sessions], control)
    grid = build_slots(now, next_plan, end, control)
    first_end = datetime.fromtimestamp(float(grid.boundaries_s[1]), tz=now.tzinfo)
    sessions = [
        replace(p, departure=first_end) if p.departure <= now else p for p in sessions
    ]
    bill = build_bill(site, snap, grid, base[GRID_ID], warnings)
    return Instance(
        site=site, now=now, grid=grid, sessions=sessions, skipped=skipped, node_ids=node_ids,
        base_a=base, cap_a=cap, overloads=overloads, grid_kw_cap=grid_kw_cap,
        prices=None if bill is None else bill.price_per_kwh,
        warnings=warnings, cap_slots_a=_forecast_caps(site, snap, grid, cap, warnings), bill=bill,
        outside_caps=_outside_caps(states, sessions, grid, warnings),
    )


def _outside_caps(
    states: list[SessionState], params: list[SessionParams], grid: SlotGrid, warnings: list[str]
) -> FloatArray | None:
    """Per session and slot the least ``SessionState.cap`` in force during the slot (inf: none),
    in the session's unit; an AC cap below the charger's minimum current is 0 (the session pauses
    in that slot). A cap that cannot be read holds the session at 0 (the safe side), with a warning.
    ``None`` when no session has a cap."""
    if not any(s.cap for s in states):
        return None
    starts, ends = grid.starts_s, grid.ends_s
    out = np.full((len(params), grid.count), np.inf)
    for i, (s, p) in enumerate(zip(states, params, strict=True)):
        if not s.cap:
            continue
        try:
            times = [at.timestamp() for at, _ in s.cap]
            if any(at.tzinfo is None or at.utcoffset() is None for at, _ in s.cap):
                raise ValueError("naive time")
            values = []
            for _, v in s.cap:
                f = float(v)
                if math.isnan(f) or f < 0.0:
                    warnings.append(f"session {s.session_id}: outside cap {v!r} taken as 0")
                    f = 0.0
                values.append(f)
        except (TypeError, ValueError, AttributeError, OverflowError) as exc:
            warnings.append(f"session {s.session_id}: outside cap unreadable ({exc}): held at 0")
            out[i] = 0.0
            continue
        steps = Steps.from_points(times, values, math.inf)
        if steps is None:
            continue
        least = steps.minimum(starts, ends)  # NaN: no step in force during the slot
        least = np.where(np.isnan(least), np.inf, least)
        if p.kind == "ac":
            least = np.where(least < p.min_unit - 1e-9, 0.0, least)
        out[i] = least
    out.flags.writeable = False
    return out


FORECAST_TRUSTED_AFTER_S = 3600.0  # before this, the measured base load still counts if higher


def _forecast_caps(
    site: Site, snap: Snapshot, grid: SlotGrid, cap: dict[str, tuple[float, float, float]], warnings: list[str]
) -> dict[str, FloatArray]:
    """Per slot, the room left under each node with a day-ahead forecast of its base load.

    For the next hour the larger of the measured base load and the forecast counts (a surprise
    now is not forecast away); after that the forecast is the base load: it is what the profile
    (learnt from history or configured) says, as docs/planner.md allows. Only the first slot is
    enforced, and it never gets more room than the measured load leaves.
    """
    out: dict[str, FloatArray] = {}
    starts, ends = grid.starts_s, grid.ends_s
    trusted_from = snap.now.timestamp() + FORECAST_TRUSTED_AFTER_S
    for node, steps in snap.base_load_forecast_a.items():
        if node not in cap:
            warnings.append(f"forecast for unknown node {node!r} ignored")
            continue
        try:
            times = np.array([t.timestamp() for t, _ in steps], dtype=np.float64)
            values = np.array([[float(a) for a in v] for _, v in steps], dtype=np.float64).reshape(-1, 3)
        except (TypeError, ValueError, AttributeError, OverflowError):
            warnings.append(f"forecast for {node!r} unreadable, ignored")
            continue
        values = np.where(np.isfinite(values), np.maximum(values, 0.0), 0.0)
        room = site.node_limit_a(node) - site.node_margin_a(node)
        now_caps = np.array(cap[node], dtype=np.float64)
        slot_caps = np.repeat(now_caps[:, None], grid.count, axis=1)
        order = np.argsort(times, kind="stable")
        times, values = times[order], values[order]
        for k in range(grid.count):
            # every forecast step overlapping the slot, and the one in force at its start
            active = (times < ends[k]) & (np.append(times[1:], np.inf) > starts[k])
            if not active.any():
                continue
            forecast_room = np.maximum(room - values[active].max(axis=0), 0.0)
            if k == 0 or starts[k] < trusted_from:
                slot_caps[:, k] = np.minimum(now_caps, forecast_room)
            else:
                slot_caps[:, k] = forecast_room
        out[node] = slot_caps
    return out
