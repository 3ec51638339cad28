"""The daemon's history store, owned by one part: opened at start, written through, closed at stop.

:class:`StoreRecorder` is the daemon's :class:`~controller.daemon.ports.Recorder`: every other part
writes history through ``put`` and ``event`` and never sees the store. Before
:meth:`StoreRecorder.open` nothing is recorded. :class:`PushHistory` records the dispatcher's pushes.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from controller.chargers.control import ApplyResult
from controller.daemon.ports import Clock, Recorder
from controller.metrics import DepotMetrics
from controller.metrics.update import count_push
from controller.store import Event, Restored, Store, accepted_profile, restore
from controller.store.records import EventKind, Record


class StoreRecorder:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.store: Store | None = None

    def open(self, path: str | Path, now: datetime) -> Restored:
        """Open the store at ``path`` (creating its folder) and return what the last run left."""
        where = Path(path)
        where.parent.mkdir(parents=True, exist_ok=True)
        restored = restore(where, now)
        self.store = Store(where)
        return restored

    def put(self, record: Record) -> None:
        if self.store is not None:
            self.store.put(record)

    def event(
        self, kind: EventKind, detail: str, *, charger_id: str | None = None, circuit_id: str | None = None
    ) -> None:
        self.put(Event(self.clock(), kind, detail, charger_id, circuit_id))

    @property
    def broken(self) -> bool:
        """The store has given up writing (a fault: the fail-safe state machine sees it)."""
        return self.store is not None and self.store.broken

    async def close(self) -> None:
        """Flush and close (bounded by the store itself)."""
        if self.store is not None:
            await self.store.aclose()


class PushHistory:
    """Metrics and history of every limit the dispatcher pushes (its ``observe`` hook): accepted
    profiles are recorded (a restart budgets what may still be in force), rejections are events."""

    def __init__(self, recorder: Recorder, metrics: DepotMetrics, clock: Clock) -> None:
        self.recorder = recorder
        self.metrics = metrics
        self.clock = clock

    def __call__(self, charger_id: str, connector: int, limit: float, result: ApplyResult) -> None:
        if result.status != "unchanged" and result.status != "superseded":
            count_push(self.metrics, charger_id, result.status)
        if result.status == "accepted" and result.spec is not None:
            self.recorder.put(accepted_profile(charger_id, result.spec, self.clock()))
        elif result.status == "rejected":
            self.recorder.event("reject", f"profile rejected: {result.detail}", charger_id=charger_id)
