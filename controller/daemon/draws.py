"""What each charger draws, as far as the fast loop can tell: measured where fresh, else bounded.

* :class:`Measured` — each connector's fresh grid current, worked out once per cycle;
* :class:`ChargerBudgets` — what a charger may draw where nothing fresh is measured: by the
  profiles it runs under (the charger-side book of :class:`~controller.chargers.control.Control`),
  by what it accepted before a restart, at worst its maximum (docs/safety.md, promise 2, hazard 8);
* :func:`ev_estimate` — what a charger's planned sessions draw now, for the base-load subtraction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from controller.chargers.control import Budget
from controller.chargers.planning import grid_currents, session_id
from controller.chargers.state import ChargerState, ConnectorState
from controller.daemon.sessions import REACTION_S, Sent, budget_grid_a, reacted
from controller.daemon.uncontrolled import IGNORE_TOLERANCE_A, IGNORE_TOLERANCE_KW
from controller.model.site import Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.store import Restored, restored_budget

ZERO: PhaseCurrents = (0.0, 0.0, 0.0)
RESTORED_MARGIN_S = 30.0
"""A profile from before a restart counts this long past its recorded end (clock offset, skew)."""
IDLE_STATUSES = frozenset({"Available", "Unavailable", "Faulted", "Reserved"})


def add3(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def max3(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (max(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]))


def min3(a: PhaseCurrents, b: PhaseCurrents) -> PhaseCurrents:
    return (min(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]))


class Measured:
    """Each connector's fresh grid current, worked out once per cycle (the loads, the base-load
    estimate, the shed and the dispatcher all ask for it)."""

    def __init__(self, now: datetime, max_age_s: float, site: Site | None = None) -> None:
        self.now = now
        self.max_age = timedelta(seconds=max_age_s)
        self.site = site
        self._memo: dict[tuple[str, int], PhaseCurrents | None] = {}

    def __call__(self, ch: Charger, conn_id: int, conn: ConnectorState) -> PhaseCurrents | None:
        key = (ch.id, conn_id)
        if key not in self._memo:
            self._memo[key] = grid_currents(ch, conn, self.now, self.max_age, self.site)
        return self._memo[key]

    def charger(self, ch: Charger, st: ChargerState) -> PhaseCurrents | None:
        """All the charger's connectors (None if none is fresh), as :func:`grid_draw_a`."""
        total: PhaseCurrents | None = None
        for conn_id, conn in st.connectors.items():
            if conn_id < 1:
                continue
            g = self(ch, conn_id, conn)
            if g is not None:
                total = g if total is None else add3(total, g)
        return total


class BudgetBook(Protocol):
    """What :class:`ChargerBudgets` asks of :class:`~controller.chargers.control.Control`."""

    def budget(self, charger_id: str, now: datetime | None = None) -> Budget: ...

    def connector_budget(self, charger_id: str, connector: int, now: datetime | None = None) -> Budget: ...


class ChargerBudgets:
    """What a charger may draw where its draw is not measured (grid A per line). ``restored``: what
    the chargers accepted before a restart (:meth:`restore`, at start)."""

    def __init__(self, site: Callable[[], Site], states: Mapping[str, ChargerState], control: BudgetBook) -> None:
        self.site = site
        self.states = states
        self.control = control
        self.restored = Restored()

    def restore(self, restored: Restored) -> None:
        self.restored = restored

    def profiles_a(self, ch: Charger, now: datetime) -> PhaseCurrents:
        """What the charger's profiles allow it now (Control's book)."""
        b = self.control.budget(ch.id, now)
        return budget_grid_a(self.site(), ch, b.value, b.unit)

    def max_a(self, ch: Charger) -> PhaseCurrents:
        """A charger at its own maximum (what an uncontrolled one may draw when its draw is unknown)."""
        site = self.site()
        fs = site.failsafe.dc_kw if ch.kind == "dc" else site.failsafe.charger_a
        top = ch.max_kw if ch.kind == "dc" else ch.max_a
        return budget_grid_a(site, ch, top if top is not None else fs, "kW" if ch.kind == "dc" else "A")

    def offline_a(self, ch: Charger, now: datetime) -> PhaseCurrents:
        """Worst-case grid current of a charger out of contact (docs/safety.md, hazard 8)."""
        site = self.site()
        st = self.states.get(ch.id)
        if st is not None and (st.failsafe is not None or st.accepted or st.connected_at is not None):
            return self.profiles_a(ch, now)  # seen during this run: what it accepted, then fail-safe
        fs = site.failsafe.dc_kw if ch.kind == "dc" else site.failsafe.charger_a
        unit = "kW" if ch.kind == "dc" else "A"
        top = ch.max_kw if ch.kind == "dc" else ch.max_a
        value = restored_budget(  # what it accepted before a restart, per connector, whole schedules
            self.restored,
            ch.id,
            connectors=ch.connectors,
            failsafe_limit=fs,
            max_limit=top if top is not None else fs,
            now=now,
            margin_s=RESTORED_MARGIN_S,
        )
        return budget_grid_a(site, ch, value, unit)

    def worst_parts_a(
        self, ch: Charger, st: ChargerState, now: datetime, measure: Measured
    ) -> tuple[PhaseCurrents, PhaseCurrents]:
        """A connected charger's grid current, connector by connector: measured where fresh, else —
        if the connector may be drawing (a transaction, or a status that is not idle) — what it may
        draw by its own profiles; never 0 for a connector nothing fresh is known of. In two parts:
        what is measured (its angle known from the site model) and what is budgeted (only bounded:
        counted by magnitude at every node above it)."""
        site = self.site()
        measured_a: PhaseCurrents = ZERO
        budget_a: PhaseCurrents = ZERO
        for conn_id, conn in st.connectors.items():
            if conn_id < 1:
                continue
            measured = measure(ch, conn_id, conn)
            if measured is not None:
                measured_a = add3(measured_a, measured)
            elif conn.transaction is not None or conn.status not in IDLE_STATUSES or _just_ended(conn, now, measure):
                b = self.control.connector_budget(ch.id, conn_id, now)
                budget_a = add3(budget_a, budget_grid_a(site, ch, b.value, b.unit))
        return measured_a, budget_a


def _just_ended(conn: ConnectorState, now: datetime, measure: Measured) -> bool:
    """A transaction ended within the freshness limit and nothing was read since: the stop forgot
    what its EV drew (docs/safety.md, hazard 36), but a charger may go on drawing after its stop (a
    welded contactor, a firmware that does not open it) and report Available — so until a fresh
    reading or the freshness limit, its profiles bound it, never 0."""
    ended = conn.measured.draw_ended_at
    return ended is not None and timedelta(0) <= now - ended <= measure.max_age


def phases_used(st: ChargerState) -> int | None:
    """The phases the charger's vehicles draw on, as far as their transactions tell (the most of
    them; None while any is unknown). It matters only on a delta bus: a single-phase vehicle there
    draws between two lines."""
    known: list[int] = []
    for conn_id, conn in st.connectors.items():
        tx = conn.transaction
        if conn_id < 1 or tx is None:
            continue
        if tx.phases_known is None:
            return None
        known.append(tx.phases_known)
    return max(known) if known else None


class EvEstimate(NamedTuple):
    """A charger's planned sessions' draw for the base-load subtraction: ``high`` counts a session
    whose limit just went up at that limit, ``low`` at its last reading (its draw is between the
    two until a newer reading comes); ``known``: every session's draw has been reported."""

    high: PhaseCurrents
    known: bool
    low: PhaseCurrents


def ev_estimate(
    site: Site,
    sent_book: Mapping[str, Sent],
    ch: Charger,
    st: ChargerState,
    now: datetime,
    measure: Measured,
    reaction_s: float = REACTION_S,
) -> EvEstimate | None:
    """What the charger's planned sessions draw now, for the base-load subtraction.

    A charger's meter values arrive every ``ocpp.meter_sample_s``, the grid meter's every second:
    right after a limit went up, the grid meter already sees the vehicle draw more while its last
    reported current is the old one, and ``meter − EV`` would show a phantom base load that the
    planner then holds for a minute. Until a reading newer than the change (plus the vehicle's
    reaction time) arrives, the session counts at the larger of its reading and its new limit —
    or, after a limit went *down* and the vehicle had time to react, at the smaller: else the
    old, higher reading would hide base load and the next plan would undo the shed.
    ``sent_book``: the dispatcher's book (session → what it was sent). ``reaction_s``: the
    charger's reaction allowance (``reaction_of``), never taken below
    :data:`~controller.daemon.sessions.REACTION_S` here: a reading counted as the vehicle's answer
    too early would show a raise not yet drawn as base load gone, a decrease not yet followed as
    base load.
    Returns the estimate (:class:`EvEstimate`), or None without sessions.
    """
    total: PhaseCurrents = ZERO
    total_low: PhaseCurrents = ZERO
    any_session = False
    known = True
    allowance_s = max(REACTION_S, reaction_s)
    for conn_id, conn in st.connectors.items():
        tx = conn.transaction
        if conn_id < 1 or tx is None:
            continue
        any_session = True
        measured = measure(ch, conn_id, conn)
        known = known and measured is not None
        reading = measured or ZERO
        est = reading
        sent = sent_book.get(session_id(ch.id, tx.transaction_id))
        if sent is not None:
            est = _bounded_by_sent(site, ch, conn, sent, reading, measured is not None, now, allowance_s)
        total = add3(total, est)
        # a raise not drawn yet counts at the fresh reading (no reading: as high, as before)
        total_low = add3(total_low, min3(est, reading) if measured is not None else est)
    return EvEstimate(total, known, total_low) if any_session else None


def _bounded_by_sent(
    site: Site,
    ch: Charger,
    conn: ConnectorState,
    sent: Sent,
    est: PhaseCurrents,
    fresh: bool,
    now: datetime,
    allowance_s: float = REACTION_S,
) -> PhaseCurrents:
    unit = "kW" if ch.kind == "dc" else "A"
    if not fresh or not reacted(conn, sent, allowance_s):
        cap = budget_grid_a(site, ch, sent.limit, unit)
        lowered = sent.previous is not None and sent.limit < sent.previous
        if not lowered:  # it may already draw up to its new limit
            return max3(est, cap)
        if now >= sent.changed_at + timedelta(seconds=allowance_s):  # it has come down by now
            return min3(est, cap)
        return est
    # the vehicle had time to follow its limit: what it draws beyond it (a charger that ignores
    # its profile) stays in the base load, so the planner never hands it out again
    tol = IGNORE_TOLERANCE_KW if ch.kind == "dc" else IGNORE_TOLERANCE_A
    return min3(est, budget_grid_a(site, ch, sent.limit + tol, unit))
