"""Times of day and local date-times as a site file writes them (``"05:30"``, ``"2026-03-03T05:30"``)."""

from __future__ import annotations

import re
from datetime import datetime, time

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def is_hhmm(text: str) -> bool:
    return bool(_HHMM.match(text))


def hhmm_time(text: str) -> time:
    """``"05:30"`` → 05:30; assumes :func:`is_hhmm`."""
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def parse_local_datetime(text: str) -> datetime | None:
    """An ISO date-time without offset (site-local), or None if it is not one."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is None and "T" in text.upper() else None
