"""The overload shed's decision, each fast cycle: which sessions to lower, to what, and why.

Each session counts at the limit it runs under as far as the dispatcher knows (its book, else
what its connector may draw by the charger's own profiles) and at its measured draw, or that
limit where no fresh draw is known — never at the charger-wide worst case. Loads are line
currents as the node's limit sees them (phasor sums, :mod:`controller.rules.shed`); ``in_phase``: per
metered node, each line current's part in phase with its voltage, where the meter tells.

A session whose charger cannot be lowered now (uncontrolled, or a profile call to it stuck: the
decrease would wait up to the call timeout) counts as load that stays: the others take its share
of the excess (:mod:`controller.rules.shed`); it is still sent its own decrease.

Only ever lower, never deadbanded; the fast loop (:mod:`.fast`) sends the order at once. A session
counts as having answered its limit once its readings are newer than the change plus its charger's
reaction time (``reaction_of``: per charger; else :data:`~.sessions.REACTION_S`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState
from controller.daemon.draws import Measured
from controller.daemon.sessions import REACTION_S, Sent, budget_grid_a, reacted
from controller.daemon.uncontrolled import IGNORE_TOLERANCE_A
from controller.model.site import Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.shed import ChargerDraw, Shed, kw_usable_a, overloaded, shed


class ShedBook(Protocol):
    """What the shed reads of the dispatcher."""

    @property
    def sent(self) -> Mapping[str, Sent]: ...

    def current_limit(self, charger_id: str, connector: int) -> float: ...

    def can_lower_now(self, charger_id: str) -> bool: ...


@dataclass(frozen=True)
class ShedOrder:
    """Sessions to lower now (session → limit, planner units), where each runs (charger,
    connector), and the overloads that made it (non-empty)."""

    lowered: dict[str, float]
    where: dict[str, tuple[str, int]]
    events: list[Shed]

    @property
    def text(self) -> str:
        return ", ".join(f"{e.label} {e.load_a:.1f} A > {e.usable_a:.1f} A" for e in self.events)


@dataclass
class _Running:
    draws: list[ChargerDraw]
    where: dict[str, tuple[str, int]]
    answered: set[str]  # sessions whose readings show their answer to their last limit


def _running(
    site: Site, states: Mapping[str, ChargerState], book: ShedBook, measure: Measured,
    reaction_of: Callable[[str], float] | None = None,
) -> _Running:
    out = _Running([], {}, set())
    for cid, st in states.items():
        if not st.connected:
            continue
        try:
            ch = site.charger(cid)
        except KeyError:  # accept_unknown: not in the site file, not shed here
            continue
        for conn_id, conn in st.connectors.items():
            tx = conn.transaction
            if conn_id < 1 or tx is None:
                continue
            sid = session_id(cid, tx.transaction_id)
            limit = book.current_limit(cid, conn_id)
            measured = measure(ch, conn_id, conn)
            sent = book.sent.get(sid)
            reaction_s = reaction_of(cid) if reaction_of is not None else REACTION_S
            if measured is not None and sent is not None and reacted(conn, sent, reaction_s):
                out.answered.add(sid)
            unit = "kW" if ch.kind == "dc" else "A"
            draw = measured if measured is not None else budget_grid_a(site, ch, limit, unit)
            fixed = not book.can_lower_now(cid)  # its draw stays: the others make up for it
            out.draws.append(ChargerDraw(sid, cid, limit, draw, tx.phases_known, fixed))
            out.where[sid] = (cid, conn_id)
    return out


def shed_order(
    site: Site,
    states: Mapping[str, ChargerState],
    book: ShedBook,
    loads: Mapping[str, PhaseCurrents],
    measure: Measured,
    grid: tuple[PhaseCurrents | None, float | None],
    in_phase: Mapping[str, PhaseCurrents] | None = None,
    reaction_of: Callable[[str], float] | None = None,
) -> ShedOrder | None:
    """The sessions under an overloaded node to lower now, or None (no overload, or every session
    already at or below what the shed asks: waiting for the vehicles to react). ``grid``: the grid
    meter's (current per line, power), for a contracted kW limit; ``reaction_of``: per charger,
    its EVs' reaction time [s]."""
    grid_a, grid_power_w = grid
    tighter = kw_usable_a(site, grid_a, grid_power_w) if grid_a is not None else {}
    if not overloaded(site, loads, tighter):
        return None  # the common cycle: nothing over, the sessions need not be gathered
    running = _running(site, states, book, measure, reaction_of)
    if not running.draws:
        return None
    new_limits, events = shed(site, loads, running.draws, tighter, in_phase)
    if not events:
        return None
    limits = {x.key: x.limit for x in running.draws}
    drawn = {x.key: max(x.draw_a) for x in running.draws}
    where = running.where
    # lower, or already at it in our book but drawing above it once it had time to follow it (its
    # profile lapsed, or was lost): the limit is sent again
    lowered = {
        sid: v for sid, v in new_limits.items()
        if v < limits[sid] - 0.05
        or (sid in running.answered and site.charger(where[sid][0]).kind == "ac" and v <= limits[sid]
            and drawn[sid] > limits[sid] + IGNORE_TOLERANCE_A)
    }
    if not lowered:
        return None
    return ShedOrder(lowered, where, events)
