"""What the simulated CSMS records: frames, transactions with their meter values, anomalies.

Every time here is the CSMS's injected clock (``at``, ``received_at``); every timestamp a
charger sent is kept as the string it sent (``timestamp``), so a test can compare it byte for byte
with what the charger stamped, and parsed (``sent_at``) for ordering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Direction = Literal["in", "out"]


def parse_time(text: Any) -> datetime | None:
    """An OCPP date-time (RFC 3339, ``Z`` or an offset) → aware datetime; ``None`` if not one."""
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


@dataclass(frozen=True)
class Frame:
    """One frame on one connection, as it went over the wire."""

    at: datetime
    """When the CSMS received or sent it (its clock)."""
    direction: Direction
    """``"in"``: received from the charger, ``"out"``: sent to it."""
    raw: str
    message_type: int | None
    """2 CALL, 3 CALLRESULT, 4 CALLERROR; ``None`` for a frame that is not OCPP-J."""
    unique_id: str | None
    action: str | None
    """The CALL's action; for a CALLRESULT/CALLERROR the action of the CALL it answers (if known)."""
    payload: Any
    """The CALL's or CALLRESULT's payload (camelCase, as on the wire); a CALLERROR's
    ``[code, description, details]``."""
    connection: int
    """The charger's connection number (1 for the first, +1 at every reconnect)."""


@dataclass(frozen=True)
class MeterSample:
    """One ``meterValue`` element of a transaction, in the order it arrived."""

    timestamp: str
    """The timestamp as the charger sent it."""
    sent_at: datetime | None
    received_at: datetime
    sampled_values: list[dict[str, Any]]
    """``sampledValue`` as sent (camelCase)."""
    transaction_id: str
    """The transaction it was sent with (as a string), as the message named it."""
    action: str
    """``MeterValues``, ``StopTransaction`` (1.6 ``transactionData``) or ``TransactionEvent``."""

    def value(self, measurand: str = "Energy.Active.Import.Register", phase: str | None = None) -> float | None:
        """The value of ``measurand`` (default: energy register) in this sample, as a float."""
        for sv in self.sampled_values:
            m = sv.get("measurand", "Energy.Active.Import.Register")
            if m == measurand and sv.get("phase") == phase:
                return float(sv["value"])
        return None


@dataclass(frozen=True)
class TxEvent:
    """A 2.0.1 TransactionEvent as received (1.6: Start/StopTransaction, as events too)."""

    event_type: str
    """``Started`` / ``Updated`` / ``Ended`` (1.6: ``Started`` and ``Ended``)."""
    seq_no: int | None
    timestamp: str
    received_at: datetime
    trigger_reason: str | None
    payload: dict[str, Any]


@dataclass
class Transaction:
    """One transaction as the CSMS knows it."""

    charger_id: str
    transaction_id: int | str
    """1.6: the id the CSMS assigned (int); 2.0.1: the charger's ``transactionId`` (str)."""
    connector_id: int | None
    """1.6 connector id; 2.0.1 EVSE id."""
    id_tag: str | None
    started: str | None
    """The start timestamp as the charger sent it."""
    meter_start_wh: float | None = None
    stopped: str | None = None
    meter_stop_wh: float | None = None
    stop_reason: str | None = None
    ended: bool = False
    meter_values: list[MeterSample] = field(default_factory=list)
    events: list[TxEvent] = field(default_factory=list)
    remote_start_id: int | None = None
    unknown: bool = False
    """True: a message named this transaction, but it never started here (flagged as an anomaly)."""

    @property
    def key(self) -> str:
        return str(self.transaction_id)

    def seq_nos(self) -> list[int | None]:
        return [e.seq_no for e in self.events]

    def timestamps(self) -> list[str]:
        """The meter values' timestamps as sent, in the order they arrived."""
        return [m.timestamp for m in self.meter_values]


@dataclass(frozen=True)
class Anomaly:
    """Something a strict back office would flag (tests usually assert there is none)."""

    at: datetime
    charger_id: str
    kind: str
    """``duplicate_start`` (a 1.6 StartTransaction seen twice), ``unknown_transaction``,
    ``duplicate_seq_no`` / ``seq_no_gap`` (2.0.1), ``future_timestamp`` (rejected),
    ``after_end`` (a message for a transaction already ended), ``out_of_order`` (a meter value
    older than the transaction's previous one), ``unknown_action``."""
    detail: str


@dataclass
class ChargerLog:
    """Everything the CSMS recorded for one charger id (across its connections)."""

    charger_id: str
    version: str | None = None
    connections: int = 0
    connected: bool = False
    frames: list[Frame] = field(default_factory=list)
    boots: list[dict[str, Any]] = field(default_factory=list)
    status: dict[int, str] = field(default_factory=dict)
    """Connector/EVSE id → the last status it reported (2.0.1: ``connectorStatus`` by EVSE id)."""
    statuses: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[tuple[str, str]] = field(default_factory=list)
    """(id tag, the status answered), in order (Authorize, Start, TransactionEvent)."""
    transactions: dict[str, Transaction] = field(default_factory=dict)
    """``str(transaction id)`` → its record, in the order they started."""
    meter_values_without_tx: list[MeterSample] = field(default_factory=list)
    data_transfers: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Other messages received (action, payload): firmware/diagnostics/log status, events, reports."""

    def calls_in(self, action: str | None = None) -> list[Frame]:
        """The CALLs received (of ``action``), in order."""
        return [f for f in self.frames if f.direction == "in" and f.message_type == 2 and action in (None, f.action)]

    def calls_out(self, action: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.direction == "out" and f.message_type == 2 and action in (None, f.action)]
