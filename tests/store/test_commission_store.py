"""Commissioning reports in SQLite (controller/store/commission.py): every run kept, one row each."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from controller.commission.report import Check, Report, RunState
from controller.store import Event, Store
from controller.store.commission import MAX_HISTORY, CommissionStore
from tests.store.conftest import T0, at


def _report(charger: str, started_s: float, state: RunState = "finished", *, passed: bool = True) -> Report:
    checks = (Check("connects", True, "1.6", "OCPP 1.6"), Check("follows_limit", passed, 1.3, "steps"))
    return Report(
        charger,
        at(started_s),
        None if state == "running" else at(started_s + 300),
        state,
        checks,
        quirks=("power_only",),
        reaction_s=1.3,
        clock_offset_s=-0.4,
        phases_in_use=3,
        units=("W",),
        firmware="2.1",
        controller_version="0.1.0",
        extra={"connector": 1},
    )


def test_a_run_is_one_row_from_its_start_to_its_end(db_path: Path) -> None:
    store = CommissionStore(db_path)
    running = _report("CP01", 0, "running")
    store.save(running)
    assert store.latest() == {"CP01": running}
    done = replace(running, state="finished", finished=at(300), checks=_report("CP01", 0).checks)
    store.save(done)
    assert store.latest() == {"CP01": done}  # the same row, now finished: the whole report back as it was
    assert store.history("CP01") == [done]
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT charger_id, state, passed, finished_at FROM commission_reports").fetchall()
    assert rows == [("CP01", "finished", 1, at(300).timestamp())]


def test_latest_per_charger_and_history_newest_first(db_path: Path) -> None:
    store = CommissionStore(db_path)
    reports = [
        _report("CP01", 0),
        _report("CP02", 10),
        _report("CP01", 3600, passed=False),
        _report("CP01", 7200, "aborted"),
    ]
    for r in reports:
        store.save(r)
    assert store.latest() == {"CP01": reports[3], "CP02": reports[1]}
    assert store.history("CP01") == [reports[3], reports[2], reports[0]]
    assert store.history("CP01", 2) == [reports[3], reports[2]]
    assert store.history("CP01", state="finished") == [reports[2], reports[0]]
    assert store.history("CP99") == []
    for bad in (0, MAX_HISTORY + 1):
        with pytest.raises(ValueError, match="limit must be 1"):
            store.history("CP01", bad)


def test_a_run_a_crash_interrupted_is_marked_aborted(db_path: Path) -> None:
    store = CommissionStore(db_path)
    store.save(_report("CP01", 0))
    store.save(_report("CP02", 0, "running"))
    now = T0 + timedelta(hours=1)
    closed = store.close_unfinished("the controller stopped during the run", now)
    assert [(r.charger, r.state, r.finished, r.error) for r in closed] == [
        ("CP02", "aborted", now, "the controller stopped during the run")
    ]
    assert store.latest()["CP02"] == closed[0] and not closed[0].passed
    assert store.close_unfinished("again", now) == []


def test_the_table_lives_beside_the_history_written_at_the_same_time(db_path: Path) -> None:
    """The history writer and the reports share the database (WAL): both are written, neither waits."""
    history = Store(db_path, batch_interval_s=0.01)
    try:
        history.put(Event(T0, "info", "controller started"))
        store = CommissionStore(db_path)
        store.save(_report("CP01", 0))
        assert history.flush(5.0)
    finally:
        history.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events").fetchone() == (1,)
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "commission_reports_charger" in indexes
    assert store.latest()["CP01"].passed
