"""Local-controller mode for the whole site: depotctl between the chargers and the operator's CSMS.

:class:`Proxy` is what the central system knows as its relay factory
(:class:`~controller.chargers.session.RelayFactory`): when a charger connects it gets a
:class:`~.relay.ChargerRelay` with its own :class:`~.link.UpstreamLink` (same id, same OCPP
version); when it goes, both close. The proxy owns what outlives one connection — each charger's
queue of undelivered transaction messages, the local 1.6 transaction ids and their CSMS ids, the
id-tag cache for ``offline_authorize``, the cap book — and keeps it in SQLite
(:mod:`.store`): :meth:`Proxy.open` reads it back after a restart. It reports each charger's
link state and the queue depth (``depotctl status``, the status page, ``/metrics``).

Usage (the daemon)::

    proxy = Proxy(site_getter, UpstreamStore(path), cs.control, caps, clock)
    await proxy.open()
    cs.relays = proxy          # before the first charger connects
    ...
    proxy.on_event(event)      # every charger event: transactions start and end for the cap book
    await proxy.close()
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.chargers.auth import Passwords, PasswordsError
from controller.chargers.control import Control
from controller.chargers.events import ChargerEvent
from controller.chargers.session import CallRelay, OcppSession
from controller.model.site import Site, Upstream
from controller.upstream.authcache import AuthCache, Change
from controller.upstream.link import LinkOptions, LinkState, Target, UpstreamLink, charger_url, client_ssl_context
from controller.upstream.relay import CapsFace, ChargerRelay
from controller.upstream.store import Queued, UpstreamStore
from controller.upstream.txids import TxIds

LOG = logging.getLogger("depotctl.upstream")


@dataclass(frozen=True)
class ProxyOptions:
    """Timings (tests shrink them; the defaults are the product)."""

    link: LinkOptions = field(default_factory=LinkOptions)
    answer_within_s: float | None = None
    """How long a charger's call may wait for the CSMS's answer [s] before it is answered
    locally; ``None``: ``ocpp.call_timeout_s`` (below every charger's own timeout)."""
    forward_timeout_s: float | None = None
    """How long a forwarded CSMS call waits for the charger [s]; ``None``: ``ocpp.call_timeout_s``."""
    frame_hook: Callable[[str, str, str, str | bytes], None] | None = None
    """Every frame on every upstream link: (charger id, version, "in"/"out", frame)."""
    connect_slots: int = 32
    """At most this many upstream connection attempts at once (a reconnect storm spread out)."""


@dataclass(frozen=True)
class LinkStatus:
    charger_id: str
    state: LinkState
    connected: bool
    queue_messages: int
    since: datetime | None


class Proxy:
    def __init__(
        self,
        site: Callable[[], Site],
        store: UpstreamStore,
        control: Control,
        caps: CapsFace | None,
        clock: Callable[[], datetime],
        options: ProxyOptions | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self._site = site
        self._last_upstream: Upstream | None = None
        self.store = store
        self.control = control
        self.caps = caps
        self.clock = clock
        self.options = options or ProxyOptions()
        self.rng = rng or random.Random()
        self.auth = AuthCache(self.upstream.offline_authorize)
        self.txids = TxIds()
        self.counters: Counter[str] = Counter()
        self._backlogs: dict[str, collections.deque[Queued]] = {}
        self._relays: dict[str, ChargerRelay] = {}
        self._states: dict[str, tuple[LinkState, datetime]] = {}
        self._spawned: set[asyncio.Task[Any]] = set()
        self._caps_dirty = False
        self._connect_slots = asyncio.Semaphore(max(1, self.options.connect_slots))
        self._passwords = self._load_passwords(self.upstream)
        self._ssl = None
        if self.upstream.url.startswith("wss:"):
            self._ssl = client_ssl_context(self.upstream.ca_file)

    @property
    def upstream(self) -> Upstream:
        """The site's ``ocpp.upstream`` (a reload that drops it keeps the last one to the restart)."""
        up = self._site().ocpp.upstream
        if up is not None:
            self._last_upstream = up
        elif self._last_upstream is None:
            raise RuntimeError("local-controller mode without ocpp.upstream")
        return self._last_upstream

    @staticmethod
    def _load_passwords(up: Upstream) -> Passwords | None:
        if up.security_profile < 1 or up.passwords_file is None:
            return None
        return Passwords.load(up.passwords_file)

    def answer_within_s(self) -> float:
        v = self.options.answer_within_s
        return self._site().ocpp.call_timeout_s if v is None else v

    def forward_timeout_s(self) -> float:
        v = self.options.forward_timeout_s
        return self._site().ocpp.call_timeout_s if v is None else v

    def count(self, what: str) -> None:
        self.counters[what] += 1

    # --- start, reload, stop ------------------------------------------------------------------
    async def open(self) -> None:
        """Read back what a previous run left: queues, id map, id-tag cache, caps."""
        loaded = await self.store.load()
        for cid, rows in loaded.queue.items():
            self.backlog(cid).extend(rows)
        self.txids.restore(loaded.tx_ids, loaded.tx_lowest)
        self.auth.restore(loaded.auth)
        if loaded.caps and self.caps is not None:
            self.caps.restore(loaded.caps)
        depth = self.queue_depth()
        if depth:
            LOG.info("upstream: %d queued message(s) of %d charger(s) to deliver", depth, len(loaded.queue))

    def reload(self) -> None:
        """SIGHUP: the upstream passwords and ``offline_authorize`` (a new url or TLS setting
        applies to links made from now on)."""
        up = self.upstream
        self.auth.policy = up.offline_authorize
        try:
            self._passwords = self._load_passwords(up)
        except PasswordsError as exc:
            LOG.error("upstream passwords not reloaded, keeping the previous ones: %s", exc)
        self._ssl = client_ssl_context(up.ca_file) if up.url.startswith("wss:") else None

    async def close(self) -> None:
        for cid, relay in list(self._relays.items()):
            await self.detach(cid, relay)
        if self._spawned:
            await asyncio.wait(list(self._spawned), timeout=5.0)
        await self.store.close()

    # --- the relay factory --------------------------------------------------------------------
    def backlog(self, charger_id: str) -> collections.deque[Queued]:
        if charger_id not in self._backlogs:
            self._backlogs[charger_id] = collections.deque()
        return self._backlogs[charger_id]

    def target(self, charger_id: str, version: str) -> Target:
        up = self.upstream
        password = None
        if self._passwords is not None:
            forms = self._passwords.table.get(charger_id)
            password = forms[0] if forms else None
            if password is None:
                LOG.warning("%s: no upstream password in %s", charger_id, up.passwords_file)
        return Target(charger_url(up.url, charger_id), "2.0.1" if version == "2.0.1" else "1.6", password, self._ssl)

    def attach(self, charger_id: str, session: OcppSession) -> CallRelay:
        old = self._relays.pop(charger_id, None)
        closing: asyncio.Task[None] | None = None
        if old is not None:  # replaced by a new connection of the same charger
            closing = asyncio.create_task(old.close())
            self._spawned.add(closing)
            closing.add_done_callback(self._spawned.discard)
        hook = self.options.frame_hook
        version = session.version
        link = UpstreamLink(
            charger_id,
            self.target(charger_id, version),
            _no_handler,
            options=self.options.link,
            rng=self.rng,
            frame_hook=(lambda d, raw: hook(charger_id, version, d, raw)) if hook is not None else None,
            connect_slots=self._connect_slots,
        )
        relay = ChargerRelay(self, charger_id, session, link)
        self._relays[charger_id] = relay
        self._states[charger_id] = ("connecting", self.clock())
        relay.start(after=closing)
        return relay

    async def detach(self, charger_id: str, relay: CallRelay) -> None:
        if self._relays.get(charger_id) is relay:
            del self._relays[charger_id]
            self._states.pop(charger_id, None)
        if isinstance(relay, ChargerRelay):
            await relay.close()

    def link_changed(self, charger_id: str, state: LinkState, relay: ChargerRelay) -> None:
        if self._relays.get(charger_id) is relay:  # not a replaced connection's link closing
            self._states[charger_id] = (state, self.clock())

    def link_failures(self) -> int:
        """Failed connection attempts of the links open now."""
        return sum(r.link.failed_attempts for r in self._relays.values())

    def relay(self, charger_id: str) -> ChargerRelay | None:
        return self._relays.get(charger_id)

    # --- what the relays share ----------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._spawned.add(task)
        task.add_done_callback(self._spawned.discard)

    def learn_auth(self, changes: list[Change]) -> None:
        for ch in changes:
            if ch.clear_list:
                self.spawn(self._quiet(self.store.clear_auth_list(ch.version), "id-tag list"))
            else:
                self.spawn(self._quiet(self.store.put_auth(ch.version, ch.token, ch.source, ch.info, self.clock()),
                                       "id-tag cache"))

    def caps_changed(self) -> None:
        """The cap book changed: persist it (one write for a burst of changes)."""
        if self._caps_dirty or self.caps is None:
            return
        self._caps_dirty = True
        self.spawn(self._write_caps())

    async def _write_caps(self) -> None:
        await asyncio.sleep(0)
        self._caps_dirty = False
        if self.caps is not None:
            await self._quiet(self.store.put_caps(self.caps.snapshot(), self.clock()), "caps")

    def forget_tx(self, charger_id: str, local: int) -> None:
        self.txids.forget(charger_id, local)
        self.spawn(self._quiet(self.store.forget_tx(charger_id, local), "transaction id map"))

    @staticmethod
    async def _quiet(coro: Coroutine[Any, Any, None], what: str) -> None:
        try:
            await coro
        except Exception:
            LOG.exception("upstream: %s not written", what)

    def on_event(self, event: ChargerEvent) -> None:
        """Charger events: a transaction's start and end reach the cap book (TxProfiles)."""
        caps = self.caps
        if caps is None or event.kind not in ("transaction_started", "transaction_ended"):
            return
        connector = int(event.detail.get("connector", 1) or 1)
        tx_id = str(event.detail.get("transaction_id"))
        if event.kind == "transaction_started":
            caps.transaction_started(event.charger_id, connector, tx_id)
        else:
            caps.transaction_ended(event.charger_id, connector, tx_id)
        self.caps_changed()

    # --- status -------------------------------------------------------------------------------
    def queue_depth(self, charger_id: str | None = None) -> int:
        if charger_id is not None:
            return len(self._backlogs.get(charger_id, ()))
        return sum(len(q) for q in self._backlogs.values())

    def status(self) -> list[LinkStatus]:
        """Per charger connected to depotctl (and per charger with a backlog): its upstream link."""
        out = []
        for cid in sorted(set(self._states) | {c for c, q in self._backlogs.items() if q}):
            state: LinkState = "closed"
            since: datetime | None = None
            if cid in self._states:
                state, since = self._states[cid]
            out.append(LinkStatus(cid, state, state == "up", self.queue_depth(cid), since))
        return out


async def _no_handler(_uid: str, _action: str, _payload: dict[str, Any]) -> None:
    return None
