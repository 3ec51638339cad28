"""The daemon's history store: SQLite (WAL) via sqlite-utils, written off the control path.

- :mod:`.records` — frozen dataclasses for what gets written.
- :mod:`.schema` — tables, pragmas, schema version and migrations.
- :mod:`.sink` — writes one batch of records in one transaction.
- :mod:`.writer` — :class:`Store`: non-blocking ``put``, one background writer thread.
- :mod:`.restore` — what the daemon needs back after a restart.
- :mod:`.budget` — what a charger not yet reconnected after a restart may draw.
- :mod:`.retention` — bounded deletes of old rows and the daily roll-up.
- :mod:`.bill` — what the bill needs back after a restart (demand windows, today's cost, PV history).

Times are stored as unix seconds (UTC, REAL); see :mod:`.schema`.
"""

from controller.store.budget import (
    restored_budget,
    restored_charger_budget,
    restored_connector_budget,
    restored_failsafe_limit,
)
from controller.store.records import (
    AcceptedProfile,
    Allocation,
    ChargerRecord,
    ChargerStatus,
    DailyEnergy,
    DeclaredDeparture,
    DemandWindowRecord,
    Departure,
    Event,
    MeterSample,
    Record,
    SessionStart,
    SessionStop,
    accepted_profile,
    allocations_from_plan,
    event_from_transition,
)
from controller.store.restore import DEPARTURES_PER_VEHICLE, ConnectorKey, PastDeparture, Restored, restore
from controller.store.retention import purge, rollup_daily
from controller.store.schema import SCHEMA_VERSION, connect, open_database
from controller.store.writer import Store, StoreCounters

__all__ = [
    "DEPARTURES_PER_VEHICLE",
    "SCHEMA_VERSION",
    "AcceptedProfile",
    "Allocation",
    "ChargerRecord",
    "ChargerStatus",
    "ConnectorKey",
    "DailyEnergy",
    "DeclaredDeparture",
    "DemandWindowRecord",
    "Departure",
    "Event",
    "MeterSample",
    "PastDeparture",
    "Record",
    "Restored",
    "SessionStart",
    "SessionStop",
    "Store",
    "StoreCounters",
    "accepted_profile",
    "allocations_from_plan",
    "connect",
    "event_from_transition",
    "open_database",
    "purge",
    "restore",
    "restored_budget",
    "restored_charger_budget",
    "restored_connector_budget",
    "restored_failsafe_limit",
    "rollup_daily",
]
