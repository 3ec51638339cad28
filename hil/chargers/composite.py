"""Charging-profile semantics as a charge point implements them (OCPP 1.6 §3.13, 2.0.1 K).

Pure: profiles are installed with the time passed in, and the composite limit is a function of
the time, the connector and its transaction. What is modelled:

* validFrom / validTo; Absolute (``startSchedule``), Relative (from the transaction start, or from
  installation without a transaction), Recurring Daily/Weekly; ``duration`` expiry; periods;
* among valid profiles of one purpose the highest stack level whose schedule covers the moment
  wins; a profile with the same id, or the same stack level + purpose + connector, replaces;
* TxProfile (matching the running transaction) over TxDefault (connector-specific or connector 0);
* ChargePointMax (connector 0) caps the result, unless the charger ignores it;
* TxProfiles are removed when their transaction ends;
* W limits are turned into A per phase with the nominal voltage and ``numberPhases`` (default 3).

Nothing valid → ``None`` (the charger is unconstrained).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


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


def schedule_limit(p: SimProfile, now: datetime, tx: RunningTx | None, voltage_v: float) -> float | None:
    """The profile's limit at ``now`` in A per phase, or ``None`` when it does not apply now."""
    if p.valid_from is not None and now < p.valid_from:
        return None
    if p.valid_to is not None and now >= p.valid_to:
        return None
    if p.kind == "Relative":
        start = tx.started_at if tx is not None else p.installed_at
    else:
        start = p.start_schedule or p.installed_at
    if start is None:
        return None
    if p.kind == "Recurring" and now >= start:
        cycle = timedelta(days=7 if p.recurrency == "Weekly" else 1)
        start = start + ((now - start) // cycle) * cycle
    elapsed = (now - start).total_seconds()
    if elapsed < 0 or (p.duration_s is not None and elapsed >= p.duration_s):
        return None
    chosen: tuple[int, float, int | None] | None = None
    for period in p.periods:
        if period[0] <= elapsed:
            chosen = period
    if chosen is None:
        return None
    _, limit, phases = chosen
    if p.unit == "W":
        return limit / (voltage_v * (phases or 3))
    return limit


class ProfileStore:
    """The profiles installed on one charge point."""

    def __init__(self, voltage_v: float = 230.0, ignores_charge_point_max: bool = False) -> None:
        self.voltage_v = voltage_v
        self.ignores_charge_point_max = ignores_charge_point_max
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

    def _best(self, purpose: str, connectors: tuple[int, ...], now: datetime, tx: RunningTx | None) -> float | None:
        best: tuple[int, int, float] | None = None
        for q in self.profiles:
            if q.purpose != purpose or q.connector_id not in connectors:
                continue
            if purpose == "TxProfile" and (tx is None or (q.transaction_id not in (None, tx.transaction_id))):
                continue
            limit = schedule_limit(q, now, tx, self.voltage_v)
            if limit is None:
                continue
            key = (q.stack_level, 1 if q.connector_id else 0, limit)
            if best is None or key[:2] > best[:2]:
                best = key
        return best[2] if best is not None else None

    def composite_a(self, now: datetime, connector_id: int, tx: RunningTx | None) -> float | None:
        """Composite limit [A per phase] on a connector, ``None`` = unconstrained."""
        limit = self._best("TxProfile", (connector_id,), now, tx) if tx is not None else None
        if limit is None:
            limit = self._best("TxDefaultProfile", (connector_id, 0), now, tx)
        if not self.ignores_charge_point_max:
            cap = self._best("ChargePointMaxProfile", (0,), now, tx)
            if cap is not None:
                limit = cap if limit is None else min(limit, cap)
        return limit


def composite_schedule(
    store: ProfileStore,
    start: datetime,
    duration_s: int,
    connector_id: int,
    tx: RunningTx | None,
    max_a: float,
    step_s: int = 1,
) -> list[tuple[int, float]]:
    """The composite limit over ``[start, start + duration_s)`` as (offset [s], A per phase) periods,
    sampled every ``step_s`` and merged; unconstrained counts as ``max_a``."""
    periods: list[tuple[int, float]] = []
    for offset in range(0, max(1, duration_s), step_s):
        limit = store.composite_a(start + timedelta(seconds=offset), connector_id, tx)
        value = round(max_a if limit is None else min(limit, max_a), 1)
        if not periods or periods[-1][1] != value:
            periods.append((offset, value))
    return periods
