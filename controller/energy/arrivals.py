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
from datetime import datetime, timedelta, tzinfo

from controller.model.phasor import draw
from controller.model.site import Site
from controller.model.snapshot import ExpectedArrival
from controller.planner.instance import DEFAULT_AC_MAX_A

LOOKBACK_DAYS = 14
"""How far back the history is read [site-local days]."""
MAX_DAYS = 5
"""At most this many past days of the same kind are averaged (the most recent)."""
GROUP_S = 900
"""Sessions arriving and leaving within the same steps of this many seconds are grouped."""
MIN_DWELL_S = 300.0
"""A session shorter than this (a plug-in test, a cable put back) is not a visit."""


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
    if ch.kind == "dc":
        return ch.max_kw / max(ch.efficiency, 1e-3) if ch.max_kw else None
    amps = ch.max_a if ch.max_a is not None else DEFAULT_AC_MAX_A
    return amps * draw(site, ch).volts_v / 1000.0


def weekend(day: datetime) -> bool:
    """Saturday or Sunday (the kind of day the forecast matches: weekdays with weekdays)."""
    return day.weekday() >= 5


def expected_arrivals(
    history: Iterable[PastSession],
    now: datetime,
    tz: tzinfo,
    horizon_h: float,
    here: Iterable[tuple[str | None, str]],
    max_kw: Callable[[str], float | None],
) -> tuple[ExpectedArrival, ...]:
    """The arrivals expected after ``now`` within ``horizon_h`` (see the module docstring).

    ``here``: ``(vehicle_id, charger_id)`` of every session plugged in now or come and gone today.
    A past session of one of those vehicles is left out; one without a vehicle id is left out when
    its charger is among them (without identity, the charger is the best guess that it is the same
    vehicle: at a depot each bus has its bay; counting it again would expect a vehicle that is
    already here). ``max_kw(charger_id)``: the most a session on that charger can draw at the grid
    [kW] (``None``: a charger the site does not know any more — its sessions are left out)."""
    local_now = now.astimezone(tz)
    today = local_now.date()
    end = now + timedelta(hours=horizon_h)
    seen = list(here)
    skip = {v for v, _ in seen if v is not None}
    busy = {c for _, c in seen}
    by_day: dict[int, list[PastSession]] = {}
    for s in history:
        if s.stopped_at <= s.started_at or s.energy_kwh <= 0.0:
            continue
        ago = (today - s.started_at.astimezone(tz).date()).days
        if 1 <= ago <= LOOKBACK_DAYS:
            by_day.setdefault(ago, []).append(s)
    kind = weekend(local_now)
    days = sorted(d for d in by_day if weekend(local_now - timedelta(days=d)) == kind)[:MAX_DAYS]
    if not days:
        return ()
    weight = 1.0 / len(days)
    groups: dict[tuple[int, int], list[float]] = {}
    for ago in days:
        for s in by_day[ago]:
            if s.vehicle_id in skip if s.vehicle_id is not None else s.charger_id in busy:
                continue
            if (s.stopped_at - s.started_at).total_seconds() < MIN_DWELL_S:
                continue
            top = max_kw(s.charger_id)
            if top is None or top <= 0.0:
                continue
            # the same wall-clock times today, or tomorrow for what comes after midnight (a zone's
            # offset may differ between the days)
            for shift in (ago, ago + 1):
                arrive = shift_days(s.started_at, shift, tz)
                depart = shift_days(s.stopped_at, shift, tz)
                if not now < arrive < end or depart <= arrive:
                    continue
                key = (int(arrive.timestamp() // GROUP_S), int(depart.timestamp() // GROUP_S))
                acc = groups.setdefault(key, [0.0, 0.0])
                acc[0] += weight * s.energy_kwh
                acc[1] += weight * top
    out = []
    for (a, d), (kwh, kw) in sorted(groups.items()):
        arrive_at = datetime.fromtimestamp(a * GROUP_S, now.tzinfo)
        depart_at = datetime.fromtimestamp(max(d, a + 1) * GROUP_S, now.tzinfo)
        out.append(ExpectedArrival(arrive_at, depart_at, kwh, kw))
    return tuple(out)


def shift_days(at: datetime, days: int, tz: tzinfo) -> datetime:
    """``at`` moved ``days`` later (earlier when negative) by the site's wall clock (aware, in
    ``at``'s zone)."""
    local = at.astimezone(tz)
    moved = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=tz)
    return moved.astimezone(at.tzinfo)
