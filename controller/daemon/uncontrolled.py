"""Uncontrolled chargers: a charger that rejects or ignores limits, or does not answer, is left out of
the plan and budgeted at what it draws, up to its maximum (docs/safety.md, hazards 7 and 19).

:class:`UncontrolledRules` is a part of :class:`~controller.daemon.dispatch.Dispatcher` (a base
class: the rules read and write the dispatcher's own book), kept in a module of its own:

* **rejects**: a profile rejected → uncontrolled; accepted again → controlled;
* **does not answer**: :data:`MUTE_TIMEOUTS` profile calls in a row without an answer →
  uncontrolled; an answer again → controlled;
* **ignores**: drawing more than :data:`IGNORE_TOLERANCE_A` (DC: :data:`IGNORE_TOLERANCE_KW`)
  above its limit after the reaction time, for :data:`IGNORE_CONFIRM_S` → uncontrolled; within
  its limit again for the reaction time → controlled;
* an uncontrolled charger is budgeted at the most it drew over :data:`UNCONTROLLED_HOLD_S`.

The reaction time is each charger's own (:meth:`UncontrolledRules.reaction`: the site file's
``reaction_s``, else its last commissioning's measurement, else
:data:`~controller.daemon.sessions.REACTION_S`). A charger a commissioning run holds
(:meth:`UncontrolledRules.is_held`) is not judged: the run sends it limits the dispatcher's book
does not know.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from controller.chargers.planning import grid_currents, session_id
from controller.chargers.state import ChargerState, ConnectorState
from controller.daemon.sessions import Sent, reacted
from controller.model.site import Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_loads import amps_per_kw

LOG = logging.getLogger("depotctl.daemon.dispatch")

MUTE_TIMEOUTS = 3
"""This many profile calls in a row without an answer make a charger uncontrolled ("does not answer")."""
IGNORE_CONFIRM_S = 2.0
"""Readings above the limit (after the reaction time) for this long mark a charger uncontrolled."""
UNCONTROLLED_HOLD_S = 60.0
"""An uncontrolled charger is budgeted at the most it drew over this window [s]."""
IGNORE_TOLERANCE_A = 1.5
"""A vehicle drawing this much above its limit (A per phase) after the reaction time ignores it."""
IGNORE_TOLERANCE_KW = 1.0



@dataclass(frozen=True)
class Uncontrolled:
    charger_id: str
    reason: str
    since: datetime


class AnswerCount(Protocol):
    def unanswered_calls(self, charger_id: str) -> int: ...


class UncontrolledRules:
    """The rules above, on the dispatcher's book (the attributes below are its fields)."""

    control: AnswerCount
    states: Mapping[str, ChargerState]
    site: Callable[[], Site]
    clock: Callable[[], datetime]
    request_replan: Callable[[], None]
    reaction_s: float
    reaction_of: Callable[[str], float] | None
    held: Callable[[str], bool] | None
    sent: dict[str, Sent]
    uncontrolled: dict[str, Uncontrolled]
    _over_since: dict[str, datetime]
    _under_since: dict[str, datetime]
    _drawn: dict[str, list[tuple[datetime, PhaseCurrents]]]
    _charger_of: dict[str, str]

    def reaction(self, charger_id: str) -> float:
        """How long the charger's EVs take to follow a new limit [s]: ``reaction_of``'s answer
        (per charger), else the one ``reaction_s``."""
        return self.reaction_of(charger_id) if self.reaction_of is not None else self.reaction_s

    def is_held(self, charger_id: str) -> bool:
        """A commissioning run holds the charger: the dispatcher sends it nothing of its own."""
        return self.held is not None and self.held(charger_id)

    def _judge_answers(self, charger_id: str) -> None:
        """A charger whose profile calls (ours or its fail-safe's) time out again and again cannot
        be controlled: uncontrolled until it answers again."""
        unanswered = self.control.unanswered_calls(charger_id)
        if unanswered >= MUTE_TIMEOUTS:
            self.mark_uncontrolled(charger_id, f"does not answer: {unanswered} profile calls timed out in a row")
        elif unanswered == 0 and (u := self.uncontrolled.get(charger_id)) is not None and u.reason.startswith(
            "does not answer"
        ):
            LOG.warning("%s answers again: controlled", charger_id)
            del self.uncontrolled[charger_id]
            self.request_replan()

    def mark_uncontrolled(self, charger_id: str, reason: str) -> None:
        if charger_id not in self.uncontrolled:
            LOG.error("%s is UNCONTROLLED: %s — budgeted at what it draws, up to its maximum", charger_id, reason)
            self.uncontrolled[charger_id] = Uncontrolled(charger_id, reason, self.clock())
            self._drawn.pop(charger_id, None)
            self.request_replan()

    def _maybe_controlled(self, charger_id: str) -> None:
        """A profile was accepted: controlled again unless it is still drawing above its limit."""
        u = self.uncontrolled.get(charger_id)
        if u is None or not u.reason.startswith("rejected"):
            return  # ignoring limits: only its draw can show that it obeys (observe_draws); mute: _judge_answers
        LOG.warning("%s accepts profiles again: controlled", charger_id)
        del self.uncontrolled[charger_id]
        self.request_replan()

    def observe_draws(
        self, now: datetime, max_age_s: float,
        measure: Callable[[Charger, int, ConnectorState], PhaseCurrents | None] | None = None,
    ) -> None:
        """Fast loop, every poll: a session drawing above its limit for longer than the reaction
        time ignores it (uncontrolled); one that draws within it again is controlled again."""
        site = self.site()
        max_age = timedelta(seconds=max_age_s)
        for cid, st in self.states.items():
            if not st.connected or self.is_held(cid):
                continue
            self._judge_answers(cid)
            reaction_s = self.reaction(cid)
            try:
                ch = site.charger(cid)
            except KeyError:
                continue
            over_any = False
            judged = False
            for conn_id, conn in st.connectors.items():
                tx = conn.transaction
                if conn_id < 1 or tx is None:
                    continue
                key = session_id(cid, tx.transaction_id)
                sent = self.sent.get(key)
                measured = (
                    measure(ch, conn_id, conn) if measure is not None else grid_currents(ch, conn, now, max_age, site)
                )
                if sent is None or measured is None:
                    continue
                if not reacted(conn, sent, reaction_s):
                    continue  # the reading may predate the limit, or the EV's reaction to it
                judged = True
                if ch.kind == "dc":
                    over = max(measured) / amps_per_kw(site, ch) > sent.limit + IGNORE_TOLERANCE_KW
                else:
                    over = max(measured) > sent.limit + IGNORE_TOLERANCE_A
                over_any = over_any or over
                if over:
                    self._charger_of[key] = cid
                    since = self._over_since.setdefault(key, now)
                    if (now - since).total_seconds() >= IGNORE_CONFIRM_S:
                        self.mark_uncontrolled(
                            cid, f"draws {max(measured):.1f} A on a {sent.limit:.1f} {'kW' if ch.kind == 'dc' else 'A'}"
                            " limit (ignores its profile)")
                else:
                    self._over_since.pop(key, None)
            u = self.uncontrolled.get(cid)
            if u is None or not u.reason.startswith("draws") or not judged or over_any:
                self._under_since.pop(cid, None)
                continue
            since = self._under_since.setdefault(cid, now)
            if (now - since).total_seconds() >= reaction_s:  # within its limit for a while, not once
                LOG.warning("%s follows its limit again: controlled", cid)
                del self.uncontrolled[cid]
                self._under_since.pop(cid, None)
                self.request_replan()

    def uncontrolled_budget_a(
        self, charger_id: str, now: datetime, draw_a: PhaseCurrents | None,
        budget_a: PhaseCurrents, max_a: PhaseCurrents,
    ) -> PhaseCurrents:
        """What an uncontrolled charger is budgeted at (grid A per phase): the most it drew over the
        last minute, at least what its profiles allow (``budget_a``), its maximum while its draw is
        unknown; never above its maximum."""
        window = self._drawn.setdefault(charger_id, [])
        if draw_a is not None:
            window.append((now, draw_a))
        cutoff = now - timedelta(seconds=UNCONTROLLED_HOLD_S)
        window[:] = [(t, a) for t, a in window if t >= cutoff]
        if not window:
            return max_a
        peak = tuple(max(a[p] for _, a in window) for p in range(3))
        return (
            min(max_a[0], max(peak[0], budget_a[0])),
            min(max_a[1], max(peak[1], budget_a[1])),
            min(max_a[2], max(peak[2], budget_a[2])),
        )
