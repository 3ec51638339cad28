"""Departures: when does a vehicle leave, and how much energy does it need by then.

Pure functions of the site (its ``vehicles:`` and ``schedules:``), the one-offs set at run time
through the fleet API (:class:`OneOff`) and the instant asked about. No I/O and no clock: every
instant is an argument, and every instant must be timezone-aware.

Rules, in the order they are applied:

* **Recurring** departures (``schedules[].departs`` with ``days`` and ``at``) are site-local wall
  times in ``site.timezone``, so 06:30 stays 06:30 on the clock across a DST change.
* **One-offs** come from the site file (``departs.at`` as an ISO local date-time, held in
  :attr:`Schedule.on <controller.model.Schedule.on>`) or from the fleet API (:class:`OneOff`, an
  aware instant). A one-off on a site-local day *replaces* that vehicle's recurring departures on
  that day (the bus runs a special trip instead of its usual one). When the API and the site file
  both have a one-off for the same vehicle and local day, the API's win and the site file's are
  dropped for that day. Several one-offs of the winning kind on one day are all kept.
* **Several rules** for a vehicle: the earliest departure wins.
* **DST gap** (spring forward): a wall time that does not exist that day is moved forward by the
  length of the gap, e.g. 02:30 on a night that jumps 02:00 → 03:00 becomes 03:30. This is the
  instant ``02:30`` denotes at the offset in force before the jump (``fold=0``), the same choice
  as Java's ``ZonedDateTime.of`` and RFC 5545 for recurring events. The vehicle still gets a
  departure that day and its charge window is not shortened; a schedule that truly needs 03:00
  should say 03:00.
* **DST fold** (fall back): a wall time that occurs twice is taken at its first occurrence
  (``fold=0``, the earlier instant), which keeps a vehicle's deadline on the safe side.

Every :attr:`DepartureNeed.at` is returned in UTC, so that comparing and subtracting it with other
aware datetimes is exact (Python compares and subtracts two datetimes that share a ``tzinfo`` by
wall time, which is off by the DST shift across a transition night). Convert with
``need.at.astimezone(ZoneInfo(site.site.timezone))`` for display; :attr:`DepartureNeed.rule`
already holds the rule as site-local text.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from controller.model import WEEKDAYS, Schedule, Site, Vehicle

DepartureSource = Literal["schedule", "one-off"]

_ONE_DAY = timedelta(days=1)
# A recurring rule with at least one weekday fires within any 7 consecutive local days; the scan
# looks at 9 unreplaced days so a day-boundary or DST edge can never hide the next occurrence.
_RECURRING_SCAN_DAYS = 9


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True)
class DepartureNeed:
    """One departure of one vehicle, resolved to an instant.

    ``at`` is the departure instant (aware, in UTC). ``energy_kwh`` [kWh] or ``target_soc_pct``
    [%] is what the rule asks for (normally exactly one is set; both None means unknown).
    ``priority`` (1 served first … 9 last) overrides the vehicle's own; None means the vehicle's
    applies. ``source`` is where the departure came from: ``"schedule"`` for the site file's
    ``schedules:`` (recurring or one-off), ``"one-off"`` for one set at run time through the fleet
    API. ``rule`` is the rule as site-local text, e.g. ``"mon–fri 06:30"`` or
    ``"one-off 2026-03-03 05:30"``.
    """

    vehicle_id: str
    at: datetime
    energy_kwh: float | None
    target_soc_pct: float | None
    priority: int | None
    source: DepartureSource
    rule: str

    def __post_init__(self) -> None:
        _require_aware(self.at, "DepartureNeed.at")


@dataclass(frozen=True)
class OneOff:
    """A one-off departure set at run time (fleet API / ``depotctl depart``).

    ``at`` is the departure instant (aware; any zone). ``energy_kwh`` [kWh] or ``target_soc_pct``
    [%] is the need; ``priority`` (1 … 9) overrides the vehicle's own when set. It replaces the
    vehicle's other departures on its site-local day (see the module docstring).
    """

    vehicle_id: str
    at: datetime
    energy_kwh: float | None = None
    target_soc_pct: float | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        _require_aware(self.at, "OneOff.at")


# --- rule text -------------------------------------------------------------------------------


def days_text(days: Sequence[str]) -> str:
    """Weekdays as short text: ``"daily"``, ``"mon–fri"``, ``"sat,sun"``, ``"mon,wed–fri"``."""
    idx = sorted({WEEKDAYS.index(d) for d in days})
    if len(idx) == len(WEEKDAYS):
        return "daily"
    parts: list[str] = []
    i = 0
    while i < len(idx):
        j = i
        while j + 1 < len(idx) and idx[j + 1] == idx[j] + 1:
            j += 1
        if j - i >= 2:
            parts.append(f"{WEEKDAYS[idx[i]]}–{WEEKDAYS[idx[j]]}")
        else:
            parts.extend(WEEKDAYS[k] for k in idx[i : j + 1])
        i = j + 1
    return ",".join(parts)


def _hhmm(t: time) -> str:
    return t.strftime("%H:%M") if t.second == 0 and t.microsecond == 0 else t.isoformat()


def _one_off_text(day: date, wall: time) -> str:
    return f"one-off {day.isoformat()} {_hhmm(wall)}"


# --- local wall time → instant ------------------------------------------------------------------


def local_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) of wall time ``wall`` on local date ``day`` in ``tz``.

    A wall time inside a DST gap is moved forward by the gap's length; one inside a fold is the
    first occurrence. Both come from reading it with ``fold=0`` (the offset in force before the
    transition).
    """
    naive = datetime.combine(day, wall.replace(tzinfo=None, fold=0))
    return naive.replace(tzinfo=tz).astimezone(UTC)


# --- one vehicle's rules, indexed by local day ------------------------------------------------------


class _VehicleRules:
    """A vehicle's departures per site-local date, one-off replacement applied."""

    def __init__(self, site: Site, vehicle_id: str, one_offs: Sequence[OneOff]) -> None:
        self.tz = ZoneInfo(site.site.timezone)
        self.vehicle_id = vehicle_id
        self.recurring: list[Schedule] = []
        self.runtime: dict[date, list[DepartureNeed]] = {}
        self.site_one_offs: dict[date, list[DepartureNeed]] = {}
        for s in site.schedules:
            if s.vehicle != vehicle_id:
                continue
            if s.on is None:
                if s.days:  # a recurring rule without a day never fires (the config refuses it)
                    self.recurring.append(s)
                continue
            if s.on.tzinfo is None or s.on.utcoffset() is None:
                day, wall = s.on.date(), s.on.time()
                at = local_instant(day, wall, self.tz)
            else:  # not produced by the loader, but an aware value means what it says
                at = s.on.astimezone(UTC)
                local = at.astimezone(self.tz)
                day, wall = local.date(), local.time()
            need = DepartureNeed(
                vehicle_id, at, s.energy_kwh, s.target_soc_pct, s.priority, "schedule", _one_off_text(day, wall)
            )
            self.site_one_offs.setdefault(day, []).append(need)
        for o in one_offs:
            if o.vehicle_id != vehicle_id:
                continue
            at = o.at.astimezone(UTC)
            local = at.astimezone(self.tz)
            need = DepartureNeed(
                vehicle_id,
                at,
                o.energy_kwh,
                o.target_soc_pct,
                o.priority,
                "one-off",
                _one_off_text(local.date(), local.time()),
            )
            self.runtime.setdefault(local.date(), []).append(need)

    def replaced(self, day: date) -> bool:
        """Whether a one-off replaces the recurring departures on local date ``day``."""
        return day in self.runtime or day in self.site_one_offs

    def one_offs(self) -> Iterator[DepartureNeed]:
        """Every one-off that is not itself replaced (a site-file one-off on an API one-off's day)."""
        for needs in self.runtime.values():
            yield from needs
        for day, needs in self.site_one_offs.items():
            if day not in self.runtime:
                yield from needs

    def recurring_on(self, day: date) -> list[DepartureNeed]:
        """The recurring departures on local date ``day`` (ignoring replacement)."""
        weekday = WEEKDAYS[day.weekday()]
        return [
            DepartureNeed(
                self.vehicle_id,
                local_instant(day, s.at, self.tz),
                s.energy_kwh,
                s.target_soc_pct,
                s.priority,
                "schedule",
                f"{days_text(s.days)} {_hhmm(s.at)}",
            )
            for s in self.recurring
            if weekday in s.days
        ]

    def on_day(self, day: date) -> list[DepartureNeed]:
        """Every departure on local date ``day``, replacement applied."""
        if day in self.runtime:
            return list(self.runtime[day])
        if day in self.site_one_offs:
            return list(self.site_one_offs[day])
        return self.recurring_on(day)


def _order(need: DepartureNeed) -> tuple[datetime, str, str]:
    return (need.at, need.vehicle_id, need.rule)


def _known(site: Site, vehicle_id: str) -> bool:
    return any(v.id == vehicle_id for v in site.vehicles)


# --- public API ---------------------------------------------------------------------------------


def next_departure(
    site: Site, vehicle_id: str, after: datetime, one_offs: Sequence[OneOff] = ()
) -> DepartureNeed | None:
    """The vehicle's first departure strictly after ``after`` (aware), or None.

    None when the vehicle is not in the site's ``vehicles:`` or has no departure after ``after``
    (the planner then assumes ``control.default_dwell_h``). ``one_offs`` are the run-time
    one-offs (any vehicle's; others are ignored). Ties at the same instant go to the rule whose
    text sorts first.
    """
    _require_aware(after, "after")
    if not _known(site, vehicle_id):
        return None
    rules = _VehicleRules(site, vehicle_id, one_offs)
    after_utc = after.astimezone(UTC)

    best: DepartureNeed | None = None
    for need in rules.one_offs():
        if need.at > after_utc and (best is None or _order(need) < _order(best)):
            best = need

    if rules.recurring:
        # Scan local days from the day before ``after``'s; replaced days do not count towards
        # the bound, so a week of one-offs cannot hide the recurring departure after it.
        day = after_utc.astimezone(rules.tz).date() - _ONE_DAY
        unreplaced = 0
        found_on: date | None = None
        while unreplaced < _RECURRING_SCAN_DAYS:
            if best is not None and best.at.astimezone(rules.tz).date() < day - _ONE_DAY:
                break  # nothing recurring from here on can beat ``best``
            if found_on is not None and day > found_on + _ONE_DAY:
                break  # looked one day past the first hit, for a gap shifted over midnight
            if not rules.replaced(day):
                unreplaced += 1
                for need in rules.recurring_on(day):
                    if need.at > after_utc:
                        if found_on is None:
                            found_on = day
                        if best is None or _order(need) < _order(best):
                            best = need
            day += _ONE_DAY
    return best


def expand(site: Site, start: datetime, end: datetime, one_offs: Sequence[OneOff] = ()) -> list[DepartureNeed]:
    """Every departure of every site vehicle in ``[start, end)`` (aware), sorted by time.

    For the daemon's daily expansion of recurring departures and for the status page. Same rules
    as :func:`next_departure`; sorted by instant, then vehicle id, then rule text. One-offs for a
    vehicle that is not in the site are left out.
    """
    _require_aware(start, "start")
    _require_aware(end, "end")
    start_utc, end_utc = start.astimezone(UTC), end.astimezone(UTC)
    if end_utc <= start_utc:
        return []
    out: list[DepartureNeed] = []
    for vehicle in site.vehicles:
        rules = _VehicleRules(site, vehicle.id, one_offs)
        day = start_utc.astimezone(rules.tz).date() - _ONE_DAY
        last = end_utc.astimezone(rules.tz).date() + _ONE_DAY
        while day <= last:
            out.extend(n for n in rules.on_day(day) if start_utc <= n.at < end_utc)
            day += _ONE_DAY
    out.sort(key=_order)
    return out


def energy_to_deliver_kwh(need: DepartureNeed, vehicle: Vehicle | None, soc_pct: float | None) -> float | None:
    """Energy [kWh] the vehicle still needs by ``need.at``, or None when it cannot be known.

    ``need.energy_kwh`` is returned as is. A ``need.target_soc_pct`` [%] becomes
    ``(target − soc_pct) / 100 × vehicle.battery_kwh``, never below 0; it needs the vehicle's
    ``battery_kwh`` [kWh] and a finite state of charge ``soc_pct`` [%]. Anything else is None
    (unknown; the planner then assumes its default need).
    """
    if vehicle is not None and vehicle.id != need.vehicle_id:
        raise ValueError(f"vehicle {vehicle.id!r} given for a departure of {need.vehicle_id!r}")
    if need.energy_kwh is not None:
        return need.energy_kwh
    if need.target_soc_pct is None or vehicle is None or vehicle.battery_kwh is None:
        return None
    if soc_pct is None or not math.isfinite(soc_pct):
        return None
    return max(0.0, (need.target_soc_pct - soc_pct) / 100.0 * vehicle.battery_kwh)
