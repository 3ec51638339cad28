"""The simulated charger's OCPP side, 1.6J and 2.0.1 (client role of the ``ocpp`` package).

Every timestamp sent is the charger's own clock (:meth:`SimCharger.charger_now`). Answers to
SetChargingProfile go out when :meth:`SimCharger.answer_delay` says: at once, late (sent by a task,
the receive loop goes on), or never.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ocpp.routing import after as _after
from ocpp.routing import on as _on
from ocpp.v16 import ChargePoint as Cp16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as Cp201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from websockets.exceptions import ConnectionClosed

from hil.chargers.composite import format_time, from_v16, from_v201

if TYPE_CHECKING:
    from collections.abc import Callable

    from websockets.asyncio.client import ClientConnection

    from hil.chargers.composite import RunningTx
    from hil.chargers.sim import Connector, SimCharger

F = TypeVar("F", bound="Callable[..., Any]")


def on(action: str) -> Callable[[F], F]:
    return cast("Callable[[F], F]", _on(action))


def after(action: str) -> Callable[[F], F]:
    """Runs after the answer to ``action`` went out (a task: it may make calls itself)."""
    return cast("Callable[[F], F]", _after(action))


class _Hooked:
    """Frame hook on both directions, for schema checks in tests; optional schema validation."""

    sim: SimCharger
    _connection: Any
    route_map: dict[str, dict[str, Any]]
    _held: dict[str, float | None]
    """Unique id of a call → how long to hold its answer [s] (``None``: never send it)."""

    def hold_answer(self, unique_id: str) -> None:
        """Hold the answer to this call as the sim's options say (late or never)."""
        delay = self.sim.answer_delay()
        if delay is None or delay > 0:
            self._held[unique_id] = delay

    def _no_validation(self) -> None:
        for handlers in self.route_map.values():
            handlers["_skip_schema_validation"] = True

    async def call(
        self, payload: Any, suppress: bool = True, unique_id: Any = None, skip_schema_validation: bool = False
    ) -> Any:
        skip = skip_schema_validation or not self.sim.o.validate_messages
        return await super().call(payload, suppress, unique_id, skip)  # type: ignore[misc]

    async def start(self) -> None:
        while True:
            message = await self._connection.recv()
            if self.sim.frame_hook is not None:
                self.sim.frame_hook("in", message)
            await self.route_message(message)  # type: ignore[attr-defined]

    async def _send(self, message: str) -> None:
        if self._held:
            with contextlib.suppress(ValueError, TypeError, IndexError):
                frame = json.loads(message)
                if frame[0] == 3 and frame[1] in self._held:
                    delay = self._held.pop(frame[1])
                    if delay is None:
                        self.sim.record.answers_withheld.append(str(frame[1]))
                        return
                    self.sim.record.answers_delayed.append(str(frame[1]))
                    self.sim.spawn(self._send_late(message, delay))
                    return
        await self._send_now(message)

    async def _send_now(self, message: str) -> None:
        if self.sim.frame_hook is not None:
            self.sim.frame_hook("out", message)
        await self._connection.send(message)

    async def _send_late(self, message: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        with contextlib.suppress(ConnectionClosed):
            await self._send_now(message)


class Sim16(_Hooked, Cp16):  # type: ignore[misc]
    def __init__(self, sim: SimCharger, ws: ClientConnection) -> None:
        super().__init__(sim.o.charger_id, ws, response_timeout=10)
        self.sim = sim
        self._held = {}
        if not sim.o.validate_messages:
            self._no_validation()

    # central system → charger
    @on("GetConfiguration")
    def get_configuration(self, key: list[str] | None = None) -> result16.GetConfiguration:
        self.sim.record.calls_received.append("GetConfiguration")
        o = self.sim.o
        values = {
            "ChargeProfileMaxStackLevel": str(0 if "stack_level_zero_only" in o.quirks else o.max_stack_level),
            "ChargingScheduleAllowedChargingRateUnit": "Power" if "power_only" in o.quirks else "Current,Power",
            "ChargingScheduleMaxPeriods": str(o.max_periods),
            "MaxChargingProfilesInstalled": "10",
            **self.sim.config,
        }
        wanted = key or list(values)
        known = [{"key": k, "readonly": k not in self.sim.config, "value": values[k]} for k in wanted if k in values]
        unknown = [k for k in wanted if k not in values]
        return result16.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on("ChangeConfiguration")
    def change_configuration(self, key: str, value: str) -> result16.ChangeConfiguration:
        self.sim.record.calls_received.append("ChangeConfiguration")
        return result16.ChangeConfiguration(status=self.sim.change_config(key, value))

    @on("SetChargingProfile")
    async def set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], call_unique_id: str
    ) -> Any:
        self.sim.record.calls_received.append("SetChargingProfile")
        p = from_v16(connector_id, cs_charging_profiles, self.sim.charger_now())
        status = await self.sim.answer_profile(p, cs_charging_profiles)
        self.hold_answer(call_unique_id)
        return result16.SetChargingProfile(status=status)

    @on("GetCompositeSchedule")
    def get_composite_schedule(self, connector_id: int, duration: int, **kw: Any) -> result16.GetCompositeSchedule:
        sim = self.sim
        if connector_id not in sim.connectors:
            return result16.GetCompositeSchedule(status="Rejected")
        start = sim.charger_now().replace(microsecond=0)
        periods = sim.composite_periods(connector_id, start, min(duration, 86400), kw.get("charging_rate_unit"))
        unit = kw.get("charging_rate_unit") or "A"
        return result16.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=format_time(start),
            charging_schedule={
                "duration": duration,
                "startSchedule": format_time(start),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": o, "limit": v} for o, v in periods],
            },
        )

    @on("ClearChargingProfile")
    def clear_charging_profile(self, **kw: Any) -> result16.ClearChargingProfile:
        n = self.sim.clear_profiles(
            kw.get("id"), kw.get("connector_id"), kw.get("charging_profile_purpose"), kw.get("stack_level")
        )
        return result16.ClearChargingProfile(status="Accepted" if n else "Unknown")

    @on("RemoteStartTransaction")
    def remote_start(self, id_tag: str, connector_id: int | None = None, **_kw: Any) -> Any:
        self.sim.record.calls_received.append("RemoteStartTransaction")
        return result16.RemoteStartTransaction(status=self.sim.remote_start_status(connector_id))

    @after("RemoteStartTransaction")
    def after_remote_start(self, id_tag: str, connector_id: int | None = None, **_kw: Any) -> None:
        self.sim.spawn(self.sim.remote_started(id_tag, connector_id))

    @on("RemoteStopTransaction")
    def remote_stop(self, transaction_id: int) -> result16.RemoteStopTransaction:
        self.sim.record.calls_received.append("RemoteStopTransaction")
        return result16.RemoteStopTransaction(status=self.sim.remote_stop_status(str(transaction_id)))

    @after("RemoteStopTransaction")
    def after_remote_stop(self, transaction_id: int) -> None:
        self.sim.spawn(self.sim.remote_stopped(str(transaction_id)))

    @on("DataTransfer")
    def data_transfer(self, vendor_id: str, **_kw: Any) -> result16.DataTransfer:
        self.sim.record.calls_received.append("DataTransfer")
        return result16.DataTransfer(status="UnknownVendorId")

    @on("TriggerMessage")
    def trigger_message(self, requested_message: str, connector_id: int | None = None) -> Any:
        self.sim.record.calls_received.append("TriggerMessage")
        ok = requested_message in ("Heartbeat", "StatusNotification", "MeterValues")
        return result16.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger(self, requested_message: str, connector_id: int | None = None) -> None:
        self.sim.spawn(self.sim.triggered(requested_message, connector_id))

    async def heartbeat(self) -> None:
        await self.call(call16.Heartbeat())

    # charger → central system
    async def boot(self) -> None:
        await self.call(
            call16.BootNotification(charge_point_vendor=self.sim.o.vendor, charge_point_model=self.sim.o.model)
        )

    async def status(self, connector_id: int, status: str) -> None:
        await self.call(
            call16.StatusNotification(
                connector_id=connector_id,
                error_code="NoError",
                status=status,
                timestamp=format_time(self.sim.charger_now()),
            )
        )

    async def authorize(self, id_tag: str) -> None:
        await self.call(call16.Authorize(id_tag=id_tag))

    async def start_transaction(self, c: Connector, at: datetime | None = None) -> str:
        assert c.id_tag is not None
        r = await self.call(
            call16.StartTransaction(
                connector_id=c.connector_id,
                id_tag=c.id_tag,
                meter_start=int(c.energy_wh),
                timestamp=format_time(at or self.sim.charger_now()),
            )
        )
        return str(r.transaction_id)

    async def stop_transaction(
        self, c: Connector, *, tx: RunningTx | None = None, reason: str = "EVDisconnected", at: datetime | None = None
    ) -> None:
        tx = tx or c.tx
        assert tx is not None
        await self.call(
            call16.StopTransaction(
                meter_stop=int(c.energy_wh),
                timestamp=format_time(at or self.sim.charger_now()),
                transaction_id=int(tx.transaction_id),
                reason=reason,
                id_tag=c.id_tag,
            )
        )

    async def late_meter_values(self, c: Connector, tx: RunningTx, sample: dict[str, float], at: datetime,
                                seq_no: int) -> None:
        """A meter value of ``tx`` taken at ``at`` (before its stop) and sent only now, after the
        StopTransaction (``seq_no``: 2.0.1 only)."""
        values = _sampled(self.sim.measurands(), sample, as_text=True)
        if values:
            await self.call(call16.MeterValues(
                connector_id=c.connector_id, transaction_id=int(tx.transaction_id),
                meter_value=[{"timestamp": format_time(at), "sampledValue": values}],
            ))

    async def meter_values(self, connector_id: int, sample: dict[str, float]) -> None:
        c = self.sim.connectors[connector_id]
        values = _sampled(self.sim.measurands(), sample, as_text=True)
        if not values:
            return
        await self.call(
            call16.MeterValues(
                connector_id=connector_id,
                transaction_id=int(c.tx.transaction_id) if c.tx else None,
                meter_value=[{"timestamp": format_time(self.sim.charger_now()), "sampledValue": values}],
            )
        )


class Sim201(_Hooked, Cp201):  # type: ignore[misc]
    def __init__(self, sim: SimCharger, ws: ClientConnection) -> None:
        super().__init__(sim.o.charger_id, ws, response_timeout=10)
        self.sim = sim
        self._held = {}
        if not sim.o.validate_messages:
            self._no_validation()

    def _smart(self, name: str) -> str | None:
        o = self.sim.o
        return {
            "ProfileStackLevel": str(0 if "stack_level_zero_only" in o.quirks else o.max_stack_level),
            "RateUnit": "W" if "power_only" in o.quirks else "A,W",
            "PeriodsPerSchedule": str(o.max_periods),
            "Entries": "10",
        }.get(name)

    @on("GetVariables")
    def get_variables(self, get_variable_data: list[dict[str, Any]]) -> result201.GetVariables:
        self.sim.record.calls_received.append("GetVariables")
        out = []
        for item in get_variable_data:
            comp, var = item["component"], item["variable"]
            value = self._smart(var["name"]) if comp["name"] == "SmartChargingCtrlr" else None
            entry: dict[str, Any] = {
                "attribute_status": "Accepted" if value is not None else "UnknownVariable",
                "component": comp,
                "variable": var,
            }
            if value is not None:
                entry["attribute_value"] = value
            out.append(entry)
        return result201.GetVariables(get_variable_result=out)

    @on("SetVariables")
    def set_variables(self, set_variable_data: list[dict[str, Any]]) -> result201.SetVariables:
        self.sim.record.calls_received.append("SetVariables")
        out = []
        for item in set_variable_data:
            comp, var, value = item["component"], item["variable"], item["attribute_value"]
            key = {
                "TxUpdatedInterval": "MeterValueSampleInterval",
                "TxUpdatedMeasurands": "MeterValuesSampledData",
            }.get(var["name"])
            status = "UnknownVariable"
            if comp["name"] == "SampledDataCtrlr" and key is not None:
                status = self.sim.change_config(key, value)
            out.append({"attribute_status": status, "component": comp, "variable": var})
        return result201.SetVariables(set_variable_result=out)

    @on("SetChargingProfile")
    async def set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], call_unique_id: str) -> Any:
        self.sim.record.calls_received.append("SetChargingProfile")
        p = from_v201(evse_id, charging_profile, self.sim.charger_now())
        if p.purpose == "TxProfile" and p.transaction_id is None:
            status = "Rejected"
        else:
            status = await self.sim.answer_profile(p, charging_profile)
        self.hold_answer(call_unique_id)
        return result201.SetChargingProfile(status=status)

    @on("GetCompositeSchedule")
    def get_composite_schedule(self, duration: int, evse_id: int, **kw: Any) -> result201.GetCompositeSchedule:
        sim = self.sim
        if evse_id not in sim.connectors:
            return result201.GetCompositeSchedule(status="Rejected")
        start = sim.charger_now().replace(microsecond=0)
        unit = kw.get("charging_rate_unit") or "A"
        periods = sim.composite_periods(evse_id, start, min(duration, 86400), unit)
        return result201.GetCompositeSchedule(
            status="Accepted",
            schedule={
                "evse_id": evse_id,
                "duration": duration,
                "schedule_start": format_time(start),
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": o, "limit": v} for o, v in periods],
            },
        )

    @on("ClearChargingProfile")
    def clear_charging_profile(self, **kw: Any) -> result201.ClearChargingProfile:
        n = self.sim.clear_profiles(kw.get("charging_profile_id"))
        return result201.ClearChargingProfile(status="Accepted" if n else "Unknown")

    @on("RequestStartTransaction")
    def request_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any) -> Any:
        self.sim.record.calls_received.append("RequestStartTransaction")
        return result201.RequestStartTransaction(status=self.sim.remote_start_status(kw.get("evse_id")))

    @after("RequestStartTransaction")
    def after_request_start(self, id_token: dict[str, Any], remote_start_id: int, **kw: Any) -> None:
        self.sim.spawn(self.sim.remote_started(str(id_token["id_token"]), kw.get("evse_id"), remote_start_id))

    @on("RequestStopTransaction")
    def request_stop(self, transaction_id: str) -> result201.RequestStopTransaction:
        self.sim.record.calls_received.append("RequestStopTransaction")
        return result201.RequestStopTransaction(status=self.sim.remote_stop_status(transaction_id))

    @after("RequestStopTransaction")
    def after_request_stop(self, transaction_id: str) -> None:
        self.sim.spawn(self.sim.remote_stopped(transaction_id))

    @on("DataTransfer")
    def data_transfer(self, vendor_id: str, **_kw: Any) -> result201.DataTransfer:
        self.sim.record.calls_received.append("DataTransfer")
        return result201.DataTransfer(status="UnknownVendorId")

    @on("TriggerMessage")
    def trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None) -> Any:
        self.sim.record.calls_received.append("TriggerMessage")
        ok = requested_message in ("Heartbeat", "StatusNotification", "MeterValues")
        return result201.TriggerMessage(status="Accepted" if ok else "NotImplemented")

    @after("TriggerMessage")
    def after_trigger(self, requested_message: str, evse: dict[str, Any] | None = None) -> None:
        self.sim.spawn(self.sim.triggered(requested_message, evse.get("id") if evse else None))

    async def heartbeat(self) -> None:
        await self.call(call201.Heartbeat())

    async def boot(self) -> None:
        await self.call(
            call201.BootNotification(
                charging_station={"model": self.sim.o.model, "vendor_name": self.sim.o.vendor}, reason="PowerUp"
            )
        )

    async def status(self, connector_id: int, status: str) -> None:
        mapped = {"Preparing": "Occupied", "Charging": "Occupied", "Finishing": "Occupied"}.get(status, status)
        await self.call(
            call201.StatusNotification(
                timestamp=format_time(self.sim.charger_now()),
                connector_status=mapped,
                evse_id=connector_id,
                connector_id=1,
            )
        )

    async def authorize(self, id_tag: str) -> None:
        await self.call(call201.Authorize(id_token={"id_token": id_tag, "type": "ISO14443"}))

    async def _tx_event(
        self,
        c: Connector,
        event_type: str,
        trigger: str,
        tx_id: str,
        meter: list[dict[str, Any]] | None = None,
        with_token: bool = False,
        at: datetime | None = None,
        stopped_reason: str | None = None,
        offline: bool | None = None,
        seq_no: int | None = None,
    ) -> None:
        if seq_no is None:
            c.seq_no += 1
            seq_no = c.seq_no
        info: dict[str, Any] = {"transaction_id": tx_id}
        if event_type == "Started" and c.remote_start_id is not None:
            info["remote_start_id"] = c.remote_start_id
        if stopped_reason is not None:
            info["stopped_reason"] = stopped_reason
        await self.call(
            call201.TransactionEvent(
                event_type=event_type,
                timestamp=format_time(at or self.sim.charger_now()),
                trigger_reason=trigger,
                seq_no=seq_no,
                transaction_info=info,
                evse={"id": c.connector_id, "connector_id": 1},
                id_token={"id_token": c.id_tag, "type": "ISO14443"} if with_token and c.id_tag else None,
                meter_value=meter,
                offline=offline,
            )
        )

    async def start_transaction(self, c: Connector, at: datetime | None = None) -> str:
        tx_id = self.sim.next_tx_id()
        trigger = "RemoteStart" if c.remote_start_id is not None else "Authorized"
        await self._tx_event(c, "Started", trigger, tx_id, with_token=True, at=at)
        return tx_id

    async def stop_transaction(
        self, c: Connector, *, tx: RunningTx | None = None, reason: str = "EVDisconnected", at: datetime | None = None
    ) -> None:
        tx = tx or c.tx
        assert tx is not None
        if reason == "EVDisconnected":
            await self._tx_event(c, "Ended", "EVCommunicationLost", tx.transaction_id, at=at)
        elif reason == "Remote":
            await self._tx_event(c, "Ended", "RemoteStop", tx.transaction_id, at=at, stopped_reason="Remote")
        else:  # ended by a reboot / power loss, reported after reconnecting
            await self._tx_event(
                c, "Ended", "AbnormalCondition", tx.transaction_id, at=at, stopped_reason=reason, offline=True
            )

    async def ev_needs(self, connector_id: int, charging_needs: dict[str, Any]) -> str:
        """NotifyEVChargingNeeds (ISO 15118 → the central system); returns the answer's status."""
        r = await self.call(call201.NotifyEVChargingNeeds(charging_needs=charging_needs, evse_id=connector_id))
        return str(getattr(r, "status", "Error"))

    async def meter_values(self, connector_id: int, sample: dict[str, float]) -> None:
        c = self.sim.connectors[connector_id]
        values = _sampled(self.sim.measurands(), sample, as_text=False)
        if not values or c.tx is None:
            return
        meter = [{"timestamp": format_time(self.sim.charger_now()), "sampled_value": values}]
        await self._tx_event(c, "Updated", "MeterValuePeriodic", c.tx.transaction_id, meter)

    async def late_meter_values(self, c: Connector, tx: RunningTx, sample: dict[str, float], at: datetime,
                                seq_no: int) -> None:
        """A meter value of ``tx`` taken at ``at`` (before its end) and sent only now, after the
        Ended event: a queued Updated event flushed late, with its own (earlier) seqNo."""
        values = _sampled(self.sim.measurands(), sample, as_text=False)
        if values:
            meter = [{"timestamp": format_time(at), "sampled_value": values}]
            await self._tx_event(c, "Updated", "MeterValuePeriodic", tx.transaction_id, meter, at=at, seq_no=seq_no)


def _sampled(measurands: list[str], sample: dict[str, float], *, as_text: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    units = {"Current.Import": "A", "Power.Active.Import": "W", "Energy.Active.Import.Register": "Wh", "SoC": "Percent"}
    for m in measurands:
        keys = [k for k in sample if k == m or k.startswith(m + ".")] if m == "Current.Import" else [m]
        for k in keys:
            if k not in sample:
                continue
            value = round(sample[k], 2)
            item: dict[str, Any] = {"measurand": m, "context": "Sample.Periodic"}
            if k != m:
                item["phase"] = k.rsplit(".", 1)[1]
            if as_text:
                item.update(value=f"{value:.2f}", unit=units[m])
                if m == "SoC":
                    item["location"] = "EV"
            else:
                item.update(value=value, unit_of_measure={"unit": units[m]})
            out.append(item)
    return out


def make_protocol(sim: SimCharger, ws: ClientConnection) -> Sim16 | Sim201:
    return Sim201(sim, ws) if sim.o.version == "2.0.1" else Sim16(sim, ws)
