"""The fleet: vehicles' departures (recurring from the site file, one-offs at run time).

Pure: a function of the site, the run-time one-offs and the instant asked about. See
:mod:`controller.fleet.departures` for the rules (site-local time, DST, one-off replacement).
"""

from controller.fleet.departures import (
    DepartureNeed,
    DepartureSource,
    OneOff,
    days_text,
    energy_to_deliver_kwh,
    expand,
    local_instant,
    next_departure,
)

__all__ = [
    "DepartureNeed",
    "DepartureSource",
    "OneOff",
    "days_text",
    "energy_to_deliver_kwh",
    "expand",
    "local_instant",
    "next_departure",
]
