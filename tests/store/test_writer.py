from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import sqlite_utils

from controller.store import Event, MeterSample, Record, Store

from .conftest import at


class GatedSink:
    """A sink that holds each write until the test opens the gate: a disk that stalls."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.batches: list[list[Record]] = []

    def write(self, batch: Sequence[Record]) -> None:
        self.gate.wait(timeout=10.0)
        self.batches.append(list(batch))

    def close(self) -> None:
        pass


def test_put_never_blocks_and_counts_overflow(tmp_path: Path) -> None:
    sink = GatedSink()
    store = Store(tmp_path / "x.db", maxsize=1000, batch_max=100, batch_interval_s=0.01, sink_factory=lambda: sink)
    try:
        started = time.perf_counter()
        results = [store.put(Event(at(i), "info", f"e{i}")) for i in range(10_000)]
        elapsed = time.perf_counter() - started
        assert elapsed < 1.0, f"10 000 puts took {elapsed:.3f} s"
        c = store.counters()
        # at most maxsize queued plus one batch in the (stalled) sink
        assert sum(results) <= 1000 + 100
        assert c.dropped == results.count(False) >= 10_000 - 1100
        assert c.dropped_by_kind == {"Event": c.dropped}
        assert not c.broken  # full is not broken
        # a single put with the queue full is still immediate
        t = time.perf_counter()
        assert store.put(Event(at(0), "info", "late")) is False
        assert time.perf_counter() - t < 0.05
    finally:
        sink.gate.set()
        assert store.close(timeout_s=10.0)
    c = store.counters()
    assert c.written == sum(len(b) for b in sink.batches) == sum(results)
    assert c.queue_depth == 0 and c.errors == 0


def test_batches_are_bounded_and_in_order(tmp_path: Path) -> None:
    sink = GatedSink()
    sink.gate.set()
    store = Store(tmp_path / "x.db", batch_max=50, batch_interval_s=10.0, sink_factory=lambda: sink)
    for i in range(175):
        store.put(Event(at(i), "info", str(i)))
    assert store.flush(timeout_s=5.0)
    store.close()
    assert all(len(b) <= 50 for b in sink.batches)
    assert [r.detail for b in sink.batches for r in b if isinstance(r, Event)] == [str(i) for i in range(175)]


def test_interval_commit_without_flush(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db", batch_interval_s=0.05)
    try:
        store.put(Event(at(0), "config_reload", "site.yaml"))
        deadline = time.monotonic() + 5.0
        while store.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.written == 1
    finally:
        store.close()


def test_meter_samples_downsampled_per_meter(tmp_path: Path) -> None:
    db_path = tmp_path / "x.db"
    store = Store(db_path, meter_interval_s=10.0, batch_interval_s=0.05)
    for i in range(60):  # one sample per second for a minute, two meters
        store.put(MeterSample("grid", at(i), (float(i), 0.0, 0.0)))
        store.put(MeterSample("feeder-a", at(i + 0.5), (float(i), 0.0, 0.0)))
    assert store.flush(5.0)
    assert store.close()
    db = sqlite_utils.Database(db_path)
    got = [(r["meter_id"], r["l1_a"]) for r in db.query("SELECT * FROM meter_readings ORDER BY meter_id, at")]
    db.close()
    assert got == [("feeder-a", float(i)) for i in range(0, 60, 10)] + [("grid", float(i)) for i in range(0, 60, 10)]
    assert store.counters().downsampled == 120 - 12


def test_put_after_close_is_dropped(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db")
    assert store.close()
    assert store.put(Event(at(0), "info", "late")) is False
    c = store.counters()
    assert c.dropped == 1 and not c.broken


async def test_async_flush_and_close(tmp_path: Path) -> None:
    store = Store(tmp_path / "x.db", batch_interval_s=5.0)
    assert store.put(Event(at(0), "info", "a"))
    assert await store.aflush(5.0)
    assert store.written == 1
    assert await store.aclose(5.0)


def test_batch_interval_follows_injected_clock(tmp_path: Path) -> None:
    now = [1000.0]
    sink = GatedSink()
    sink.gate.set()
    store = Store(tmp_path / "x.db", batch_interval_s=30.0, clock=lambda: now[0], sink_factory=lambda: sink)
    try:
        store.put(Event(at(0), "info", "a"))
        time.sleep(0.3)
        assert store.written == 0  # 30 s have not passed on the injected clock
        now[0] += 31.0
        deadline = time.monotonic() + 5.0
        while store.written < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.written == 1
    finally:
        store.close()


def test_a_refused_record_loses_only_itself(tmp_path: Path) -> None:
    db_path = tmp_path / "x.db"
    store = Store(db_path, batch_interval_s=5.0)
    try:
        store.put(Event(at(0), "info", "before"))
        store.put(Event(at(1), "info", None))  # type: ignore[arg-type]  # NOT NULL column
        store.put(Event(at(2), "info", "after"))
        assert not store.flush(5.0)
        c = store.counters()
        assert (c.written, c.lost, c.errors, c.broken) == (2, 1, 1, False)
    finally:
        store.close()
    db = sqlite_utils.Database(db_path)
    assert [r["detail"] for r in db.query("SELECT detail FROM events ORDER BY at")] == ["before", "after"]
    db.close()
