"""Thinning meter samples before they are queued: keep one per meter per ``interval_s``."""

from __future__ import annotations

from controller.store.records import MeterSample
from controller.store.sink import to_unix


class Downsampler:
    """Keeps a sample when ``interval_s`` [s] have passed since the last kept one of its meter.

    A sample older than the last kept one (clock stepped back) is kept and restarts the interval.
    ``interval_s <= 0`` keeps everything. Not thread-safe: the caller holds its own lock.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def wanted(self, sample: MeterSample) -> bool:
        if self.interval_s <= 0:
            return True
        last = self._last.get(sample.meter_id)
        t = to_unix(sample.at)
        return last is None or t < last or t >= last + self.interval_s

    def kept(self, sample: MeterSample) -> None:
        """Record that ``sample`` was queued."""
        self._last[sample.meter_id] = to_unix(sample.at)
