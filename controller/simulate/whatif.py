"""Capacity planning: grow the fleet or change the connection, then simulate again."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from controller.model.site import Charger, Tariff
from controller.simulate.scenario import Scenario, ScenarioSession


def with_grid_limit(scenario: Scenario, limit_a: float) -> Scenario:
    site = dataclasses.replace(scenario.site, grid=dataclasses.replace(scenario.site.grid, limit_a=limit_a))
    return dataclasses.replace(scenario, site=site)


def scale_sessions(scenario: Scenario, factor: float) -> Scenario:
    """Repeat the session pattern with ``factor`` times as many vehicles.

    Each extra vehicle is a copy of an existing session (cycling through them in order) on a new
    charger of the same type and circuit, named ``CHARGER+K``: more vehicles need more chargers.
    """
    if factor < 1:
        raise ValueError("--scale-sessions must be at least 1")
    base = list(scenario.sessions)
    extra = round(len(base) * factor) - len(base)
    chargers: list[Charger] = list(scenario.site.chargers)
    sessions: list[ScenarioSession] = list(base)
    for k in range(extra):
        original = base[k % len(base)]
        copy_no = k // len(base) + 1
        charger = scenario.site.charger(original.charger_id)
        new_id = f"{charger.id}+{copy_no}"
        if all(c.id != new_id for c in chargers):
            chargers.append(dataclasses.replace(charger, id=new_id))
        sessions.append(dataclasses.replace(original, index=len(sessions), charger_id=new_id, vehicle_id=None))
    site = dataclasses.replace(scenario.site, chargers=tuple(chargers))
    return dataclasses.replace(scenario, site=site, sessions=tuple(sessions))


def with_pv_factor(scenario: Scenario, factor: float) -> Scenario:
    """The real PV output is ``factor`` × the profile; the forecast the planner is given stays the profile."""
    return dataclasses.replace(scenario, pv_factor=factor)


def with_tariff(scenario: Scenario, tariff: Tariff, prices: tuple[tuple[datetime, float], ...] = ()) -> Scenario:
    """The scenario with another tariff (and dated prices): ``Tariff()`` and ``()`` price nothing."""
    site = dataclasses.replace(scenario.site, tariff=tariff)
    return dataclasses.replace(scenario, site=site, prices=prices)
