"""Local-controller mode's metrics, read from the proxy when ``/metrics`` is scraped.

* ``depot_upstream_connected{charger}`` — 1 while the charger's link to the CSMS is up, else 0
  (a series per charger connected to depotctl, or with messages still queued);
* ``depot_upstream_queue_messages`` — messages queued for the CSMS, all chargers (in SQLite).

A collector rather than gauges set by the daemon: the figures are the proxy's own, always current,
and a charger that goes leaves no stale series behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class LinkView(Protocol):
    @property
    def charger_id(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def queue_messages(self) -> int: ...


class UpstreamCollector(Collector):
    def __init__(self, links: Callable[[], Sequence[LinkView]]) -> None:
        self.links = links

    def collect(self) -> Iterable[Metric]:
        links = self.links()
        connected = GaugeMetricFamily(
            "depot_upstream_connected", "1 while the charger's link to the operator's CSMS is up, else 0.",
            labels=["charger"])
        for link in links:
            connected.add_metric([link.charger_id], 1.0 if link.connected else 0.0)
        queued = GaugeMetricFamily(
            "depot_upstream_queue_messages",
            "Messages of the chargers queued for the operator's CSMS, not yet delivered (kept in SQLite).")
        queued.add_metric([], float(sum(link.queue_messages for link in links)))
        return [connected, queued]

    def describe(self) -> Iterable[Metric]:
        return []
