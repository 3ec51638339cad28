"""Local-controller mode in the daemon's status (``depotctl status``, the status page)."""

from __future__ import annotations

from controller.api.models import UpstreamInfo, UpstreamLinkInfo
from controller.upstream.proxy import Proxy


def upstream_info(proxy: Proxy) -> UpstreamInfo:
    links = [
        UpstreamLinkInfo(
            charger_id=s.charger_id, state=s.state, connected=s.connected, queue_messages=s.queue_messages,
            since=s.since,
        )
        for s in proxy.status()
    ]
    return UpstreamInfo(
        url=proxy.upstream.url,
        connected=sum(1 for link in links if link.connected),
        chargers=len(links),
        queue_messages=proxy.queue_depth(),
        links=links,
    )
