"""The CSMS's calls to a charger, version-aware (1.6 / 2.0.1): each returns the CALLRESULT's
payload (camelCase, as on the wire) and raises what :meth:`SimCsms.call` raises
(:class:`~hil.csms.server.CallErrorAnswer`, ``TimeoutError``, :class:`~hil.csms.server.NotConnected`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from hil.csms.profiles import charging_profile


class Commands:
    """Mixed into :class:`hil.csms.server.SimCsms`, which provides ``call``, ``version``, ``clock``."""

    clock: Callable[[], datetime]

    async def call(
        self, charger_id: str, action: str, payload: dict[str, Any], timeout_s: float | None = None
    ) -> dict[str, Any]:
        raise NotImplementedError

    def version(self, charger_id: str) -> str:
        raise NotImplementedError

    def next_remote_start_id(self) -> int:
        raise NotImplementedError

    async def remote_start(
        self,
        charger_id: str,
        id_tag: str,
        connector_id: int | None = 1,
        *,
        charging_profile: dict[str, Any] | None = None,
        remote_start_id: int | None = None,
        token_type: str = "ISO14443",
    ) -> dict[str, Any]:
        """1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction (``remote_start_id``:
        default the next call number)."""
        if self.version(charger_id) == "1.6":
            p: dict[str, Any] = {"idTag": id_tag}
            if connector_id is not None:
                p["connectorId"] = connector_id
            if charging_profile is not None:
                p["chargingProfile"] = charging_profile
            return await self.call(charger_id, "RemoteStartTransaction", p)
        rid = remote_start_id if remote_start_id is not None else self.next_remote_start_id()
        p = {"idToken": {"idToken": id_tag, "type": token_type}, "remoteStartId": rid}
        if connector_id is not None:
            p["evseId"] = connector_id
        if charging_profile is not None:
            p["chargingProfile"] = charging_profile
        return await self.call(charger_id, "RequestStartTransaction", p)

    async def remote_stop(self, charger_id: str, transaction_id: int | str) -> dict[str, Any]:
        """1.6 RemoteStopTransaction / 2.0.1 RequestStopTransaction."""
        if self.version(charger_id) == "1.6":
            return await self.call(charger_id, "RemoteStopTransaction", {"transactionId": int(transaction_id)})
        return await self.call(charger_id, "RequestStopTransaction", {"transactionId": str(transaction_id)})

    async def set_charging_profile(self, charger_id: str, connector_id: int, profile: dict[str, Any]) -> dict[str, Any]:
        """SetChargingProfile with a wire profile (:func:`hil.csms.profiles.charging_profile`)."""
        if self.version(charger_id) == "1.6":
            payload = {"connectorId": connector_id, "csChargingProfiles": profile}
        else:
            payload = {"evseId": connector_id, "chargingProfile": profile}
        return await self.call(charger_id, "SetChargingProfile", payload)

    async def set_cap(
        self,
        charger_id: str,
        limit: float,
        *,
        unit: str = "A",
        purpose: str = "ChargePointMaxProfile",
        connector_id: int | None = None,
        profile_id: int = 900,
        stack_level: int = 0,
        transaction_id: int | str | None = None,
        duration_s: int | None = None,
    ) -> dict[str, Any]:
        """A cap of ``limit`` (A per phase or W) from now on (an Absolute schedule starting at the
        CSMS's clock): ChargePointMax/ChargingStationMax on connector 0, else ``purpose`` on
        ``connector_id`` (default 1)."""
        version = self.version(charger_id)
        is_max = purpose in ("ChargePointMaxProfile", "ChargingStationMaxProfile")
        target = 0 if is_max else (connector_id if connector_id is not None else 1)
        profile = charging_profile(
            version,
            profile_id=profile_id,
            purpose=purpose,
            limit=limit,
            unit=unit,
            stack_level=stack_level,
            start=self.clock().astimezone(UTC).replace(microsecond=0),
            transaction_id=transaction_id,
            duration_s=duration_s,
        )
        return await self.set_charging_profile(charger_id, target, profile)

    async def clear_charging_profile(
        self,
        charger_id: str,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> dict[str, Any]:
        if self.version(charger_id) == "1.6":
            p: dict[str, Any] = {}
            for k, v in (
                ("id", profile_id),
                ("connectorId", connector_id),
                ("chargingProfilePurpose", purpose),
                ("stackLevel", stack_level),
            ):
                if v is not None:
                    p[k] = v
            return await self.call(charger_id, "ClearChargingProfile", p)
        p = {} if profile_id is None else {"chargingProfileId": profile_id}
        criteria: dict[str, Any] = {}
        if connector_id is not None:
            criteria["evseId"] = connector_id
        if purpose is not None:
            criteria["chargingProfilePurpose"] = (
                "ChargingStationMaxProfile" if purpose == "ChargePointMaxProfile" else purpose
            )
        if stack_level is not None:
            criteria["stackLevel"] = stack_level
        if criteria:
            p["chargingProfileCriteria"] = criteria
        return await self.call(charger_id, "ClearChargingProfile", p)

    async def get_composite_schedule(
        self, charger_id: str, connector_id: int, duration_s: int, unit: str | None = None
    ) -> dict[str, Any]:
        key = "connectorId" if self.version(charger_id) == "1.6" else "evseId"
        p: dict[str, Any] = {key: connector_id, "duration": duration_s}
        if unit is not None:
            p["chargingRateUnit"] = unit
        return await self.call(charger_id, "GetCompositeSchedule", p)

    async def reset(self, charger_id: str, kind: str = "Soft") -> dict[str, Any]:
        """Reset: ``Soft``/``Hard`` (1.6); 2.0.1 takes ``OnIdle``/``Immediate`` (Soft/Hard mapped)."""
        if self.version(charger_id) == "1.6":
            return await self.call(charger_id, "Reset", {"type": kind})
        mapped = {"Soft": "OnIdle", "Hard": "Immediate"}.get(kind, kind)
        return await self.call(charger_id, "Reset", {"type": mapped})

    async def change_configuration(self, charger_id: str, key: str, value: str) -> dict[str, Any]:
        """1.6 ChangeConfiguration."""
        return await self.call(charger_id, "ChangeConfiguration", {"key": key, "value": value})

    async def set_variables(self, charger_id: str, items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
        """2.0.1 SetVariables: (component name, variable name, value) each."""
        data = [{"component": {"name": c}, "variable": {"name": v}, "attributeValue": val} for c, v, val in items]
        return await self.call(charger_id, "SetVariables", {"setVariableData": data})

    async def data_transfer(
        self, charger_id: str, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        p: dict[str, Any] = {"vendorId": vendor_id}
        if message_id is not None:
            p["messageId"] = message_id
        if data is not None:
            p["data"] = data
        return await self.call(charger_id, "DataTransfer", p)

    async def trigger_message(self, charger_id: str, message: str, connector_id: int | None = None) -> dict[str, Any]:
        """TriggerMessage (``message``: the version's ``requestedMessage``, e.g. ``StatusNotification``)."""
        p: dict[str, Any] = {"requestedMessage": message}
        if connector_id is not None:
            if self.version(charger_id) == "1.6":
                p["connectorId"] = connector_id
            else:
                p["evse"] = {"id": connector_id}
        return await self.call(charger_id, "TriggerMessage", p)
