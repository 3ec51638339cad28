"""Every meter of a site wired up: one hub per connection, one reader per meter.

This is what the daemon holds: start :meth:`SiteMeters.run` as a task, ask
:meth:`SiteMeters.status` (or ``reader(id).latest()``) each cycle, and :meth:`SiteMeters.close`
on shutdown.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from controller.meter.hub import ClientFactory, Clock, ModbusHub, pymodbus_client
from controller.meter.plausibility import site_bounds
from controller.meter.reader import MeterReader, MeterStatus
from controller.model.site import Site


class SiteMeters:
    """Hubs keyed by ``connection_key``, readers keyed by meter id."""

    def __init__(
        self,
        site: Site,
        *,
        clock: Clock = time.monotonic,
        client_factory: ClientFactory = pymodbus_client,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 5.0,
    ) -> None:
        self.hubs: dict[str, ModbusHub] = {}
        self.readers: dict[str, MeterReader] = {}
        for meter in site.meters:
            key = meter.modbus.connection_key
            hub = self.hubs.get(key)
            if hub is None:
                hub = ModbusHub(
                    meter.modbus,
                    clock=clock,
                    client_factory=client_factory,
                    backoff_initial_s=backoff_initial_s,
                    backoff_max_s=backoff_max_s,
                )
                self.hubs[key] = hub
            self.readers[meter.id] = MeterReader(meter, hub, site_bounds(site, meter.id), clock=clock)

    def reader(self, meter_id: str) -> MeterReader:
        return self.readers[meter_id]

    def status(self) -> Mapping[str, MeterStatus]:
        return {meter_id: r.status() for meter_id, r in self.readers.items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every meter until ``stop`` is set."""
        async with asyncio.TaskGroup() as group:
            for r in self.readers.values():
                group.create_task(r.run(stop), name=f"meter {r.meter.id}")

    async def close(self) -> None:
        for hub in self.hubs.values():
            await hub.close()
