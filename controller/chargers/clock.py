"""Clocks and OCPP date-time formatting. Logic never reads the time itself: it is handed a clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time as a timezone-aware UTC datetime."""


def utc_now() -> datetime:
    """The real clock (the only place that reads it)."""
    return datetime.now(UTC)


def to_ocpp(when: datetime) -> str:
    """RFC 3339 UTC with milliseconds and ``Z``, e.g. ``2026-01-02T03:04:05.678Z``."""
    if when.tzinfo is None:
        raise ValueError("naive datetime: OCPP times must be timezone-aware")
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_ocpp(text: str) -> datetime:
    """Parse an OCPP date-time; a missing zone is taken as UTC (seen in the field)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
