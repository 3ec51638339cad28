from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlite_utils

from controller.store import Event, Record, Store
from controller.store.schema import open_database
from controller.store.sink import statement

from .conftest import at


class FailingSink:
    def __init__(self, fail: bool = True) -> None:
        self.fail = fail
        self.written = 0

    def write(self, batch: Sequence[Record]) -> None:
        if self.fail:
            raise sqlite3.OperationalError("database or disk is full")
        self.written += len(batch)

    def close(self) -> None:
        pass


def wait_for(cond: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return True
        time.sleep(0.01)
    return False


def test_disk_full_sets_broken_and_recovers(tmp_path: Path) -> None:
    sink = FailingSink()
    store = Store(tmp_path / "x.db", batch_max=1, broken_after_errors=3, sink_factory=lambda: sink)
    try:
        for i in range(5):
            t = time.perf_counter()
            assert store.put(Event(at(i), "info", str(i)))
            assert time.perf_counter() - t < 0.05
            store.flush(2.0)
        c = store.counters()
        assert c.broken and c.errors == 5 and c.lost == 5 and c.written == 0
        assert store.flush(1.0)  # nothing pending, nothing newly lost
        sink.fail = False
        store.put(Event(at(9), "info", "ok"))
        assert store.flush(2.0)
        assert not store.broken and store.written == 1
    finally:
        store.close()


def test_few_errors_are_not_broken(tmp_path: Path) -> None:
    sink = FailingSink()
    store = Store(tmp_path / "x.db", batch_max=1, broken_after_errors=3, sink_factory=lambda: sink)
    try:
        store.put(Event(at(0), "info", "x"))
        assert not store.flush(2.0)  # the record was lost
        assert store.errors == 1 and not store.broken
    finally:
        store.close()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        store = Store(ro / "depot.db")
        assert wait_for(lambda: store.broken)
        t = time.perf_counter()
        results = [store.put(Event(at(i), "info", str(i))) for i in range(1000)]
        assert time.perf_counter() - t < 0.5
        assert not any(results)
        c = store.counters()
        assert c.errors == 1 and c.dropped == 1000 and c.broken
        assert not store.flush(0.5) or store.queue_depth == 0
        assert store.close(1.0)
    finally:
        ro.chmod(0o700)


def test_parent_is_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = Store(tmp_path / "file" / "depot.db")
    assert wait_for(lambda: store.broken)
    t = time.perf_counter()
    assert store.put(Event(at(0), "info", "x")) is False
    assert time.perf_counter() - t < 0.05
    assert store.counters().errors == 1
    assert store.close(1.0)


def test_open_failure_from_sink_factory(tmp_path: Path) -> None:
    def boom() -> FailingSink:
        raise sqlite3.OperationalError("unable to open database file")

    store = Store(tmp_path / "x.db", sink_factory=boom)
    assert wait_for(lambda: store.broken)
    assert store.put(Event(at(0), "info", "x")) is False
    assert store.counters().errors == 1
    store.close(1.0)


def test_writer_thread_crash_sets_broken(tmp_path: Path) -> None:
    class Exploding(FailingSink):
        def write(self, batch: Sequence[Record]) -> None:
            raise SystemExit("bug")  # not an Exception: escapes the per-batch handler

    store = Store(tmp_path / "x.db", batch_max=1, sink_factory=lambda: Exploding(False))
    store.put(Event(at(0), "info", "x"))
    assert wait_for(lambda: store.broken)
    assert store.put(Event(at(1), "info", "y")) is False
    store.close(1.0)


class ReadOnlySink:
    """The real statements on a database opened read-only: SQLite itself refuses the writes."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True), execute_plugins=False)

    def write(self, batch: Sequence[Record]) -> None:
        with self.db.atomic():
            for r in batch:
                self.db.execute(*statement(r))

    def close(self) -> None:
        self.db.close()


def test_read_only_database(tmp_path: Path) -> None:
    path = tmp_path / "depot.db"
    open_database(path).close()
    store = Store(path, batch_max=1, broken_after_errors=2, sink_factory=lambda: ReadOnlySink(path))
    try:
        for i in range(3):
            t = time.perf_counter()
            assert store.put(Event(at(i), "info", str(i)))
            assert time.perf_counter() - t < 0.05
            assert not store.flush(2.0)
        c = store.counters()
        assert c.broken and c.errors == 3 and c.lost == 3 and c.written == 0
    finally:
        store.close()
