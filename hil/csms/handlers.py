"""How the simulated CSMS answers what a charger sends (1.6J and 2.0.1), and what it records.

Each handler takes the CALL's payload (camelCase, as on the wire) and returns the CALLRESULT's
payload, or raises :class:`Refuse` for a CALLERROR. They run one at a time per connection, in
the order the CALLs arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from hil.chargers.composite import format_time
from hil.csms.records import Anomaly, ChargerLog, MeterSample, Transaction, TxEvent, parse_time

if TYPE_CHECKING:
    from hil.csms.server import SimCsms

Payload = dict[str, Any]
Handler = Callable[["SimCsms", ChargerLog, Payload], Payload]


class Refuse(Exception):
    """Answer the CALL with a CALLERROR ``code`` (an error code of the connection's version)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description


# --- shared ---------------------------------------------------------------------------------
def _now(csms: SimCsms) -> str:
    return format_time(csms.clock())


def _flag(csms: SimCsms, log: ChargerLog, kind: str, detail: str) -> None:
    csms.anomalies.append(Anomaly(csms.clock(), log.charger_id, kind, detail))


def _timestamps(payload: Any) -> list[str]:
    """Every ``timestamp`` value anywhere in the payload."""
    out: list[str] = []
    if isinstance(payload, dict):
        for k, v in payload.items():
            if k == "timestamp" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(_timestamps(v))
    elif isinstance(payload, list):
        for v in payload:
            out.extend(_timestamps(v))
    return out


def check_timestamps(csms: SimCsms, log: ChargerLog, action: str, payload: Payload) -> None:
    """With ``future_tolerance_s`` set: refuse a message stamped later than the CSMS's clock
    plus that tolerance (PropertyConstraintViolation), flagged ``future_timestamp``."""
    tolerance_s = csms.o.future_tolerance_s
    if tolerance_s is None:
        return
    limit = csms.clock() + timedelta(seconds=tolerance_s)
    for text in _timestamps(payload):
        at = parse_time(text)
        if at is not None and at > limit:
            _flag(csms, log, "future_timestamp", f"{action} stamped {text}, the CSMS's clock is {_now(csms)}")
            raise Refuse("PropertyConstraintViolation", f"timestamp {text} is in the future")


def _tag_status(csms: SimCsms, log: ChargerLog, id_tag: str, token_type: str | None = None) -> str:
    tags = csms.o.id_tags
    if tags is None:
        status = "Accepted"
    elif token_type is not None and f"{token_type}:{id_tag}" in tags:
        status = tags[f"{token_type}:{id_tag}"]
    else:
        status = tags.get(id_tag, csms.o.unknown_tag_status)
    log.authorizations.append((id_tag, status))
    return status


def _samples(csms: SimCsms, meter_values: Any, tx_id: str, action: str) -> list[MeterSample]:
    out = []
    for mv in meter_values or []:
        ts = str(mv.get("timestamp", ""))
        out.append(MeterSample(ts, parse_time(ts), csms.clock(), list(mv.get("sampledValue", [])), tx_id, action))
    return out


def _add_samples(csms: SimCsms, log: ChargerLog, tx: Transaction, samples: list[MeterSample]) -> None:
    for s in samples:
        last = tx.meter_values[-1] if tx.meter_values else None
        if last is not None and last.sent_at is not None and s.sent_at is not None and s.sent_at < last.sent_at:
            _flag(csms, log, "out_of_order", f"transaction {tx.key}: {s.timestamp} after {last.timestamp}")
        tx.meter_values.append(s)


def _transaction(csms: SimCsms, log: ChargerLog, tx_id: str, action: str) -> Transaction:
    """The transaction a message names; an unknown id is flagged and gets a placeholder record
    (``unknown=True``), so nothing it carries is lost."""
    tx = log.transactions.get(tx_id)
    if tx is None:
        _flag(csms, log, "unknown_transaction", f"{action} for transaction {tx_id}, never started here")
        tx = Transaction(log.charger_id, tx_id, None, None, None, unknown=True)
        log.transactions[tx_id] = tx
    elif tx.ended:
        _flag(csms, log, "after_end", f"{action} for transaction {tx_id}, which has ended")
    return tx


def _boot(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    log.boots.append(p)
    return {"status": csms.o.boot_status, "currentTime": _now(csms), "interval": csms.o.heartbeat_interval_s}


def _heartbeat(csms: SimCsms, _log: ChargerLog, _p: Payload) -> Payload:
    return {"currentTime": _now(csms)}


def _empty(_csms: SimCsms, _log: ChargerLog, _p: Payload) -> Payload:
    return {}


def _data_transfer(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    log.data_transfers.append(p)
    return {"status": csms.o.data_transfer_status}


def _notification(action: str, answer: Payload | None = None) -> Handler:
    def handle(_csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
        log.notifications.append((action, p))
        return dict(answer or {})

    return handle


# --- 1.6 ------------------------------------------------------------------------------------
def _status16(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    log.statuses.append(p)
    log.status[int(p["connectorId"])] = str(p["status"])
    return {}


def _authorize16(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    return {"idTagInfo": {"status": _tag_status(csms, log, str(p["idTag"]))}}


def _start16(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    status = _tag_status(csms, log, str(p["idTag"]))
    key = (log.charger_id, p["connectorId"], p["idTag"], p["timestamp"], p["meterStart"])
    earlier = csms.starts_seen.get(key)
    if earlier is not None:
        _flag(csms, log, "duplicate_start", f"StartTransaction {p} again (first got transaction {earlier})")
        if csms.o.duplicate_start == "same_id":
            return {"transactionId": earlier, "idTagInfo": {"status": status}}
    tx_id = csms.next_transaction_id()
    csms.starts_seen.setdefault(key, tx_id)
    tx = Transaction(log.charger_id, tx_id, int(p["connectorId"]), str(p["idTag"]), str(p["timestamp"]))
    tx.meter_start_wh = float(p["meterStart"])
    tx.events.append(TxEvent("Started", None, str(p["timestamp"]), csms.clock(), None, p))
    log.transactions[tx.key] = tx
    return {"transactionId": tx_id, "idTagInfo": {"status": status}}


def _stop16(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    tx_id = str(p["transactionId"])
    tx = _transaction(csms, log, tx_id, "StopTransaction")
    _add_samples(csms, log, tx, _samples(csms, p.get("transactionData"), tx_id, "StopTransaction"))
    tx.stopped, tx.meter_stop_wh = str(p["timestamp"]), float(p["meterStop"])
    tx.stop_reason, tx.ended = p.get("reason", "Local"), True
    tx.events.append(TxEvent("Ended", None, str(p["timestamp"]), csms.clock(), None, p))
    if "idTag" in p:
        return {"idTagInfo": {"status": _tag_status(csms, log, str(p["idTag"]))}}
    return {}


def _meter_values16(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    if "transactionId" not in p:
        log.meter_values_without_tx.extend(_samples(csms, p["meterValue"], "", "MeterValues"))
        return {}
    tx_id = str(p["transactionId"])
    tx = _transaction(csms, log, tx_id, "MeterValues")
    _add_samples(csms, log, tx, _samples(csms, p["meterValue"], tx_id, "MeterValues"))
    return {}


HANDLERS_16: dict[str, Handler] = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _status16,
    "Authorize": _authorize16,
    "StartTransaction": _start16,
    "StopTransaction": _stop16,
    "MeterValues": _meter_values16,
    "DataTransfer": _data_transfer,
    "FirmwareStatusNotification": _notification("FirmwareStatusNotification"),
    "DiagnosticsStatusNotification": _notification("DiagnosticsStatusNotification"),
    "LogStatusNotification": _notification("LogStatusNotification"),
    "SecurityEventNotification": _notification("SecurityEventNotification"),
    "SignedFirmwareStatusNotification": _notification("SignedFirmwareStatusNotification"),
    "SignCertificate": _notification("SignCertificate", {"status": "Accepted"}),
}


# --- 2.0.1 ----------------------------------------------------------------------------------
def _status201(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    log.statuses.append(p)
    log.status[int(p["evseId"])] = str(p["connectorStatus"])
    return {}


def _token_info(csms: SimCsms, log: ChargerLog, token: Payload) -> Payload:
    return {"status": _tag_status(csms, log, str(token["idToken"]), str(token.get("type")))}


def _authorize201(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    return {"idTokenInfo": _token_info(csms, log, p["idToken"])}


def _tx_event201(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    info = p["transactionInfo"]
    tx_id, kind, seq_no = str(info["transactionId"]), str(p["eventType"]), int(p["seqNo"])
    tx = log.transactions.get(tx_id)
    if kind == "Started" and tx is None:
        evse = p.get("evse") or {}
        token = p.get("idToken") or {}
        tx = Transaction(log.charger_id, tx_id, evse.get("id"), token.get("idToken"), str(p["timestamp"]))
        log.transactions[tx_id] = tx
    else:
        tx = _transaction(csms, log, tx_id, f"TransactionEvent {kind}")
    seen = [e.seq_no for e in tx.events if e.seq_no is not None]
    if seq_no in seen:
        _flag(csms, log, "duplicate_seq_no", f"transaction {tx_id}: seqNo {seq_no} again ({kind})")
    elif seen and seq_no != max(seen) + 1:
        _flag(csms, log, "seq_no_gap", f"transaction {tx_id}: seqNo {seq_no} after {max(seen)} ({kind})")
    tx.events.append(TxEvent(kind, seq_no, str(p["timestamp"]), csms.clock(), p.get("triggerReason"), p))
    if "remoteStartId" in info:
        tx.remote_start_id = int(info["remoteStartId"])
    _add_samples(csms, log, tx, _samples(csms, p.get("meterValue"), tx_id, "TransactionEvent"))
    if kind == "Ended":
        tx.stopped, tx.ended = str(p["timestamp"]), True
        tx.stop_reason = info.get("stoppedReason", "Local")
    if "idToken" in p:
        return {"idTokenInfo": _token_info(csms, log, p["idToken"])}
    return {}


def _meter_values201(csms: SimCsms, log: ChargerLog, p: Payload) -> Payload:
    log.meter_values_without_tx.extend(_samples(csms, p["meterValue"], "", "MeterValues"))
    return {}


HANDLERS_201: dict[str, Handler] = {
    "BootNotification": _boot,
    "Heartbeat": _heartbeat,
    "StatusNotification": _status201,
    "Authorize": _authorize201,
    "TransactionEvent": _tx_event201,
    "MeterValues": _meter_values201,
    "DataTransfer": _data_transfer,
    "NotifyEVChargingNeeds": _notification("NotifyEVChargingNeeds", {"status": "Accepted"}),
    "NotifyEVChargingSchedule": _notification("NotifyEVChargingSchedule", {"status": "Accepted"}),
    "SignCertificate": _notification("SignCertificate", {"status": "Accepted"}),
    **{
        a: _notification(a)
        for a in (
            "FirmwareStatusNotification",
            "LogStatusNotification",
            "NotifyEvent",
            "NotifyReport",
            "NotifyMonitoringReport",
            "NotifyChargingLimit",
            "ClearedChargingLimit",
            "ReportChargingProfiles",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "ReservationStatusUpdate",
            "SecurityEventNotification",
            "PublishFirmwareStatusNotification",
        )
    },
}

HANDLERS: dict[str, dict[str, Handler]] = {"1.6": HANDLERS_16, "2.0.1": HANDLERS_201}


def answer(csms: SimCsms, log: ChargerLog, version: str, action: str, payload: Payload) -> Payload:
    """The CALLRESULT payload for a (schema-valid) CALL, or :class:`Refuse`."""
    handler = HANDLERS[version].get(action)
    if handler is None:
        _flag(csms, log, "unknown_action", f"{action} is not handled by the simulated CSMS")
        raise Refuse("NotImplemented", f"{action} is not implemented by this CSMS")
    check_timestamps(csms, log, action, payload)
    return handler(csms, log, payload)
