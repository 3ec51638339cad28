"""The daemon's history store: SQLite (WAL) via sqlite-utils, written off the control path.

- :mod:`.records` — frozen dataclasses for what gets written.
- :mod:`.schema` — tables, pragmas, schema version and migrations.
- :mod:`.sink` — writes one batch of records in one transaction.
- :mod:`.writer` — :class:`Store`: non-blocking ``put``, one background writer thread.
- :mod:`.restore` — what the daemon needs back after a restart.
- :mod:`.retention` — bounded deletes of old rows and the daily roll-up.

Times are stored as unix seconds (UTC, REAL); see :mod:`.schema`.
"""

from controller.store.records import (
    AcceptedProfile,
    Allocation,
    ChargerRecord,
    ChargerStatus,
    Departure,
    Event,
    MeterSample,
    Record,
    SessionStart,
    SessionStop,
    allocations_from_plan,
    event_from_transition,
)
from controller.store.restore import Restored, restore
from controller.store.retention import purge, rollup_daily
from controller.store.schema import SCHEMA_VERSION, connect, open_database
from controller.store.writer import Store, StoreCounters

__all__ = [
    "SCHEMA_VERSION",
    "AcceptedProfile",
    "Allocation",
    "ChargerRecord",
    "ChargerStatus",
    "Departure",
    "Event",
    "MeterSample",
    "Record",
    "Restored",
    "SessionStart",
    "SessionStop",
    "Store",
    "StoreCounters",
    "allocations_from_plan",
    "connect",
    "event_from_transition",
    "open_database",
    "purge",
    "restore",
    "rollup_daily",
]
