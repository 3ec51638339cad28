"""Closed loops for local-controller mode: the rig's CSMS ← depotctl's central system with its proxy
← the rig's simulated chargers, on real websockets on loopback (free ports), the proxy's state in
a real SQLite file. Every frame either side receives is checked against the OCPP JSON schemas:
the CSMS checks what it receives, each sim charger what it receives (``validate_frames``).

Clocks: one pinned clock (never the wall clock) that runs at the monotonic clock's pace, shared by
the CSMS, depotctl and the chargers. Time is not sped up; what is shrunk for tests is the
upstream back-off (:data:`FAST_LINK`: 0.05 s first, 0.4 s at most, instead of 1 s and 60 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.chargers.events import ChargerEvent
from controller.chargers.server import CentralSystem
from controller.model.site import Site, Upstream
from controller.upstream.caps import CapBook
from controller.upstream.caps_site import site_ratings
from controller.upstream.link import Backoff, LinkOptions
from controller.upstream.proxy import Proxy, ProxyOptions
from controller.upstream.relay import CapsFace
from controller.upstream.store import UpstreamStore
from hil.chargers import SimCharger, SimOptions
from hil.csms import CsmsOptions, SimCsms
from tests.chargers.conftest import make_site
from tests.daemon.clocks import pinned_clock

FAST_LINK = LinkOptions(connect_timeout_s=2.0, backoff=Backoff(0.05, 0.4, 0.5))
TAGS = {"TAG": "Accepted", "BLOCKED": "Blocked", "T16": "Accepted", "T201": "Accepted"}


def proxied_site(chargers: Sequence[str], csms_url: str, *, offline_authorize: str = "cache", **ocpp: Any) -> Site:
    site = make_site([{"id": cid} for cid in chargers], **ocpp)
    upstream = Upstream(url=csms_url, security_profile=0, offline_authorize=offline_authorize)  # type: ignore[arg-type]
    return dataclasses.replace(site, ocpp=dataclasses.replace(site.ocpp, upstream=upstream))


@dataclass
class Loop:
    csms: SimCsms
    cs: CentralSystem
    proxy: Proxy
    caps: CapBook | None
    store_path: Path
    clock: Callable[[], Any]
    sims: dict[str, SimCharger] = field(default_factory=dict)
    received: dict[str, list[list[Any]]] = field(default_factory=dict)
    """Per sim charger, every frame it received (parsed)."""
    sent: dict[str, list[list[Any]]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.cs.port}/ocpp"

    async def charger(self, cid: str, version: str, **kw: Any) -> SimCharger:
        got = self.received.setdefault(cid, [])

        sent = self.sent.setdefault(cid, [])

        def record(direction: str, raw: str | bytes) -> None:
            (got if direction == "in" else sent).append(json.loads(raw))

        sim = SimCharger(SimOptions(cid, version=version, tick_s=0.05, **kw), clock=self.clock, frame_hook=record)
        sim.validate_frames()
        await sim.connect(self.url)
        self.sims[cid] = sim
        return sim

    def answers(self, cid: str, action: str) -> list[list[Any]]:
        """The answers (CALLRESULT/CALLERROR frames) the charger got to its ``action`` CALLs."""
        sim = self.sims[cid]
        assert sim.validator is not None
        return [f for f in self.received[cid] if f[0] in (3, 4) and self._action_of(cid, f[1]) == action]

    def _action_of(self, cid: str, uid: str) -> str | None:
        for f in self.sent.get(cid, []):
            if f[0] == 2 and f[1] == uid:
                return str(f[2])
        return None

    def assert_clean(self) -> None:
        """Every frame either side received was valid; the CSMS saw nothing odd."""
        assert self.csms.violations() == []
        assert self.csms.violations(direction="out") == []
        assert self.csms.anomalies == []
        for cid, sim in self.sims.items():
            assert sim.validator is not None and sim.validator.violations == [], cid


@contextlib.asynccontextmanager
async def proxied(
    tmp_path: Path,
    chargers: Sequence[str],
    *,
    caps: CapsFace | bool | None = True,
    csms_options: CsmsOptions | None = None,
    options: ProxyOptions | None = None,
    offline_authorize: str = "cache",
    clock: Callable[[], Any] | None = None,
    store_name: str = "depot.db",
) -> AsyncIterator[Loop]:
    clock = clock or pinned_clock()
    csms = SimCsms(clock, csms_options or CsmsOptions(id_tags=TAGS, call_timeout_s=3.0))
    await csms.start()
    site = proxied_site(chargers, csms.url, offline_authorize=offline_authorize)
    listeners: list[Callable[[ChargerEvent], None]] = []

    def emit(event: ChargerEvent) -> None:
        for listener in listeners:
            listener(event)

    cs = CentralSystem(site, host="127.0.0.1", port=0, clock=clock, boot_grace_s=0.5, emit=emit)
    store_path = tmp_path / store_name
    if caps is True:
        caps = CapBook(clock, ratings=site_ratings(lambda: cs.site))
    elif caps is False:
        caps = None
    opts = options or ProxyOptions(link=FAST_LINK, answer_within_s=1.5, forward_timeout_s=1.5)
    proxy = Proxy(lambda: cs.site, UpstreamStore(store_path), cs.control, caps, clock, opts)
    listeners.append(proxy.on_event)  # as the daemon does: transactions start and end for the cap book
    loop = Loop(csms, cs, proxy, caps if isinstance(caps, CapBook) else None, store_path, clock)
    await proxy.open()
    cs.relays = proxy
    await cs.start()
    try:
        yield loop
    finally:
        for sim in loop.sims.values():
            with contextlib.suppress(Exception):
                await sim.close()
        await cs.stop()
        await proxy.close()
        await csms.stop()


async def eventually(pred: Callable[[], bool], timeout_s: float = 5.0, what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not pred():
        if loop.time() > end:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


def sent_timestamps(sent: dict[str, list[list[Any]]], cid: str, tx_key: str) -> list[str]:
    """The meter values' timestamps charger ``cid`` sent for one transaction (``sent``: the frames
    each charger sent), in its order: MeterValues, TransactionEvent and StopTransaction's data."""
    out: list[str] = []
    for f in sent[cid]:
        if f[0] != 2:
            continue
        action, p = f[2], f[3]
        if action == "MeterValues" and str(p.get("transactionId")) == tx_key:
            out += [m["timestamp"] for m in p["meterValue"]]
        elif action == "TransactionEvent" and p["transactionInfo"]["transactionId"] == tx_key:
            out += [m["timestamp"] for m in p.get("meterValue") or []]
        elif action == "StopTransaction" and str(p.get("transactionId")) == tx_key:
            out += [m["timestamp"] for m in p.get("transactionData") or []]
    return out
