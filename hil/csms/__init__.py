"""A simulated CSMS (the operator's back office) for the rig: OCPP 1.6J and 2.0.1 over websockets.

Chargers (or depotctl's upstream proxy) connect to ``{csms.url}/{charger id}``, i.e.
``ws://127.0.0.1:{port}/ocpp/{charger id}``; the subprotocol the client offers first
(``ocpp1.6`` / ``ocpp2.0.1``) decides the version. Security profile 0 (nothing), 1 (HTTP Basic
over ws) or 2 (Basic over wss, :mod:`hil.csms.tls` makes a test certificate).

Usage in a test::

    from hil.csms import CsmsOptions, SimCsms

    csms = SimCsms(clock, CsmsOptions(id_tags={"TAG": "Accepted", "BAD": "Blocked"}))
    await csms.start()                              # a free port; csms.port, csms.url
    sim = SimCharger(SimOptions("cp-1"), clock)
    await sim.connect(csms.url)                     # → ws://127.0.0.1:PORT/ocpp/cp-1
    await csms.wait_connected("cp-1", booted=1)
    await sim.plug_in(ev, id_tag="TAG")
    tx = csms.transactions("cp-1")[0]               # Transaction: id 100001 (1.6), meter values…
    await csms.set_cap("cp-1", 10.0)                # ChargePointMaxProfile 10 A → {"status": ...}
    await csms.remote_stop("cp-1", tx.transaction_id)
    assert csms.violations() == [] and csms.anomalies == []
    await csms.go_away(); ...; await csms.come_back()   # refused meanwhile; same port after
    await csms.stop()

``SimCsms(clock, options=None)`` — ``clock`` is injected (every record's time); ``options``
(:class:`CsmsOptions`, read live, a test may change a field while it runs): ``path``, ``host``,
``port`` (0 = free), ``security_profile``, ``passwords`` (id → password), ``ssl_context``,
``known_ids``, ``id_tags`` (tag or ``"{type}:{token}"`` → status; ``None`` = accept all),
``unknown_tag_status``, ``boot_status``, ``heartbeat_interval_s``, ``first_transaction_id``
(1.6 ids count up from it, default 100001), ``data_transfer_status``, ``call_timeout_s``; worst
cases: ``answer_delay_s`` / ``answer_delays_s`` (per action), ``call_errors`` (action → CALLERROR
code), ``duplicate_start`` (``new_id`` | ``same_id``), ``future_tolerance_s`` (refuse messages
stamped in the future), ``reject_invalid_frames``; for benchmarks ``validate_frames`` and
``keep_frames`` (both True by default).

Lifecycle: ``await start()`` → port; ``await stop()``; ``await go_away(abrupt=False)`` closes
every connection and stops listening (clients get connection refused); ``await come_back()``
listens on the same port again; ``hang(True/False)``: sockets accepted, frames recorded, nothing
answered. ``async with SimCsms(...) as csms``. ``port``, ``url``, ``listening``.

Calls to a charger (:mod:`hil.csms.commands`; each returns the CALLRESULT's payload, camelCase as on the wire; raises
:class:`CallErrorAnswer` for a CALLERROR, ``TimeoutError``, :class:`NotConnected`):
``call(id, action, payload)`` (anything), ``remote_start(id, tag, connector_id=1, charging_profile=None)``
(1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction), ``remote_stop(id, tx_id)``,
``set_charging_profile(id, connector_id, profile)`` with :func:`charging_profile` (caps in A or
W: ChargePointMax/ChargingStationMax, TxDefault, Tx), ``set_cap(id, limit, unit="A",
purpose="ChargePointMaxProfile", ...)``, ``clear_charging_profile(id, profile_id=, connector_id=,
purpose=, stack_level=)``, ``get_composite_schedule(id, connector_id, duration_s, unit=None)``,
``reset(id, "Soft"|"Hard")``, ``change_configuration(id, key, value)`` (1.6),
``set_variables(id, [(component, variable, value)])`` (2.0.1), ``data_transfer(id, vendor_id,
message_id, data)``, ``trigger_message(id, message, connector_id)``; ``send_raw(id, text)``
sends any frame (a broken one for the charger's validator).

What it answers: BootNotification (``boot_status``, interval), Heartbeat, StatusNotification,
Authorize (``id_tags``), 1.6 Start/StopTransaction and MeterValues (its own transaction ids),
2.0.1 TransactionEvent (and MeterValues), DataTransfer, firmware/diagnostics/log status, NotifyEvent,
NotifyReport, security events, … (:mod:`hil.csms.handlers`); other actions: CALLERROR
NotImplemented (flagged ``unknown_action``).

What it records (:mod:`hil.csms.records`), per charger ``csms.log(id)`` → :class:`ChargerLog`:
``frames`` (every frame in and out: ``at`` on the CSMS's clock, ``direction``, ``raw``,
``message_type``, ``unique_id``, ``action``, ``payload``, ``connection`` number), ``boots``,
``status`` / ``statuses``, ``authorizations`` ((tag, status answered)), ``transactions`` (str id →
:class:`Transaction`: ``transaction_id``, ``connector_id``, ``id_tag``, ``started``/``stopped`` as
sent, ``meter_start_wh``/``meter_stop_wh``, ``stop_reason``, ``ended``, ``events`` (with 2.0.1
``seq_no``), ``meter_values`` (:class:`MeterSample`: ``timestamp`` as sent, ``sent_at``,
``received_at``, ``sampled_values``, ``transaction_id`` it came with) in arrival order,
``unknown`` for an id never started here), ``meter_values_without_tx``, ``data_transfers``,
``notifications``, ``connections``, ``connected``, ``version``; ``calls_in(action)`` /
``calls_out(action)``. CSMS-wide: ``transactions(id=None)``, ``transaction(tx_id)``,
``anomalies`` (:class:`Anomaly`: ``duplicate_start``, ``unknown_transaction``, ``after_end``,
``duplicate_seq_no``, ``seq_no_gap``, ``out_of_order``, ``future_timestamp``, ``unknown_action``,
``call_while_pending`` — a CALL before the previous one was answered, legal only after a
timeout), ``violations(id=None, direction="in")`` (every frame received is checked against the
OCPP JSON schemas, :mod:`hil.ocpp_schema`), ``refusals`` (handshakes refused: (id, reason)).

Waiting (each bounded): ``wait_until(predicate, timeout_s)``, ``wait_connected(id, booted=n)``,
``wait_call(id, action, count)``.
"""

from hil.csms.profiles import charging_profile, purpose_name
from hil.csms.records import Anomaly, ChargerLog, Frame, MeterSample, Transaction, TxEvent
from hil.csms.server import CallErrorAnswer, CsmsOptions, NotConnected, SimCsms

__all__ = [
    "Anomaly",
    "CallErrorAnswer",
    "ChargerLog",
    "CsmsOptions",
    "Frame",
    "MeterSample",
    "NotConnected",
    "SimCsms",
    "Transaction",
    "TxEvent",
    "charging_profile",
    "purpose_name",
]
