"""A pymodbus TCP server on a loopback port presenting one or more simulated meters (a gateway).

Built on the pymodbus 3.13+ simulator datastore: one ``SimDevice`` per unit id with a single
register range (``SimData`` of type REGISTERS) covering the meter's map, and an ``action``
callback that lets the :class:`~hil.meter.device.SimMeter` refresh the words or misbehave on every
request. Holding and input registers share that range (each preset uses one function code).

``stop()`` closes the listener and every connection (the meter is gone: connection refused);
``start()`` again brings it back on the same port.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hil.meter.device import SimMeter

LOOPBACK = "127.0.0.1"


class MeterSimServer:
    """Simulated meters behind one Modbus TCP endpoint on 127.0.0.1."""

    def __init__(
        self,
        meters: Iterable[SimMeter],
        *,
        host: str = LOOPBACK,
        port: int = 0,
        framer: Literal["tcp", "rtu"] = "tcp",
    ) -> None:
        """``framer="rtu"`` makes an RTU-over-TCP gateway (RTU frames on a TCP stream)."""
        self.meters: dict[int, SimMeter] = {}
        for m in meters:
            if m.unit in self.meters:
                raise ValueError(f"unit {m.unit} given twice")
            self.meters[m.unit] = m
        self.host = host
        self.port = port
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self._server: ModbusTcpServer | None = None

    def meter(self, unit: int = 1) -> SimMeter:
        return self.meters[unit]

    def _device(self, meter: SimMeter) -> SimDevice:
        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if set_values is not None:
                return ExcCodes.ILLEGAL_FUNCTION  # a meter is read-only here
            return await meter.on_read(registers, start_address)

        data = SimData(meter.image_start, count=len(meter.image), values=0, datatype=DataType.REGISTERS)
        return SimDevice(meter.unit, simdata=[data], action=action)

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        """Listen (on a free port the first time when ``port`` is 0); returns the port."""
        if self._server is not None:
            return self.port
        devices = [self._device(m) for m in self.meters.values()]
        server = ModbusTcpServer(
            devices, framer=self.framer, address=(self.host, self.port), ignore_missing_devices=True
        )
        await server.serve_forever(background=True)
        listener: Any = server.transport
        self.port = int(listener.sockets[0].getsockname()[1])
        self._server = server
        return self.port

    async def stop(self) -> None:
        """Close the listener and every open connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
            await asyncio.sleep(0)

    async def __aenter__(self) -> MeterSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
