"""A pymodbus TCP server on a loopback port presenting one or more simulated meters (a gateway).

Built on the pymodbus 3.13+ simulator datastore: one ``SimDevice`` per unit id with a single
register range (``SimData`` of type REGISTERS) covering the meter's map, and an ``action``
callback that lets the :class:`~hil.meter.device.SimMeter` refresh the words or misbehave on every
request. Holding and input registers share that range (each preset uses one function code).

``stop()`` closes the listener and every connection (the meter is gone: connection refused);
``start()`` again brings it back on the same port.

``own_thread=True`` serves from a thread with its own event loop: a real meter answers in its own
time whatever the chargers are doing, while the rig's loop also carries hundreds of simulated
chargers (a flood of profile calls there held a meter answer up to ~150 ms at 500 chargers,
and ``bench/loop.py`` measured the rig, not the daemon). The registers are rendered in that
thread from the meter's state, under the meter's lock (:class:`~hil.meter.device.SimMeter`): a
read sees one tick's currents, never half of one and half of the next.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hil.meter.device import SimMeter

LOOPBACK = "127.0.0.1"
THREAD_CALL_TIMEOUT_S = 10.0
"""Bound on starting or stopping a server in its own thread [s]."""


async def _shut(server: ModbusTcpServer) -> None:
    await server.shutdown()  # type: ignore[no-untyped-call]
    await asyncio.sleep(0)


class MeterSimServer:
    """Simulated meters behind one Modbus TCP endpoint on 127.0.0.1."""

    def __init__(
        self,
        meters: Iterable[SimMeter],
        *,
        host: str = LOOPBACK,
        port: int = 0,
        framer: Literal["tcp", "rtu"] = "tcp",
        own_thread: bool = False,
    ) -> None:
        """``framer="rtu"`` makes an RTU-over-TCP gateway (RTU frames on a TCP stream);
        ``own_thread``: serve from a thread of its own (above)."""
        self.meters: dict[int, SimMeter] = {}
        for m in meters:
            if m.unit in self.meters:
                raise ValueError(f"unit {m.unit} given twice")
            self.meters[m.unit] = m
        self.host = host
        self.port = port
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self._server: ModbusTcpServer | None = None
        self.own_thread = own_thread
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

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
        if self.own_thread:
            try:
                return int(await self._in_thread(self._listen()))
            except BaseException:
                await self._end_thread()  # the port would not open: no thread left behind
                raise
        return await self._listen()

    async def _in_thread(self, coro: Coroutine[Any, Any, int | None]) -> Any:
        """Run ``coro`` on the server's own loop (started on first use), bounded."""
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="meter sim server", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), THREAD_CALL_TIMEOUT_S)

    async def _end_thread(self) -> None:
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join, THREAD_CALL_TIMEOUT_S)  # the caller's loop goes on
            if not thread.is_alive():
                loop.close()

    async def _listen(self) -> int:
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
        if server is not None and self._loop is not None:
            try:
                await self._in_thread(_shut(server))
            finally:
                await self._end_thread()
        elif server is not None:
            await _shut(server)

    async def __aenter__(self) -> MeterSimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
