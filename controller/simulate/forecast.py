"""The day-ahead base-load forecast the lp policy is given: the daily pattern, not the surprises.

A running daemon learns the base load of each metered node from its history (the same time
yesterday). In a scenario the daily steps of a profile (``at: "HH:MM"``) are exactly that pattern;
one-off dated steps (``at: "2026-03-02T19:00"``) are not in it — they stay surprises, handled by the
fast loop and the next plan.

The PV forecast (:func:`pv_day_ahead`) is the same for the PV profile: its daily steps, a perfect
day-ahead forecast of them — unless the scenario's ``pv_factor`` makes the real output differ (a
cloudy day the forecast did not see). The base-load forecast is the non-EV load itself (PV not taken
off: the PV forecast comes beside it, in ``Snapshot.pv_forecast_kw``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from controller.model.snapshot import PhaseCurrents
from controller.simulate.scenario import KwProfile, LoadProfile, Scenario

Steps = tuple[tuple[datetime, PhaseCurrents], ...]


def _daily_steps(scenario: Scenario, profile: LoadProfile, now: datetime, hours: float) -> Steps:
    if not profile.daily:
        return ()
    daily_only = LoadProfile(daily=profile.daily)
    local_now = scenario.local(now)
    local_end = local_now + timedelta(hours=hours)
    points = [local_now, *daily_only.change_points(local_now, local_end)]
    tz = scenario.tz
    utc = now.tzinfo
    return tuple((p.replace(tzinfo=tz).astimezone(utc), daily_only.at(p)) for p in sorted(set(points)))


def day_ahead(scenario: Scenario, now: datetime, metered: tuple[str, ...]) -> dict[str, Steps]:
    hours = scenario.site.control.horizon_h
    out: dict[str, Steps] = {}
    for node in metered:
        profile = scenario.base_load if node == "grid" else scenario.circuit_base_load.get(node)
        if profile is None:
            continue
        steps = _daily_steps(scenario, profile, now, hours)
        if steps:
            out[node] = steps
    return out


def pv_day_ahead(scenario: Scenario, now: datetime) -> tuple[tuple[datetime, float], ...]:
    """The PV forecast over the horizon from ``now``: steps ``(from, kW)`` of the profile's daily steps."""
    if not scenario.pv.daily:
        return ()
    daily_only = KwProfile(daily=scenario.pv.daily)
    local_now = scenario.local(now)
    local_end = local_now + timedelta(hours=scenario.site.control.horizon_h)
    points = [local_now, *daily_only.change_points(local_now, local_end)]
    tz = scenario.tz
    utc = now.tzinfo
    return tuple((p.replace(tzinfo=tz).astimezone(utc), daily_only.at(p)) for p in sorted(set(points)))
