"""The history a simulated depot's arrival forecast learns from: earlier days like this one.

A running daemon forecasts the vehicles still to come from its own session history
(:mod:`controller.energy.arrivals`). A scenario is one day, so the simulation makes the history
the daemon would have: :data:`HISTORY_DAYS` earlier days of the same kind (weekdays, or weekend
days) on which the scenario's own sessions came — each one a little different, as real days are,
and never the day itself:

* each session is missing on a day with probability :data:`ABSENT_P` (a vehicle out of service);
* its arrival and departure move by up to ± :data:`JITTER_S` (traffic, a late shift), independently;
* its energy is scaled by a factor in 1 ± :data:`ENERGY_JITTER` (another route, the weather).

A session keeps the scenario's vehicle id (most scenarios have none): the forecast then leaves out
what the daemon would — a vehicle seen today, or without an id, a session on a charger in use now
or earlier today. The noise is seeded by the
scenario's name: the same scenario gets the same history on every run. The product's own
forecast (:func:`~controller.energy.arrivals.expected_arrivals`) then reads it, as it reads SQLite
in the daemon.
"""

from __future__ import annotations

import random
import zlib
from datetime import timedelta

from controller.energy.arrivals import LOOKBACK_DAYS, PastSession, shift_days, weekend
from controller.simulate.scenario import Scenario

HISTORY_DAYS = 3
ABSENT_P = 0.1
JITTER_S = 1800.0
ENERGY_JITTER = 0.2


def fleet_history(scenario: Scenario) -> tuple[PastSession, ...]:
    """The sessions of :data:`HISTORY_DAYS` earlier days of the same kind (see the module docstring)."""
    tz = scenario.tz
    start_local = scenario.start.astimezone(tz)
    kind = weekend(start_local)
    days = [k for k in range(1, LOOKBACK_DAYS + 1) if weekend(start_local - timedelta(days=k)) == kind]
    rng = random.Random(zlib.crc32(scenario.name.encode()))
    out: list[PastSession] = []
    for k in days[:HISTORY_DAYS]:
        for s in sorted(scenario.sessions, key=lambda s: (s.arrive, s.index)):
            absent = rng.random() < ABSENT_P
            da, dd = rng.uniform(-JITTER_S, JITTER_S), rng.uniform(-JITTER_S, JITTER_S)
            factor = rng.uniform(1.0 - ENERGY_JITTER, 1.0 + ENERGY_JITTER)
            if absent:
                continue
            arrive = shift_days(s.arrive, -k, tz) + timedelta(seconds=da)
            depart = max(shift_days(s.depart, -k, tz) + timedelta(seconds=dd), arrive + timedelta(minutes=10))
            out.append(PastSession(s.charger_id, s.vehicle_id, arrive, depart, s.energy_kwh * factor))
    return tuple(out)
