"""Events the central system reports to whoever listens (the daemon, metrics, logs)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

EventKind = Literal[
    "refused",
    "connected",
    "replaced",
    "disconnected",
    "booted",
    "status",
    "transaction_started",
    "transaction_ended",
    "meter_values",
    "ev_needs",
    "capabilities",
    "failsafe_installed",
    "profile_accepted",
    "profile_rejected",
    "quirk_learned",
    "security_event",
]


@dataclass(frozen=True)
class ChargerEvent:
    kind: EventKind
    charger_id: str
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[ChargerEvent], None]


def ignore(_event: ChargerEvent) -> None:
    return None
