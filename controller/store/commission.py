"""Commissioning reports in the history database: every run kept, read per charger newest first.

One row per run of ``commission_reports`` (schema version 5, :mod:`.schema`): the charger, when
the run started and finished (unix seconds), its state (running, finished, aborted), whether it
passed, and the whole :class:`~controller.commission.report.Report` as JSON. A run is written when
it starts (state running) and again when it ends, under the same ``report_id``; a row still
"running" after a restart is a run the controller did not see end (:meth:`CommissionStore.close_unfinished`).

Reports are rare (one per run): each call opens its own connection (WAL, the store's busy
timeout) next to the history writer's, and is blocking — the daemon calls it through
``asyncio.to_thread``. Retention leaves the table alone.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from controller.commission.report import Report
from controller.store.schema import connect, migrate
from controller.store.sink import to_unix

MAX_HISTORY = 1000
"""The most reports :meth:`CommissionStore.history` returns at once."""


_SAVE = """
INSERT INTO commission_reports (report_id, charger_id, started_at, finished_at, state, passed, report)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (report_id) DO UPDATE SET
    finished_at = excluded.finished_at, state = excluded.state, passed = excluded.passed, report = excluded.report
"""


def report_id(report: Report) -> str:
    """The row's key: the charger and the run's start (one run per charger at a time)."""
    return f"{report.charger}@{report.started.isoformat()}"


class CommissionStore:
    """The ``commission_reports`` table of the database at ``path`` (created and migrated on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._migrated = False

    @property
    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = connect(self.path)
        try:
            if not self._migrated:  # once: a migration check is a write transaction
                migrate(conn)
                self._migrated = True
            yield conn
        finally:
            conn.close()

    def save(self, report: Report) -> None:
        """Write ``report`` (a new run, or the end of one already written)."""
        with self._conn() as conn, conn:
            conn.execute(
                _SAVE,
                (
                    report_id(report),
                    report.charger,
                    to_unix(report.started),
                    to_unix(report.finished) if report.finished is not None else None,
                    report.state,
                    int(report.passed),
                    json.dumps(report.to_json(), sort_keys=True),
                ),
            )

    def latest(self) -> dict[str, Report]:
        """Per charger, its latest report (any state)."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT r.report FROM commission_reports r JOIN (SELECT charger_id, MAX(started_at) AS s"
                " FROM commission_reports GROUP BY charger_id) m ON r.charger_id = m.charger_id AND r.started_at = m.s"
                " ORDER BY r.charger_id"
            ).fetchall()
        reports = [_report(row[0]) for row in rows]
        return {r.charger: r for r in reports}

    def history(self, charger_id: str, limit: int = 20, *, state: str | None = None) -> list[Report]:
        """The charger's reports, newest first, at most ``limit`` (1 … :data:`MAX_HISTORY`);
        ``state``: only those in that state."""
        if not 1 <= limit <= MAX_HISTORY:
            raise ValueError(f"limit must be 1 … {MAX_HISTORY}, not {limit}")
        where, args = "charger_id = ?", [charger_id]
        if state is not None:
            where += " AND state = ?"
            args.append(state)
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT report FROM commission_reports WHERE {where} ORDER BY started_at DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [_report(row[0]) for row in rows]

    def close_unfinished(self, error: str, now: datetime) -> list[Report]:
        """Mark every run still "running" aborted with ``error`` (the controller stopped during it,
        without a word); returns them as they are now stored."""
        with self._conn() as conn:
            rows = conn.execute("SELECT report FROM commission_reports WHERE state = 'running'").fetchall()
        closed = [replace(_report(row[0]), state="aborted", finished=now, error=error) for row in rows]
        for report in closed:
            self.save(report)
        return closed


def _report(text: str) -> Report:
    return Report.from_json(json.loads(text))
