"""One profile call in flight per charger (OCPP allows no more), and the order of those waiting.

Waiting calls go out urgent first (a decrease jumps ahead of any waiting increase), then in the
order they arrived. A call that arrives for a *key* (a connector, the fail-safe) that already has
one waiting supersedes it: the older waiter is told so and drops out; a newer call is never
dropped for an older one, and a call in flight is never interrupted.

Usage::

    if not await queue.acquire(("control", connector), urgent=True):
        return "superseded"
    try:
        ...  # the one call in flight
    finally:
        queue.release()
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass
class _Ticket:
    key: Hashable
    urgent: bool
    seq: int
    future: asyncio.Future[bool]


class CallQueue:
    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[_Ticket] = []
        self._seq = itertools.count()

    @property
    def busy(self) -> bool:
        return self._busy

    def waiting(self) -> list[tuple[Hashable, bool]]:
        """(key, urgent) of the waiting calls, in the order they will go out."""
        return [(t.key, t.urgent) for t in sorted(self._waiting, key=_order)]

    async def acquire(self, key: Hashable, urgent: bool = False) -> bool:
        """Wait for this call's turn: ``True`` = go (call :meth:`release` after), ``False`` = a newer
        call for the same key arrived while this one waited (do nothing, do not release)."""
        for older in [t for t in self._waiting if t.key == key]:
            self._waiting.remove(older)
            if not older.future.done():
                older.future.set_result(False)
        if not self._busy:
            self._busy = True
            return True
        ticket = _Ticket(key, urgent, next(self._seq), asyncio.get_running_loop().create_future())
        self._waiting.append(ticket)
        try:
            return await ticket.future
        except asyncio.CancelledError:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            elif ticket.future.done() and not ticket.future.cancelled() and ticket.future.result():
                self.release()  # the turn was handed to us just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        """The call in flight is done: hand the turn to the next waiting call."""
        while self._waiting:
            nxt = min(self._waiting, key=_order)
            self._waiting.remove(nxt)
            if not nxt.future.done():  # a cancelled waiter may not have cleaned up yet
                nxt.future.set_result(True)  # stays busy: the turn passes straight on
                return
        self._busy = False


def _order(t: _Ticket) -> tuple[bool, int]:
    return (not t.urgent, t.seq)
