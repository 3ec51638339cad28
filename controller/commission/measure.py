"""What a commissioning run reads of a connector's draw, and what it judges the draw against.

* :class:`DrawWatch` collects the connector's meter values as they arrive (the charger's
  ``MeterValues``, per phase, on our clock — :class:`~controller.chargers.state.Reading.at`) as
  :class:`Sample` values in planner units: the busiest phase's current [A] for AC, the power
  [kW] for DC.
* :class:`LimitLog` is the timeline of the limits the run had accepted — or sent without an
  answer in time (they may be in force: a charger answering late has applied them);
  :meth:`LimitLog.allowed` is what the connector may draw at a moment, a decrease counting only
  after a grace (the EV's reaction): the yardstick of ``ignores_limit``.

Pure apart from reading the state it is given; nothing here reads a clock or sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from controller.chargers.state import ChargerState, Measured, Reading

SAME_SAMPLE_S = 0.001
"""Readings this close together come from one MeterValues message."""


@dataclass(frozen=True)
class Sample:
    at: datetime
    """When it was sampled, on our clock."""
    value: float
    """Planner units: the busiest phase [A] (AC), the power [kW] (DC)."""
    phases_a: tuple[float | None, float | None, float | None] = (None, None, None)
    """Per charger phase L1..L3 [A] (AC; ``None``: not reported in this message)."""


def _sample(measured: Measured, dc: bool) -> Sample | None:
    """The newest sample in ``measured`` (``None``: nothing usable yet)."""
    if dc:
        p = measured.power_w
        return None if p is None else Sample(p.at, p.value / 1000.0)
    phased = [r for r in measured.current_a if r is not None]
    if phased:
        newest = max(r.at for r in phased)
        fresh = [r if r is not None and _same(r, newest) else None for r in measured.current_a]
        values = [r.value for r in fresh if r is not None]
        triple = (_val(fresh[0]), _val(fresh[1]), _val(fresh[2]))
        return Sample(newest, max(values), triple)
    unphased = measured.current_unphased_a
    return None if unphased is None else Sample(unphased.at, unphased.value, (unphased.value, None, None))


def _same(r: Reading, at: datetime) -> bool:
    return abs((r.at - at).total_seconds()) <= SAME_SAMPLE_S


def _val(r: Reading | None) -> float | None:
    return None if r is None else r.value


class DrawWatch:
    """The meter values of one connector, collected by :meth:`poll` (call it often: each poll
    keeps the newest sample, so one poll per meter interval or more loses nothing)."""

    def __init__(self, state_of: Callable[[], ChargerState], connector: int, *, dc: bool = False) -> None:
        self._state_of = state_of
        self.connector = connector
        self.dc = dc
        self.samples: list[Sample] = []

    def poll(self) -> Sample | None:
        """Take the newest sample if it is new; returns it (``None``: nothing new)."""
        c = self._state_of().connectors.get(self.connector)
        if c is None:
            return None
        s = _sample(c.measured, self.dc)
        if s is None or (self.samples and s.at <= self.samples[-1].at):
            return None
        self.samples.append(s)
        return s

    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def since(self, at: datetime) -> list[Sample]:
        """Samples taken at or after ``at`` (our clock)."""
        return [s for s in self.samples if s.at >= at]

    def between(self, start: datetime, end: datetime) -> list[Sample]:
        return [s for s in self.samples if start <= s.at < end]


@dataclass(frozen=True)
class Step:
    """A limit sent at ``sent_at``: accepted at ``accepted_at``, or not answered in time (``None``:
    it may be in force, from when it was sent)."""

    limit: float
    sent_at: datetime
    accepted_at: datetime | None

    @property
    def certain(self) -> bool:
        return self.accepted_at is not None


@dataclass
class LimitLog:
    """The limits a run had (or may have had) in force, in order (planner units)."""

    steps: list[Step] = field(default_factory=list)

    def add(self, limit: float, sent_at: datetime, accepted_at: datetime | None) -> None:
        """One more limit; ``accepted_at`` None: sent but not answered in time."""
        self.steps.append(Step(limit, sent_at, accepted_at))

    def allowed(self, at: datetime, grace_s: float) -> float | None:
        """The most the connector may draw at ``at``: the highest limit that may be in force at any
        moment of ``[at − grace_s, at]``. A limit may be in force from when it was sent until the
        next *accepted* one was (one not answered may or may not have replaced what was in force
        before it, so both count). ``None`` before the first step."""
        start = at - timedelta(seconds=grace_s)
        best: float | None = None
        for i, step in enumerate(self.steps):
            until = next((s.accepted_at for s in self.steps[i + 1 :] if s.accepted_at is not None), None)
            if step.sent_at <= at and (until is None or until > start):
                best = step.limit if best is None else max(best, step.limit)
        return best

    def worst_excess(self, samples: list[Sample], grace_s: float) -> tuple[float, Sample | None]:
        """The largest ``draw − allowed`` over ``samples`` (0 and ``None`` when never above)."""
        worst, where = 0.0, None
        for s in samples:
            allowed = self.allowed(s.at, grace_s)
            if allowed is None:
                continue
            if s.value - allowed > worst:
                worst, where = s.value - allowed, s
        return worst, where
