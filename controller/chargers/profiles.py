"""Pure builders for the charging profiles depotctl sends (docs/safety.md).

Two kinds of profile, both version-neutral :class:`ProfileSpec` values serialised by
:func:`to_v16` / :func:`to_v201`:

* the **fail-safe**: ``TxDefaultProfile`` at stack level 0 on connector 0, one period at the
  fail-safe limit, ``Absolute`` from 1970 (:data:`FAR_PAST`), no ``validTo`` and no
  ``duration``: in force whatever the charger's clock says — also after it was set back during
  a transaction, which can put a Relative schedule's start in the charger's future — it is what
  the charger obeys when nothing else is valid (``relative_failsafe``, for chargers that refuse
  it, and ``relative_profiles`` chargers: Relative without ``startSchedule``);
* the **control** profile: one stack level higher (``TxProfile`` with the transaction id while a
  transaction runs, else ``TxDefaultProfile`` on the connector), periods from the plan, ending
  ``ttl_s`` after now.

Nothing relies on the charger's clock being right. The builders take the charger's measured
clock offset (``charger clock − ours``, :mod:`controller.chargers.clock_offset`): an Absolute
control profile starts at our now + offset − :data:`BACKDATE_S` − a margin (in force on the
charger's clock at once) and ends on the charger's clock at our now + offset + ttl, as
``validTo`` as well as ``duration``; ``ProfileSpec.expires_at`` is that end on *our* clock. An
unmeasured offset is taken as 0 with a wider start margin (:data:`UNKNOWN_OFFSET_S`). A Relative
control profile (``relative_profiles``) is counted from when *we* saw the transaction start (or
now), never from the charger-reported start time.

Limits are in *planner units* on the way in — A per phase for AC, kW for DC — and leave in the
charger's rate unit (A, or W for DC and ``power_only`` chargers), rounded down to 0.1 (the 1.6
schema's ``multipleOf 0.1``; rounding down never exceeds the plan). An AC limit in W is sized by
the phases in use (:attr:`Target.phases_in_use`, 1 when unknown) at the W per A of that draw
(:attr:`Target.w_per_a`, from the site's phasor model: a line-to-line charger's line-to-line
voltage): a charger that divides W by the phases its EV actually uses never lets one phase
exceed the A planned for it. Per-charger quirks
from the site file transform the profile; nothing here does I/O or reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controller.chargers.clock import to_ocpp
from controller.model.phasor import draw, node_ln_voltage_v
from controller.model.site import Charger, Site

RateUnit = Literal["A", "W"]
Purpose = Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
ProfileKind = Literal["Absolute", "Relative"]

FAILSAFE_PROFILE_ID = 1
"""Profile id of the fail-safe (one per charger, connector 0)."""
CONTROL_STACK_LEVEL = 1
BACKDATE_S = 5.0
"""``startSchedule`` this far before now, so a late-arriving profile never leaves a gap."""
START_MARGIN_S = 30.0
"""With a measured clock offset: a further margin before now on the charger's clock (an offset
estimate is a lower bound, so this only covers a clock corrected backwards since)."""
UNKNOWN_OFFSET_S = 300.0
"""How far off a charger's clock is assumed to be at most while its offset is unmeasured (the
start margin grows by this much; budgets widen a profile's end by it)."""
FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
"""``startSchedule`` of the fail-safe: before any clock a charger can be reset to."""
INTERNAL_OPTIONS = frozenset({"relative_failsafe"})
"""Options learnt from rejections that are not site-file quirks."""
ZERO_SUBSTITUTE_A = 0.1
"""``no_zero_limit``: the lowest accepted value that still makes an IEC 61851 EV pause (< 6 A)."""


@dataclass(frozen=True)
class Target:
    """What a profile builder needs to know about one charger."""

    charger_id: str
    kind: Literal["ac", "dc"] = "ac"
    phases: int = 3
    voltage_v: float = 230.0
    min_a: float = 6.0
    quirks: frozenset[str] = frozenset()
    phases_in_use: int | None = None
    """Phases the connector's EV draws on (measured, else known); ``None``: unknown, W sized for 1."""
    w_per_a: tuple[float, ...] = ()
    """W per A (per phase) of the charger's draw with its EV on 1, 2, … of its phases
    (:func:`controller.model.phasor.draw`: a line-to-line charger on a 208Y/120 V bus 208, a
    single-phase EV on a three-phase charger of a 400 V wye bus 230, three phases 3 × 230, a
    single-phase EV on a delta bus its line-to-line voltage). Empty: ``voltage_v`` × phases."""

    @property
    def unit(self) -> RateUnit:
        return "W" if self.kind == "dc" or "power_only" in self.quirks else "A"

    @property
    def w_phases(self) -> int:
        """Phases an AC limit in W is sized for: those in use, 1 when unknown (the worst case)."""
        used = self.phases_in_use if self.phases_in_use is not None and self.phases_in_use >= 1 else 1
        return max(1, min(self.phases, used))

    @property
    def watts_per_a(self) -> float:
        """W per A of an AC limit in W, for :attr:`w_phases` phases in use."""
        if self.w_per_a:
            return self.w_per_a[min(self.w_phases, len(self.w_per_a)) - 1]
        return self.voltage_v * self.w_phases

    @property
    def full_watts_per_a(self) -> float:
        """W per A of line current with every wired phase drawing (a DC charger's input)."""
        if self.w_per_a:
            return self.w_per_a[-1]
        return self.voltage_v * (3 if self.kind == "dc" else max(1, self.phases))

    def with_phases_in_use(self, phases: int | None) -> Target:
        return replace(self, phases_in_use=phases)

    def with_quirks(self, extra: Iterable[str]) -> Target:
        return replace(self, quirks=self.quirks | frozenset(extra))


def watts_per_a(site: Site, charger: Charger) -> tuple[float, ...]:
    """W per A of the charger's draw with its EV on 1 … ``phases`` of its phases (DC: all)."""
    if charger.kind == "dc":
        return (draw(site, charger).volts_v,)
    return tuple(draw(site, charger, used).volts_v for used in range(1, max(1, charger.phases) + 1))


def target_for(site: Site, charger: Charger, extra_quirks: Iterable[str] = ()) -> Target:
    return Target(
        charger_id=charger.id,
        kind=charger.kind,
        phases=charger.phases,
        voltage_v=node_ln_voltage_v(site, charger.circuit),
        min_a=charger.min_a,
        quirks=frozenset(charger.ocpp_quirks) | frozenset(extra_quirks),
        w_per_a=watts_per_a(site, charger),
    )


@dataclass(frozen=True)
class Period:
    """``start_s`` seconds after the schedule start, ``limit`` in the profile's rate unit."""

    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class ProfileSpec:
    """One charging profile, independent of the OCPP version.

    ``planner_limits`` are the limits actually sent, back in planner units (A per phase or kW), so
    budgeting sees what the charger may really draw. ``start_schedule`` and ``valid_to`` are on
    the *charger's* clock (as sent); ``expires_at`` is when the charger stops obeying the profile
    by *our* clock (``None``: permanent) if ``clock_offset_s`` — the offset it was built with,
    ``None``: unmeasured, taken as 0 — is right. ``expires_not_before`` (our clock) is the
    earliest it can have ended (a Relative profile counted from a start the charger queued).
    """

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: ProfileKind
    unit: RateUnit
    periods: tuple[Period, ...]
    start_schedule: datetime | None = None
    duration_s: int | None = None
    transaction_id: int | str | None = None
    planner_limits: tuple[float, ...] = field(default=(), compare=False)
    expires_at: datetime | None = None
    valid_to: datetime | None = None
    clock_offset_s: float | None = None
    expires_not_before: datetime | None = None

    @property
    def charger_end(self) -> datetime | None:
        """When an Absolute profile ends on the charger's clock (``None``: Relative or permanent)."""
        if self.kind != "Absolute" or self.start_schedule is None:
            return self.valid_to
        ends = [self.valid_to] if self.valid_to is not None else []
        if self.duration_s is not None:
            ends.append(self.start_schedule + timedelta(seconds=self.duration_s))
        return min(ends, default=None)

    @property
    def max_planner_limit(self) -> float:
        return max(self.planner_limits, default=0.0)

    @property
    def first_limit(self) -> float:
        return self.periods[0].limit


def floor_tenth(value: float) -> float:
    """Round down to a multiple of 0.1 (a hair of tolerance for binary floats), never below 0."""
    return max(0.0, round(math.floor(value * 10.0 + 1e-6) / 10.0, 1))


def effective_planner_limit(target: Target, limit: float) -> float:
    """The limit after the zero-limit quirks, in planner units."""
    if limit > 0:
        return limit
    if "no_resume_after_zero" in target.quirks and target.kind == "ac":
        return target.min_a  # never pause a charger that would not resume; budget sees min_a
    if "no_zero_limit" in target.quirks:
        return ZERO_SUBSTITUTE_A if target.kind == "ac" else 0.1
    return 0.0


def to_wire(target: Target, planner_limit: float) -> float:
    """Planner units → the charger's rate unit, rounded down to 0.1.

    AC in W: A per phase × the W per A of the draw with the phases in use (:attr:`Target.w_phases`,
    1 when unknown; :attr:`Target.watts_per_a`: 208 V for a line-to-line charger on a 208Y/120 V
    bus, not 3 × 120), so a charger dividing W by the phases its EV uses, at their voltage, gives
    each of them at most the A planned."""
    value = effective_planner_limit(target, planner_limit)
    if target.kind == "dc":
        wire = value * 1000.0
    elif target.unit == "W":
        wire = value * target.watts_per_a
    else:
        wire = value
    return floor_tenth(wire)


def from_wire(target: Target, wire: float) -> float:
    """The charger's rate unit → planner units (inverse of :func:`to_wire`, up to rounding)."""
    if target.kind == "dc":
        return wire / 1000.0
    if target.unit == "W":
        return wire / target.watts_per_a
    return wire


def _phases(target: Target) -> int | None:
    """``numberPhases``: the charger's phases for A; for W the phases the W was sized for."""
    if target.kind != "ac":
        return None
    return target.w_phases if target.unit == "W" else target.phases


def failsafe_profile(target: Target, limit: float, now: datetime | None = None) -> ProfileSpec:
    """The permanent stack-level-0 ``TxDefaultProfile`` on connector 0 (``limit`` in planner units).

    Absolute from :data:`FAR_PAST`, one period, no ``duration``/``validTo``: in force at once
    whatever the charger's clock says, and whatever it is set to later. In W it is sized for one
    phase (any EV, at most ``limit`` A on each phase). ``relative_failsafe`` (learnt from a charger
    refusing it) and ``relative_profiles``: Relative without ``startSchedule``.
    ``now`` is not needed (kept for callers that pass it)."""
    del now
    if target.kind == "ac":
        target = target.with_phases_in_use(1)
    absolute = not ({"relative_failsafe", "relative_profiles"} & target.quirks)
    wire = to_wire(target, limit)
    return ProfileSpec(
        profile_id=FAILSAFE_PROFILE_ID,
        connector_id=0,
        stack_level=0,
        purpose="TxDefaultProfile",
        kind="Absolute" if absolute else "Relative",
        unit=target.unit,
        periods=(Period(0, wire, _phases(target)),),
        start_schedule=FAR_PAST if absolute else None,
        planner_limits=(from_wire(target, wire),),
    )


def control_profile_id(connector_id: int, purpose: Purpose) -> int:
    """Stable ids, so a refresh replaces the previous control profile instead of piling up."""
    return (200 if purpose == "TxProfile" else 100) + connector_id


class NoSafeProfile(Exception):
    """The charger's quirks leave no way to send this profile without endangering the fail-safe."""


def control_profile(
    target: Target,
    *,
    now: datetime,
    limit: float,
    schedule: Sequence[tuple[datetime, float]] = (),
    ttl_s: float,
    connector_id: int = 1,
    transaction_id: int | str | None = None,
    transaction_seen_at: datetime | None = None,
    transaction_started_at: datetime | None = None,
    max_periods: int | None = None,
    stack_level: int = CONTROL_STACK_LEVEL,
    clock_offset_s: float | None = None,
) -> ProfileSpec:
    """The expiring control profile: ``limit`` now, then ``schedule`` (planner units), until now + ttl.

    ``now`` and the schedule's times are on our clock; ``clock_offset_s`` is the charger's
    measured offset (``None``: unmeasured). Absolute: ``startSchedule`` = now + offset −
    :data:`BACKDATE_S` − a margin, ``validTo`` = now + offset + ttl (both on the charger's clock),
    ``duration`` to the same end. Relative (``relative_profiles``): counted from
    ``transaction_seen_at`` — when *we* received the transaction's start — for a TxProfile, else
    from now; ``transaction_started_at`` (the start on our clock, as far as the charger's stamp
    tells) only sets :attr:`ProfileSpec.expires_not_before`.

    Raises :class:`NoSafeProfile` when the only way to send it would replace the fail-safe (a
    stack-level-0-only charger without a transaction: nothing draws then, so nothing is lost).
    """
    quirks = target.quirks
    purpose: Purpose = "TxProfile" if transaction_id is not None else "TxDefaultProfile"
    if "stack_level_zero_only" in quirks:
        if purpose == "TxDefaultProfile":
            raise NoSafeProfile("stack_level_zero_only: a TxDefault control profile would replace the fail-safe")
        stack_level = 0
    conn = connector_id
    if purpose == "TxDefaultProfile" and "txdefault_on_connector_0" in quirks:
        conn = 0
    relative = "relative_profiles" in quirks
    offset = timedelta(seconds=clock_offset_s or 0.0)
    end = now + timedelta(seconds=ttl_s)  # our clock
    valid_to = end + offset  # the charger's clock
    if relative:
        seen = transaction_seen_at if purpose == "TxProfile" else None
        origin = min(seen, now) if seen is not None else now  # our clock: the charger counts from its tx start
        to_schedule = timedelta(0)
    else:
        margin = START_MARGIN_S + (UNKNOWN_OFFSET_S if clock_offset_s is None else 0.0)
        origin = now + offset - timedelta(seconds=BACKDATE_S + margin)  # the charger's clock
        to_schedule = offset
    duration = math.ceil(((end + to_schedule) - origin).total_seconds())
    points: list[tuple[int, float]] = [(0, to_wire(target, limit))]
    for when, value in sorted(schedule, key=lambda p: p[0]):
        if when <= now + timedelta(seconds=1) or when >= end:
            continue
        at = int(((when + to_schedule) - origin).total_seconds())
        if at <= points[-1][0]:
            continue
        points.append((at, to_wire(target, value)))
    merged: list[tuple[int, float]] = []
    for at, wire in points:
        if merged and merged[-1][1] == wire:
            continue
        merged.append((at, wire))
    if max_periods is not None and max_periods >= 1:
        merged = merged[:max_periods]
    phases = _phases(target)
    if relative:
        expires_at = origin + timedelta(seconds=duration)
        started = transaction_started_at if purpose == "TxProfile" else None
        earliest = min(started, origin) if started is not None else origin
        expires_not_before = min(earliest + timedelta(seconds=duration), expires_at)
    else:
        expires_at = min(origin + timedelta(seconds=duration), valid_to) - offset
        expires_not_before = expires_at
    return ProfileSpec(
        profile_id=control_profile_id(conn, purpose),
        connector_id=conn,
        stack_level=stack_level,
        purpose=purpose,
        kind="Relative" if relative else "Absolute",
        unit=target.unit,
        periods=tuple(Period(at, wire, phases) for at, wire in merged),
        start_schedule=None if relative else origin,
        duration_s=duration,
        transaction_id=transaction_id,
        planner_limits=tuple(from_wire(target, wire) for _, wire in merged),
        expires_at=expires_at,
        valid_to=valid_to,
        clock_offset_s=clock_offset_s,
        expires_not_before=expires_not_before,
    )


def _periods(spec: ProfileSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in spec.periods:
        item: dict[str, Any] = {"startPeriod": p.start_s, "limit": p.limit}
        if p.phases is not None:
            item["numberPhases"] = p.phases
        out.append(item)
    return out


def to_v16(spec: ProfileSpec) -> dict[str, Any]:
    """The ``csChargingProfiles`` object of a 1.6 SetChargingProfile (camelCase)."""
    schedule: dict[str, Any] = {"chargingRateUnit": spec.unit, "chargingSchedulePeriod": _periods(spec)}
    if spec.duration_s is not None:
        schedule["duration"] = spec.duration_s
    if spec.start_schedule is not None:
        schedule["startSchedule"] = to_ocpp(spec.start_schedule)
    profile: dict[str, Any] = {
        "chargingProfileId": spec.profile_id,
        "stackLevel": spec.stack_level,
        "chargingProfilePurpose": spec.purpose,
        "chargingProfileKind": spec.kind,
        "chargingSchedule": schedule,
    }
    if spec.valid_to is not None:
        profile["validTo"] = to_ocpp(spec.valid_to)
    if spec.transaction_id is not None:
        profile["transactionId"] = int(spec.transaction_id)
    return profile


def to_v201(spec: ProfileSpec, schedule_id: int = 1) -> dict[str, Any]:
    """The ``chargingProfile`` object of a 2.0.1 SetChargingProfile (camelCase)."""
    schedule: dict[str, Any] = {
        "id": schedule_id,
        "chargingRateUnit": spec.unit,
        "chargingSchedulePeriod": _periods(spec),
    }
    if spec.duration_s is not None:
        schedule["duration"] = spec.duration_s
    if spec.start_schedule is not None:
        schedule["startSchedule"] = to_ocpp(spec.start_schedule)
    purpose = "ChargingStationMaxProfile" if spec.purpose == "ChargePointMaxProfile" else spec.purpose
    profile: dict[str, Any] = {
        "id": spec.profile_id,
        "stackLevel": spec.stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": spec.kind,
        "chargingSchedule": [schedule],
    }
    if spec.valid_to is not None:
        profile["validTo"] = to_ocpp(spec.valid_to)
    if spec.transaction_id is not None:
        profile["transactionId"] = str(spec.transaction_id)
    return profile


def same_intent(a: ProfileSpec, b: ProfileSpec, deadband: float) -> bool:
    """True when ``b`` would not change what the charger does under ``a`` by more than ``deadband``.

    Compared in planner units: purpose, connector, transaction and unit equal; the same number of
    periods at (nearly) the same wall-clock times, each limit within the deadband.
    """
    if (a.purpose, a.connector_id, a.transaction_id, a.unit, a.stack_level) != (
        b.purpose,
        b.connector_id,
        b.transaction_id,
        b.unit,
        b.stack_level,
    ):
        return False
    if len(a.planner_limits) != len(b.planner_limits):
        return False
    shift = 0.0
    if a.start_schedule is not None and b.start_schedule is not None:
        shift = (b.start_schedule - a.start_schedule).total_seconds()
    for i, (pa, pb) in enumerate(zip(a.periods, b.periods, strict=True)):
        if i > 0 and abs((pa.start_s - shift) - pb.start_s) > 60:
            return False
        if pa.phases != pb.phases:  # a W limit sized for other phases is another limit per phase
            return False
        if abs(a.planner_limits[i] - b.planner_limits[i]) > deadband:
            return False
    return True


def lowers(a: ProfileSpec, b: ProfileSpec) -> bool:
    """True when some period of ``b`` allows less (planner units) than ``a`` allows at that moment.

    Periods are matched on the wall clock when both have a ``startSchedule``, else by their offset.
    A decrease of any size must go out (no deadband holds it back)."""
    if not a.planner_limits or not b.planner_limits:
        return bool(b.planner_limits)
    shift = 0.0
    if a.start_schedule is not None and b.start_schedule is not None:
        shift = (b.start_schedule - a.start_schedule).total_seconds()
    for pb, limit_b in zip(b.periods, b.planner_limits, strict=False):
        at = pb.start_s + shift  # on a's schedule
        limit_a = a.planner_limits[0]
        for pa, la in zip(a.periods, a.planner_limits, strict=False):
            if pa.start_s <= at:
                limit_a = la
        if limit_b < limit_a - 1e-9:
            return True
    return False
