"""The history writer: a non-blocking ``put`` for the control path, one background writer thread.

The control loop calls :meth:`Store.put`, which only appends to a bounded in-memory queue under a
lock held for a few microseconds; it never touches the disk and never waits for the writer. When
the queue is full the record is dropped and counted per kind. One daemon thread owns the SQLite
connection (through a :class:`~controller.store.sink.Sink`), takes batches off the queue and
commits each batch in one transaction: when ``batch_max`` records are waiting, when the oldest
waiting record is ``batch_interval_s`` old, on :meth:`Store.flush` and on :meth:`Store.close`.

A batch that fails to write is counted in ``errors`` (once) and its records in ``lost`` — except
that when SQLite refuses a record rather than the disk failing, the other records of the batch
are written one by one and only the refused ones are lost. After
``broken_after_errors`` consecutive failures — or if the database cannot be opened, or the thread
dies — ``broken`` is set, for the daemon's fail-safe. A later successful commit clears it (unless
the thread is gone).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from controller.store.downsample import Downsampler
from controller.store.records import MeterSample, Record
from controller.store.sink import Sink, SqliteSink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreCounters:
    """A consistent snapshot of the store's counters, for metrics."""

    written: int  # records committed
    dropped: int  # records refused by put (queue full, store closed or dead)
    dropped_by_kind: Mapping[str, int]  # record class name -> dropped
    downsampled: int  # meter samples thinned out on purpose (not an error)
    errors: int  # failed batch writes (and a failed open)
    lost: int  # records accepted by put but in a batch that failed to write
    queue_depth: int
    broken: bool


class Store:
    """History store with a non-blocking :meth:`put`. Starts its writer thread on construction.

    ``clock`` (monotonic seconds) times the batch interval; ``sink_factory`` is called once, in the
    writer thread, to open the sink (default: :class:`SqliteSink` on ``path``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        maxsize: int = 10_000,
        batch_max: int = 200,
        batch_interval_s: float = 0.5,
        meter_interval_s: float = 10.0,
        broken_after_errors: int = 3,
        clock: Callable[[], float] = time.monotonic,
        sink_factory: Callable[[], Sink] | None = None,
    ) -> None:
        self.path = Path(path)
        self.maxsize = maxsize
        self.batch_max = max(1, batch_max)
        self.batch_interval_s = batch_interval_s
        self.broken_after_errors = max(1, broken_after_errors)
        self._clock = clock
        self._sink_factory: Callable[[], Sink] = sink_factory or (lambda: SqliteSink(self.path))
        self._cond = threading.Condition()
        self._queue: collections.deque[Record] = collections.deque()
        self._downsampler = Downsampler(meter_interval_s)
        # all below guarded by _cond
        self._enqueued = 0  # records ever accepted by put (a sequence number)
        self._done = 0  # records the writer has finished with (written or lost), in queue order
        self._flush_to = 0  # the writer commits at once while _done < _flush_to
        self._written = 0
        self._dropped: dict[str, int] = {}
        self._downsampled = 0
        self._errors = 0
        self._lost = 0
        self._consecutive_errors = 0
        self._broken = False
        self._closing = False
        self._dead = False  # the writer thread has ended (closed, failed to open, or crashed)
        self._thread = threading.Thread(target=self._run, name="depotctl-store", daemon=True)
        self._thread.start()

    # --- control path -------------------------------------------------------------------------

    def put(self, record: Record) -> bool:
        """Queue ``record`` for writing; never blocks, never raises for a full queue or a bad disk.

        Returns True when the record was queued or deliberately thinned out (meter samples within
        the downsampling interval), False when it was dropped (and counted).
        """
        with self._cond:
            sample = record if isinstance(record, MeterSample) else None
            if sample is not None and not self._downsampler.wanted(sample):
                self._downsampled += 1
                return True
            if self._closing or self._dead or len(self._queue) >= self.maxsize:
                kind = type(record).__name__
                self._dropped[kind] = self._dropped.get(kind, 0) + 1
                return False
            self._queue.append(record)
            self._enqueued += 1
            if sample is not None:
                self._downsampler.kept(sample)
            if len(self._queue) in (1, self.batch_max):  # the first record starts the batch clock
                self._cond.notify_all()
            return True

    # --- counters -----------------------------------------------------------------------------

    def counters(self) -> StoreCounters:
        with self._cond:
            return StoreCounters(
                written=self._written,
                dropped=sum(self._dropped.values()),
                dropped_by_kind=MappingProxyType(dict(self._dropped)),
                downsampled=self._downsampled,
                errors=self._errors,
                lost=self._lost,
                queue_depth=len(self._queue),
                broken=self._is_broken(),
            )

    @property
    def written(self) -> int:
        return self.counters().written

    @property
    def dropped(self) -> int:
        return self.counters().dropped

    @property
    def errors(self) -> int:
        return self.counters().errors

    @property
    def queue_depth(self) -> int:
        return self.counters().queue_depth

    @property
    def broken(self) -> bool:
        """True when the disk errors persistently or the writer is gone without a close()."""
        with self._cond:
            return self._is_broken()

    def _is_broken(self) -> bool:
        return self._broken or (self._dead and not self._closing)

    # --- shutdown -----------------------------------------------------------------------------

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Commit everything put before this call; True if done within ``timeout_s`` with no loss.

        Blocks the caller: use :meth:`aflush` from the event loop.
        """
        with self._cond:
            target = self._enqueued
            lost_before = self._lost
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            done = self._cond.wait_for(lambda: self._done >= target or self._dead, timeout=timeout_s)
            return bool(done) and self._done >= target and self._lost == lost_before

    def close(self, timeout_s: float = 5.0) -> bool:
        """Stop accepting records, write what is queued, close the database; True if it finished."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    async def aflush(self, timeout_s: float = 5.0) -> bool:
        return await asyncio.to_thread(self.flush, timeout_s)

    async def aclose(self, timeout_s: float = 5.0) -> bool:
        return await asyncio.to_thread(self.close, timeout_s)

    # --- writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            sink = self._sink_factory()
        except Exception:
            log.exception("store: cannot open %s; history is not recorded", self.path)
            with self._cond:
                self._errors += 1
                self._broken = True
                self._die()
            return
        try:
            self._loop(sink)
        except BaseException:
            log.exception("store: writer thread crashed")
            with self._cond:
                self._broken = True
        finally:
            try:
                sink.close()
            except Exception:
                log.exception("store: error closing %s", self.path)
            with self._cond:
                self._die()

    def _die(self) -> None:
        """Mark the writer gone; queued records are lost. Caller holds ``_cond``."""
        self._lost += len(self._queue)
        self._done += len(self._queue)
        self._queue.clear()
        self._dead = True
        self._cond.notify_all()

    def _next_batch(self) -> list[Record] | None:
        """Wait for a batch worth committing; None when closing and nothing is left."""
        first_seen: float | None = None
        with self._cond:
            while True:
                n = len(self._queue)
                if n and first_seen is None:
                    first_seen = self._clock()
                due = (
                    n >= self.batch_max
                    or (n and self._done < self._flush_to)
                    or (n and self._closing)
                    or (first_seen is not None and self._clock() - first_seen >= self.batch_interval_s)
                )
                if due:
                    return [self._queue.popleft() for _ in range(min(n, self.batch_max))]
                if self._closing:
                    return None
                if self._done < self._flush_to:  # nothing left to flush: a racing flush target
                    self._flush_to = self._done
                if first_seen is None:
                    self._cond.wait(timeout=1.0)  # put() notifies on the first record
                else:
                    # poll the (injected) clock at least every 0.1 s while a batch is waiting
                    left = self.batch_interval_s - (self._clock() - first_seen)
                    self._cond.wait(timeout=min(max(left, 0.001), 0.1))

    def _write_singly(self, sink: Sink, batch: list[Record]) -> list[Record]:
        """Write each record in its own commit; count the good ones; return the refused ones."""
        refused: list[Record] = []
        for record in batch:
            try:
                sink.write([record])
            except Exception:
                refused.append(record)
                continue
            with self._cond:
                self._done += 1
                self._written += 1
                self._cond.notify_all()
        if refused:
            log.error("store: %d record(s) refused, first: %r", len(refused), refused[0])
        return refused

    def _loop(self, sink: Sink) -> None:
        while (batch := self._next_batch()) is not None:
            disk_error: sqlite3.OperationalError | None = None
            refused: list[Record] | None = None
            try:
                sink.write(batch)
            except sqlite3.OperationalError as e:  # the disk or the database: the batch is lost
                disk_error = e
            except Exception:  # SQLite refused a record: write the others one by one
                refused = self._write_singly(sink, batch)  # counts the written ones itself
            with self._cond:  # counters only: no I/O (not even logging) while put() may wait
                failed_before = self._consecutive_errors
                if disk_error is not None:
                    self._done += len(batch)
                    self._errors += 1
                    self._lost += len(batch)
                    self._consecutive_errors += 1
                    if self._consecutive_errors >= self.broken_after_errors:
                        self._broken = True
                else:
                    if refused is None:
                        self._done += len(batch)
                        self._written += len(batch)
                    elif refused:  # a bad record, not a bad disk: an error, but not towards ``broken``
                        self._done += len(refused)
                        self._errors += 1
                        self._lost += len(refused)
                    self._consecutive_errors = 0
                    self._broken = False
                self._cond.notify_all()
            # the first disk error loudly, repeats quietly until recovery
            if disk_error is not None:
                (log.debug if failed_before else log.error)("store: batch of %d lost: %s", len(batch), disk_error)
            elif failed_before:
                log.warning("store: writes recovered after %d failed batches", failed_before)
