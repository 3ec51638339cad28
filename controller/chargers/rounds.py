"""Spreading bursts of charger work over event-loop rounds, so the fast loop is never stuck behind one.

Hundreds of chargers send their meter values in the same second (clock-aligned data does, by the
spec; a rig whose chargers all started together does too), and a plan sends hundreds of profiles
at once. Each frame costs the event loop ~0.5 ms (parsing, schema validation, our handler, the
answer); asyncio runs every task that became ready in one pass, so 400 frames are one ~250 ms
pass — and the fast loop's meter answer, which needs three or four passes to reach the loop (the
socket, pymodbus' transaction, the poll, the loop itself), waits for several such passes.

:class:`Rounds` lets at most ``per_round`` pieces of work *start* per round; the others wait, in
the order they came. A round ends when the event loop has looked at its sockets and timers again
(a ``call_later(0)``, which runs after the next poll's I/O callbacks), so between two rounds the
fast loop's answer moves on. Nothing is dropped, and work starts in the order it asked (a waiter
woken for a round is not overtaken by work that comes after it); a piece of work that is started
is not interrupted (the gate is taken *before* it, never held across its awaits, so no work can
wait for another through the gate). A waiter cancelled after its turn came leaves the turn unused.
"""

from __future__ import annotations

import asyncio
from collections import deque

PER_ROUND = 8
"""Frames started per round: ~4 ms of frame work at ~0.5 ms each."""


class Rounds:
    """At most ``per_round`` admissions per event-loop round; the rest wait FIFO for later rounds."""

    def __init__(self, per_round: int = PER_ROUND) -> None:
        if per_round < 1:
            raise ValueError(f"per_round must be at least 1, got {per_round}")
        self.per_round = per_round
        self._admitted = 0  # in the round now open (a round is open while its timer is pending)
        self._granted = 0  # woken for this round, not started yet: nobody overtakes them
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the state above belongs to
        self.deferred = 0
        """How many admissions had to wait for a later round (a counter: tests and probes read it)."""

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def admit(self) -> None:
        """Return when this piece of work may start (at once, unless the round is full or others wait)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests): whatever was pending belonged to the old one
            self._loop, self._timer, self._granted = loop, None, 0
            self._waiting.clear()
        if self._timer is None:  # no round open: this one opens it
            self._admitted = 0
            self._schedule(loop)
        if not self._waiting and not self._granted and self._admitted < self.per_round:
            self._admitted += 1
            return
        self.deferred += 1
        ticket: asyncio.Future[None] = loop.create_future()
        self._waiting.append(ticket)
        self._schedule(loop)
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self._granted -= 1  # its turn came and goes unused (never passed on: N per round)
            else:
                ticket.cancel()
            raise
        self._granted -= 1

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is None:
            self._timer = loop.call_later(0, self._next_round)

    def _next_round(self) -> None:
        """A new round: the first ``per_round`` waiting are admitted (they run in the next pass)."""
        self._timer = None
        self._admitted = 0
        if not self._waiting:
            return  # the round closes: the next admission opens one
        self._wake(self.per_round)
        self._schedule(asyncio.get_running_loop())

    def _wake(self, n: int) -> None:
        while n > 0 and self._waiting:
            ticket = self._waiting.popleft()
            if ticket.done():  # cancelled while waiting
                continue
            ticket.set_result(None)
            self._admitted += 1
            self._granted += 1
            n -= 1
