"""Payloads as the CSMS sends them (camelCase), a hand-moved clock, and response checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.chargers.clock import to_ocpp
from tests.chargers.schemas import validate

T0 = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)
"""A Wednesday, 14:00 in Amsterdam, far from a DST change."""

Periods = Sequence[tuple[int, float] | tuple[int, float, int]]


class HandClock:
    """Our clock in tests: stands still until moved."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def profile(
    version: str,
    pid: int,
    purpose: str = "TxDefaultProfile",
    *,
    stack: int = 0,
    kind: str = "Absolute",
    unit: str = "A",
    periods: Periods = ((0, 16.0),),
    start: datetime | None = T0,
    duration: int | None = None,
    tx: str | int | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    recurrency: str | None = None,
) -> dict[str, Any]:
    """A chargingProfile object (1.6 ``csChargingProfiles`` or 2.0.1 ``chargingProfile``)."""
    sched: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [
            {"startPeriod": p[0], "limit": p[1], **({"numberPhases": p[2]} if len(p) > 2 else {})}  # type: ignore[misc]
            for p in periods
        ],
    }
    if start is not None and kind != "Relative":
        sched["startSchedule"] = to_ocpp(start)
    if duration is not None:
        sched["duration"] = duration
    if version == "2.0.1" and purpose == "ChargePointMaxProfile":
        purpose = "ChargingStationMaxProfile"
    out: dict[str, Any] = {
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
    }
    if version == "1.6":
        out["chargingProfileId"] = pid
        out["chargingSchedule"] = sched
    else:
        out["id"] = pid
        out["chargingSchedule"] = [{"id": 1, **sched}]
    if tx is not None:
        out["transactionId"] = int(tx) if version == "1.6" else str(tx)
    if valid_from is not None:
        out["validFrom"] = to_ocpp(valid_from)
    if valid_to is not None:
        out["validTo"] = to_ocpp(valid_to)
    if recurrency is not None:
        out["recurrencyKind"] = recurrency
    return out


def set_request(version: str, connector: int, prof: dict[str, Any]) -> dict[str, Any]:
    """A SetChargingProfile request payload."""
    if version == "1.6":
        return {"connectorId": connector, "csChargingProfiles": prof}
    return {"evseId": connector, "chargingProfile": prof}


def checked(version: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` after checking it against the OCPP response schema (date-times included)."""
    validate(version, action, "response", payload)
    return payload
