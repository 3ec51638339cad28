"""One async hub per Modbus connection: the client, the lock, bounded reads, reconnects.

Several meters (unit ids) on one TCP meter, RTU-over-TCP gateway or serial line share a hub
(``ModbusLink.connection_key``). The hub:

- bounds every request by the link's ``timeout_s`` (pymodbus ``retries=0``; its own defaults,
  3 s × 4 tries, can block ~12 s), with an outer guard in case the library does not;
- serialises requests with one lock (a serial line or gateway answers one request at a time);
- does its own reconnecting with exponential back-off on the injected clock; while a back-off runs
  a read fails at once with :class:`~controller.meter.errors.NotConnected`, so a dead link never
  holds anyone longer than one connect timeout;
- drops an RTU connection after a timeout (a late answer could otherwise be taken for the next
  request's), and a TCP connection after several timeouts in a row.

The pymodbus client is made by an injected factory, so tests can hand in a fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from controller.meter.errors import (
    ConnectFailed,
    ExceptionResponse,
    LinkError,
    MeterError,
    NotConnected,
    ReadTimeout,
)
from controller.meter.reading import RawRegisters
from controller.meter.registers import Block, Function
from controller.model.site import ModbusLink

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Monotonic seconds."""

TCP_TIMEOUTS_BEFORE_RECONNECT = 3


class ModbusClient(Protocol):
    """The slice of a pymodbus async client the hub uses."""

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> bool: ...

    def close(self) -> None: ...

    def read_holding_registers(self, address: int, *, count: int = ..., device_id: int = ...) -> Awaitable[Any]: ...

    def read_input_registers(self, address: int, *, count: int = ..., device_id: int = ...) -> Awaitable[Any]: ...


ClientFactory = Callable[[ModbusLink], ModbusClient]


def pymodbus_client(link: ModbusLink) -> ModbusClient:
    """A pymodbus client for ``link`` with one bounded try per request and no auto-reconnect."""
    common: dict[str, Any] = {"timeout": link.timeout_s, "retries": 0, "reconnect_delay": 0.0}
    if link.serial is not None:
        client: ModbusClient = AsyncModbusSerialClient(
            link.serial,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            parity=link.parity,
            stopbits=link.stopbits,
            bytesize=link.bytesize,
            **common,
        )
        return client
    framer = FramerType.RTU if link.framer == "rtu" else FramerType.SOCKET
    return AsyncModbusTcpClient(link.host or "", port=link.port, framer=framer, **common)


def quiet_pymodbus() -> None:
    """pymodbus logs every timeout as an error; the reader does its own (once-loud) logging.
    Leave the level alone when the operator configured the ``pymodbus`` logger."""
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL)


async def diagnose_tcp(host: str, port: int, timeout_s: float) -> str:
    """Why a TCP connect fails, in words: refused, timed out, or the OS's reason."""
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port}"
    except TimeoutError:
        return f"connect to {host}:{port} timed out after {timeout_s:g} s"
    except OSError as exc:
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return f"connect to {host}:{port} failed"


class ModbusHub:
    """One Modbus connection shared by the meters behind it."""

    def __init__(
        self,
        link: ModbusLink,
        *,
        clock: Clock = time.monotonic,
        client_factory: ClientFactory = pymodbus_client,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
        diagnose: bool = True,
    ) -> None:
        self.link = link
        self.key = link.connection_key
        self.timeout_s = link.timeout_s
        self.clock = clock
        self._factory = client_factory
        self._client: ModbusClient | None = None
        self._lock = asyncio.Lock()
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = 0.0
        self._next_connect_at = 0.0
        self._last_connect_error = ""
        self._timeouts_in_row = 0
        self._was_connected = False
        self._diagnose = diagnose and link.host is not None
        self.requests = 0
        self.connects = 0
        quiet_pymodbus()

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    # --- connection -----------------------------------------------------------------------

    async def _ensure_connected(self) -> ModbusClient:
        if self._client is not None and self._client.connected:
            return self._client
        now = self.clock()
        if now < self._next_connect_at:
            wait = self._next_connect_at - now
            raise NotConnected(f"{self._last_connect_error}; next attempt in {wait:.1f} s")
        if self._client is not None:
            self._client.close()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            client = self._factory(self.link)
        except Exception as exc:  # e.g. a serial port without pyserial installed
            self._client = None
            raise self._connect_failed(f"cannot create a Modbus client: {exc}") from exc
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout_s + 0.5)
        except TimeoutError:
            ok = False
        except Exception as exc:  # the library's own failure, named rather than escaping
            client.close()
            raise self._connect_failed(f"connect failed: {exc}") from exc
        if ok and client.connected:
            self._backoff_s = 0.0
            self._next_connect_at = 0.0
            self._timeouts_in_row = 0
            self.connects += 1
            if not self._was_connected:
                log.info("modbus %s: connected", self.key)
            self._was_connected = True
            return client
        client.close()
        timed_out = loop.time() - started >= self.timeout_s
        raise self._connect_failed(await self._connect_reason(timed_out))

    def _connect_failed(self, reason: str) -> ConnectFailed:
        """Record a failed connect, schedule the next attempt (exponential back-off)."""
        self._last_connect_error = reason
        self._backoff_s = min(self._backoff_max_s, max(self._backoff_initial_s, 2 * self._backoff_s))
        self._next_connect_at = self.clock() + self._backoff_s
        if self._was_connected:
            log.warning("modbus %s: connection lost: %s", self.key, reason)
        self._was_connected = False
        return ConnectFailed(reason)

    async def _connect_reason(self, timed_out: bool) -> str:
        link = self.link
        if link.serial is not None:
            return f"cannot open serial port {link.serial}"
        where = f"{link.host}:{link.port}"
        if timed_out:  # no second wait of the same length just to say so
            return f"connect to {where} timed out after {self.timeout_s:g} s"
        if self._diagnose and link.host is not None:
            return await diagnose_tcp(link.host, link.port, self.timeout_s)
        return f"cannot connect to {where}"

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None

    async def close(self) -> None:
        async with self._lock:
            self._drop()

    # --- requests -------------------------------------------------------------------------

    async def _request(self, unit: int, function: Function, address: int, count: int) -> list[int]:
        client = await self._ensure_connected()
        call = client.read_holding_registers if function == "holding" else client.read_input_registers
        self.requests += 1
        try:
            response = await asyncio.wait_for(
                call(address, count=count, device_id=unit), self.timeout_s + 0.25 + 0.1 * self.timeout_s
            )
        except (TimeoutError, ModbusIOException) as exc:
            self._after_timeout()
            raise ReadTimeout(
                f"no answer from unit {unit} within {self.timeout_s:g} s ({function} {address}+{count})"
            ) from exc
        except ConnectionException as exc:
            self._drop()
            raise LinkError(f"connection lost: {exc}") from exc
        except ModbusException as exc:
            self._drop()
            raise LinkError(str(exc)) from exc
        self._timeouts_in_row = 0
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            raise ExceptionResponse(code, f"unit {unit}, {function} {address}+{count}")
        registers = list(getattr(response, "registers", []))
        if len(registers) != count:
            raise LinkError(f"asked unit {unit} for {count} registers at {address}, got {len(registers)}")
        return registers

    def _after_timeout(self) -> None:
        self._timeouts_in_row += 1
        client = self._client
        if client is None or not client.connected:
            self._drop()
        elif self.link.framer == "rtu" or self.link.serial is not None:
            self._drop()  # a late RTU answer carries no transaction id: start clean
        elif self._timeouts_in_row >= TCP_TIMEOUTS_BEFORE_RECONNECT:
            self._drop()

    async def read(self, unit: int, function: Function, address: int, count: int) -> list[int]:
        """One request, bounded by the link's timeout (plus the wait for the lock)."""
        async with self._lock:
            return await self._request(unit, function, address, count)

    async def read_blocks(self, unit: int, blocks: Iterable[Block]) -> RawRegisters:
        """Every block of one meter, under one lock; the first failure aborts the rest."""
        out: dict[tuple[Function, int], int] = {}
        async with self._lock:
            for block in blocks:
                words = await self._request(unit, block.function, block.address, block.count)
                for i, w in enumerate(words):
                    out[(block.function, block.address + i)] = w
        return out


def is_link_problem(exc: BaseException) -> bool:
    """True for errors about the connection rather than one meter's answer."""
    return isinstance(exc, ConnectFailed | NotConnected | LinkError)


__all__ = ["ClientFactory", "Clock", "MeterError", "ModbusClient", "ModbusHub", "pymodbus_client"]
