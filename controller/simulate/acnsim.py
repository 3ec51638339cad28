"""depotctl's planner as one more scheduling algorithm inside acnportal's ACN-Sim.

``DepotctlAlgorithm`` is an ``acnportal.algorithms.BaseAlgorithm``: give it to an
``acnportal.acnsim.Simulator`` like EDF or LLF. It builds its depotctl :class:`Site` from the
simulator's own ``ChargingNetwork`` (read through the interface: no hand mapping) and calls the
real planner, :func:`controller.planner.plan`, every period.

The site it builds:

- one charger per EVSE, ``kind: ac``, ``phases: 1``. Its connection comes from the EVSE's phase
  angle on a wye bus: 30°, −90°, 150° are line-to-line L1-L2, L2-L3, L3-L1 (the bus's
  line-to-neutral voltage is then the EVSE's voltage / √3); 0°, −120°, 120° are line-to-neutral
  L1, L2, L3 (the EVSE's voltage is the line-to-neutral one). Any other angle, or EVSEs whose
  voltages imply different buses, is an error (:class:`AcnNetworkError`). ``max_a`` / ``min_a``
  are the EVSE's pilot limits; ``efficiency`` 1 (ACN-Sim charges ``pilot × voltage``).
- every row k of the network's constraint matrix is a
  :class:`~controller.model.site.PhasorConstraint` ``|Σ_j A_kj e^{jθ_j} I_j| ≤ magnitude_k`` in
  ``Site.constraints`` — exactly what ACN-Sim checks — with ``constraint_margin_a`` taken off.
- the chargers sit on the grid node, whose limit never binds (the sum of every EVSE's maximum
  pilot + 1 A): the network's own constraints are the limits.
- ``control``: ``plan_every_s`` = the simulator's period, ``slot_min`` = the period in whole
  minutes (at least 1), so the first slot of each plan is exactly the period it is enforced for
  (the planner then goes hourly after 3 h); ``horizon_h`` 24 by default; ``when_short:
  complete`` (departures first); no departure history (ACN-Sim gives no vehicle identity).

Each period: a :class:`Snapshot` at the simulator's time (the start, made timezone-aware with
``timezone`` if the simulator's is naive, + period index × period minutes; computed in UTC), one
:class:`SessionState` per active session — remaining need from the interface's remaining
amp-periods at the EVSE's voltage, the driver's *estimated* departure (what every ACN-Sim
algorithm is given), energy delivered, the session's own maximum rate where the session has one —
and the plan's first-slot limit per station, rounded *down* to a pilot the EVSE accepts
(:func:`round_down_pilot`); then what rounding took is given back where the network's exact
constraints allow it — a station still below its planned limit goes up to the first accepted
pilot at or above it, the largest loss first (:func:`fill_rounding_room`; on JPL 2020-02-11 with
the garage's real EVSEs this is one more vehicle fully served). The planner's state is kept
between periods.

Not honoured: a session's ``min_rates`` (the ACN-Sim default is 0) and schedules beyond the
current period (``max_recompute`` is 1: the planner is asked again every period).

acnportal is an optional extra: ``pip install 'depotctl[acnsim]'``. It is imported only here.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from controller.model.site import (
    GRID_ID,
    Charger,
    Control,
    Grid,
    PhasorConstraint,
    Site,
    SiteInfo,
)
from controller.model.snapshot import Plan, SessionState, Snapshot, SolveStats
from controller.planner.plan import DEFAULT_SOLVERS, plan
from controller.planner.state import PlannerState

try:
    from acnportal.algorithms import BaseAlgorithm  # type: ignore[import-untyped, import-not-found, unused-ignore]
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "controller.simulate.acnsim needs acnportal (ACN-Sim): pip install 'depotctl[acnsim]'"
    ) from exc

LINE_TO_LINE_DEG: dict[float, str] = {30.0: "L1-L2", -90.0: "L2-L3", 150.0: "L3-L1"}
"""An EVSE's phase angle → the two lines it sits between (positive sequence, L1 at 0°)."""
LINE_TO_NEUTRAL_DEG: dict[float, str] = {0.0: "L1", -120.0: "L2", 120.0: "L3"}
ANGLE_TOLERANCE_DEG = 0.01
VOLTAGE_TOLERANCE = 1e-3
"""Relative: EVSEs whose line-to-neutral voltages differ by more are not on one bus."""
PILOT_TOLERANCE_A = 1e-6
"""A planned limit this close above an allowed pilot takes that pilot (float noise, far below
ACN-Sim's own 1e-5 A constraint tolerance)."""


class AcnNetworkError(ValueError):
    """The ACN-Sim network cannot be described as a depotctl site."""


def _norm_deg(deg: float) -> float:
    """An angle in (−180, 180]."""
    out = math.fmod(float(deg), 360.0)
    if out <= -180.0:
        out += 360.0
    elif out > 180.0:
        out -= 360.0
    return out


def _match(deg: float, table: dict[float, str]) -> str | None:
    a = _norm_deg(deg)
    for ref, rotation in table.items():
        if abs(_norm_deg(a - ref)) <= ANGLE_TOLERANCE_DEG:
            return rotation
    return None


def connection(station_id: str, phase_deg: float, voltage_v: float) -> tuple[str, float]:
    """``(phase_rotation, line-to-neutral voltage of its bus)`` for an EVSE at this angle and voltage."""
    if not math.isfinite(voltage_v) or voltage_v <= 0:
        raise AcnNetworkError(f"EVSE {station_id}: voltage {voltage_v} V is not a positive number")
    rotation = _match(phase_deg, LINE_TO_LINE_DEG)
    if rotation is not None:
        return rotation, voltage_v / math.sqrt(3.0)
    rotation = _match(phase_deg, LINE_TO_NEUTRAL_DEG)
    if rotation is not None:
        return rotation, voltage_v
    raise AcnNetworkError(
        f"EVSE {station_id}: phase angle {phase_deg}° is neither line-to-line (30°, −90°, 150°) nor "
        "line-to-neutral (0°, −120°, 120°) on a three-phase wye bus; depotctl cannot place it"
    )


def _floats(values: Any) -> list[float]:
    return [float(v) for v in values]


def site_from_infrastructure(
    info: Any,
    *,
    period_min: float,
    name: str = "ACN-Sim network",
    timezone: str = "UTC",
    horizon_h: float = 24.0,
    constraint_margin_a: float = 0.0,
) -> Site:
    """A depotctl :class:`Site` from an ACN-Sim ``InfrastructureInfo`` (``interface.infrastructure_info()``).

    See the module's docstring for the mapping. Raises :class:`AcnNetworkError` for a network it
    cannot describe (an unknown phase angle, mixed buses, an EVSE without a finite maximum).
    """
    station_ids = [str(s) for s in info.station_ids]
    angles = _floats(info.phases)
    volts = _floats(info.voltages)
    max_pilots = _floats(info.max_pilot)
    min_pilots = _floats(info.min_pilot)
    if not station_ids:
        raise AcnNetworkError("the network has no EVSE")
    if len(set(station_ids)) != len(station_ids):
        raise AcnNetworkError("the network has duplicate station ids")
    chargers: list[Charger] = []
    bus_v: float | None = None
    bus_from = ""
    for sid, deg, v, hi, lo in zip(station_ids, angles, volts, max_pilots, min_pilots, strict=True):
        rotation, ln_v = connection(sid, deg, v)
        if bus_v is None:
            bus_v, bus_from = ln_v, sid
        elif abs(ln_v - bus_v) > VOLTAGE_TOLERANCE * bus_v:
            raise AcnNetworkError(
                f"EVSE {sid} ({v:g} V at {deg:g}°) implies a {ln_v:.1f} V line-to-neutral bus, EVSE "
                f"{bus_from} one of {bus_v:.1f} V: depotctl's site has one bus voltage"
            )
        if not math.isfinite(hi) or hi <= 0:
            raise AcnNetworkError(f"EVSE {sid}: maximum pilot {hi} A is not a finite positive current")
        lo = max(0.0, lo) if math.isfinite(lo) else 0.0
        chargers.append(
            Charger(
                id=sid,
                circuit=GRID_ID,
                kind="ac",
                phases=1,
                phase_rotation=rotation,
                min_a=lo,
                max_a=hi,
                efficiency=1.0,
                power_factor=1.0,
                allow_min_below_6a=lo < 6.0,
            )
        )
    matrix = info.constraint_matrix
    limits = [] if matrix is None else _floats(info.constraint_limits)
    ids = [] if matrix is None else [str(c) for c in info.constraint_ids]
    rotors = [cmath.rect(1.0, math.radians(d)) for d in angles]
    constraints: list[PhasorConstraint] = []
    for k, (cid, limit_a) in enumerate(zip(ids, limits, strict=True)):
        row = _floats(matrix[k])
        terms = tuple((station_ids[j], a * rotors[j]) for j, a in enumerate(row) if a != 0.0)
        constraints.append(PhasorConstraint(cid, limit_a, terms, margin_a=constraint_margin_a))
    slot_min = max(1, round(period_min))
    assert bus_v is not None
    return Site(
        site=SiteInfo(name=name, timezone=timezone, voltage_v=bus_v, service="wye"),
        grid=Grid(limit_a=sum(max_pilots) + 1.0, margin_a=0.0, limit_sum="phasor"),
        chargers=tuple(chargers),
        control=Control(
            plan_every_s=period_min * 60.0,
            slot_min=slot_min,
            horizon_h=horizon_h,
            when_short="complete",
            departure_history=False,
        ),
        constraints=tuple(constraints),
    )


def round_down_pilot(value_a: float, continuous: bool, allowed: Sequence[float]) -> float:
    """The largest pilot the EVSE accepts that is not above ``value_a`` (0 is always accepted).

    ``allowed`` is as ACN-Sim's ``allowable_pilot_signals`` gives it: ``[min, max]`` of a
    continuous range, else the sorted set of discrete pilots. Never rounds up (beyond
    :data:`PILOT_TOLERANCE_A`); below the minimum is 0.
    """
    if not math.isfinite(value_a) or value_a <= 0.0:
        return 0.0
    levels = sorted(float(a) for a in allowed)
    if not levels:
        return 0.0
    if continuous:
        lo, hi = levels[0], levels[-1]
        pilot = min(value_a, hi)
        if pilot + PILOT_TOLERANCE_A < lo:
            return 0.0
        return max(pilot, lo)
    best = 0.0
    for level in levels:
        if level <= value_a + PILOT_TOLERANCE_A:
            best = max(best, level)
    return best


def next_pilot_up(value_a: float, continuous: bool, allowed: Sequence[float]) -> float | None:
    """The smallest pilot the EVSE accepts above ``value_a`` (None: none above, or continuous)."""
    if continuous:
        return None
    above = [float(a) for a in allowed if float(a) > value_a + PILOT_TOLERANCE_A]
    return min(above) if above else None


def fill_rounding_room(
    site: Site, pilots_a: dict[str, float], wanted_a: dict[str, float], steps: dict[str, float | None],
    caps_a: dict[str, float],
) -> dict[str, float]:
    """Give back what rounding down to discrete pilots took, where every constraint allows it.

    Station by station, the largest loss first (``wanted_a`` − pilot), a station still below what
    the planner wanted is raised to its next accepted pilot (``steps``: the first one at or above
    the planner's value) when that stays within its own cap and keeps every constraint's phasor
    magnitude within its limit. The exact constraints are checked, not the planner's polygon, so
    nothing here can exceed a limit.
    """
    out = dict(pilots_a)
    cons = [(c, max(0.0, c.limit_a - c.margin_a)) for c in site.constraints]
    sums = [sum((complex(coef) * out.get(cid, 0.0) for cid, coef in c.terms), 0j) for c, _ in cons]
    terms = [dict(c.terms) for c, _ in cons]
    for _ in range(2):
        moved = False
        order = sorted(out, key=lambda k: (-(wanted_a.get(k, 0.0) - out[k]), k))
        for station in order:
            up = steps.get(station)
            if up is None or up > caps_a.get(station, 0.0) + PILOT_TOLERANCE_A:
                continue
            if out[station] >= wanted_a.get(station, 0.0) - PILOT_TOLERANCE_A:
                continue  # it has what the planner wanted (or the planner holds it at 0)
            delta = up - out[station]
            new = [
                total + complex(t[station]) * delta if station in t else total
                for total, t in zip(sums, terms, strict=True)
            ]
            if all(abs(v) <= lim + 1e-6 for v, (_, lim) in zip(new, cons, strict=True)):
                sums, out[station], moved = new, up, True
        if not moved:
            break
    return out


@dataclass(frozen=True)
class PeriodRecord:
    """One period's planning, for benches and tests."""

    period: int
    sessions: int
    stats: SolveStats
    limits_a: dict[str, float]
    """The planner's first-slot limit per station (before rounding to an allowed pilot)."""
    pilots_a: dict[str, float]


class DepotctlAlgorithm(BaseAlgorithm):  # type: ignore[misc]
    """depotctl's planner as an ACN-Sim scheduling algorithm (see the module's docstring).

    ``timezone``: the site's timezone, and the zone a naive simulator start is in.
    ``constraint_margin_a``: taken off every network constraint. ``horizon_h``: the plan's
    horizon. ``solvers``: as :func:`controller.planner.plan` takes them. ``keep_records``: keep
    a :class:`PeriodRecord` per period in ``records``.
    """

    def __init__(
        self,
        *,
        timezone: str = "UTC",
        name: str = "ACN-Sim network",
        horizon_h: float = 24.0,
        constraint_margin_a: float = 0.0,
        solvers: Sequence[str] = DEFAULT_SOLVERS,
        keep_records: bool = False,
    ) -> None:
        super().__init__()
        self.max_recompute = 1  # a first-slot limit is for this period only: ask again every period
        self.timezone = timezone
        self.name = name
        self.horizon_h = horizon_h
        self.constraint_margin_a = constraint_margin_a
        self.solvers = tuple(solvers)
        self.keep_records = keep_records
        self.records: list[PeriodRecord] = []
        self.state = PlannerState()
        self.last_plan: Plan | None = None
        self._site: Site | None = None
        self._start_utc: datetime | None = None

    def register_interface(self, interface: Any) -> None:
        super().register_interface(interface)
        self._site = None
        self._start_utc = None
        self.state = PlannerState()
        self.records = []

    @property
    def site(self) -> Site:
        """The site built from the registered simulator's network (built on first use)."""
        if self._site is None:
            iface = self.interface
            self._site = site_from_infrastructure(
                iface.infrastructure_info(),
                period_min=float(iface.period),
                name=self.name,
                timezone=self.timezone,
                horizon_h=self.horizon_h,
                constraint_margin_a=self.constraint_margin_a,
            )
        return self._site

    def at(self, period_index: float) -> datetime:
        """The simulator's time of a period index, timezone-aware (UTC)."""
        iface = self.interface
        if self._start_utc is None:
            # the simulator's start, undoing its own (wall-clock) arithmetic; then absolute time
            start = iface.current_datetime - timedelta(minutes=float(iface.period) * iface.current_time)
            if start.tzinfo is None:
                start = start.replace(tzinfo=ZoneInfo(self.timezone))
            self._start_utc = start.astimezone(UTC)
        return self._start_utc + timedelta(minutes=float(iface.period) * float(period_index))

    def session_state(self, session: Any) -> SessionState:
        """What the planner is told about one ACN-Sim ``SessionInfo``."""
        iface = self.interface
        station = str(session.station_id)
        volts = float(iface.evse_voltage(station))
        amp_periods = max(0.0, float(iface.remaining_amp_periods(session)))
        need_kwh = amp_periods * volts * float(iface.period) / 60.0 / 1000.0
        ev_max_a: float | None = None
        rates = list(session.max_rates)
        if rates and math.isfinite(float(rates[0])) and float(rates[0]) >= 0.0:
            ev_max_a = float(rates[0])
        return SessionState(
            session_id=str(session.session_id),
            charger_id=station,
            arrived_at=self.at(session.arrival),
            departure_at=self.at(session.estimated_departure),
            energy_need_kwh=need_kwh,
            phases_used=1,
            ev_max_a=ev_max_a,
            energy_delivered_kwh=max(0.0, float(session.energy_delivered)),
        )

    def schedule(self, active_sessions: list[Any]) -> dict[str, list[float]]:
        if not active_sessions:
            return {}
        iface = self.interface
        site = self.site
        snapshot = Snapshot(
            site=site,
            now=self.at(iface.current_time),
            sessions=tuple(self.session_state(s) for s in active_sessions),
        )
        result, self.state = plan(snapshot, self.state, self.solvers)
        self.last_plan = result
        planned = {sp.session_id: sp.limit.value for sp in result.sessions}
        limits: dict[str, float] = {}
        pilots: dict[str, float] = {}
        caps: dict[str, float] = {}
        levels: dict[str, tuple[bool, list[float]]] = {}
        for s in active_sessions:
            station = str(s.station_id)
            limit_a = float(planned.get(str(s.session_id), 0.0))
            continuous, allowed = iface.allowable_pilot_signals(station)
            levels[station] = (bool(continuous), [float(a) for a in allowed])
            limits[station] = limit_a
            pilots[station] = round_down_pilot(limit_a, bool(continuous), allowed)
            rates = list(s.max_rates)
            caps[station] = min(float(iface.max_pilot_signal(station)), float(rates[0]) if rates else math.inf)
        steps = {k: next_pilot_up(v, *levels[k]) for k, v in pilots.items()}
        pilots = fill_rounding_room(site, pilots, limits, steps, caps)
        out = {k: [v] for k, v in pilots.items()}
        if self.keep_records:
            pilots = {k: v[0] for k, v in out.items()}
            record = PeriodRecord(int(iface.current_time), len(active_sessions), result.stats, limits, pilots)
            self.records.append(record)
        return out
