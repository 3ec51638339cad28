"""OCPP 2.0.1 central-system session (same shape as :mod:`controller.chargers.v16`).

The EVSE id plays the role of the 1.6 connector id throughout :class:`ChargerState`. Every
station timestamp (StatusNotification, TransactionEvent and its meter values, MeterValues,
NotifyReport/NotifyEvent ``generatedAt``, SecurityEventNotification) feeds the station's
clock-offset estimate; a BootNotification restarts it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action

from controller.chargers.clock import from_ocpp, to_ocpp
from controller.chargers.profiles import ProfileSpec, to_v201
from controller.chargers.rpc import RobustRpcMixin, Transport, after, on
from controller.chargers.session import CallOutcome, SessionContext, bounded_call, narrow_measurands, profile_call
from controller.chargers.state import Capabilities, Transaction, apply_meter_values, vehicle_for_tag

LOG = logging.getLogger("depotctl.chargers.v201")

SMART_VARIABLES = ("ProfileStackLevel", "RateUnit", "PeriodsPerSchedule", "Entries")


def _var(component: str, variable: str, instance: str | None = None) -> dict[str, Any]:
    var: dict[str, Any] = {"name": variable}
    if instance is not None:
        var["instance"] = instance
    return {"component": {"name": component}, "variable": var}


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_smart_variables(results: list[dict[str, Any]]) -> Capabilities:
    raw: dict[str, str] = {}
    for r in results:
        if isinstance(r, dict) and r.get("attribute_status") == "Accepted":
            raw[str(r.get("variable", {}).get("name"))] = str(r.get("attribute_value", ""))
    units = tuple(u.strip() for u in raw.get("RateUnit", "").split(",") if u.strip() in ("A", "W"))
    return Capabilities(
        max_stack_level=_int(raw.get("ProfileStackLevel")),
        rate_units=units,
        max_periods=_int(raw.get("PeriodsPerSchedule")),
        max_profiles=_int(raw.get("Entries")),
        raw=raw,
    )


class V201Session(RobustRpcMixin, ChargePoint):  # type: ignore[misc]
    version = "2.0.1"

    def __init__(self, charger_id: str, connection: Transport, ctx: SessionContext) -> None:
        super().__init__(charger_id, connection, response_timeout=ctx.site.ocpp.call_timeout_s)
        self.ctx = ctx

    # --- charging station → CSMS --------------------------------------------------------------
    @on(Action.boot_notification)
    def on_boot(self, charging_station: dict[str, Any], reason: str, **_kw: Any) -> call_result.BootNotification:
        st = self.ctx.state
        st.vendor, st.model = charging_station.get("vendor_name"), charging_station.get("model")
        st.firmware = charging_station.get("firmware_version")
        st.note_boot(self.ctx.clock())
        self.ctx.event("booted", vendor=st.vendor, model=st.model, version="2.0.1", reason=reason)
        return call_result.BootNotification(
            current_time=to_ocpp(self.ctx.clock()), interval=self.ctx.site.ocpp.heartbeat_s, status="Accepted"
        )

    @after(Action.boot_notification)
    def after_boot(self, **_kw: Any) -> None:
        if not self.ctx.relay_answers_boot:
            self.ctx.booted.set()

    @on(Action.heartbeat)
    def on_heartbeat(self, **_kw: Any) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=to_ocpp(self.ctx.clock()))

    @on(Action.status_notification)
    def on_status(
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_kw: Any
    ) -> call_result.StatusNotification:
        now = self.ctx.clock()
        self.ctx.state.observe_time(timestamp, now)
        c = self.ctx.state.connector(evse_id)
        c.status, c.updated_at = connector_status, now
        self.ctx.event("status", connector=evse_id, status=connector_status)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_token: dict[str, Any], **_kw: Any) -> call_result.Authorize:
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on(Action.transaction_event)
    def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        **kw: Any,
    ) -> call_result.TransactionEvent:
        st = self.ctx.state
        now = self.ctx.clock()
        stamp = st.observe_time(timestamp, now)
        tx_id = str(transaction_info.get("transaction_id"))
        evse = kw.get("evse") or {}
        id_token = (kw.get("id_token") or {}).get("id_token")
        tx = st.find_transaction(tx_id)
        if tx is None and st.after_end(tx_id, event_type):  # sent again, or late: the transaction is over
            LOG.info("%s: TransactionEvent %s (seqNo %s) of transaction %s, which has ended: ignored",
                     st.charger_id, event_type, seq_no, tx_id)
            st.counters["after_end"] += 1
            if id_token:
                return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
            return call_result.TransactionEvent()
        connector = int(evse.get("id", tx.connector_id if tx else 1))
        if tx is None and event_type != "Ended":
            vehicle = vehicle_for_tag(self.ctx.site, id_token)
            started = st.to_ours(stamp, now)
            tx = Transaction(tx_id, connector, id_token, vehicle.id if vehicle else None, started, seen_at=now)
            st.transaction_started(connector, tx)
            self.ctx.event(
                "transaction_started",
                connector=connector,
                transaction_id=tx_id,
                vehicle_id=tx.vehicle_id,
                id_tag=id_token,
            )
        elif tx is not None and id_token and tx.id_tag is None:
            tx.id_tag = id_token
            vehicle = vehicle_for_tag(self.ctx.site, id_token)
            tx.vehicle_id = vehicle.id if vehicle else None
        phases = kw.get("number_of_phases_used")
        if tx is not None and isinstance(phases, int) and 1 <= phases <= 3:
            tx.phases_reported = phases
        if kw.get("meter_value"):
            used = apply_meter_values(st.connector(connector).measured, kw["meter_value"], now, st.clock_estimate)
            st.note_meter_values(connector)
            self.ctx.event("meter_values", connector=connector, values=used)
        if event_type == "Ended" and tx is not None:
            tx.ended_at, tx.stop_reason = now, transaction_info.get("stopped_reason")
            st.transaction_ended(tx.connector_id, tx_id, st.to_ours(stamp, now), stamp)
            self.ctx.event("transaction_ended", connector=tx.connector_id, transaction_id=tx_id, reason=tx.stop_reason)
        if id_token:
            return call_result.TransactionEvent(id_token_info={"status": "Accepted"})
        return call_result.TransactionEvent()

    @on(Action.meter_values)
    def on_meter_values(self, evse_id: int, meter_value: list[dict[str, Any]], **_kw: Any) -> call_result.MeterValues:
        st = self.ctx.state
        used = apply_meter_values(st.connector(evse_id).measured, meter_value, self.ctx.clock(), st.clock_estimate)
        self.ctx.state.note_meter_values(evse_id)
        self.ctx.event("meter_values", connector=evse_id, values=used)
        return call_result.MeterValues()

    @on(Action.notify_ev_charging_needs)
    def on_ev_needs(
        self, charging_needs: dict[str, Any], evse_id: int, **_kw: Any
    ) -> call_result.NotifyEVChargingNeeds:
        tx = self.ctx.state.transaction(evse_id)
        departure = charging_needs.get("departure_time")
        params = charging_needs.get("ac_charging_parameters") or charging_needs.get("dc_charging_parameters") or {}
        energy_wh = params.get("energy_amount")
        if tx is not None:
            if departure:
                try:
                    now = self.ctx.clock()
                    # the station's clock: on ours through its measured offset
                    when = from_ocpp(str(departure))
                    mapped = self.ctx.state.clock_estimate.to_ours(when)
                    when = mapped if mapped is not None else when
                    if when > now - timedelta(minutes=1):
                        tx.departure_at = when
                except ValueError:
                    pass
            if isinstance(energy_wh, (int, float)) and energy_wh >= 0:
                tx.energy_need_kwh = float(energy_wh) / 1000.0
                register = self.ctx.state.connector(evse_id).measured.energy_wh
                tx.energy_need_at_wh = register.value if register is not None else None
        self.ctx.event("ev_needs", connector=evse_id, departure=departure, energy_wh=energy_wh)
        return call_result.NotifyEVChargingNeeds(status="Accepted")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_kw: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="UnknownVendorId")

    # notifications a station may send: acknowledged, nothing to do for load management
    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_kw: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, **_kw: Any) -> call_result.LogStatusNotification:
        return call_result.LogStatusNotification()

    @on(Action.security_event_notification)
    def on_security_event(self, **kw: Any) -> call_result.SecurityEventNotification:
        self.ctx.state.observe_time(kw.get("timestamp"), self.ctx.clock())
        self.ctx.event("security_event", type=kw.get("type"), info=kw.get("tech_info"))
        return call_result.SecurityEventNotification()

    @on(Action.notify_event)
    def on_notify_event(self, **kw: Any) -> call_result.NotifyEvent:
        self.ctx.state.observe_time(kw.get("generated_at"), self.ctx.clock())
        return call_result.NotifyEvent()

    @on(Action.notify_report)
    def on_notify_report(self, **kw: Any) -> call_result.NotifyReport:
        self.ctx.state.observe_time(kw.get("generated_at"), self.ctx.clock())
        return call_result.NotifyReport()

    # --- CSMS → charging station --------------------------------------------------------------
    async def read_capabilities(self) -> Capabilities:
        data = [_var("SmartChargingCtrlr", v, "ChargingProfiles" if v == "Entries" else None) for v in SMART_VARIABLES]
        out = await bounded_call(self, call.GetVariables(get_variable_data=data), self.ctx.site.ocpp.call_timeout_s)
        if out.payload is None:
            return Capabilities()
        return parse_smart_variables(list(out.payload.get_variable_result or []))

    async def _set(self, component: str, variable: str, value: str) -> bool:
        item = {**_var(component, variable), "attribute_value": value}
        out = await bounded_call(self, call.SetVariables(set_variable_data=[item]), self.ctx.site.ocpp.call_timeout_s)
        if out.payload is None:
            return False
        results = list(out.payload.set_variable_result or [])
        return bool(results) and results[0].get("attribute_status") in ("Accepted", "RebootRequired")

    async def configure_sampling(self, interval_s: int, measurands: tuple[str, ...]) -> tuple[str, ...]:
        await self._set("SampledDataCtrlr", "TxUpdatedInterval", str(interval_s))
        return await narrow_measurands(
            lambda value: self._set("SampledDataCtrlr", "TxUpdatedMeasurands", value), measurands
        )

    async def send_profile(self, spec: ProfileSpec) -> CallOutcome:
        payload = {"evseId": spec.connector_id, "chargingProfile": to_v201(spec)}
        return await profile_call(self, "SetChargingProfile", payload, self.ctx.site.ocpp.call_timeout_s)

    async def composite_schedule(self, connector_id: int, duration_s: int) -> CallOutcome:
        """What the station says it will do (diagnostics)."""
        payload = call.GetCompositeSchedule(duration=duration_s, evse_id=connector_id, charging_rate_unit="A")
        return await bounded_call(self, payload, self.ctx.site.ocpp.call_timeout_s)
