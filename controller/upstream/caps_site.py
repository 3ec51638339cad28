"""The site's chargers as the cap book needs them: ratings, and a session's units for its caps.

The voltages come from the site's phasor model (:func:`controller.chargers.profiles.watts_per_a`):
W per A of the draw with the phases in use — a line-to-line charger's line-to-line voltage, a
single-phase vehicle on a three-phase charger of a delta bus between two lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from controller.chargers.profiles import watts_per_a
from controller.model.site import Charger, Site
from controller.upstream.caps_composite import ChargerRating


@dataclass(frozen=True)
class SessionUnits:
    """What :meth:`~controller.upstream.caps.CapBook.cap_steps` needs to size a session's cap."""

    unit: Literal["A", "kW"]
    phases_used: int
    voltage_v: float


def session_units(site: Site, charger: Charger, phases_used: int | None) -> SessionUnits:
    """AC: A per phase on the phases the session uses (the charger's wired phases while unknown:
    a W cap then gives the lower current per phase — safe whether the vehicle uses one phase or
    all), at the W per A of that draw per phase. DC: kW, an A cap taken on every phase of the
    charger's AC input at its voltage per phase."""
    wired = max(1, charger.phases)
    per_used = watts_per_a(site, charger)
    if charger.kind == "dc":
        return SessionUnits("kW", wired, per_used[0] / wired)
    used = phases_used if phases_used is not None and 1 <= phases_used <= wired else wired
    return SessionUnits("A", used, per_used[min(used, len(per_used)) - 1] / used)


def charger_rating(site: Site, charger: Charger) -> ChargerRating:
    """The charger's rating from the site file (every phase in use for A ↔ W)."""
    full = session_units(site, charger, None)
    return ChargerRating(
        kind=charger.kind,
        phases=full.phases_used,
        volts_per_phase=full.voltage_v,
        max_a=charger.max_a,
        max_kw=charger.max_kw,
        connectors=charger.connectors,
    )


def site_ratings(site: Callable[[], Site]) -> Callable[[str], ChargerRating | None]:
    """``CapBook(ratings=…)`` from the current site (re-read on every call: a reload counts)."""

    def rating(charger_id: str) -> ChargerRating | None:
        current = site()
        try:
            return charger_rating(current, current.charger(charger_id))
        except KeyError:
            return None

    return rating
