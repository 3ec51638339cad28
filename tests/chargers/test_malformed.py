"""Malformed frames, unknown actions, wrong payload types: CALLERROR per spec, connection kept,
nothing else disturbed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from hil.chargers import SimCharger, SimOptions
from hil.ev import EvParams
from tests.chargers.conftest import Wire, eventually, make_site
from tests.chargers.schemas import validate

V16_CODES = {
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
}
V201_CODES = {
    "FormatViolation",
    "GenericError",
    "InternalError",
    "MessageTypeNotSupported",
    "NotImplemented",
    "NotSupported",
    "OccurrenceConstraintViolation",
    "PropertyConstraintViolation",
    "ProtocolError",
    "RpcFrameworkError",
    "SecurityError",
    "TypeConstraintViolation",
}

CASES: list[tuple[str | bytes, str, dict[str, str]]] = [
    # frame, expected message id, expected code per version
    ("this is not json", "-1", {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}),
    (b"\xff\xfe binary garbage", "-1", {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}),
    ('{"not": "a list"}', "-1", {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError"}),
    ('[2, "m1"]', "m1", {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError"}),
    ('[2, 17, "Heartbeat", {}]', "-1", {"1.6": "FormationViolation", "2.0.1": "RpcFrameworkError"}),
    ('[9, "m2", {}]', "m2", {"1.6": "ProtocolError", "2.0.1": "MessageTypeNotSupported"}),
    ('[2, "m3", "Heartbeat"]', "m3", {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"}),
    ('[2, "m4", "FlyToTheMoon", {}]', "m4", {"1.6": "NotSupported", "2.0.1": "NotSupported"}),
    ('[2, "m5", "Heartbeat", [1, 2]]', "m5", {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}),
    ('[2, "m6", "Heartbeat", {"surprise": 1}]', "m6", {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}),
    ('[2, "m7", 42, {}]', "m7", {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"}),
]
TYPED = {
    "1.6": [
        (
            '[2, "t1", "StatusNotification", {"connectorId": "one", "errorCode": "NoError", "status": "Available"}]',
            "TypeConstraintViolation",
        ),
        ('[2, "t2", "BootNotification", {}]', "ProtocolError"),
        ('[2, "t3", "Reset", {"type": "Hard"}]', "NotImplemented"),  # a known action charger → CS never sends
    ],
    "2.0.1": [
        (
            '[2, "t1", "StatusNotification", {"timestamp": "2026-01-01T00:00:00Z", "connectorStatus": "Available",'
            ' "evseId": "one", "connectorId": 1}]',
            "TypeConstraintViolation",
        ),
        ('[2, "t2", "BootNotification", {}]', "ProtocolError"),
        ('[2, "t3", "Reset", {"type": "Immediate"}]', "NotImplemented"),
    ],
}


async def _ask(ws: ClientConnection, frame: str | bytes) -> list[Any]:
    await ws.send(frame)
    return list(json.loads(await asyncio.wait_for(ws.recv(), 3)))


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_bad_frames_get_callerror_and_connection_is_kept(
    version: str, server_factory: Callable[..., Any], wire: Wire
) -> None:
    def only_ours(v: str, direction: str, raw: str | bytes) -> None:
        if direction == "out":  # the deliberately bad frames coming in are not ours to validate
            wire.hook(v, direction, raw)

    cs = await server_factory(make_site([{"id": "RAW"}, {"id": "GOOD"}]), boot_grace_s=60, frame_hook=only_ours)
    good = SimCharger(SimOptions("GOOD", version=version, tick_s=0.05))
    await good.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    await good.plug_in(EvParams(reaction_s=0.1))
    codes = V16_CODES if version == "1.6" else V201_CODES
    async with connect(
        f"ws://127.0.0.1:{cs.port}/ocpp/RAW", subprotocols=[Subprotocol(f"ocpp{version}")], open_timeout=3
    ) as ws:
        for frame, uid, expected in CASES:
            reply = await _ask(ws, frame)
            assert reply[:3] == [4, uid, expected[version]], (frame, reply)
            assert reply[2] in codes and isinstance(reply[3], str) and isinstance(reply[4], dict)
        for frame, code in TYPED[version]:
            reply = await _ask(ws, frame)
            assert reply[:3] == [4, json.loads(frame)[1], code], (frame, reply)
        # a stray result for a call nobody made: ignored
        await ws.send('[3, "nobody-asked", {}]')
        await ws.send('[4, "nobody-asked", "GenericError", "", {}]')
        # DataTransfer: politely refused; then an ordinary heartbeat still works
        dt = await _ask(ws, '[2, "d1", "DataTransfer", {"vendorId": "acme"}]')
        assert dt == [3, "d1", {"status": "UnknownVendorId"}]
        hb = await _ask(ws, '[2, "h1", "Heartbeat", {}]')
        assert hb[0] == 3 and hb[1] == "h1"
        validate(version, "Heartbeat", "response", hb[2])
        assert cs.state("RAW").connected
        # nothing else disturbed: the other charger is still controlled
        result = await cs.control.apply("GOOD", 13.0)
        assert result.status == "accepted" and good.composite_a() == 13.0
    await good.close()
    await eventually(lambda: not cs.state("RAW").connected, what="RAW disconnected")
