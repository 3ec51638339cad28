"""OCPP 1.6J central-system session: handlers for what a charger sends, calls the controller makes.

Transport-free: ``V16Session(charger_id, connection, ctx)`` takes anything with async
``recv``/``send``. Handlers only update :class:`ChargerState` and never call the charger (the
receive loop awaits them); calls run in the server's tasks. Every charger timestamp
(StatusNotification, Start/StopTransaction, MeterValues, SecurityEventNotification) feeds the
charger's clock-offset estimate; a BootNotification restarts it.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action

from controller.chargers.clock import to_ocpp
from controller.chargers.profiles import ProfileSpec, to_v16
from controller.chargers.rpc import RobustRpcMixin, Transport, after, on
from controller.chargers.session import CallOutcome, SessionContext, bounded_call, narrow_measurands, profile_call
from controller.chargers.state import Capabilities, Transaction, apply_meter_values, vehicle_for_tag

CAPABILITY_KEYS = [
    "ChargeProfileMaxStackLevel",
    "ChargingScheduleAllowedChargingRateUnit",
    "ChargingScheduleMaxPeriods",
    "MaxChargingProfilesInstalled",
]


def _int(value: str | None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def parse_capabilities(keys: list[dict[str, Any]]) -> Capabilities:
    raw = {str(k.get("key")): str(k.get("value", "")) for k in keys if isinstance(k, dict)}
    units_text = raw.get("ChargingScheduleAllowedChargingRateUnit", "")
    units = tuple(
        "A" if u.strip().lower() == "current" else "W"
        for u in units_text.split(",")
        if u.strip().lower() in ("current", "power")
    )
    return Capabilities(
        max_stack_level=_int(raw.get("ChargeProfileMaxStackLevel")),
        rate_units=units,
        max_periods=_int(raw.get("ChargingScheduleMaxPeriods")),
        max_profiles=_int(raw.get("MaxChargingProfilesInstalled")),
        raw=raw,
    )


class V16Session(RobustRpcMixin, ChargePoint):  # type: ignore[misc]
    version = "1.6"

    def __init__(self, charger_id: str, connection: Transport, ctx: SessionContext) -> None:
        super().__init__(charger_id, connection, response_timeout=ctx.site.ocpp.call_timeout_s)
        self.ctx = ctx

    # --- charger → central system -------------------------------------------------------------
    @on(Action.boot_notification)
    def on_boot(self, charge_point_vendor: str, charge_point_model: str, **kw: Any) -> call_result.BootNotification:
        st = self.ctx.state
        st.vendor, st.model = charge_point_vendor, charge_point_model
        st.firmware = kw.get("firmware_version")
        st.note_boot(self.ctx.clock())
        self.ctx.event("booted", vendor=charge_point_vendor, model=charge_point_model, version="1.6")
        return call_result.BootNotification(
            current_time=to_ocpp(self.ctx.clock()), interval=self.ctx.site.ocpp.heartbeat_s, status="Accepted"
        )

    @after(Action.boot_notification)
    def after_boot(self, **_kw: Any) -> None:
        if not self.ctx.relay_answers_boot:
            self.ctx.booted.set()

    @on(Action.heartbeat)
    def on_heartbeat(self) -> call_result.Heartbeat:
        return call_result.Heartbeat(current_time=to_ocpp(self.ctx.clock()))

    @on(Action.status_notification)
    def on_status(self, connector_id: int, error_code: str, status: str, **kw: Any) -> call_result.StatusNotification:
        now = self.ctx.clock()
        self.ctx.state.observe_time(kw.get("timestamp"), now)
        c = self.ctx.state.connector(connector_id)
        c.status, c.error_code, c.updated_at = status, error_code, now
        self.ctx.event("status", connector=connector_id, status=status, error_code=error_code)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, id_tag: str) -> call_result.Authorize:
        return call_result.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action.start_transaction)
    def on_start_transaction(
        self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **_kw: Any
    ) -> call_result.StartTransaction:
        now = self.ctx.clock()
        st = self.ctx.state
        stamp = st.observe_time(timestamp, now)
        vehicle = vehicle_for_tag(self.ctx.site, id_tag)
        tx = Transaction(
            transaction_id=self.ctx.next_transaction_id(),
            connector_id=connector_id,
            id_tag=id_tag,
            vehicle_id=vehicle.id if vehicle else None,
            started_at=st.to_ours(stamp, now),
            meter_start_wh=float(meter_start),
            seen_at=now,
        )
        self.ctx.state.transaction_started(connector_id, tx)
        self.ctx.event(
            "transaction_started",
            connector=connector_id,
            transaction_id=tx.transaction_id,
            vehicle_id=tx.vehicle_id,
            id_tag=id_tag,
        )
        return call_result.StartTransaction(transaction_id=int(tx.transaction_id), id_tag_info={"status": "Accepted"})

    @on(Action.stop_transaction)
    def on_stop_transaction(
        self, meter_stop: int, timestamp: str, transaction_id: int, **kw: Any
    ) -> call_result.StopTransaction:
        st = self.ctx.state
        now = self.ctx.clock()
        stamp = st.observe_time(timestamp, now)
        tx = st.find_transaction(transaction_id)
        if tx is not None:
            c = st.connector(tx.connector_id)
            if kw.get("transaction_data"):
                apply_meter_values(c.measured, kw["transaction_data"], now, st.clock_estimate)
            tx.ended_at, tx.stop_reason = now, kw.get("reason")
            st.transaction_ended(tx.connector_id, transaction_id, st.to_ours(stamp, now), stamp)
            self.ctx.event(
                "transaction_ended",
                connector=tx.connector_id,
                transaction_id=transaction_id,
                meter_stop_wh=meter_stop,
                reason=kw.get("reason"),
            )
        if kw.get("id_tag") is not None:
            return call_result.StopTransaction(id_tag_info={"status": "Accepted"})
        return call_result.StopTransaction()

    @on(Action.meter_values)
    def on_meter_values(
        self, connector_id: int, meter_value: list[dict[str, Any]], **kw: Any
    ) -> call_result.MeterValues:
        st = self.ctx.state
        tx_id = kw.get("transaction_id")
        if tx_id is not None and st.find_transaction(tx_id) is None and st.has_ended(tx_id):
            st.counters["after_end"] += 1  # what a stopped transaction drew, sent late: not a reading of now
            return call_result.MeterValues()
        c = st.connector(connector_id)
        used = apply_meter_values(c.measured, meter_value, self.ctx.clock(), st.clock_estimate)
        self.ctx.state.note_meter_values(connector_id)
        self.ctx.event("meter_values", connector=connector_id, values=used)
        return call_result.MeterValues()

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_kw: Any) -> call_result.DataTransfer:
        return call_result.DataTransfer(status="UnknownVendorId")

    # notifications a charger may send: acknowledged, nothing to do for load management
    @on(Action.diagnostics_status_notification)
    def on_diagnostics_status(self, **_kw: Any) -> call_result.DiagnosticsStatusNotification:
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status(self, **_kw: Any) -> call_result.FirmwareStatusNotification:
        return call_result.FirmwareStatusNotification()

    @on(Action.security_event_notification)
    def on_security_event(self, **kw: Any) -> call_result.SecurityEventNotification:
        self.ctx.state.observe_time(kw.get("timestamp"), self.ctx.clock())
        self.ctx.event("security_event", type=kw.get("type"), info=kw.get("tech_info"))
        return call_result.SecurityEventNotification()

    @on(Action.log_status_notification)
    def on_log_status(self, **_kw: Any) -> call_result.LogStatusNotification:
        return call_result.LogStatusNotification()

    @on(Action.signed_firmware_status_notification)
    def on_signed_firmware_status(self, **_kw: Any) -> call_result.SignedFirmwareStatusNotification:
        return call_result.SignedFirmwareStatusNotification()

    # --- central system → charger -------------------------------------------------------------
    async def read_capabilities(self) -> Capabilities:
        out = await bounded_call(self, call.GetConfiguration(key=CAPABILITY_KEYS), self.ctx.site.ocpp.call_timeout_s)
        if out.payload is None:
            return Capabilities()
        return parse_capabilities(list(out.payload.configuration_key or []))

    async def _change(self, key: str, value: str) -> bool:
        out = await bounded_call(
            self, call.ChangeConfiguration(key=key, value=value), self.ctx.site.ocpp.call_timeout_s
        )
        return out.status in ("Accepted", "RebootRequired")

    async def configure_sampling(self, interval_s: int, measurands: tuple[str, ...]) -> tuple[str, ...]:
        await self._change("MeterValueSampleInterval", str(interval_s))
        return await narrow_measurands(lambda value: self._change("MeterValuesSampledData", value), measurands)

    async def send_profile(self, spec: ProfileSpec) -> CallOutcome:
        payload = {"connectorId": spec.connector_id, "csChargingProfiles": to_v16(spec)}
        return await profile_call(self, "SetChargingProfile", payload, self.ctx.site.ocpp.call_timeout_s)

    async def composite_schedule(self, connector_id: int, duration_s: int) -> CallOutcome:
        """What the charger says it will do (diagnostics; some chargers reject this)."""
        payload = call.GetCompositeSchedule(connector_id=connector_id, duration=duration_s, charging_rate_unit="A")
        return await bounded_call(self, payload, self.ctx.site.ocpp.call_timeout_s)
