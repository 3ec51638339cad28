"""Charger events → history records and the daemon's own session book.

The central system reports transactions as events; :class:`SessionBook` keeps, per open session,
what it needs when the session ends (meter start, the energy the vehicle asked for, what was
delivered at the last plan) and writes ``SessionStart`` / ``SessionStop`` records, and per charger
its link and fault state (``ChargerStatus``: availability in the daily report). After a restart
the open sessions come back from SQLite (:func:`seed_transactions`) so a transaction that started
before the restart keeps its id, vehicle and start time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from controller.chargers.events import ChargerEvent
from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState, Transaction
from controller.daemon.ports import Recorder
from controller.store import ChargerStatus, accepted_profile
from controller.store.records import SessionStart, SessionStop

LOG = logging.getLogger("depotctl.daemon")
REPLAN_EVENTS = frozenset(
    {"connected", "disconnected", "booted", "ev_needs", "transaction_started", "transaction_ended"}
)
"""Charger events after which the plan is made again at once."""

MET_TOLERANCE = 0.005  # a departure counts as met within 0.5 % of the energy asked for
MET_TOLERANCE_KWH = 0.1


@dataclass
class OpenSession:
    start: SessionStart
    meter_start_wh: float | None
    requested_kwh: float | None = None  # delivered + remaining need at the last plan; None: no departure
    delivered_kwh: float = 0.0
    restored: bool = False  # read back from history after a restart


def parse_transaction_id(text: str) -> int | str:
    """A 1.6 id (an integer; negative: a local one, :mod:`controller.upstream.txids`) or a 2.0.1 one."""
    digits = text[1:] if text.startswith("-") else text
    return int(text) if digits.isdigit() else text


def seed_transactions(
    state_of: Callable[[str], ChargerState], opened: Iterable[SessionStart], known: set[str]
) -> list[OpenSession]:
    """Put restored open sessions back on their chargers' connectors (``state_of(cid)`` creates a
    state); chargers no longer in the site (``known``) are skipped. Returns the sessions seeded."""
    out = []
    for s in opened:
        if s.charger_id not in known:
            continue
        st = state_of(s.charger_id)
        conn = st.connector(s.connector)
        if conn.transaction is not None:
            continue
        _, _, tid = s.session_id.partition(":")
        conn.transaction = Transaction(
            transaction_id=parse_transaction_id(tid or s.session_id),
            connector_id=s.connector,
            id_tag=None,
            vehicle_id=s.vehicle_id,
            started_at=s.started_at,
        )
        out.append(OpenSession(s, None, restored=True))
    return out


def session_started(st: ChargerState, connector: int, now: datetime) -> OpenSession | None:
    tx = st.transaction(connector)
    if tx is None:
        return None
    start = SessionStart(
        session_id=session_id(st.charger_id, tx.transaction_id),
        charger_id=st.charger_id,
        connector=connector,
        vehicle_id=tx.vehicle_id,
        started_at=tx.started_at or now,
        energy_need_kwh=tx.energy_need_kwh,
    )
    return OpenSession(start, tx.meter_start_wh)


def session_stopped(book: OpenSession, at: datetime, meter_stop_wh: float | None) -> SessionStop:
    delivered = book.delivered_kwh
    if meter_stop_wh is not None and book.meter_start_wh is not None:
        delivered = max(delivered, (meter_stop_wh - book.meter_start_wh) / 1000.0)
    met = None
    if book.requested_kwh is not None:
        met = delivered >= book.requested_kwh - max(MET_TOLERANCE_KWH, MET_TOLERANCE * book.requested_kwh)
    s = book.start
    return SessionStop(s.session_id, s.charger_id, s.connector, s.vehicle_id, at, delivered, met)


class SessionBook:
    """The open sessions and each charger's link state, from the central system's events.

    ``states``: the central system's chargers (read; a restored session that ended while the
    daemon was away is taken off its connector here); ``session_ended``: the dispatcher forgets
    what it sent the session; ``replan``: plan now. Only the daemon's event loop touches it.
    """

    def __init__(
        self,
        states: Mapping[str, ChargerState],
        recorder: Recorder,
        session_ended: Callable[[str], None],
        replan: Callable[[], None],
    ) -> None:
        self.states = states
        self.recorder = recorder
        self.session_ended = session_ended
        self.replan = replan
        self.open: dict[str, OpenSession] = {}
        self.link_state: dict[str, tuple[bool, bool]] = {}  # charger → (connected, faulted) last stored

    def seed(self, opened: Iterable[OpenSession]) -> None:
        for book in opened:
            self.open[book.start.session_id] = book

    # --- what others read and tell ----------------------------------------------------------------
    def delivered_kwh(self, sid: str) -> float | None:
        book = self.open.get(sid)
        return None if book is None else book.delivered_kwh

    def note_progress(self, sid: str, delivered_kwh: float, requested_kwh: float | None) -> None:
        """A plan's view of the session: delivered so far and (with a departure) what it asked for
        in all (``None``: left as it was)."""
        book = self.open.get(sid)
        if book is not None:
            book.delivered_kwh = delivered_kwh
            if requested_kwh is not None:
                book.requested_kwh = requested_kwh

    def assign(self, sid: str, charger_id: str, connector: int, vehicle_id: str) -> None:
        """The session's vehicle is ``vehicle_id`` (upserted in history by session id)."""
        book = self.open.get(sid)
        if book is not None:
            book.start = SessionStart(sid, charger_id, connector, vehicle_id, book.start.started_at,
                                      book.start.energy_need_kwh)
            self.recorder.put(book.start)

    def link(self, charger_id: str, connected: bool, faulted: bool, at: datetime) -> None:
        """History of each charger's link and fault state (availability in the daily report)."""
        if self.link_state.get(charger_id) != (connected, faulted):
            self.link_state[charger_id] = (connected, faulted)
            self.recorder.put(ChargerStatus(charger_id, at, connected, faulted))

    def all_offline(self, at: datetime) -> None:
        """Every charger known as disconnected (the daemon stops)."""
        for cid, (_, faulted) in list(self.link_state.items()):
            self.link(cid, False, faulted, at)

    # --- charger events (called synchronously from the OCPP receive loops) ------------------------
    def on_event(self, ev: ChargerEvent) -> None:
        kind = ev.kind
        st = self.states.get(ev.charger_id)
        if kind == "failsafe_installed" and st is not None and st.failsafe is not None:
            self.recorder.put(accepted_profile(ev.charger_id, st.failsafe.spec, st.failsafe.accepted_at))
        if kind in REPLAN_EVENTS:
            self.replan()
        if kind in ("connected", "disconnected", "status") and st is not None:
            self.link(ev.charger_id, st.connected, _faulted(st), ev.at)
        connector = int(ev.detail.get("connector", 1) or 1)
        if kind == "transaction_started" and st is not None:
            book = session_started(st, connector, ev.at)
            if book is not None:
                self.open[book.start.session_id] = book
                self.recorder.put(book.start)
        elif kind == "transaction_ended":
            sid = session_id(ev.charger_id, str(ev.detail.get("transaction_id")))
            self._end(sid, ev.at, _opt_float(ev.detail.get("meter_stop_wh")))
        elif kind == "status" and st is not None:
            self._status(st, connector, str(ev.detail.get("status", "")), ev.at)
        elif kind == "profile_rejected":
            self.recorder.event("reject", str(ev.detail.get("reason", "")), charger_id=ev.charger_id)

    def _status(self, st: ChargerState, connector: int, status: str, at: datetime) -> None:
        conn = st.connectors.get(connector)
        if status in ("Available", "Unavailable", "Faulted") and conn is not None and conn.transaction is not None:
            sid = session_id(st.charger_id, conn.transaction.transaction_id)
            if sid in self.open and self.open[sid].restored:
                # a session restored from history that ended while we were away
                conn.transaction = None  # not among the ended ids: the charger may yet go on with it
                self._end(sid, at, None)
                self.replan()

    def _end(self, sid: str, at: datetime, meter_stop_wh: float | None) -> None:
        book = self.open.pop(sid, None)
        self.session_ended(sid)
        if book is not None:
            self.recorder.put(session_stopped(book, at, meter_stop_wh))


def _faulted(st: ChargerState) -> bool:
    return any(c.status == "Faulted" for c in st.connectors.values())


def _opt_float(v: object) -> float | None:
    try:
        return None if v is None else float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
