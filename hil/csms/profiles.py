"""Charging profiles as a CSMS sends them (camelCase wire dicts), for 1.6 and 2.0.1.

``charging_profile("1.6", profile_id=7, purpose="ChargePointMaxProfile", limit=10.0)`` is a cap of
10 A per phase from now on; the 2.0.1 purpose names are mapped (``ChargePointMaxProfile`` ↔
``ChargingStationMaxProfile``), either name is accepted for either version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hil.chargers.composite import format_time

PURPOSES = ("ChargePointMaxProfile", "ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")


def purpose_name(version: str, purpose: str) -> str:
    """The version's name of a profile purpose."""
    if purpose not in PURPOSES:
        raise ValueError(f"charging profile purpose {purpose!r}: expected one of {', '.join(PURPOSES)}")
    if purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile"):
        return "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
    return purpose


def charging_profile(
    version: str,
    *,
    profile_id: int,
    purpose: str,
    limit: float | None = None,
    periods: list[tuple[int, float]] | None = None,
    unit: str = "A",
    stack_level: int = 0,
    kind: str = "Absolute",
    start: datetime | None = None,
    duration_s: int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    transaction_id: int | str | None = None,
    number_phases: int | None = None,
) -> dict[str, Any]:
    """One profile on the wire: one period of ``limit`` from 0, or ``periods`` as
    (startPeriod [s], limit) — in A per phase or W (``unit``). 1.6 limits are rounded to 0.1
    (its schema's ``multipleOf``). ``start``: the schedule's ``startSchedule`` (needed for
    ``Absolute`` in 2.0.1)."""
    if unit not in ("A", "W"):
        raise ValueError(f"charging rate unit {unit!r}: expected A or W")
    if (limit is None) == (periods is None):
        raise ValueError("give either limit or periods")
    items: list[dict[str, Any]] = []
    for offset, value in periods if periods is not None else [(0, float(limit or 0.0))]:
        item: dict[str, Any] = {"startPeriod": int(offset), "limit": round(value, 1) if version == "1.6" else value}
        if number_phases is not None:
            item["numberPhases"] = number_phases
        items.append(item)
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": items}
    if duration_s is not None:
        schedule["duration"] = duration_s
    if start is not None:
        schedule["startSchedule"] = format_time(start)
    out: dict[str, Any] = {"stackLevel": stack_level, "chargingProfileKind": kind}
    if valid_from is not None:
        out["validFrom"] = format_time(valid_from)
    if valid_to is not None:
        out["validTo"] = format_time(valid_to)
    name = purpose_name(version, purpose)
    if version == "1.6":
        out.update(chargingProfileId=profile_id, chargingProfilePurpose=name, chargingSchedule=schedule)
        if transaction_id is not None:
            out["transactionId"] = int(transaction_id)
    else:
        out.update(id=profile_id, chargingProfilePurpose=name, chargingSchedule=[{"id": profile_id, **schedule}])
        if transaction_id is not None:
            out["transactionId"] = str(transaction_id)
    return out
