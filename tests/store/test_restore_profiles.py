"""Issue 12 hazard 8: after kill -9 and a restart, every connector's last profile with its whole schedule.

Written and read back through a real SQLite file; every time is pinned.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.chargers.profiles import Period, ProfileSpec
from controller.store import (
    SCHEMA_VERSION,
    AcceptedProfile,
    Record,
    Store,
    accepted_profile,
    purge,
    restore,
    restored_budget,
    restored_charger_budget,
    restored_connector_budget,
    restored_failsafe_limit,
)
from controller.store.schema import _v1, _v2, schema_version

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)
MARGIN_S = 10.0
FAILSAFE_A = 6.0
MAX_A = 32.0


def t(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def write(path: Path, records: list[Record]) -> None:
    store = Store(path, meter_interval_s=0.0, batch_interval_s=0.01)
    assert all(store.put(r) for r in records)
    assert store.flush(5.0)
    assert store.close()


def failsafe(charger_id: str, limit_a: float, at: datetime, start: datetime | None = None) -> AcceptedProfile:
    return AcceptedProfile(charger_id, 0, limit_a, "A", None, at, (limit_a,), (0,), start, "failsafe", 0)


def tx(
    charger_id: str,
    connector: int,
    limits_a: tuple[float, ...],
    valid_until: datetime,
    at: datetime,
    kind: str = "TxProfile",
) -> AcceptedProfile:
    starts = tuple(120 * i for i in range(len(limits_a)))
    return AcceptedProfile(
        charger_id, connector, limits_a[0], "A", valid_until, at, limits_a, starts, at - timedelta(seconds=5), kind, 1
    )


def budget_a(path: Path, charger_id: str, now: datetime, connectors: int = 2) -> float:
    got = restore(path, now)
    return restored_budget(
        got,
        charger_id,
        connectors=connectors,
        failsafe_limit=FAILSAFE_A,
        max_limit=MAX_A,
        now=now,
        margin_s=MARGIN_S,
    )


def test_two_connectors_32_and_0_budget_38_not_12(tmp_path: Path) -> None:
    """The issue's case: connector 1 at 32 A, connector 2 paused at 0 A, fail-safe 6 A → 32 + 6."""
    path = tmp_path / "depot.db"
    write(
        path,
        [
            failsafe("cp1", FAILSAFE_A, t(-3600)),
            tx("cp1", 1, (32.0,), t(60), t(-10)),
            tx("cp1", 2, (0.0,), t(60), t(-5)),  # the last profile of the charger: the old restore kept only this
        ],
    )
    got = restore(path, NOW)
    assert set(got.profiles) == {("cp1", 1), ("cp1", 2)}
    assert got.profiles[("cp1", 1)].planner_limits == (32.0,)
    assert got.failsafes["cp1"] == failsafe("cp1", FAILSAFE_A, t(-3600))
    assert budget_a(path, "cp1", NOW) == 38.0
    # the same from the pure function, fed one profile per connector
    by_connector = {c: got.profiles[("cp1", c)] for c in (1, 2)}
    assert restored_charger_budget(by_connector, 2, FAILSAFE_A, MAX_A, True, NOW, MARGIN_S) == 38.0


def test_whole_schedule_is_stored_and_a_later_higher_period_counts(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    p = tx("cp1", 1, (10.0, 24.0, 8.0), t(300), t(-5))
    write(path, [failsafe("cp1", FAILSAFE_A, t(-3600)), p])
    got = restore(path, NOW)
    back = got.profiles[("cp1", 1)]
    assert back == p  # every field round-trips: limits, period starts, start, kind, stack level
    assert (back.planner_limits, back.period_starts_s, back.start) == ((10.0, 24.0, 8.0), (0, 120, 240), t(-10))
    assert restored_connector_budget(back, FAILSAFE_A, NOW, MARGIN_S) == 24.0
    assert budget_a(path, "cp1", NOW) == 24.0 + FAILSAFE_A  # connector 2: nothing but the fail-safe


def test_expired_profile_counts_at_the_failsafe(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    p = tx("cp1", 1, (32.0,), t(60), t(-5))
    write(path, [failsafe("cp1", FAILSAFE_A, t(-3600)), p])
    just_before = t(60 + MARGIN_S) - timedelta(microseconds=1)
    assert restored_connector_budget(p, FAILSAFE_A, just_before, MARGIN_S) == 32.0
    assert restored_connector_budget(p, FAILSAFE_A, t(60 + MARGIN_S), MARGIN_S) == FAILSAFE_A
    assert restored_connector_budget(None, FAILSAFE_A, NOW, MARGIN_S) == FAILSAFE_A
    assert budget_a(path, "cp1", just_before) == 32.0 + FAILSAFE_A
    assert budget_a(path, "cp1", t(60 + MARGIN_S)) == 2 * FAILSAFE_A


def test_connector_0_txdefault_applies_to_every_connector(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    write(
        path,
        [
            failsafe("cp1", FAILSAFE_A, t(-3600)),
            tx("cp1", 0, (20.0,), t(60), t(-20), kind="TxDefaultProfile"),  # e.g. txdefault_on_connector_0
            tx("cp1", 1, (10.0,), t(60), t(-5)),
        ],
    )
    assert budget_a(path, "cp1", NOW) == 20.0 + 20.0  # connector 1 may fall back to the 20 A TxDefault
    assert budget_a(path, "cp1", NOW, connectors=3) == 60.0


def test_txdefault_and_txprofile_on_one_connector_both_count(tmp_path: Path) -> None:
    """Different profile ids: the charger holds both; the older, higher TxDefault returns when the tx ends."""
    path = tmp_path / "depot.db"
    older = tx("cp1", 1, (32.0,), t(90), t(-30), kind="TxDefaultProfile")
    newer = tx("cp1", 1, (10.0,), t(60), t(-5))
    write(path, [failsafe("cp1", FAILSAFE_A, t(-3600)), older, newer])
    got = restore(path, NOW)
    assert got.profiles[("cp1", 1)] == newer
    assert got.in_force["cp1"][1] == (newer, older)  # newest first
    assert budget_a(path, "cp1", NOW, connectors=1) == 32.0
    assert budget_a(path, "cp1", t(80), connectors=1) == 32.0  # TxProfile expired, TxDefault not yet
    assert budget_a(path, "cp1", t(100), connectors=1) == FAILSAFE_A


def test_unconfirmed_failsafe_budgets_at_the_maximum(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    write(path, [tx("cp1", 1, (16.0,), t(60), t(-5)), tx("cp2", 1, (16.0,), t(60), t(-5))])
    # connector 2 has nothing: the charger's maximum; connector 1's TxProfile may end with its
    # transaction and the next one is unconstrained: the maximum too
    assert budget_a(path, "cp1", NOW) == 2 * MAX_A
    assert restored_charger_budget({}, 2, FAILSAFE_A, MAX_A, False, NOW, MARGIN_S) == 2 * MAX_A
    assert budget_a(path, "never-seen", NOW) == 2 * MAX_A


def test_failsafe_latest_row_and_configured_value(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    write(
        path,
        [
            failsafe("cp1", 10.0, t(-7200)),
            failsafe("cp1", 8.0, t(-3600)),  # re-installed lower after a reload: the charger holds 8 A
            failsafe("cp2", 6.0, t(-3), start=t(-8)),  # installed just before the crash
        ],
    )
    got = restore(path, NOW)
    assert got.failsafes["cp1"].limit == 8.0 and dict(got.profiles) == {}
    assert restored_failsafe_limit(got.failsafes["cp1"], NOW, MARGIN_S) == 8.0
    # the configured value may have been accepted but not yet written: the higher one counts
    assert (
        restored_budget(got, "cp1", connectors=2, failsafe_limit=6.0, max_limit=MAX_A, now=NOW, margin_s=MARGIN_S)
        == 16.0
    )
    # a schedule started less than the margin ago may not apply yet on a charger clock behind ours
    assert restored_failsafe_limit(got.failsafes["cp2"], NOW, MARGIN_S) is None
    assert budget_a(path, "cp2", NOW) == 2 * MAX_A
    assert restored_failsafe_limit(got.failsafes["cp2"], t(2), MARGIN_S) == 6.0


def test_retention_keeps_every_connectors_latest_rows(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    old = NOW - timedelta(days=40)
    write(
        path,
        [
            failsafe("cp1", FAILSAFE_A, old - timedelta(hours=2)),
            tx("cp1", 1, (16.0,), old + timedelta(seconds=50), old - timedelta(hours=1)),
            tx("cp1", 1, (32.0,), old + timedelta(seconds=60), old),  # connector 1's latest
            tx("cp1", 2, (0.0,), old + timedelta(seconds=60), old + timedelta(seconds=5)),  # charger's latest
            tx("cp1", 2, (12.0,), old + timedelta(seconds=90), old - timedelta(hours=3), kind="TxDefaultProfile"),
            tx("cp1", 0, (20.0,), old + timedelta(seconds=90), old - timedelta(hours=4), kind="TxDefaultProfile"),
        ],
    )
    deleted = purge(path, retention_days=30, now=NOW)
    assert deleted["accepted_profiles"] == 1  # only connector 1's older TxProfile
    got = restore(path, NOW)
    assert {k: p.limit for k, p in got.profiles.items()} == {("cp1", 0): 20.0, ("cp1", 1): 32.0, ("cp1", 2): 0.0}
    assert [p.kind for p in got.in_force["cp1"][2]] == ["TxProfile", "TxDefaultProfile"]
    assert "cp1" in got.failsafes
    assert set(purge(path, retention_days=30, now=NOW).values()) == {0}


def _v2_database(path: Path) -> None:
    """A database as the previous release left it: schema 2, profiles with their first limit only."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    _v1(conn)
    _v2(conn)
    conn.executemany("INSERT INTO schema_version VALUES (?, 0)", [(1,), (2,)])
    conn.executemany(
        "INSERT INTO accepted_profiles (charger_id, connector, limit_a, limit_w, valid_until, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            ("cp1", 1, 32.0, None, t(60).timestamp(), t(-20).timestamp()),
            ("cp1", 2, 0.0, None, t(60).timestamp(), t(-10).timestamp()),
            ("cp2", 1, None, 11_000.0, t(60).timestamp(), t(-10).timestamp()),
        ],
    )
    conn.commit()
    conn.close()


def test_old_database_is_migrated_and_old_rows_restore_as_one_period(tmp_path: Path) -> None:
    path = tmp_path / "v2.db"
    _v2_database(path)
    got = restore(path, NOW)
    conn = sqlite3.connect(path)
    try:
        assert schema_version(conn) == SCHEMA_VERSION >= 3
    finally:
        conn.close()
    assert got.profiles[("cp1", 1)] == AcceptedProfile(
        "cp1", 1, 32.0, "A", t(60), t(-20), (32.0,), (0,), None, "unknown", 1
    )
    assert got.profiles[("cp1", 2)].planner_schedule == (0.0,)
    w = got.profiles[("cp2", 1)]
    assert (w.unit, w.planner_limits, w.period_starts_s, w.planner_schedule) == ("W", (), (0,), None)
    assert dict(got.failsafes) == {}  # the old daemon never recorded its fail-safe
    assert budget_a(path, "cp1", NOW) == 2 * MAX_A  # fail-safe never confirmed: the maximum
    # with a confirmed fail-safe the old rows count per connector: 32 + 6
    by_connector = {c: got.profiles[("cp1", c)] for c in (1, 2)}
    assert restored_charger_budget(by_connector, 2, FAILSAFE_A, MAX_A, True, NOW, MARGIN_S) == 38.0
    # a W row cannot be sized here: it counts at the charger's maximum while it may be in force
    assert restored_charger_budget({1: w}, 1, FAILSAFE_A, 40.0, True, NOW, MARGIN_S) == 40.0
    assert restored_charger_budget({1: w}, 1, FAILSAFE_A, 40.0, True, t(100), MARGIN_S) == FAILSAFE_A
    with pytest.raises(ValueError):
        restored_connector_budget(w, FAILSAFE_A, NOW, MARGIN_S)
    # the migrated database takes new full records next to the old ones
    new = tx("cp1", 1, (16.0, 24.0), t(120), t(-1))
    write(path, [new])
    assert restore(path, NOW).profiles[("cp1", 1)] == new


def test_records_built_from_the_profiles_sent(tmp_path: Path) -> None:
    """``accepted_profile`` keeps what the charger holds: whole schedule, connector, purpose, stack level."""
    path = tmp_path / "depot.db"
    fs_spec = ProfileSpec(1, 0, 0, "TxDefaultProfile", "Relative", "A", (Period(0, 6.0, 3),), planner_limits=(6.0,))
    # a TxDefault moved to connector 0 (txdefault_on_connector_0), in W, sent to a charger 120 s ahead
    ctl_spec = ProfileSpec(
        100,
        0,
        1,
        "TxDefaultProfile",
        "Absolute",
        "W",
        (Period(0, 1840.0, 3), Period(65, 5520.0, 3)),
        start_schedule=t(110),
        duration_s=305,
        planner_limits=(8.0, 24.0),  # the sender's W → A, sized by the phases in use
        expires_at=t(295),
    )
    tx_spec = ProfileSpec(
        201,
        1,
        1,
        "TxProfile",
        "Absolute",
        "A",
        (Period(0, 32.0, 3),),
        start_schedule=t(-10),
        duration_s=65,
        transaction_id=7,
        planner_limits=(32.0,),
        expires_at=t(55),
    )
    fs_rec = accepted_profile("cp1", fs_spec, t(-3600))
    ctl_rec = accepted_profile("cp1", ctl_spec, t(-5), clock_offset_s=120.0)
    tx_rec = accepted_profile("cp1", tx_spec, t(-4))
    assert fs_rec == AcceptedProfile("cp1", 0, 6.0, "A", None, t(-3600), (6.0,), (0,), None, "failsafe", 0)
    assert fs_rec.is_failsafe and not ctl_rec.is_failsafe and not tx_rec.is_failsafe
    assert ctl_rec == AcceptedProfile(
        "cp1", 0, 1840.0, "W", t(295), t(-5), (8.0, 24.0), (0, 65), t(-10), "TxDefaultProfile", 1
    )
    assert (tx_rec.connector, tx_rec.kind, tx_rec.stack_level, tx_rec.valid_until) == (1, "TxProfile", 1, t(55))
    widened = accepted_profile("cp1", tx_spec, t(-4), valid_until=t(355))
    assert widened.valid_until == t(355) and not widened.is_failsafe
    write(path, [fs_rec, ctl_rec, tx_rec])
    got = restore(path, NOW)
    assert got.failsafes["cp1"] == fs_rec
    assert dict(got.profiles) == {("cp1", 0): ctl_rec, ("cp1", 1): tx_rec}
    # connector 1: max(32 TxProfile, 24 TxDefault on 0); connector 2: the TxDefault's later 24 A
    assert budget_a(path, "cp1", NOW) == 32.0 + 24.0
    assert budget_a(path, "cp1", t(100)) == 24.0 + 24.0
    assert budget_a(path, "cp1", t(295 + MARGIN_S)) == 2 * FAILSAFE_A
