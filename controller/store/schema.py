"""Tables, pragmas, schema version and migrations of the history database.

Conventions:

- **Times** are unix seconds, UTC, as REAL (``at``, ``started_at``, ``plan_at``, ...). They sort and
  compare as numbers, retention is one ``<`` comparison, and SQLite's ``date(x, 'unixepoch')``
  gives the UTC day for the roll-up. Day keys (``day``) are ``YYYY-MM-DD`` text, UTC.
- **Units** are in column names (``energy_kwh``, ``limit_a``, ``power_w``). Where a limit can be in
  one of two units, there is one column per unit and exactly one is set.
- **Journal**: ``journal_mode=WAL`` so readers (API, restore, retention) never block the writer and
  a commit is one sequential append. ``synchronous=NORMAL``: in WAL mode a committed transaction
  survives a process crash (``kill -9``) because it is in the WAL file in the OS page cache;
  only an OS crash or power loss can lose the last commits, and it can never corrupt the file.
  ``FULL`` would add an fsync per commit, costing latency and flash wear on the depot PC for
  history that is not safety-critical (the chargers' own fail-safe profiles are).

Migrations: ``MIGRATIONS[v]`` takes a database at version ``v - 1`` to version ``v``; each runs in
its own transaction and is recorded in ``schema_version``. Add a new entry to change the schema;
never edit an old one.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from controller.store.records import FAILSAFE_STACK_LEVEL, UNRECORDED_STACK_LEVEL

BUSY_TIMEOUT_S = 5.0

_V1 = """
CREATE TABLE chargers (
    charger_id TEXT PRIMARY KEY,
    circuit_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    phases INTEGER NOT NULL,
    connectors INTEGER NOT NULL,
    max_a REAL,
    max_kw REAL,
    updated_at REAL NOT NULL
);
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    charger_id TEXT NOT NULL,
    connector INTEGER NOT NULL,
    vehicle_id TEXT,
    started_at REAL,
    stopped_at REAL,
    energy_need_kwh REAL,
    energy_kwh REAL,
    met_departure INTEGER
);
CREATE INDEX sessions_open ON sessions (stopped_at, started_at);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE TABLE meter_readings (
    meter_id TEXT NOT NULL,
    at REAL NOT NULL,
    l1_a REAL NOT NULL,
    l2_a REAL NOT NULL,
    l3_a REAL NOT NULL,
    power_w REAL,
    PRIMARY KEY (meter_id, at)
);
CREATE INDEX meter_readings_at ON meter_readings (at);
CREATE TABLE allocations (
    id INTEGER PRIMARY KEY,
    plan_at REAL NOT NULL,
    charger_id TEXT NOT NULL,
    session_id TEXT,
    limit_a REAL,
    limit_kw REAL,
    source TEXT NOT NULL,
    solver TEXT NOT NULL
);
CREATE INDEX allocations_plan_at ON allocations (plan_at);
CREATE INDEX allocations_charger ON allocations (charger_id, plan_at);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    charger_id TEXT,
    circuit_id TEXT
);
CREATE INDEX events_at ON events (at);
CREATE INDEX events_kind ON events (kind, at);
CREATE TABLE departures (
    departure_id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    set_at REAL NOT NULL,
    departure_at REAL,
    recurring TEXT,
    energy_kwh REAL,
    target_soc_pct REAL,
    cancelled INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX departures_vehicle ON departures (vehicle_id);
CREATE TABLE accepted_profiles (
    id INTEGER PRIMARY KEY,
    charger_id TEXT NOT NULL,
    connector INTEGER NOT NULL,
    limit_a REAL,
    limit_w REAL,
    valid_until REAL,
    at REAL NOT NULL
);
CREATE INDEX accepted_profiles_charger ON accepted_profiles (charger_id, at);
CREATE INDEX accepted_profiles_at ON accepted_profiles (at);
CREATE TABLE daily_vehicle_energy (
    day TEXT NOT NULL,
    vehicle_id TEXT NOT NULL,
    sessions INTEGER NOT NULL,
    requested_kwh REAL NOT NULL,
    delivered_kwh REAL NOT NULL,
    PRIMARY KEY (day, vehicle_id)
);
CREATE TABLE daily_site_peak (
    day TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    l1_peak_a REAL NOT NULL,
    l2_peak_a REAL NOT NULL,
    l3_peak_a REAL NOT NULL,
    power_peak_w REAL,
    PRIMARY KEY (day, meter_id)
);
"""


def _v1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


_V2 = """
CREATE TABLE charger_status (
    id INTEGER PRIMARY KEY,
    charger_id TEXT NOT NULL,
    at REAL NOT NULL,
    connected INTEGER NOT NULL,
    faulted INTEGER NOT NULL
);
CREATE INDEX charger_status_charger ON charger_status (charger_id, at);
CREATE INDEX charger_status_at ON charger_status (at);
"""


def _v2(conn: sqlite3.Connection) -> None:
    """Version 2: ``charger_status`` (append-only connection/fault history, for availability)."""
    for statement in _V2.split(";"):
        if statement.strip():
            conn.execute(statement)


_V3 = """
ALTER TABLE accepted_profiles ADD COLUMN planner_limits TEXT;
ALTER TABLE accepted_profiles ADD COLUMN period_starts_s TEXT;
ALTER TABLE accepted_profiles ADD COLUMN start_at REAL;
ALTER TABLE accepted_profiles ADD COLUMN kind TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE accepted_profiles ADD COLUMN stack_level INTEGER;
CREATE INDEX accepted_profiles_connector ON accepted_profiles (charger_id, connector, kind, at)
"""


def _v3(conn: sqlite3.Connection) -> None:
    """Version 3: ``accepted_profiles`` keeps the whole schedule, its purpose and stack level.

    ``planner_limits`` and ``period_starts_s`` are JSON arrays (planner units: A per phase for AC,
    kW for DC; seconds after ``start_at``, the schedule start, unix seconds). Rows from before
    are left as they are (no table rewrite): NULL there reads as a one-period schedule at the
    row's first limit, ``kind`` 'unknown', and a control profile's stack level (see
    :mod:`.restore`). The index serves restore and retention: latest row per charger, connector
    and kind.
    """
    for statement in _V3.split(";"):
        if statement.strip():
            conn.execute(statement)


_V4 = """
CREATE TABLE departure_history (
    session_id TEXT PRIMARY KEY,
    vehicle_id TEXT NOT NULL,
    declared_at REAL NOT NULL,
    actual_at REAL
);
CREATE INDEX departure_history_vehicle ON departure_history (vehicle_id, actual_at)
"""


def _v4(conn: sqlite3.Connection) -> None:
    """Version 4: ``departure_history`` — per session of a known vehicle, the departure declared
    for it (``declared_at``) and when it really left (``actual_at``, the session's end; NULL while
    it runs). The departure estimate (:mod:`controller.fleet.departure_estimate`) reads each
    vehicle's latest rows. Sessions from before are not back-filled: their declared departure was
    never stored.
    """
    for statement in _V4.split(";"):
        if statement.strip():
            conn.execute(statement)


_V5 = """
CREATE TABLE commission_reports (
    report_id TEXT PRIMARY KEY,
    charger_id TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    state TEXT NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX commission_reports_charger ON commission_reports (charger_id, started_at)
"""


def _v5(conn: sqlite3.Connection) -> None:
    """Version 5: ``commission_reports`` — every commissioning report (``depotctl commission``),
    kept for good: one row per run (``report_id``: charger and start), its state (running,
    finished, aborted), whether it passed, and the whole report as JSON
    (:meth:`controller.commission.report.Report.to_json`). Read per charger, newest first
    (:mod:`.commission`); retention leaves it alone (a re-commission years later still shows what
    changed).
    """
    for statement in _V5.split(";"):
        if statement.strip():
            conn.execute(statement)


_V6 = """
CREATE TABLE demand_windows (
    window_start REAL PRIMARY KEY,
    window_end REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    covered_s REAL NOT NULL,
    average_kw REAL,
    closed INTEGER NOT NULL
);
CREATE TABLE energy_cost_daily (
    day TEXT NOT NULL,
    currency TEXT NOT NULL,
    import_kwh REAL NOT NULL,
    priced_kwh REAL NOT NULL,
    cost REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (day, currency)
)
"""


_V7 = """
CREATE TABLE upstream_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    charger_id TEXT NOT NULL,
    version TEXT NOT NULL,
    unique_id TEXT NOT NULL,
    action TEXT NOT NULL,
    payload TEXT NOT NULL,
    local_tx_id INTEGER,
    queued_at REAL NOT NULL
);
CREATE INDEX upstream_queue_charger ON upstream_queue (charger_id, seq);
CREATE TABLE upstream_tx_ids (
    charger_id TEXT NOT NULL,
    local_id INTEGER NOT NULL,
    csms_id INTEGER,
    created_at REAL NOT NULL,
    mapped_at REAL,
    PRIMARY KEY (charger_id, local_id)
);
CREATE TABLE upstream_auth (
    version TEXT NOT NULL,
    token TEXT NOT NULL,
    source TEXT NOT NULL,
    info TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (version, token, source)
);
CREATE TABLE upstream_caps (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    rows TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE upstream_tx_floor (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    lowest INTEGER NOT NULL
)
"""


def _v6(conn: sqlite3.Connection) -> None:
    """Version 6: the bill (issue 16).

    ``demand_windows`` — every averaging window of grid import for the demand charge
    (``tariff.demand.window_min``, aligned to the site-local clock; :mod:`controller.energy.demand`):
    its import energy, the time its readings covered (less than the window when some were
    missing), the average over that time, and whether it has closed. Upserted while it runs and
    when it closes, so a restart keeps the billing period's peak and continues the window it
    stopped in. ``energy_cost_daily`` — per site-local day (``day``: ``YYYY-MM-DD``, *site-local*,
    unlike the UTC days of the roll-up tables) and currency: grid import, the part of it a price
    covered and its cost (:mod:`controller.energy.cost`). It is never purged (one row a day), so the
    running total (``depot_energy_cost_total``) survives restarts and retention.
    """
    for statement in _V6.split(";"):
        if statement.strip():
            conn.execute(statement)


def _v7(conn: sqlite3.Connection) -> None:
    """Version 7: local-controller mode (``ocpp.upstream``, :mod:`controller.upstream.store`).

    ``upstream_queue`` holds each charger's transaction messages the CSMS has not answered yet,
    in order (``seq``), exactly as the charger sent them (``payload``: the JSON text, original
    timestamps; ``local_tx_id``: a 1.6 StartTransaction answered here, the id the charger got);
    a row goes when the CSMS answers it. ``upstream_tx_ids`` maps those local 1.6 transaction
    ids to the CSMS's (``csms_id`` NULL until it answered). ``upstream_auth`` keeps the CSMS's
    answers about id tags (``source`` 'answer') and its local authorisation list (``source``
    'list'), the JSON ``idTagInfo``/``idTokenInfo`` per tag, for answering while it is away.
    ``upstream_caps`` is the CSMS's charging profiles as the cap book keeps them (one JSON row).
    ``upstream_tx_floor`` the lowest local 1.6 id ever handed out (one row, never deleted: a local
    id is never reused, even after its mapping is gone).
    Retention leaves these tables alone: a row goes when it is no longer needed.
    """
    for statement in _V7.split(";"):
        if statement.strip():
            conn.execute(statement)


def failsafe_sql(table: str) -> str:
    """SQL (0/1, never NULL) for "row of ``table`` is a fail-safe": connector 0, stack 0, no expiry."""
    stack = f"COALESCE({table}.stack_level, {UNRECORDED_STACK_LEVEL})"
    return f"({table}.connector = 0 AND {stack} = {FAILSAFE_STACK_LEVEL} AND {table}.valid_until IS NULL)"


MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7,
}
SCHEMA_VERSION = max(MIGRATIONS)


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection with the store's pragmas (WAL, synchronous=NORMAL, busy timeout)."""
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S)
    try:
        mode = _wal(conn)
    except sqlite3.Error:
        conn.close()
        raise
    if str(mode).lower() != "wal":
        conn.close()
        raise sqlite3.OperationalError(f"cannot enable WAL on {path} (journal_mode={mode})")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _wal(conn: sqlite3.Connection) -> str:
    """Switch a new database to WAL. Two connections opening a new file at once (the history writer
    and a report's store at start-up) may both try the switch: SQLite then answers one "database
    is locked" at once, without waiting its busy timeout (measured: 6 of 400 such starts). So the
    switch is tried again, for at most :data:`BUSY_TIMEOUT_S`; a file already in WAL needs none."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause_s = 0.005
    while True:
        try:
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
            if mode.lower() != "wal":
                mode = str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
            return mode
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause_s > deadline:
                raise
        time.sleep(pause_s)
        pause_s = min(0.1, pause_s * 2)


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; returns the version it is at afterwards."""
    with conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
    current = schema_version(conn)
    if current > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {current} is newer than this depotctl ({SCHEMA_VERSION})")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        # explicit BEGIN: the sqlite3 module does not open a transaction before DDL by itself
        conn.execute("BEGIN IMMEDIATE")
        try:
            if schema_version(conn) >= version:  # another process migrated meanwhile
                conn.rollback()
                continue
            MIGRATIONS[version](conn)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, strftime('%s','now'))", (version,)
            )
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    return schema_version(conn)


def open_database(path: str | Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the history database at ``path``."""
    conn = connect(path)
    try:
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return sqlite_utils.Database(conn, execute_plugins=False)
