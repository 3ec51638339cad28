"""What a CSMS profile allows when, how profiles combine, and their limits in depotctl's units.

Time (OCPP 1.6 §3.13.x, 2.0.1 K01/K08), all on *our* clock — the profile never reaches a charger,
so no charger clock is involved:

* a profile is in force from ``validFrom`` until ``validTo`` (open where absent), and within that
  while one of its schedules is: an Absolute schedule from ``startSchedule`` (nothing before it)
  for ``duration`` seconds (for ever without); a Relative one likewise from the origin the caller
  gives (the transaction's start); a Recurring one restarts every 24 h (Daily) or 7 × 24 h
  (Weekly) counted from ``startSchedule`` — in elapsed time, as chargers do, which keep UTC: across
  a DST change the cap keeps its UTC hour and moves by an hour on the local clock. Within each
  recurrence it lasts ``duration`` (at most the recurrence), else until the next. ``startSchedule``
  only anchors the recurrence: its earlier occurrences count too (``validFrom`` is what delays a
  profile). Within a schedule the last period started applies.
* per purpose, the profile in force with the highest ``stackLevel`` wins at each moment (a lower
  one applies while the higher is not, e.g. before its start or after its duration); on a tie a
  profile on the connector itself beats one on connector 0, then the later received.
* a TxProfile in force overrides the TxDefaultProfiles; the limit is the lower of the
  ChargePointMax's and the Tx/TxDefault's (:func:`combined_steps`).
* a profile with several schedules (2.0.1, ISO 15118 offers) limits to the lowest of those in force.

Units (:func:`session_amps`, :func:`session_kw`): A is per phase, W the sum over phases;
``numberPhases`` is how many phases may be used (3 where absent, as OCPP says).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.upstream.caps_profile import CsmsProfile, RateUnit, Schedule

RECURRENCE = {"Daily": timedelta(days=1), "Weekly": timedelta(days=7)}
DEFAULT_PHASES = 3
"""``numberPhases`` where a period gives none (OCPP: 3 is assumed)."""


@dataclass(frozen=True)
class Rate:
    """One schedule's limit at a moment: in its unit, with its ``numberPhases`` (None: not given)."""

    limit: float
    unit: RateUnit
    phases: int | None = None


@dataclass(frozen=True)
class Held:
    """A profile as one session sees it: ``origin`` is where its Relative schedules count from."""

    profile: CsmsProfile
    origin: datetime


@dataclass(frozen=True)
class Stack:
    """The profiles that may limit one connector (or, ``tx`` and ``tx_default`` empty, a charger)."""

    charger_max: Sequence[Held] = ()
    tx: Sequence[Held] = ()
    tx_default: Sequence[Held] = ()

    def all(self) -> Iterator[Held]:
        yield from self.charger_max
        yield from self.tx
        yield from self.tx_default


def _anchor(profile: CsmsProfile, sched: Schedule, origin: datetime) -> datetime:
    return origin if profile.kind == "Relative" or sched.start is None else sched.start


def _schedule_rate(profile: CsmsProfile, sched: Schedule, origin: datetime, t: datetime) -> Rate | None:
    anchor = _anchor(profile, sched, origin)
    duration = None if sched.duration_s is None else timedelta(seconds=sched.duration_s)
    if profile.kind == "Recurring" and profile.recurrency is not None:
        every = RECURRENCE[profile.recurrency]
        offset = t - (anchor + ((t - anchor) // every) * every)
        span: timedelta | None = every if duration is None else min(duration, every)
    else:
        offset = t - anchor
        if offset < timedelta(0):
            return None
        span = duration
    if span is not None and offset >= span:
        return None
    i = bisect_right(sched.periods, offset.total_seconds(), key=lambda p: p.start_s) - 1
    period = sched.periods[max(0, i)]
    return Rate(period.limit, sched.unit, period.phases)


def rates_at(held: Held, t: datetime) -> tuple[Rate, ...]:
    """The limits ``held`` sets at ``t`` (one per schedule in force; empty: not in force)."""
    p = held.profile
    if (p.valid_from is not None and t < p.valid_from) or (p.valid_to is not None and t >= p.valid_to):
        return ()
    return tuple(r for s in p.schedules if (r := _schedule_rate(p, s, held.origin, t)) is not None)


def edges(held: Held, start: datetime, end: datetime) -> set[datetime]:
    """Every moment in ``(start, end)`` at which what ``held`` sets may change."""
    p = held.profile
    out: set[datetime] = {t for t in (p.valid_from, p.valid_to) if t is not None}
    for sched in p.schedules:
        anchor = _anchor(p, sched, held.origin)
        duration = None if sched.duration_s is None else timedelta(seconds=sched.duration_s)
        if p.kind == "Recurring" and p.recurrency is not None:
            every = RECURRENCE[p.recurrency]
            span = every if duration is None else min(duration, every)
            k = (start - anchor) // every
            while (at := anchor + k * every) < end:
                out.add(at)
                out.update(at + timedelta(seconds=q.start_s) for q in sched.periods if q.start_s < span.total_seconds())
                out.add(at + span)
                k += 1
        else:
            out.add(anchor)
            out.update(anchor + timedelta(seconds=q.start_s) for q in sched.periods)
            if duration is not None:
                out.add(anchor + duration)
    return {t for t in out if start < t < end}


def segments(held: Held, start: datetime, end: datetime) -> list[tuple[datetime, tuple[Rate, ...]]]:
    """What ``held`` sets over ``[start, end)``: steps ``(from, rates)``, the first at ``start``."""
    out: list[tuple[datetime, tuple[Rate, ...]]] = []
    for t in sorted(edges(held, start, end) | {start}):
        rates = rates_at(held, t)
        if not out or out[-1][1] != rates:
            out.append((t, rates))
    return out


class _Track:
    """One profile's segments, walked forward in time."""

    def __init__(self, held: Held, start: datetime, end: datetime) -> None:
        p = held.profile
        self.key = (p.stack_level, p.connector_id > 0, p.received_at)
        self.steps = segments(held, start, end)
        self.i = 0

    def at(self, t: datetime) -> tuple[Rate, ...]:
        while self.i + 1 < len(self.steps) and self.steps[self.i + 1][0] <= t:
            self.i += 1
        return self.steps[self.i][1]


def _winner(tracks: Sequence[_Track], t: datetime) -> tuple[Rate, ...]:
    """The rates of the profile that wins at ``t`` (module docstring: stack level, then one on the
    connector itself, then the later received)."""
    best: _Track | None = None
    best_rates: tuple[Rate, ...] = ()
    for track in tracks:
        rates = track.at(t)
        if rates and (best is None or track.key > best.key):
            best, best_rates = track, rates
    return best_rates


Convert = Callable[[Rate], float]


def combined_steps(
    stack: Stack, start: datetime, end: datetime, for_max: Convert, for_session: Convert
) -> list[tuple[datetime, float | None]]:
    """Steps ``(from, limit)`` over ``[start, end)``, the first at ``start``: the lower of the
    ChargePointMax's limit (through ``for_max``) and the TxProfile's — else the TxDefaultProfile's —
    (through ``for_session``); ``None`` where no profile is in force. Equal neighbours merged."""
    charger_max = [_Track(h, start, end) for h in stack.charger_max]
    tx = [_Track(h, start, end) for h in stack.tx]
    tx_default = [_Track(h, start, end) for h in stack.tx_default]
    points = sorted({t for track in (*charger_max, *tx, *tx_default) for t, _ in track.steps} | {start})
    out: list[tuple[datetime, float | None]] = []
    for t in points:
        values = [for_max(r) for r in _winner(charger_max, t)]
        values += [for_session(r) for r in (_winner(tx, t) or _winner(tx_default, t))]
        value = min(values) if values else None
        if out and out[-1][1] == value:
            continue
        out.append((t, value))
    return out


def session_amps(rate: Rate, phases_used: int, voltage_v: float) -> float:
    """A per used phase for an AC session on ``phases_used`` phases at ``voltage_v`` per phase.

    A: the limit per phase; where ``numberPhases`` allows fewer phases than the session uses, the
    same total current spread over them (each phase at most the limit, the sum at most what the
    allowed phases may draw). W: the total over the phases used, ``W / (voltage × phases)``."""
    used = max(1, phases_used)
    if rate.unit == "A":
        allowed = rate.phases if rate.phases is not None else DEFAULT_PHASES
        return rate.limit * min(allowed, used) / used
    return rate.limit / (voltage_v * used)


def session_kw(rate: Rate, phases: int, voltage_v: float) -> float:
    """kW for a DC session: W / 1000; A per phase of the charger's AC input on ``phases`` phases
    (at most ``numberPhases``) at ``voltage_v`` per phase."""
    if rate.unit == "W":
        return rate.limit / 1000.0
    allowed = rate.phases if rate.phases is not None else DEFAULT_PHASES
    return rate.limit * voltage_v * min(allowed, max(1, phases)) / 1000.0


def floor_tenth(value: float) -> float:
    """Down to a multiple of 0.1 (the 1.6 schema's ``multipleOf``), never below 0."""
    return max(0.0, round(math.floor(value * 10.0 + 1e-6) / 10.0, 1))
