"""The fleet book: the run-time fleet state the daemon owns (one instance), pure and synchronous.

What a fleet manager sets through the API, the CLI or a CSV import, on top of the site file:

* **one-off departures** (:meth:`FleetBook.set_departure`): at most one per vehicle and site-local
  day; setting another on the same day replaces it. Fed to
  :func:`~controller.fleet.departures.next_departure` through :meth:`FleetBook.one_offs`, where a
  one-off replaces the vehicle's recurring departures of that day.
* **recurring schedules** (:class:`ScheduleEntry`, :meth:`FleetBook.put_schedules`): replaced as
  a whole set, all or nothing. :meth:`FleetBook.site_with_schedules` adds them to the site file's
  own ``schedules:`` (both apply; per vehicle the earliest departure wins).
* **charger → vehicle assignments** for the session running on a charger
  (:meth:`FleetBook.assign`).

Every change is validated first and rejected as a whole with a :class:`FleetError` that lists
each :class:`Problem` (field and reason; the API answers 422 with them). Nothing here does I/O or
reads a clock: ``now`` is an argument and must be timezone-aware.

Persistence goes through the history store's :class:`~controller.store.records.Departure`
records (:meth:`FleetBook.records`, :meth:`FleetBook.from_records`), upserted by
``departure_id``:

* a one-off: ``departure_id = "oneoff:<vehicle>:<site-local date>"``, ``departure_at`` set,
  ``recurring`` None — or ``"once|priority=<n>"`` when it carries a priority (the record has no
  priority column);
* a schedule: ``departure_id = "schedule:<entry id>"``, ``departure_at`` None and ``recurring``
  the rule text, e.g. ``"mon,tue,wed,thu,fri 06:30|energy_kwh=45|priority=2"``: the weekdays in
  week order, comma-separated; the site-local time ``HH:MM`` (``HH:MM:SS`` when it has seconds);
  then ``|key=value`` for each of ``energy_kwh`` [kWh], ``target_soc_pct`` [%] and ``priority``
  that is set, in that order. Numbers are written so that they read back exactly (``45``,
  ``45.5``). The reader also takes the days as ``daily``, ``mon-fri`` or ``sat,sun``. The text is
  authoritative; the ``energy_kwh`` and ``target_soc_pct`` columns repeat it for queries (and
  are read when the text has neither);
* a removal: the removed entry's record again with ``cancelled=True``, so that a restart does not
  bring it back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from controller.fleet.departures import OneOff, days_text, local_instant
from controller.model import WEEKDAYS, Schedule, Site, Vehicle
from controller.model.site import Weekday
from controller.store.records import Departure

MAX_AHEAD = timedelta(days=7)
"""How far ahead a one-off departure may be set."""
PRIORITY_MIN, PRIORITY_MAX = 1, 9
ONE_OFF_PREFIX = "oneoff:"
SCHEDULE_PREFIX = "schedule:"
ONCE = "once"
_MAX_ID_LEN = 200
_NEED_KEYS = ("energy_kwh", "target_soc_pct", "priority")
_Need = tuple[float | None, float | None, int | None]  # energy_kwh, target_soc_pct, priority


# --- problems ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One reason a change was refused: the input ``field`` (e.g. ``"energy_kwh"``,
    ``"schedules[2].days"``, ``"line 7: days"``) and a ``reason`` a fleet manager can act on."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class FleetError(Exception):
    """A change was refused as a whole; ``problems`` lists every reason (never empty)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


# --- parsing and checking values (shared with csv_import) ----------------------------------------

_DAY_NAMES: dict[str, Weekday] = {d: d for d in WEEKDAYS}
_DAY_NAMES.update(
    {
        "monday": "mon",
        "tuesday": "tue",
        "wednesday": "wed",
        "thursday": "thu",
        "friday": "fri",
        "saturday": "sat",
        "sunday": "sun",
        "tues": "tue",
        "thur": "thu",
        "thurs": "thu",
    }
)
_DAY_GROUPS: dict[str, tuple[Weekday, ...]] = {
    "daily": WEEKDAYS,
    "weekdays": WEEKDAYS[:5],
    "weekend": WEEKDAYS[5:],
    "weekends": WEEKDAYS[5:],
}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _day(word: str) -> Weekday:
    try:
        return _DAY_NAMES[word]
    except KeyError:
        raise ValueError(f"{word!r} is not a weekday (mon, tue, wed, thu, fri, sat, sun)") from None


def parse_days(text: str) -> tuple[Weekday, ...]:
    """``"mon-fri"``, ``"mon,wed,fri"``, ``"daily"``, ``"sat-sun"``, ``"mon,wed-fri"`` → weekdays.

    Case-insensitive; ``-`` or ``–`` for ranges (``fri-mon`` wraps over the weekend); also
    ``weekdays``, ``weekend`` and full English day names. Returned in week order without
    repeats. Raises :class:`ValueError` with the reason.
    """
    words = [w.strip() for w in text.strip().lower().replace("–", "-").split(",")]
    if not text.strip():
        raise ValueError("no days given (e.g. mon-fri, mon,wed,fri, daily)")
    picked: set[Weekday] = set()
    for word in words:
        if not word:
            raise ValueError(f"empty day in {text.strip()!r}")
        if word in _DAY_GROUPS:
            picked.update(_DAY_GROUPS[word])
        elif "-" in word:
            first, _, last = (part.strip() for part in word.partition("-"))
            i, j = WEEKDAYS.index(_day(first)), WEEKDAYS.index(_day(last))
            picked.update(WEEKDAYS[(i + k) % 7] for k in range((j - i) % 7 + 1))
        else:
            picked.add(_day(word))
    return tuple(d for d in WEEKDAYS if d in picked)


def format_days(days: Iterable[Weekday]) -> str:
    """Weekdays as ASCII text that :func:`parse_days` reads back: ``daily``, ``mon-fri``, ``sat,sun``."""
    return days_text(tuple(days)).replace("–", "-")


def parse_hhmm(text: str) -> time:
    """``"06:30"`` / ``"6:30"`` / ``"06:30:00"`` (site-local wall time) → :class:`datetime.time`."""
    m = _TIME.match(text.strip())
    if m is None:
        raise ValueError(f"{text.strip()!r} is not a time of day as HH:MM")
    hh, mm, ss = int(m[1]), int(m[2]), int(m[3] or 0)
    if hh > 23 or mm > 59 or ss > 59:
        raise ValueError(f"{text.strip()!r} is not a time of day (00:00 … 23:59)")
    return time(hh, mm, ss)


def format_hhmm(at: time) -> str:
    """``HH:MM``, or ``HH:MM:SS`` when there are seconds."""
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


def format_number(x: float) -> str:
    """A number as short text that reads back exactly: ``45``, ``45.5``, ``0.1``."""
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def check_need(
    site: Site, vehicle_id: str, energy_kwh: float | None, target_soc_pct: float | None, priority: int | None
) -> list[tuple[str, str]]:
    """Problems with a departure's vehicle and need, as ``(field, reason)`` pairs (empty: fine).

    Fields: ``vehicle``, ``energy_kwh`` (also for "both" or "neither" of energy and target),
    ``target_soc_pct`` and ``priority``.
    """
    out: list[tuple[str, str]] = []
    vehicle = _vehicle(site, vehicle_id)
    if vehicle is None:
        known = ", ".join(v.id for v in site.vehicles) or "none"
        out.append(("vehicle", f"unknown vehicle {vehicle_id!r} (the site has: {known})"))
    if energy_kwh is None and target_soc_pct is None:
        out.append(("energy_kwh", "give the energy needed (energy_kwh) or a target state of charge (target_soc_pct)"))
    elif energy_kwh is not None and target_soc_pct is not None:
        out.append(("energy_kwh", "give energy_kwh or target_soc_pct, not both"))
    if energy_kwh is not None:
        if not math.isfinite(energy_kwh):
            out.append(("energy_kwh", f"must be a finite number of kWh, got {energy_kwh}"))
        elif energy_kwh <= 0:
            out.append(("energy_kwh", f"must be above 0 kWh, got {format_number(energy_kwh)}"))
        elif vehicle is not None and vehicle.battery_kwh is not None and energy_kwh > vehicle.battery_kwh:
            out.append(
                (
                    "energy_kwh",
                    f"{format_number(energy_kwh)} kWh is above the battery capacity of {vehicle.id} "
                    f"({format_number(vehicle.battery_kwh)} kWh)",
                )
            )
    if target_soc_pct is not None:
        if not math.isfinite(target_soc_pct) or not 0 < target_soc_pct <= 100:
            out.append(("target_soc_pct", f"must be above 0 and at most 100 %, got {target_soc_pct:g}"))
        elif vehicle is not None and vehicle.battery_kwh is None:
            out.append(
                (
                    "target_soc_pct",
                    f"vehicle {vehicle.id} has no battery_kwh in the site file, so a target state of charge "
                    "cannot be turned into energy; give energy_kwh instead, or add battery_kwh to the vehicle",
                )
            )
    if priority is not None and (isinstance(priority, bool) or not PRIORITY_MIN <= priority <= PRIORITY_MAX):
        out.append(("priority", f"must be {PRIORITY_MIN} (served first) … {PRIORITY_MAX} (last), got {priority}"))
    return out


def _vehicle(site: Site, vehicle_id: str) -> Vehicle | None:
    return next((v for v in site.vehicles if v.id == vehicle_id), None)


def vehicles_visible(site: Site, *, vehicles: frozenset[str] | None, tenant: str | None) -> list[Vehicle]:
    """The site's vehicles (in file order) that a caller limited to ``vehicles`` and/or ``tenant``
    may see; ``None`` and ``None`` = all of them. Both given: a vehicle must satisfy both."""
    return [
        v for v in site.vehicles if (vehicles is None or v.id in vehicles) and (tenant is None or v.tenant == tenant)
    ]


# --- recurring schedules --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleEntry:
    """A recurring departure set at run time: on ``days`` at ``at`` (site-local wall time).

    ``id`` names the entry (printable, at most 200 characters; unique in the book). The need is
    ``energy_kwh`` [kWh] or ``target_soc_pct`` [%]; ``priority`` (1 served first … 9 last)
    overrides the vehicle's own when set.
    """

    id: str
    vehicle_id: str
    days: tuple[Weekday, ...]
    at: time
    energy_kwh: float | None = None
    target_soc_pct: float | None = None
    priority: int | None = None

    def rule_text(self) -> str:
        """The ``recurring`` text of the store record (format in the module docstring)."""
        parts = [f"{','.join(self.days)} {format_hhmm(self.at)}"]
        if self.energy_kwh is not None:
            parts.append(f"energy_kwh={format_number(self.energy_kwh)}")
        if self.target_soc_pct is not None:
            parts.append(f"target_soc_pct={format_number(self.target_soc_pct)}")
        if self.priority is not None:
            parts.append(f"priority={self.priority}")
        return "|".join(parts)

    @classmethod
    def from_rule_text(cls, entry_id: str, vehicle_id: str, text: str) -> ScheduleEntry:
        """Read :meth:`rule_text` back. Raises :class:`ValueError` naming what is wrong."""
        rule, *options = text.split("|")
        days_part, sep, at_part = rule.strip().rpartition(" ")
        if not sep:
            raise ValueError(f"expected 'DAYS HH:MM', got {rule.strip()!r}")
        values = _options(options, _NEED_KEYS)
        energy, target, priority = (values.get(k) for k in _NEED_KEYS)
        return cls(
            entry_id,
            vehicle_id,
            parse_days(days_part),
            parse_hhmm(at_part),
            None if energy is None else float(energy),
            None if target is None else float(target),
            None if priority is None else int(priority),
        )

    def to_schedule(self) -> Schedule:
        """As a site-file :class:`~controller.model.Schedule` (what ``next_departure`` reads)."""
        return Schedule(self.vehicle_id, self.at, self.days, None, self.energy_kwh, self.target_soc_pct, self.priority)


def _options(options: Sequence[str], allowed: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for option in options:
        key, sep, value = (s.strip() for s in option.partition("="))
        if not sep or key not in allowed or key in out or not value:
            raise ValueError(f"bad option {option.strip()!r} (expected one each of {', '.join(allowed)} as key=value)")
        out[key] = value
    return out


def _check_entry(site: Site, entry: ScheduleEntry) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if not entry.id or entry.id != entry.id.strip() or not entry.id.isprintable() or len(entry.id) > _MAX_ID_LEN:
        out.append(("id", f"must be printable text of 1 to {_MAX_ID_LEN} characters without surrounding spaces"))
    if not entry.days:
        out.append(("days", "no days given (e.g. mon-fri, mon,wed,fri, daily)"))
    elif len(set(entry.days)) != len(entry.days) or any(d not in WEEKDAYS for d in entry.days):
        out.append(("days", f"must be distinct weekdays out of {', '.join(WEEKDAYS)}"))
    if entry.at.tzinfo is not None or entry.at.microsecond:
        out.append(("at", "must be a site-local wall time HH:MM (no time zone, no fractions of a second)"))
    out.extend(check_need(site, entry.vehicle_id, entry.energy_kwh, entry.target_soc_pct, entry.priority))
    return out


# --- the book -------------------------------------------------------------------------------------


class FleetBook:
    """The run-time fleet state (see the module docstring). One owner; not thread-safe.

    Every ``now`` is the current instant (aware); it stamps ``set_at`` on the store records.
    """

    def __init__(self) -> None:
        self._one_offs: dict[str, tuple[OneOff, datetime]] = {}  # departure_id → (one-off, set_at)
        self._schedules: dict[str, tuple[ScheduleEntry, datetime]] = {}  # entry id → (entry, set_at)
        self._cancelled: dict[str, Departure] = {}  # departure_id → removal record
        self._assigned: dict[str, str] = {}  # charger id → vehicle id
        self._site_cache: tuple[Site, int, Site] | None = None  # (site given, version, site returned)
        self._version = 0  # counts changes of the schedules

    # --- one-offs ---------------------------------------------------------------------------------
    def set_departure(
        self,
        site: Site,
        vehicle_id: str,
        at: datetime,
        energy_kwh: float | None,
        target_soc_pct: float | None,
        priority: int | None,
        now: datetime,
    ) -> OneOff:
        """Set a one-off departure of ``vehicle_id`` at ``at`` (aware, or naive = site-local).

        Needs exactly one of ``energy_kwh`` [kWh] and ``target_soc_pct`` [%]; ``priority``
        (1 … 9) is optional. ``at`` must be after ``now`` and at most 7 days later. Replaces the
        vehicle's one-off on the same site-local day. Raises :class:`FleetError` listing every
        problem, in the order ``vehicle``, ``at``, ``energy_kwh``, ``target_soc_pct``, ``priority``.
        """
        _require_aware(now, "now")
        tz = ZoneInfo(site.site.timezone)
        at_utc = local_instant(at.date(), at.time(), tz) if at.tzinfo is None else at.astimezone(UTC)
        local = at_utc.astimezone(tz)
        need = [Problem(f, r) for f, r in check_need(site, vehicle_id, energy_kwh, target_soc_pct, priority)]
        problems = [p for p in need if p.field == "vehicle"]
        if at_utc <= now:
            when = f"{local:%Y-%m-%d %H:%M %Z}"
            problems.append(Problem("at", f"{when} is in the past (it is now {now.astimezone(tz):%Y-%m-%d %H:%M %Z})"))
        elif at_utc > now + MAX_AHEAD:
            when = f"{local:%Y-%m-%d %H:%M %Z}"
            problems.append(Problem("at", f"{when} is more than 7 days ahead (one-offs reach 7 days at most)"))
        problems += [p for p in need if p.field != "vehicle"]
        if problems:
            raise FleetError(problems)
        self._drop_past(now)
        one_off = OneOff(vehicle_id, at_utc, energy_kwh, target_soc_pct, priority)
        day = local.date()
        for dep_id, (old, _) in list(self._one_offs.items()):
            if old.vehicle_id == vehicle_id and old.at.astimezone(tz).date() == day:
                self._remove_one_off(dep_id, now)
        dep_id = _one_off_id(vehicle_id, day)
        self._cancelled.pop(dep_id, None)
        self._one_offs[dep_id] = (one_off, now)
        return one_off

    def clear_departure(self, vehicle_id: str, now: datetime) -> bool:
        """Remove the vehicle's upcoming one-offs (after ``now``); whether there were any."""
        _require_aware(now, "now")
        self._drop_past(now)
        gone = [dep_id for dep_id, (o, _) in self._one_offs.items() if o.vehicle_id == vehicle_id]
        for dep_id in gone:
            self._remove_one_off(dep_id, now)
        return bool(gone)

    def one_offs(self, now: datetime) -> list[OneOff]:
        """The upcoming one-offs (after ``now``) of every vehicle, by time: for ``next_departure``."""
        _require_aware(now, "now")
        return sorted((o for o, _ in self._one_offs.values() if o.at > now), key=lambda o: (o.at, o.vehicle_id))

    def _remove_one_off(self, dep_id: str, now: datetime) -> None:
        one_off, _ = self._one_offs.pop(dep_id)
        self._cancelled[dep_id] = replace(_one_off_record(dep_id, one_off, now), cancelled=True)

    def _drop_past(self, now: datetime) -> None:
        for dep_id, (o, _) in list(self._one_offs.items()):
            if o.at <= now:
                del self._one_offs[dep_id]
        for dep_id, rec in list(self._cancelled.items()):
            if rec.departure_at is not None and rec.departure_at <= now:
                del self._cancelled[dep_id]  # a past one-off does not come back after a restart anyway

    # --- recurring schedules ----------------------------------------------------------------------
    def schedules(self) -> list[ScheduleEntry]:
        """The run-time recurring schedules, by vehicle, then id."""
        return sorted((e for e, _ in self._schedules.values()), key=lambda e: (e.vehicle_id, e.id))

    def put_schedules(
        self,
        site: Site,
        entries: Sequence[ScheduleEntry],
        *,
        now: datetime,
        vehicles: Collection[str] | None = None,
    ) -> None:
        """Replace the run-time schedules with ``entries``, all or nothing.

        Every entry is checked first; any problem (field ``schedules[i].<name>``, ``i`` counted
        from 0) raises :class:`FleetError` and nothing changes. With ``vehicles`` (a caller's
        scope) only the schedules of those vehicles are replaced and the others are kept; an
        entry for a vehicle outside it is a problem. An entry whose id is already in the book
        keeps its ``set_at`` when it did not change.
        """
        _require_aware(now, "now")
        kept = {k: e for k, (e, _) in self._schedules.items() if vehicles is not None and e.vehicle_id not in vehicles}
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries):
            where = f"schedules[{i}]"
            problems += [Problem(f"{where}.{f}", r) for f, r in _check_entry(site, entry)]
            if vehicles is not None and entry.vehicle_id not in vehicles:
                problems.append(Problem(f"{where}.vehicle", f"vehicle {entry.vehicle_id!r} is outside your scope"))
            if entry.id in seen:
                problems.append(Problem(f"{where}.id", f"{entry.id!r} is already used by schedules[{seen[entry.id]}]"))
            elif entry.id in kept:
                other = kept[entry.id].vehicle_id
                problems.append(Problem(f"{where}.id", f"{entry.id!r} is already used by a schedule of {other}"))
            seen.setdefault(entry.id, i)
        if problems:
            raise FleetError(problems)
        new = {e.id: e for e in entries}
        for entry_id, (old, _) in list(self._schedules.items()):
            if entry_id not in kept and entry_id not in new:
                del self._schedules[entry_id]
                self._cancel_schedule(old, now)
        for entry in entries:
            previous = self._schedules.get(entry.id)
            unchanged = previous is not None and previous[0] == entry
            self._cancelled.pop(SCHEDULE_PREFIX + entry.id, None)
            self._schedules[entry.id] = (entry, previous[1] if previous is not None and unchanged else now)
        self._version += 1

    def delete_schedules(self, *, now: datetime, vehicles: Collection[str] | None = None) -> int:
        """Remove the run-time schedules (with ``vehicles``: only theirs); how many were removed."""
        _require_aware(now, "now")
        gone = [k for k, (e, _) in self._schedules.items() if vehicles is None or e.vehicle_id in vehicles]
        for entry_id in gone:
            entry, _ = self._schedules.pop(entry_id)
            self._cancel_schedule(entry, now)
        self._version += 1
        return len(gone)

    def _cancel_schedule(self, entry: ScheduleEntry, now: datetime) -> None:
        self._cancelled[SCHEDULE_PREFIX + entry.id] = replace(_schedule_record(entry, now), cancelled=True)

    def site_with_schedules(self, site: Site) -> Site:
        """``site`` with the run-time schedules added after its own ``schedules:`` (the same object
        when there are none). Entries of vehicles no longer in the site are left out."""
        if not self._schedules:
            return site
        cached = self._site_cache
        if cached is not None and cached[0] is site and cached[1] == self._version:
            return cached[2]
        ids = {v.id for v in site.vehicles}
        extra = tuple(e.to_schedule() for e in self.schedules() if e.vehicle_id in ids)
        out = replace(site, schedules=site.schedules + extra)
        self._site_cache = (site, self._version, out)
        return out

    # --- charger → vehicle ------------------------------------------------------------------------
    def assign(self, site: Site, charger_id: str, vehicle_id: str) -> None:
        """Say that ``vehicle_id`` is the vehicle on ``charger_id`` (moving it off any other
        charger). Raises :class:`FleetError` (fields ``charger``, ``vehicle``) for unknown ids."""
        problems: list[Problem] = []
        if not any(c.id == charger_id for c in site.chargers):
            known = ", ".join(c.id for c in site.chargers) or "none"
            problems.append(Problem("charger", f"unknown charger {charger_id!r} (the site has: {known})"))
        if _vehicle(site, vehicle_id) is None:
            known = ", ".join(v.id for v in site.vehicles) or "none"
            problems.append(Problem("vehicle", f"unknown vehicle {vehicle_id!r} (the site has: {known})"))
        if problems:
            raise FleetError(problems)
        for other in [c for c, v in self._assigned.items() if v == vehicle_id]:
            del self._assigned[other]
        self._assigned[charger_id] = vehicle_id

    def unassign(self, charger_id: str) -> bool:
        """Forget the charger's assignment (e.g. when its session ends); whether it had one."""
        return self._assigned.pop(charger_id, None) is not None

    def assignment(self, charger_id: str) -> str | None:
        """The vehicle assigned to ``charger_id``, or None."""
        return self._assigned.get(charger_id)

    # --- persistence ------------------------------------------------------------------------------
    def records(self, now: datetime) -> list[Departure]:
        """What to upsert into the store's departures, sorted by ``departure_id``: the upcoming
        one-offs, the schedules and the removals (``cancelled=True``). Idempotent: writing it
        after every change (or all of it again) is safe."""
        _require_aware(now, "now")
        self._drop_past(now)
        out = [_one_off_record(dep_id, o, set_at) for dep_id, (o, set_at) in self._one_offs.items()]
        out += [_schedule_record(e, set_at) for e, set_at in self._schedules.values()]
        out += self._cancelled.values()
        return sorted(out, key=lambda r: r.departure_id)

    @classmethod
    def from_records(cls, site: Site, departures: Sequence[Departure], now: datetime) -> tuple[FleetBook, list[str]]:
        """Rebuild the book from stored records (as :meth:`records` wrote them; a later record of
        the same ``departure_id`` wins, as in the store's upsert).

        Skipped: past one-offs (quietly), and with a warning each, records of vehicles no longer
        in the site and unreadable records. A record whose need no longer fits the site (say the
        battery became smaller) is kept with a warning. Returns the book and the warnings.
        """
        _require_aware(now, "now")
        latest: dict[str, Departure] = {}
        for rec in departures:
            latest.pop(rec.departure_id, None)
            latest[rec.departure_id] = rec
        book, warnings = cls(), []
        for dep_id, rec in latest.items():
            what = f"stored departure {dep_id!r} of {rec.vehicle_id}"
            if rec.cancelled:
                book._cancelled[dep_id] = rec
                continue
            if _vehicle(site, rec.vehicle_id) is None:
                warnings.append(f"{what}: skipped, the vehicle is no longer in the site file")
                continue
            try:
                need = book._restore(dep_id, rec, now)
            except ValueError as exc:
                warnings.append(f"{what}: skipped, cannot read it: {exc}")
                continue
            if need is not None:
                warnings += [f"{what}: {f}: {r}" for f, r in check_need(site, rec.vehicle_id, *need)]
        book._drop_past(now)
        return book, warnings

    def _restore(self, dep_id: str, rec: Departure, now: datetime) -> _Need | None:
        """Take one stored record in; its need, or None when it is not kept (a past one-off)."""
        if rec.departure_at is not None:
            if rec.departure_at <= now:
                return None
            priority = _options(_once_options(rec.recurring), ("priority",)).get("priority")
            o = OneOff(
                rec.vehicle_id,
                rec.departure_at.astimezone(UTC),
                rec.energy_kwh,
                rec.target_soc_pct,
                None if priority is None else int(priority),
            )
            self._one_offs[dep_id] = (o, rec.set_at)
            return o.energy_kwh, o.target_soc_pct, o.priority
        if rec.recurring is None:
            raise ValueError("it has neither a departure time nor a recurring rule")
        entry_id = dep_id.removeprefix(SCHEDULE_PREFIX)
        if entry_id in self._schedules:
            raise ValueError(f"a schedule with id {entry_id!r} was read already")
        entry = ScheduleEntry.from_rule_text(entry_id, rec.vehicle_id, rec.recurring)
        if entry.energy_kwh is None and entry.target_soc_pct is None:  # a rule text without the need
            entry = replace(entry, energy_kwh=rec.energy_kwh, target_soc_pct=rec.target_soc_pct)
        if not dep_id.startswith(SCHEDULE_PREFIX):  # not written by the book: move it to the book's id
            self._cancelled[dep_id] = replace(rec, set_at=now, cancelled=True)
        self._schedules[entry_id] = (entry, rec.set_at)
        self._version += 1
        return entry.energy_kwh, entry.target_soc_pct, entry.priority


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def _one_off_id(vehicle_id: str, day: date) -> str:
    return f"{ONE_OFF_PREFIX}{vehicle_id}:{day.isoformat()}"


def _once_options(text: str | None) -> list[str]:
    if text is None:
        return []
    head, *options = text.split("|")
    if head.strip() != ONCE:
        raise ValueError(f"a one-off's rule must be {ONCE!r} with options, got {text!r}")
    return options


def _one_off_record(dep_id: str, o: OneOff, set_at: datetime) -> Departure:
    recurring = None if o.priority is None else f"{ONCE}|priority={o.priority}"
    return Departure(dep_id, o.vehicle_id, set_at, o.at, recurring, o.energy_kwh, o.target_soc_pct)


def _schedule_record(entry: ScheduleEntry, set_at: datetime) -> Departure:
    dep_id, rule = SCHEDULE_PREFIX + entry.id, entry.rule_text()
    return Departure(dep_id, entry.vehicle_id, set_at, None, rule, entry.energy_kwh, entry.target_soc_pct)
