"""Formatting for the terminal status page: the site's local clock, durations, numbers, load bars.

Pure functions of their arguments (times relative to ``status.now``, never to the wall clock);
:mod:`controller.client.view` lays them out. Every unknown value (``None``) shows as ``—``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.text import Text

from controller.api.models import StatusResponse

NONE = "—"


class LocalClock:
    """Times in the site's zone, and durations relative to ``status.now``."""

    def __init__(self, status: StatusResponse) -> None:
        zone = _zone(status.timezone)
        self.zone: tzinfo = zone or UTC
        self.zone_name = status.timezone if zone is not None else f"UTC (unknown time zone {status.timezone!r})"
        self.now = status.now.astimezone(self.zone)

    def at(self, when: datetime | None, *, seconds: bool = True) -> str:
        """``HH:MM:SS`` (``HH:MM``) today, ``Tue 06:30`` within a week, else the date and time."""
        if when is None:
            return NONE
        local = when.astimezone(self.zone)
        if local.date() == self.now.date():
            return local.strftime("%H:%M:%S" if seconds else "%H:%M")
        if abs(local - self.now) < timedelta(days=6):
            return local.strftime("%a %H:%M")
        return local.strftime("%Y-%m-%d %H:%M")

    def ago(self, when: datetime | None) -> str:
        """``12 s ago`` / ``in 3 h 5 min``."""
        if when is None:
            return NONE
        seconds = (self.now - when).total_seconds()
        return f"{duration(seconds)} ago" if seconds >= 0 else f"in {duration(-seconds)}"


def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def duration(seconds: float) -> str:
    """A short human duration: ``0.4 s``, ``42 s``, ``5 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def num(value: float | None, digits: int = 1, unit: str = "") -> str:
    """``12.3`` (``12.3 A`` with a unit), ``—`` for ``None``."""
    if value is None:
        return NONE
    text = f"{value:.{digits}f}"
    return f"{text} {unit}" if unit else text


def triple(values: Sequence[float] | None, digits: int = 1) -> str:
    """Per-phase values as ``16.0 15.8 0.0``, ``—`` when unknown."""
    if values is None:
        return NONE
    return " ".join(f"{v:.{digits}f}" for v in values)


def load_style(fraction: float) -> str:
    """Green below 80 % of the usable limit, yellow up to it, red at or above it."""
    if fraction >= 1.0:
        return "bold red"
    if fraction >= 0.8:
        return "yellow"
    return "green"


def bar(value: float | None, cap: float, width: int = 20, *, planned: bool = False) -> Text:
    """A load bar of ``value`` against ``cap``; planned (not measured) loads are drawn ``▒``."""
    if value is None:
        return Text("·" * width, style="dim")
    fraction = value / cap if cap > 0 else (0.0 if value <= 0 else float("inf"))
    filled = round(min(max(fraction, 0.0), 1.0) * width)
    text = Text("▒" * filled if planned else "█" * filled, style=load_style(fraction))
    text.append("░" * (width - filled), style="dim")
    return text


def ready_mark(will_meet: bool | None) -> Text:
    if will_meet is None:
        return Text(NONE, style="dim")
    return Text("✓", style="bold green") if will_meet else Text("✗", style="bold red")


CLOCK_WARN_S = 60.0
"""A charger clock further off than this is worth fixing (the alert DepotChargerClockOffset's threshold)."""


def offset_size(seconds: float) -> str:
    """The size of a clock offset: ``0.3 s``, ``120 s`` up to ten minutes, then ``2 h 5 min``."""
    seconds = abs(seconds)
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 600 else duration(seconds)


def clock_offset(offset_s: float) -> str:
    """``+0.3 s`` (the charger is ahead of us), ``-120 s`` (behind)."""
    return ("+" if offset_s >= 0 else "-") + offset_size(offset_s)


COMMISSIONED_STYLE = {"passed": "green", "failed": "bold red", "running": "bold cyan", "never": "dim"}


def commissioned_mark(state: str) -> Text:
    """A charger's last commissioning (``depotctl commission``), in the status's OCPP column:
    ``comm. passed``, ``comm. FAILED`` (a check failed or the run was aborted), ``comm. running``,
    ``comm. never``."""
    return Text(f"comm. {state.upper() if state == 'failed' else state}", style=COMMISSIONED_STYLE.get(state, ""))
