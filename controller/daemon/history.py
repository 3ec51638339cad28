"""Charger events → history records and the daemon's own session book (pure bookkeeping).

The central system reports transactions as events; the daemon keeps, per open session, what it
needs when the session ends (meter start, the energy the vehicle asked for) and writes
``SessionStart`` / ``SessionStop`` records. After a restart the open sessions come back from
SQLite (:func:`seed_transactions`) so a transaction that started before the restart keeps its id,
vehicle and start time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from controller.chargers.planning import session_id
from controller.chargers.state import ChargerState, Transaction
from controller.store.records import SessionStart, SessionStop

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
    return int(text) if text.isdigit() else text


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
