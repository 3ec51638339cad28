"""Charging-profile semantics as a charge point implements them (OCPP 1.6 §3.13, 2.0.1 K).

Pure: profiles are installed with the time passed in, and the composite limit is a function of
the time, the connector and its transaction. Every time here is the *charge point's* own clock
(:meth:`hil.chargers.sim.SimCharger.charger_now`), which may be minutes off the central system's.
What is modelled:

* validFrom / validTo; Absolute (``startSchedule``), Relative (from the transaction start, or from
  installation without a transaction), Absolute without ``startSchedule`` (1.6: relative to the
  start of charging, i.e. as Relative), Recurring Daily/Weekly; a ``startSchedule`` in the future
  is not in force yet;
* what happens when a schedule's ``duration`` is over: ``"fall_back"`` (spec: the next valid
  profile below, or nothing) or ``"hold_last"`` (seen in the field: the last period stays in
  force, until ``validTo``);
* among valid profiles of one purpose the highest stack level whose schedule covers the moment
  wins; a profile with the same id, or the same stack level + purpose + connector, replaces;
* TxProfile (matching the running transaction) over TxDefault (connector-specific or connector 0):
  the TxDefault is ignored while a TxProfile is in force;
* ChargePointMax (connector 0) caps the result (shared by the connectors drawing), unless the
  charger ignores it;
* TxProfiles are removed when their transaction ends;
* W limits are turned into A per phase with the nominal voltage and the phases the EV actually
  uses (``numberPhases`` of the period only caps them) — what real chargers do; a 1-phase EV given
  11040 W at 230 V may take 48 A on its phase. ``w_conversion="number_phases"`` is the friendly
  alternative (divide by ``numberPhases``, default 3) that some firmwares implement.

Nothing valid → ``None`` (the charger is unconstrained).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

ScheduleEnd = Literal["fall_back", "hold_last"]
WConversion = Literal["phases_in_use", "number_phases"]


@dataclass(frozen=True)
class SimProfile:
    profile_id: int
    connector_id: int
    stack_level: int
    purpose: str  # ChargePointMaxProfile | TxDefaultProfile | TxProfile (2.0.1 names mapped)
    kind: str
    unit: str
    periods: tuple[tuple[int, float, int | None], ...]
    start_schedule: datetime | None = None
    duration_s: int | None = None
    recurrency: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None
    installed_at: datetime | None = None


def parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dt(value: Any) -> datetime | None:
    return parse_time(str(value)) if value else None


def _periods(raw: list[dict[str, Any]]) -> tuple[tuple[int, float, int | None], ...]:
    return tuple(
        (int(p["start_period"]), float(p["limit"]), int(p["number_phases"]) if p.get("number_phases") else None)
        for p in raw
    )


def from_v16(connector_id: int, p: dict[str, Any], now: datetime) -> SimProfile:
    """A snake_case ``cs_charging_profiles`` (as ``ocpp`` handlers receive it)."""
    sched = p["charging_schedule"]
    return SimProfile(
        profile_id=int(p["charging_profile_id"]),
        connector_id=connector_id,
        stack_level=int(p["stack_level"]),
        purpose=str(p["charging_profile_purpose"]),
        kind=str(p["charging_profile_kind"]),
        unit=str(sched["charging_rate_unit"]),
        periods=_periods(sched["charging_schedule_period"]),
        start_schedule=_dt(sched.get("start_schedule")),
        duration_s=sched.get("duration"),
        recurrency=p.get("recurrency_kind"),
        valid_from=_dt(p.get("valid_from")),
        valid_to=_dt(p.get("valid_to")),
        transaction_id=str(p["transaction_id"]) if p.get("transaction_id") is not None else None,
        installed_at=now,
    )


def from_v201(evse_id: int, p: dict[str, Any], now: datetime) -> SimProfile:
    """A snake_case 2.0.1 ``charging_profile`` (first schedule used)."""
    sched = p["charging_schedule"][0]
    purpose = str(p["charging_profile_purpose"])
    if purpose == "ChargingStationMaxProfile":
        purpose = "ChargePointMaxProfile"
    return SimProfile(
        profile_id=int(p["id"]),
        connector_id=evse_id,
        stack_level=int(p["stack_level"]),
        purpose=purpose,
        kind=str(p["charging_profile_kind"]),
        unit=str(sched["charging_rate_unit"]),
        periods=_periods(sched["charging_schedule_period"]),
        start_schedule=_dt(sched.get("start_schedule")),
        duration_s=sched.get("duration"),
        recurrency=p.get("recurrency_kind"),
        valid_from=_dt(p.get("valid_from")),
        valid_to=_dt(p.get("valid_to")),
        transaction_id=str(p["transaction_id"]) if p.get("transaction_id") is not None else None,
        installed_at=now,
    )


@dataclass(frozen=True)
class RunningTx:
    transaction_id: str
    started_at: datetime
    """On the charge point's clock."""


@dataclass(frozen=True)
class Rate:
    """A limit as a schedule period states it: ``value`` in ``unit`` (A per phase, or W in total)."""

    value: float
    unit: str
    number_phases: int | None = None

    def amps(self, phases: int, voltage_v: float, w_conversion: WConversion = "phases_in_use") -> float:
        """A per phase for an EV on ``phases`` phases (already capped by ``number_phases``)."""
        if self.unit != "W":
            return self.value
        divisor = (self.number_phases or 3) if w_conversion == "number_phases" else phases
        return self.value / (voltage_v * max(1, divisor))


def schedule_start(p: SimProfile, tx: RunningTx | None) -> datetime | None:
    """When the profile's schedule starts on the charger's clock (before any recurrence)."""
    if p.kind == "Relative" or (p.kind == "Absolute" and p.start_schedule is None):
        # relative to the start of charging; without a transaction: from its installation
        return tx.started_at if tx is not None else p.installed_at
    return p.start_schedule or p.installed_at


def schedule_rate(p: SimProfile, now: datetime, tx: RunningTx | None, *, hold_last: bool = False) -> Rate | None:
    """The period of ``p`` in force at ``now`` (charger's clock), or ``None`` when it does not apply."""
    if p.valid_from is not None and now < p.valid_from:
        return None
    if p.valid_to is not None and now >= p.valid_to:
        return None
    start = schedule_start(p, tx)
    if start is None:
        return None
    if p.kind == "Recurring" and now >= start:
        cycle = timedelta(days=7 if p.recurrency == "Weekly" else 1)
        start = start + ((now - start) // cycle) * cycle
    elapsed = (now - start).total_seconds()
    if elapsed < 0:
        return None  # starts in the charger's future: not in force yet
    if p.duration_s is not None and elapsed >= p.duration_s:
        if not hold_last:
            return None
        elapsed = max(0.0, p.duration_s - 1e-6)  # the last period stays in force
    chosen: tuple[int, float, int | None] | None = None
    for period in p.periods:
        if period[0] <= elapsed:
            chosen = period
    if chosen is None:
        return None
    _, limit, phases = chosen
    return Rate(limit, p.unit, phases)


def schedule_limit(
    p: SimProfile,
    now: datetime,
    tx: RunningTx | None,
    voltage_v: float,
    phases: int = 3,
    *,
    hold_last: bool = False,
    w_conversion: WConversion = "phases_in_use",
) -> float | None:
    """The profile's limit at ``now`` in A per phase for an EV on ``phases`` phases (capped by the
    period's ``numberPhases``), or ``None`` when it does not apply now."""
    rate = schedule_rate(p, now, tx, hold_last=hold_last)
    if rate is None:
        return None
    used = min(phases, rate.number_phases) if rate.number_phases else phases
    return rate.amps(used, voltage_v, w_conversion)


@dataclass(frozen=True)
class Composite:
    """What a connector's profiles allow at one moment."""

    limit_a: float | None
    """A per phase on each phase in use; ``None`` = unconstrained."""
    phases: int
    """Phases the EV may use (its own, capped by the charger's and by ``numberPhases``)."""
    limit_w: float | None = None
    """The same limit as power over the phases in use [W]; ``None`` = unconstrained."""


class ProfileStore:
    """The profiles installed on one charge point."""

    def __init__(
        self,
        voltage_v: float = 230.0,
        ignores_charge_point_max: bool = False,
        *,
        schedule_end: ScheduleEnd = "fall_back",
        w_conversion: WConversion = "phases_in_use",
    ) -> None:
        self.voltage_v = voltage_v
        self.ignores_charge_point_max = ignores_charge_point_max
        self.schedule_end: ScheduleEnd = schedule_end
        self.w_conversion: WConversion = w_conversion
        self.profiles: list[SimProfile] = []

    def install(self, p: SimProfile) -> None:
        self.profiles = [
            q
            for q in self.profiles
            if q.profile_id != p.profile_id
            and not (q.stack_level == p.stack_level and q.purpose == p.purpose and q.connector_id == p.connector_id)
        ]
        self.profiles.append(p)

    def clear(
        self,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> int:
        before = len(self.profiles)
        self.profiles = [
            q
            for q in self.profiles
            if not (
                (profile_id is None or q.profile_id == profile_id)
                and (connector_id is None or q.connector_id == connector_id)
                and (purpose is None or q.purpose == purpose)
                and (stack_level is None or q.stack_level == stack_level)
            )
        ]
        return before - len(self.profiles)

    def transaction_ended(self, connector_id: int) -> None:
        self.profiles = [q for q in self.profiles if not (q.purpose == "TxProfile" and q.connector_id == connector_id)]

    def _best(self, purpose: str, connectors: tuple[int, ...], now: datetime, tx: RunningTx | None) -> Rate | None:
        """The period in force of the winning profile of ``purpose``: highest stack level, then the
        connector-specific one over connector 0."""
        hold_last = self.schedule_end == "hold_last"
        best: tuple[int, int, Rate] | None = None
        for q in self.profiles:
            if q.purpose != purpose or q.connector_id not in connectors:
                continue
            if purpose == "TxProfile" and (tx is None or (q.transaction_id not in (None, tx.transaction_id))):
                continue
            rate = schedule_rate(q, now, tx, hold_last=hold_last)
            if rate is None:
                continue
            key = (q.stack_level, 1 if q.connector_id else 0, rate)
            if best is None or key[:2] > best[:2]:
                best = key
        return best[2] if best is not None else None

    def composite(
        self, now: datetime, connector_id: int, tx: RunningTx | None, phases: int = 3, cp_max_share: int = 1
    ) -> Composite:
        """The composite on a connector at ``now`` (charger's clock) for an EV that can use
        ``phases`` phases; ``cp_max_share``: how many connectors share the ChargePointMax."""
        rate = self._best("TxProfile", (connector_id,), now, tx) if tx is not None else None
        if rate is None:
            rate = self._best("TxDefaultProfile", (connector_id, 0), now, tx)
        cap = None if self.ignores_charge_point_max else self._best("ChargePointMaxProfile", (0,), now, tx)
        used = phases
        for r in (rate, cap):
            if r is not None and r.number_phases:
                used = min(used, r.number_phases)
        used = max(1, used)
        limit: float | None = None
        if rate is not None:
            limit = rate.amps(used, self.voltage_v, self.w_conversion)
        if cap is not None:
            cap_a = cap.amps(used, self.voltage_v, self.w_conversion) / max(1, cp_max_share)
            limit = cap_a if limit is None else min(limit, cap_a)
        limit_w = None if limit is None else limit * self.voltage_v * used
        return Composite(limit, used, limit_w)

    def composite_a(self, now: datetime, connector_id: int, tx: RunningTx | None, phases: int = 3) -> float | None:
        """Composite limit [A per phase] on a connector, ``None`` = unconstrained."""
        return self.composite(now, connector_id, tx, phases).limit_a


def composite_schedule(
    store: ProfileStore,
    start: datetime,
    duration_s: int,
    connector_id: int,
    tx: RunningTx | None,
    max_a: float,
    step_s: int = 1,
    phases: int = 3,
    cp_max_share: int = 1,
) -> list[tuple[int, float]]:
    """The composite limit over ``[start, start + duration_s)`` (charger's clock) as (offset [s],
    A per phase) periods, sampled every ``step_s`` and merged; unconstrained counts as ``max_a``."""
    periods: list[tuple[int, float]] = []
    for offset in range(0, max(1, duration_s), step_s):
        limit = store.composite(start + timedelta(seconds=offset), connector_id, tx, phases, cp_max_share).limit_a
        value = round(max_a if limit is None else min(limit, max_a), 1)
        if not periods or periods[-1][1] != value:
            periods.append((offset, value))
    return periods
