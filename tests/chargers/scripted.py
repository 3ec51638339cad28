"""A scripted charge point over a real websocket: the test decides every timestamp and every answer.

``ScriptedCharger`` speaks raw OCPP-J (camelCase frames, as on the wire): ``call(action, payload)``
sends a CALL and returns the CALLRESULT payload; every CALL from the central system is recorded
in ``received`` and answered by ``answer(action, payload)`` (default: a minimal valid answer).
Its clock is the test's pinned clock plus ``offset_s``: a charger minutes ahead or behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

Answer = Callable[[str, dict[str, Any]], dict[str, Any] | None]


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LoopClock:
    """A pinned clock: ``start`` plus the event loop's monotonic time since creation."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self._loop = asyncio.get_running_loop()
        self._t0 = self._loop.time()

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self._loop.time() - self._t0)


def default_answer(version: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    if action == "SetChargingProfile":
        return {"status": "Accepted"}
    if action == "GetConfiguration":
        return {"configurationKey": []}
    if action == "ChangeConfiguration":
        return {"status": "Accepted"}
    if action == "GetVariables":
        return {
            "getVariableResult": [
                {"attributeStatus": "UnknownVariable", "component": d["component"], "variable": d["variable"]}
                for d in payload.get("getVariableData", [])
            ]
        }
    if action == "SetVariables":
        return {
            "setVariableResult": [
                {"attributeStatus": "Accepted", "component": d["component"], "variable": d["variable"]}
                for d in payload.get("setVariableData", [])
            ]
        }
    return {"status": "Accepted"} if version == "2.0.1" else {}


class ScriptedCharger:
    def __init__(
        self,
        charger_id: str,
        clock: Callable[[], datetime],
        *,
        version: str = "1.6",
        offset_s: float = 0.0,
        answer: Answer | None = None,
    ) -> None:
        self.charger_id = charger_id
        self.version = version
        self.offset_s = offset_s
        self._clock = clock
        self.answer = answer
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self.ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    def now(self) -> datetime:
        """The charger's own clock."""
        return self._clock() + timedelta(seconds=self.offset_s)

    def profiles(self) -> list[dict[str, Any]]:
        """Every SetChargingProfile payload received, in order."""
        return [p for a, p in self.received if a == "SetChargingProfile"]

    async def connect(self, url: str) -> None:
        proto = Subprotocol("ocpp2.0.1" if self.version == "2.0.1" else "ocpp1.6")
        self.ws = await connect(
            f"{url.rstrip('/')}/{self.charger_id}", subprotocols=[proto], open_timeout=5, close_timeout=1
        )
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                msg = json.loads(raw)
                if msg[0] == 2:
                    _, uid, action, payload = msg
                    self.received.append((action, payload))
                    reply = self.answer(action, payload) if self.answer is not None else None
                    if reply is None:
                        reply = default_answer(self.version, action, payload)
                    await self.ws.send(json.dumps([3, uid, reply]))
                elif msg[0] in (3, 4):
                    fut = self._waiting.pop(str(msg[1]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)

    async def call(self, action: str, payload: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        assert self.ws is not None
        uid = f"c{next(self._ids)}"
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[uid] = fut
        await self.ws.send(json.dumps([2, uid, action, payload]))
        msg = await asyncio.wait_for(fut, timeout_s)
        if msg[0] == 4:
            raise RuntimeError(f"{action}: CALLERROR {msg[2]} {msg[3]}")
        result: dict[str, Any] = msg[2]
        return result

    # --- 1.6 -------------------------------------------------------------------------------------
    async def boot(self) -> dict[str, Any]:
        if self.version == "2.0.1":
            return await self.call(
                "BootNotification",
                {"chargingStation": {"vendorName": "test", "model": "scripted"}, "reason": "PowerUp"},
            )
        return await self.call("BootNotification", {"chargePointVendor": "test", "chargePointModel": "scripted"})

    async def status(self, connector: int, status: str, at: datetime | None = None) -> None:
        at = self.now() if at is None else at
        if self.version == "2.0.1":
            await self.call(
                "StatusNotification",
                {"timestamp": stamp(at), "connectorStatus": status, "evseId": connector, "connectorId": 1},
            )
        else:
            await self.call(
                "StatusNotification",
                {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": stamp(at)},
            )

    async def start_transaction(self, connector: int = 1, id_tag: str = "TAG-BUS1", at: datetime | None = None) -> Any:
        at = self.now() if at is None else at
        if self.version == "2.0.1":
            tx_id = f"{self.charger_id}-tx{next(self._ids)}"
            await self.call(
                "TransactionEvent",
                {
                    "eventType": "Started",
                    "timestamp": stamp(at),
                    "triggerReason": "Authorized",
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": tx_id},
                    "evse": {"id": connector, "connectorId": 1},
                    "idToken": {"idToken": id_tag, "type": "ISO14443"},
                },
            )
            return tx_id
        result = await self.call(
            "StartTransaction", {"connectorId": connector, "idTag": id_tag, "meterStart": 0, "timestamp": stamp(at)}
        )
        return result["transactionId"]

    async def meter_values(
        self,
        connector: int,
        currents_a: tuple[float, float, float],
        at: datetime | None = None,
        transaction_id: Any = None,
    ) -> None:
        at = self.now() if at is None else at
        sampled = [
            {"value": f"{a:.1f}", "measurand": "Current.Import", "phase": ph, "unit": "A"}
            for a, ph in zip(currents_a, ("L1", "L2", "L3"), strict=True)
        ]
        if self.version == "2.0.1":
            values = [
                {"value": a, "measurand": "Current.Import", "phase": ph}
                for a, ph in zip(currents_a, ("L1", "L2", "L3"), strict=True)
            ]
            await self.call(
                "TransactionEvent",
                {
                    "eventType": "Updated",
                    "timestamp": stamp(self.now()),
                    "triggerReason": "MeterValuePeriodic",
                    "seqNo": next(self._ids),
                    "transactionInfo": {"transactionId": str(transaction_id)},
                    "meterValue": [{"timestamp": stamp(at), "sampledValue": values}],
                },
            )
            return
        payload: dict[str, Any] = {
            "connectorId": connector,
            "meterValue": [{"timestamp": stamp(at), "sampledValue": sampled}],
        }
        if transaction_id is not None:
            payload["transactionId"] = int(transaction_id)
        await self.call("MeterValues", payload)
