"""GetCompositeSchedule answered from the CSMS's stored profiles (:meth:`CapBook.composite`).

The schedule runs from ``now`` (our clock) for ``duration_s``, in the unit asked (else A for an AC
charger, W for DC), limits floored to 0.1 (the 1.6 schema's ``multipleOf``), each period from a
whole second (a change within a second is reported from the next one). Where no profile limits,
the charger's own maximum (:class:`ChargerRating`) is reported; when that is unknown too there is
no honest number to give and :class:`~.caps_profile.Refused` is raised (the book answers
``Rejected``). A and W are converted with the rating's phases and voltage per phase (an A period
with ``numberPhases`` on at most that many phases).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from controller.chargers.clock import to_ocpp
from controller.upstream.caps_profile import Refused, Version
from controller.upstream.caps_schedule import Rate, Stack, combined_steps, floor_tenth


@dataclass(frozen=True)
class ChargerRating:
    """What the book may know of a charger (optional: :class:`~.caps.CapBook` ``ratings``).

    ``volts_per_phase``: W per A of one phase's current (a line-to-line charger's line-to-line
    voltage); with ``phases`` it turns A into W and back in GetCompositeSchedule answers.
    ``max_a`` / ``max_kw``: its own maximum, reported where no cap applies. ``connectors``: how
    many it has (``None``: not checked)."""

    kind: Literal["ac", "dc"] = "ac"
    phases: int = 3
    volts_per_phase: float = 230.0
    max_a: float | None = None
    max_kw: float | None = None
    connectors: int | None = None

    def unlimited(self, unit: Literal["A", "W"]) -> float | None:
        """The charger's maximum in ``unit`` (A per phase or W in total), None if unknown."""
        full_w_per_a = self.volts_per_phase * self.phases
        if unit == "A":
            if self.max_a is not None:
                return self.max_a
            return None if self.max_kw is None else self.max_kw * 1000.0 / full_w_per_a
        if self.max_kw is not None:
            return self.max_kw * 1000.0
        return None if self.max_a is None else self.max_a * full_w_per_a

    def convert(self, rate: Rate, unit: Literal["A", "W"]) -> float:
        """``rate`` in ``unit``: A per phase ↔ W on the phases it may use."""
        if rate.unit == unit:
            return rate.limit
        if unit == "W":
            return rate.limit * self.volts_per_phase * min(rate.phases or self.phases, self.phases)
        return rate.limit / (self.volts_per_phase * self.phases)


def composite_payload(
    version: Version,
    stack: Stack,
    rating: ChargerRating,
    *,
    connector: int,
    now: datetime,
    duration_s: int,
    unit: Literal["A", "W"] | None,
) -> dict[str, Any]:
    """The Accepted GetCompositeSchedule response payload for ``stack`` (module docstring)."""
    unit_out: Literal["A", "W"] = unit if unit is not None else ("W" if rating.kind == "dc" else "A")
    unlimited = rating.unlimited(unit_out)

    def convert(rate: Rate) -> float:
        return rating.convert(rate, unit_out)

    periods: list[dict[str, Any]] = []
    for at, value in combined_steps(stack, now, now + timedelta(seconds=duration_s), convert, convert):
        if value is None and unlimited is None:
            raise Refused("NoLimit", f"no cap applies from {to_ocpp(at)} and the charger's maximum is unknown")
        limit = floor_tenth(value if value is not None else unlimited or 0.0)
        offset_s = -int(-(at - now).total_seconds() // 1)  # whole seconds, rounded up
        if periods and periods[-1]["startPeriod"] >= offset_s:
            periods[-1]["limit"] = min(periods[-1]["limit"], limit)
        elif not periods or periods[-1]["limit"] != limit:
            periods.append({"startPeriod": offset_s, "limit": limit})
    start = to_ocpp(now)
    if version == "1.6":
        return {
            "status": "Accepted", "connectorId": connector, "scheduleStart": start,
            "chargingSchedule": {"duration": duration_s, "startSchedule": start, "chargingRateUnit": unit_out,
                                 "chargingSchedulePeriod": periods},
        }
    return {
        "status": "Accepted",
        "schedule": {"evseId": connector, "duration": duration_s, "scheduleStart": start,
                     "chargingRateUnit": unit_out, "chargingSchedulePeriod": periods},
    }
