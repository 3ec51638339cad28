"""How far a charger's clock is from ours, measured from the timestamps it sends.

A timestamp a charger puts on a message is never later than the charger's own "now" when it sent
it, and we receive the message after it was sent, so ``stamp − received_at`` is a *lower bound*
of ``offset = charger clock − our clock``. The estimate is the largest lower bound over a bounded
recent window: the freshest samples set it, and a burst of old queued values (a charger sending
its offline backlog, a StopTransaction with its transaction data) cannot pull it down — the
window keeps the highest bounds, not the newest, once it is full. Samples older than
``max_age_s`` (by our receive time) leave the window, so a clock that was corrected backwards
is followed within that age; a reboot (which can reset the clock) should :meth:`reset` it.

Pure: times are passed in, nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_MAX_SAMPLES = 20
DEFAULT_MAX_AGE_S = 600.0
STEP_S = 10.0
"""A fresh bound this far below the estimate disagrees with it."""
STEP_SAMPLES = 3
STEP_SPAN_S = 3.0
STEP_SPREAD_S = 5.0
"""This many disagreeing bounds in a row, from messages spread over at least ``STEP_SPAN_S`` and
agreeing with each other within ``STEP_SPREAD_S``, show a clock that was set back: the estimate
then follows them at once. A flushed backlog of queued values does not: its stamps lie minutes
apart, so its bounds do not agree with each other."""


@dataclass(frozen=True)
class _Sample:
    received_at: datetime
    bound_s: float
    """``stamp − received_at`` [s]: the offset is at least this."""


class ClockOffset:
    """Estimator of ``charger clock − our clock`` [s] (``None`` until the first sample)."""

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self.max_samples = max(1, max_samples)
        self.max_age_s = max_age_s
        self._samples: list[_Sample] = []
        self._disagree: list[_Sample] = []
        self._offset_s: float | None = None  # the largest bound of ``_samples``, kept as they change

    def observe(self, charger_time: datetime, received_at: datetime) -> None:
        """One charger timestamp, received (by our clock) at ``received_at``."""
        bound = (charger_time - received_at).total_seconds()
        self._follow_a_step_back(_Sample(received_at, bound))
        if self._samples and self._samples[-1].received_at == received_at:
            # several stamps in one message: only the tightest bound matters
            if bound > self._samples[-1].bound_s:
                self._samples[-1] = _Sample(received_at, bound)
        else:
            self._samples.append(_Sample(received_at, bound))
        newest = max(s.received_at for s in self._samples)
        oldest_kept = newest - timedelta(seconds=self.max_age_s)
        self._samples = [s for s in self._samples if s.received_at >= oldest_kept]
        while len(self._samples) > self.max_samples:
            # evict the loosest bound (the oldest of equals): queued old values never crowd out the fresh ones
            loosest = min(range(len(self._samples)), key=lambda i: (self._samples[i].bound_s, i))
            del self._samples[loosest]
        self._offset_s = max((s.bound_s for s in self._samples), default=None)

    def _follow_a_step_back(self, sample: _Sample) -> None:
        """A clock corrected backwards without a reboot (NTP, set by hand): the old, higher bounds
        would keep the estimate too high for ``max_age_s`` — profiles would start in the charger's
        future. Several fresh bounds in a row well below the estimate, over ``STEP_SPAN_S``, drop
        every older sample."""
        estimate = self.offset_s
        if estimate is None or sample.bound_s >= estimate - STEP_S:
            self._disagree.clear()
            return
        if self._disagree and self._disagree[-1].received_at == sample.received_at:
            return  # one message, several stamps
        self._disagree.append(sample)
        bounds = [d.bound_s for d in self._disagree]
        if max(bounds) - min(bounds) > STEP_SPREAD_S:
            self._disagree = [sample]  # not one new clock: start over from this sample
        first = self._disagree[0].received_at
        if len(self._disagree) >= STEP_SAMPLES and (sample.received_at - first).total_seconds() >= STEP_SPAN_S:
            self._samples = self._disagree[:-1]  # this sample joins them below
            self._disagree = []

    def reset(self) -> None:
        """Forget every sample (the charger rebooted: its clock may have been reset)."""
        self._samples.clear()
        self._disagree.clear()
        self._offset_s = None

    @property
    def samples(self) -> int:
        """How many samples the estimate rests on."""
        return len(self._samples)

    @property
    def offset_s(self) -> float | None:
        """``charger clock − our clock`` [s], ``None`` while unmeasured."""
        return self._offset_s  # read by the fast loop for every charger each cycle: kept, not recomputed

    def to_ours(self, charger_time: datetime) -> datetime | None:
        """A charger time on our clock (``None`` while unmeasured)."""
        offset = self.offset_s
        return None if offset is None else charger_time - timedelta(seconds=offset)

    def to_charger(self, our_time: datetime) -> datetime | None:
        """One of our times on the charger's clock (``None`` while unmeasured)."""
        offset = self.offset_s
        return None if offset is None else our_time + timedelta(seconds=offset)
