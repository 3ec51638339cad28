"""PV output per 15-minute slot, and its day-ahead forecast. Pure.

The PV meter's output [kW, >= 0] is averaged per :data:`SLOT_S` slot (slots aligned to the clock;
covered time as in :mod:`.intervals`), kept for the last :data:`DAYS` days (seeded from the
history database's meter readings after a restart). The forecast of a slot is the mean of the
same slot on each of the last :data:`DAYS` days that have it — "the same time yesterday", smoothed
over a few days of weather. *Same time* is 24 h earlier in elapsed time, which is sun time: across
a DST change the profile stays with the sun, not with the wall clock. A slot no day has is 0 kW
(unknown production is none: never counting on PV that may not come). The planner never counts
more than the measured output for the slot it is in (``Snapshot.pv_forecast_kw``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from controller.energy.intervals import MAX_GAP_S, Coverage, split

SLOT_S = 900
"""Forecast slot length [s] (15 minutes)."""
DAYS = 3
"""Days of history each slot's forecast averages."""
DAY_S = 86_400

Profile = tuple[tuple[datetime, float], ...]
"""Steps ``(from, kW)``, each until the next."""


def slot_of(at: datetime) -> int:
    """The start of the slot ``at`` lies in [unix s]."""
    t = int(at.timestamp() // 1)
    return t - t % SLOT_S


class PvHistory:
    """Per slot: PV energy and the time readings covered; the forecast from it."""

    def __init__(self, days: int = DAYS, max_gap_s: float = MAX_GAP_S) -> None:
        self.days = days
        self._coverage = Coverage(max_gap_s)
        self._slots: dict[int, tuple[float, float]] = {}  # slot start [unix s] → (kWh, covered s)

    def seed(self, means_kw: Mapping[int, float]) -> None:
        """Slots from the history database: slot start [unix s] → mean output [kW] (taken as
        covering the whole slot). Slots already measured in this run are kept."""
        for slot, kw in means_kw.items():
            if slot % SLOT_S == 0 and slot not in self._slots:
                self._slots[slot] = (max(0.0, kw) * SLOT_S / 3600.0, float(SLOT_S))

    def observe(self, at: datetime, kw: float | None) -> None:
        """A reading of PV output [kW] at ``at`` (None: none this cycle; negative counts as 0)."""
        span = self._coverage.cover(at, kw is not None)
        if span is None or kw is None:
            return
        value = max(0.0, kw)
        for t0, t1 in split(span, _slot_end):
            slot = slot_of(t0)
            kwh, covered = self._slots.get(slot, (0.0, 0.0))
            seconds = (t1 - t0).total_seconds()
            self._slots[slot] = (kwh + value * seconds / 3600.0, covered + seconds)
        keep_from = slot_of(at) - (self.days + 1) * DAY_S
        if min(self._slots, default=keep_from) < keep_from:
            self._slots = {s: v for s, v in self._slots.items() if s >= keep_from}

    def mean_kw(self, slot: int) -> float | None:
        """The slot's mean output [kW]; None when no reading covered it."""
        got = self._slots.get(slot)
        if got is None or got[1] <= 0:
            return None
        return got[0] * 3600.0 / got[1]

    def forecast(self, now: datetime, end: datetime) -> Profile:
        """The day-ahead forecast from ``now``'s slot until ``end``: steps ``(from, kW)`` (equal
        neighbours merged); empty without any history."""
        if not self._slots:
            return ()
        out: list[tuple[datetime, float]] = []
        slot = slot_of(now)
        stop = end.timestamp()
        while slot < stop:
            past = [self.mean_kw(slot - k * DAY_S) for k in range(1, self.days + 1)]
            known = [v for v in past if v is not None]
            kw = round(sum(known) / len(known), 3) if known else 0.0
            if not out or out[-1][1] != kw:
                out.append((datetime.fromtimestamp(slot, UTC), kw))
            slot += SLOT_S
        if out and out[0][0] < now:
            out[0] = (now, out[0][1])  # the profile starts now, not in the past
        return tuple(out)


def _slot_end(t: datetime) -> datetime:
    return datetime.fromtimestamp(slot_of(t) + SLOT_S, UTC)

