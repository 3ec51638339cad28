"""Which vehicles the depot expects later today, from its own history. Pure.

A depot's days repeat: the buses that came back between 19:00 and 23:40 on each of the last
weekdays will come back tonight, wanting about what they took then. The demand charge bills the
month's highest window, so a plan that flattens only the vehicles present at 19:15 spreads them
into the room the later ones will need and sets a higher peak when those arrive (measured on
``bus-depot-demand-charge``: the plan's own peak rose with every arrival). This module turns the
history into :class:`~controller.model.snapshot.ExpectedArrival` for the planner's cost stage.

The rule, for a plan at ``now`` over ``horizon_h``:

* **Days looked at**: up to :data:`MAX_DAYS` of the last :data:`LOOKBACK_DAYS` site-local days
  before today *of the same kind* (Monday-Friday, or Saturday-Sunday), each with at least one
  session — a day with none is a day the history does not cover (a new install, a database
  cleared), not a day without vehicles.
* **Each past day's sessions** are moved to today, and to tomorrow, by the wall clock (a 19:15
  arrival on any day is 19:15 today, a 00:30 one is 00:30 tonight, across a DST change too) and kept
  when they arrive after ``now`` and within the horizon; a session of a vehicle that is plugged in
  now or has come and gone today is left out (its own visit today is known; a session without a
  vehicle id: when its charger is in use now or was today), so is one shorter than
  :data:`MIN_DWELL_S`.
* **Expected values**: a kept session counts 1 / (days looked at); sessions arriving and leaving
  in the same :data:`GROUP_S` steps are one group (energy and maximum power summed). Energy is what
  the session took (not what it asked: the plan's room for it).

Nothing here is a limit or a promise: the planner uses it only for the billing peak it plans
against (``Snapshot.expected_arrivals``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import partial

import numpy as np
import numpy.typing as npt

from controller.model.phasor import draw
from controller.model.site import Site
from controller.model.snapshot import ExpectedArrival
from controller.planner.instance import DEFAULT_AC_MAX_A, DEFAULT_DC_MAX_KW

LOOKBACK_DAYS = 14
"""How far back the history is read [site-local days]."""
MAX_DAYS = 5
"""At most this many past days of the same kind are averaged (the most recent)."""
GROUP_S = 900
"""Sessions arriving and leaving within the same steps of this many seconds are grouped."""
MIN_DWELL_S = 300.0
"""A session shorter than this (a plug-in test, a cable put back) is not a visit."""

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PastSession:
    """A finished charging session as the history keeps it."""

    charger_id: str
    vehicle_id: str | None
    started_at: datetime
    stopped_at: datetime
    energy_kwh: float


def charger_max_kw(site: Site, charger_id: str) -> float | None:
    """The most a session on ``charger_id`` can take at the grid [kW]: a DC charger's ``max_kw``
    over its efficiency, an AC charger's ``max_a`` on every wired phase (the planner's default where
    the site does not say); ``None`` for a charger the site does not have."""
    ch = next((c for c in site.chargers if c.id == charger_id), None)
    if ch is None:
        return None
    if ch.kind == "dc":  # the planner's default where the site does not say
        return (ch.max_kw or DEFAULT_DC_MAX_KW) / max(ch.efficiency, 1e-3)
    amps = ch.max_a if ch.max_a is not None else DEFAULT_AC_MAX_A
    return amps * draw(site, ch).volts_v / 1000.0


def weekend(day: datetime) -> bool:
    """Saturday or Sunday (the kind of day the forecast matches: weekdays with weekdays)."""
    return day.weekday() >= 5


@dataclass(frozen=True)
class Candidates:
    """The history's sessions that may come back on one site-local ``day``: everything of the
    forecast that depends only on the history and the day, not on ``now`` or on who is here —
    built once per history read and day, filtered for each plan by :func:`expected_from`. One
    entry per past session and shift (to ``day`` or the day after), by arrival."""

    day: date
    arrive_s: FloatArray
    """Arrival [POSIX s], ascending."""
    arrive_key: IntArray
    """Arrival and departure in :data:`GROUP_S` steps (the group an entry joins)."""
    depart_key: IntArray
    energy_kwh: FloatArray
    """The session's energy × its day's weight (1 / days looked at)."""
    max_kw: FloatArray
    """The most its charger draws at the grid × its day's weight."""
    by_vehicle: dict[str, IntArray]
    """Vehicle id → its entries (ascending)."""
    anonymous_by_charger: dict[str, IntArray]
    """Charger id → its entries without a vehicle id (ascending)."""
    seen_today: tuple[tuple[str | None, str], ...]
    """``(vehicle_id, charger_id)`` of the history's sessions that began on ``day``: come and
    gone today, so not expected again."""


def candidates(
    history: Iterable[PastSession], day: date, tz: tzinfo, max_kw: Callable[[str], float | None]
) -> Candidates:
    """The history's sessions of the days looked at for site-local ``day``, each moved to ``day``
    and to the day after by the wall clock (see the module docstring). ``max_kw(charger_id)``: the
    most a session on that charger can draw at the grid [kW] (``None``: a charger the site does not
    know any more — its sessions are left out)."""
    by_day: dict[int, list[PastSession]] = {}
    seen: list[tuple[str | None, str]] = []
    for s in history:
        ago = (day - s.started_at.astimezone(tz).date()).days
        if ago == 0:
            seen.append((s.vehicle_id, s.charger_id))
        if s.stopped_at <= s.started_at or s.energy_kwh <= 0.0:
            continue
        if 1 <= ago <= LOOKBACK_DAYS:
            by_day.setdefault(ago, []).append(s)
    local_day = datetime.combine(day, time(12), tz)
    kind = weekend(local_day)
    days = sorted(d for d in by_day if weekend(local_day - timedelta(days=d)) == kind)[:MAX_DAYS]
    rows: list[tuple[float, float, float, float, str | None, str]] = []
    tops: dict[str, float | None] = {}
    weight = 1.0 / len(days) if days else 0.0
    for ago in days:
        for s in by_day[ago]:
            if (s.stopped_at - s.started_at).total_seconds() < MIN_DWELL_S:
                continue
            if s.charger_id not in tops:
                tops[s.charger_id] = max_kw(s.charger_id)
            top = tops[s.charger_id]
            if top is None or top <= 0.0:
                continue
            # the same wall-clock times today, or tomorrow for what comes after midnight (a zone's
            # offset may differ between the days)
            for shift in (ago, ago + 1):
                arrive = shift_days(s.started_at, shift, tz).timestamp()
                depart = shift_days(s.stopped_at, shift, tz).timestamp()
                if depart > arrive:
                    rows.append((arrive, depart, weight * s.energy_kwh, weight * top, s.vehicle_id, s.charger_id))
    rows.sort(key=lambda r: r[0])
    arrive_s = np.array([r[0] for r in rows], dtype=np.float64)
    vehicles: dict[str, list[int]] = {}
    anonymous: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        if r[4] is not None:
            vehicles.setdefault(r[4], []).append(i)
        else:
            anonymous.setdefault(r[5], []).append(i)
    return Candidates(
        day=day,
        arrive_s=arrive_s,
        arrive_key=np.floor_divide(arrive_s, GROUP_S).astype(np.int64),
        depart_key=np.floor_divide(np.array([r[1] for r in rows], dtype=np.float64), GROUP_S).astype(np.int64),
        energy_kwh=np.array([r[2] for r in rows], dtype=np.float64),
        max_kw=np.array([r[3] for r in rows], dtype=np.float64),
        by_vehicle={v: np.array(ix, dtype=np.int64) for v, ix in vehicles.items()},
        anonymous_by_charger={c: np.array(ix, dtype=np.int64) for c, ix in anonymous.items()},
        seen_today=tuple(seen),
    )


def expected_from(
    found: Candidates, now: datetime, horizon_h: float, here: Iterable[tuple[str | None, str]]
) -> tuple[ExpectedArrival, ...]:
    """The arrivals expected after ``now`` within ``horizon_h`` among ``found`` (built for
    ``now``'s site-local day). ``here``: ``(vehicle_id, charger_id)`` of every session plugged in
    now (with ``found.seen_today``, the sessions come and gone today). A past session of one of
    those vehicles is left out; one without a vehicle id is left out when its charger is among them
    (without identity, the charger is the best guess that it is the same vehicle: at a depot each
    bus has its bay; counting it again would expect a vehicle that is already here)."""
    end = now + timedelta(hours=horizon_h)
    lo = int(np.searchsorted(found.arrive_s, now.timestamp(), side="right"))
    hi = int(np.searchsorted(found.arrive_s, end.timestamp(), side="left"))
    if hi <= lo:
        return ()
    keep = np.ones(hi - lo, dtype=bool)
    for vehicle, charger in [*here, *found.seen_today]:
        index = found.by_vehicle.get(vehicle) if vehicle is not None else found.anonymous_by_charger.get(charger)
        if index is not None:
            inside = index[(index >= lo) & (index < hi)]
            keep[inside - lo] = False
    a = found.arrive_key[lo:hi][keep]
    if a.size == 0:
        return ()
    d = found.depart_key[lo:hi][keep]
    a0, d0 = int(a.min()), int(d.min())
    span = int(d.max()) - d0 + 1
    groups, member = np.unique((a - a0) * span + (d - d0), return_inverse=True)  # by arrival, then departure
    kwh = np.bincount(member, weights=found.energy_kwh[lo:hi][keep])
    kw = np.bincount(member, weights=found.max_kw[lo:hi][keep])
    out = []
    for g, code in enumerate(groups.tolist()):
        ak, dk = a0 + code // span, d0 + code % span
        arrive_at = datetime.fromtimestamp(ak * GROUP_S, now.tzinfo)
        depart_at = datetime.fromtimestamp(max(dk, ak + 1) * GROUP_S, now.tzinfo)
        out.append(ExpectedArrival(arrive_at, depart_at, float(kwh[g]), float(kw[g])))
    return tuple(out)


def expected_arrivals(
    history: Iterable[PastSession],
    now: datetime,
    tz: tzinfo,
    horizon_h: float,
    here: Iterable[tuple[str | None, str]],
    max_kw: Callable[[str], float | None],
) -> tuple[ExpectedArrival, ...]:
    """The arrivals expected after ``now`` within ``horizon_h`` (see the module docstring): at once
    :func:`candidates` for ``now``'s site-local day and :func:`expected_from`. A caller planning
    again and again keeps the candidates instead (:class:`ArrivalForecast`)."""
    return expected_from(candidates(history, now.astimezone(tz).date(), tz, max_kw), now, horizon_h, here)


class ArrivalForecast:
    """The candidates kept between plans: built again only when the history read, the site-local
    day or the site (its zone, its chargers) changes — with a depot's fortnight of sessions the
    whole forecast costs ~0.2 s, the filter for one plan a few ms."""

    def __init__(self) -> None:
        self._made_of: tuple[tuple[PastSession, ...], Site] | None = None
        self._found: Candidates | None = None

    def expected(
        self,
        history: tuple[PastSession, ...],
        now: datetime,
        tz: tzinfo,
        horizon_h: float,
        here: Iterable[tuple[str | None, str]],
        site: Site,
    ) -> tuple[ExpectedArrival, ...]:
        """As :func:`expected_arrivals`, for ``now``'s site-local day (``max_kw`` from ``site``)."""
        day = now.astimezone(tz).date()
        made = self._made_of
        if self._found is None or made is None or made[0] is not history or made[1] is not site or \
                self._found.day != day:
            self._found = candidates(history, day, tz, partial(charger_max_kw, site))
            self._made_of = (history, site)
        return expected_from(self._found, now, horizon_h, here)


def shift_days(at: datetime, days: int, tz: tzinfo) -> datetime:
    """``at`` moved ``days`` later (earlier when negative) by the site's wall clock (aware, in
    ``at``'s zone)."""
    local = at.astimezone(tz)
    moved = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=tz)
    return moved.astimezone(at.tzinfo)
