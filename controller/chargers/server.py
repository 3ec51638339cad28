"""The OCPP central system: one websockets server, 1.6J and 2.0.1 on the same port.

Chargers connect to ``ws[s]://HOST:PORT{ocpp.path}/{charger id}``; the subprotocol the charger
offers first (``ocpp1.6`` / ``ocpp2.0.1``) decides the message set. The handshake is checked in
our own ``process_request``: unknown id → 404, missing/wrong credentials or another security
profile → 401, each logged and counted; raw-byte 1.6 passwords are handled. A charger that
reconnects replaces its old connection. After boot each charger gets: capabilities read, meter
sampling configured, fail-safe profile installed — in a task of its own, so hundreds of chargers
reconnecting at once never block the receive loops or the control loop. A fail-safe install that
fails is retried with back-off while the charger stays connected; a BootNotification later in a
connection (the charger may have lost its profiles) re-installs it; :meth:`CentralSystem.reload`
with changed ``failsafe.*`` re-installs it on every connected charger.

Usage (the daemon)::

    cs = CentralSystem(site, clock=utc_now, emit=on_event)   # passwords from ocpp.passwords_file
    await cs.start()
    cs.state("cp-01").connectors[1].measured.currents()       # ChargerState, per connector
    sessions = session_states(site, cs.states, now)           # → Snapshot.sessions
    await push_plan(cs.control, plan, sessions)               # or cs.control.apply(id, limit, schedule)
    cs.control.budget("cp-01")                                # worst case for charger cp-01
    cs.reload(new_site)                                       # re-read passwords, take the new site
    await cs.stop()

``emit`` is called synchronously from the receive loops with a :class:`ChargerEvent`; a listener
should only queue it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import itertools
import logging
import ssl
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote

import ocpp.messages
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from controller.chargers.auth import Passwords, parse_basic
from controller.chargers.clock import Clock, utc_now
from controller.chargers.control import FAILSAFE_RETRY_S, Control
from controller.chargers.events import ChargerEvent, EventSink, ignore
from controller.chargers.rounds import PER_ROUND, Rounds
from controller.chargers.session import MEASURANDS, OcppSession, RelayFactory, SessionContext
from controller.chargers.state import ChargerState
from controller.chargers.v16 import V16Session
from controller.chargers.v201 import V201Session
from controller.config.listen import parse_listen
from controller.model.site import Site

LOG = logging.getLogger("depotctl.chargers.server")
SUBPROTOCOLS = (Subprotocol("ocpp1.6"), Subprotocol("ocpp2.0.1"))


def server_ssl_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """TLS for security profile 2: TLS 1.2 or newer only."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


class _Link:
    """One live connection: its session and the tasks that belong to it."""

    def __init__(self, ws: ServerConnection, session: OcppSession) -> None:
        self.ws = ws
        self.session = session
        self.setup_task: asyncio.Task[None] | None = None


class CentralSystem:
    def __init__(
        self,
        site: Site,
        *,
        passwords: Passwords | None = None,
        clock: Clock = utc_now,
        emit: EventSink = ignore,
        ssl_context: ssl.SSLContext | None = None,
        host: str | None = None,
        port: int | None = None,
        boot_grace_s: float = 5.0,
        work_slots: int = 32,
        frames_per_round: int = PER_ROUND,
        setup_slots: int = 64,
        frame_hook: Callable[[str, str, str | bytes], None] | None = None,
        failsafe_retry_s: tuple[float, float] = FAILSAFE_RETRY_S,
        relays: RelayFactory | None = None,
    ) -> None:
        self.site = site
        self.relays = relays
        """Local-controller mode (``ocpp.upstream``): each charger's CALLs go through its relay."""
        self.passwords = passwords
        self.clock = clock
        self._emit = emit
        self.ssl_context = ssl_context
        listen_host, listen_port = parse_listen(site.ocpp.listen, "ocpp.listen")
        self.host = (listen_host or "0.0.0.0") if host is None else host
        self._port = listen_port if port is None else port
        self.boot_grace_s = boot_grace_s
        self.frame_hook = frame_hook
        self.counters: Counter[str] = Counter()
        self._states: dict[str, ChargerState] = {}
        self._links: dict[str, _Link] = {}
        self._server: Server | None = None
        self._tx_ids = itertools.count(int(clock().timestamp()) % 1_000_000_000 + 1)
        self._refusal_logged: dict[tuple[str, str], float] = {}
        self.control = Control(site, self.session, self.state, clock, self._on_event, failsafe_retry_s=failsafe_retry_s)
        self._work_slots = asyncio.Semaphore(work_slots)
        self.rounds = Rounds(frames_per_round)
        """Frames started per event-loop round, over all chargers (:mod:`.rounds`)."""
        self._setup_slots = asyncio.Semaphore(setup_slots)
        if site.ocpp.security_profile == 2 and ssl_context is None:
            if not (site.ocpp.tls_cert_file and site.ocpp.tls_key_file):
                raise ValueError("security profile 2 needs ocpp.tls_cert_file and ocpp.tls_key_file")
            self.ssl_context = server_ssl_context(site.ocpp.tls_cert_file, site.ocpp.tls_key_file)
        if site.ocpp.security_profile >= 1 and passwords is None:
            if site.ocpp.passwords_file is None:
                raise ValueError(f"security profile {site.ocpp.security_profile} needs ocpp.passwords_file")
            self.passwords = Passwords.load(site.ocpp.passwords_file)

    # --- public API ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is not None:
            for sock in self._server.sockets:
                return int(sock.getsockname()[1])
        return self._port

    async def start(self) -> None:
        # Validate payloads in the event loop, not in a thread per message: the thread hop costs
        # more than the validation itself with hundreds of chargers (a process-wide switch).
        ocpp.messages.ASYNC_VALIDATION = False
        self._server = await serve(
            self._handler,
            self.host,
            self._port,
            subprotocols=list(SUBPROTOCOLS),
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            ssl=self.ssl_context,
            ping_interval=30,
            ping_timeout=30,
            close_timeout=2,
            max_size=256 * 1024,
            backlog=2048,  # hundreds of chargers reconnect at once after a power cut
            compression=None,  # small JSON frames: deflate costs CPU and ~100 KiB per charger for little
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        for link in list(self._links.values()):
            if link.setup_task is not None:
                link.setup_task.cancel()
        await self.control.close()
        self._server = None

    async def __aenter__(self) -> CentralSystem:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def state(self, charger_id: str) -> ChargerState:
        if charger_id not in self._states:
            self._states[charger_id] = ChargerState(charger_id)
        return self._states[charger_id]

    @property
    def states(self) -> Mapping[str, ChargerState]:
        return self._states

    def session(self, charger_id: str) -> OcppSession | None:
        link = self._links.get(charger_id)
        return link.session if link is not None else None

    def connected(self) -> list[str]:
        return sorted(self._links)

    @property
    def site(self) -> Site:
        return self._site

    @site.setter
    def site(self, site: Site) -> None:
        self._site = site
        self._known_ids = frozenset(ch.id for ch in site.chargers)

    def reload(self, site: Site | None = None) -> bool:
        """Re-read the passwords file (and take a new site for new connections; a changed
        ``failsafe.*`` is installed on every connected charger at once)."""
        if site is not None:
            self.site = site
            self.control.site = site
        return self.passwords.reload() if self.passwords is not None else True

    # --- handshake ----------------------------------------------------------------------------
    def charger_id_from_path(self, path: str) -> str | None:
        prefix = self.site.ocpp.path.rstrip("/") + "/"
        path = path.split("?", 1)[0]
        if not path.startswith(prefix):
            return None
        cid = unquote(path[len(prefix) :])
        if not cid or "/" in cid or len(cid) > 48:
            return None
        return cid

    def _refuse(self, connection: ServerConnection, status: http.HTTPStatus, reason: str, cid: str) -> Response:
        self.counters[f"refused_{reason}"] += 1
        self.counters["refused"] += 1
        key = (cid, reason)
        now = self.clock().timestamp()
        if now - self._refusal_logged.get(key, -1e9) > 60:  # loud once a minute per charger and reason
            LOG.warning("refused charger %r from %s: %s", cid, connection.remote_address, reason)
            if len(self._refusal_logged) > 10_000:  # a scan of random ids must not grow this forever
                self._refusal_logged.clear()
            self._refusal_logged[key] = now
        self._on_event(ChargerEvent("refused", cid, self.clock(), {"reason": reason}))
        response = connection.respond(status, f"{status.phrase}\n")
        if status == http.HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Basic realm="depotctl", charset="UTF-8"'
        return response

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        async with self._work_slots:  # spreads a reconnect storm's handshakes over loop iterations
            return self._check_request(connection, request)

    def _check_request(self, connection: ServerConnection, request: Request) -> Response | None:
        cid = self.charger_id_from_path(request.path)
        if cid is None:
            return self._refuse(connection, http.HTTPStatus.NOT_FOUND, "bad_path", request.path[:64])
        known = cid in self._known_ids
        if not known and not self.site.ocpp.accept_unknown:
            return self._refuse(connection, http.HTTPStatus.NOT_FOUND, "unknown_id", cid)
        header = _auth_header(request.headers)
        profile = self.site.ocpp.security_profile
        if profile == 0:
            if header is not None:
                return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "wrong_security_profile", cid)
            return None
        creds = parse_basic(header)
        if creds is None:
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "no_password", cid)
        user, password = creds
        if user != cid.encode("utf-8"):
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "wrong_user", cid)
        assert self.passwords is not None
        if not self.passwords.check(cid, password):
            return self._refuse(connection, http.HTTPStatus.UNAUTHORIZED, "wrong_password", cid)
        return None

    @staticmethod
    def _select_subprotocol(_conn: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
        for proto in offered:  # the charger's order decides
            if proto in SUBPROTOCOLS:
                return proto
        from websockets.exceptions import NegotiationError

        raise NegotiationError("expected subprotocol ocpp1.6 or ocpp2.0.1")

    # --- connections --------------------------------------------------------------------------
    def _on_event(self, event: ChargerEvent) -> None:
        self.counters[f"event_{event.kind}"] += 1
        if event.kind == "booted":
            self._booted(event.charger_id)
        try:
            self._emit(event)
        except Exception:  # a listener's bug must not break a charger session
            LOG.exception("event listener failed on %s", event.kind)

    def _booted(self, cid: str) -> None:
        """A BootNotification: the charger may have lost its profiles. Its fail-safe is unconfirmed
        until installed again — by the set-up when it is still to run, else right now."""
        self.control.note_boot(cid)
        link = self._links.get(cid)
        if link is not None and link.setup_task is not None and link.setup_task.done():
            self.control.keep_failsafe(cid)

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        cid = self.charger_id_from_path(ws.request.path)
        if cid is None or ws.subprotocol is None:
            await ws.close(1002, "bad request")
            return
        st = self.state(cid)
        now = self.clock()
        ctx = SessionContext(self.site, st, self.clock, self._on_event, lambda: next(self._tx_ids))
        session: OcppSession = V201Session(cid, ws, ctx) if ws.subprotocol == "ocpp2.0.1" else V16Session(cid, ws, ctx)
        hook = self.frame_hook
        if hook is not None:
            version = ws.subprotocol[4:]
            session.frame_hook = lambda direction, raw: hook(version, direction, raw)
        session.on_frame = lambda: _seen(st, self.clock)
        session.work_slots = self._work_slots
        session.rounds = self.rounds
        relays = self.relays
        if relays is not None:
            session.relay = relays.attach(cid, session)
        link = _Link(ws, session)
        old = self._links.get(cid)
        self._links[cid] = link
        if old is not None:
            self.counters["replaced"] += 1
            ctx.event("replaced")
            if old.setup_task is not None:
                old.setup_task.cancel()
            asyncio.create_task(old.ws.close(1000, "replaced by a new connection"))  # noqa: RUF006
        st.ocpp_version, st.connected, st.connected_at, st.last_seen = ws.subprotocol[4:], True, now, now
        self.counters["connections"] += 1
        self.control.connection_reset(cid)
        ctx.event("connected", version=st.ocpp_version)
        link.setup_task = asyncio.create_task(self._setup(cid, link))
        try:
            await session.start()
        finally:
            if link.setup_task is not None:
                link.setup_task.cancel()
            if self._links.get(cid) is link:
                del self._links[cid]
                st.connected = False
                self.control.connection_lost(cid)
                ctx.event("disconnected")
            if relays is not None and session.relay is not None:
                await relays.detach(cid, session.relay)

    async def _setup(self, cid: str, link: _Link) -> None:
        """After boot (or a grace period for a reconnect without boot): capabilities, the fail-safe
        profile, then meter sampling. Each step bounded; a failing step is logged and the next one
        still runs. At most ``setup_slots`` chargers are set up at once, so a reconnect storm is
        worked through steadily instead of in one burst."""
        ctx = link.session.ctx
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.booted.wait(), self.boot_grace_s)
            async with self._setup_slots:
                st = self.state(cid)
                caps = await link.session.read_capabilities()
                st.capabilities = caps
                result = await self.control.install_failsafe(cid)
                if result.status != "accepted":
                    LOG.error("%s: fail-safe profile not installed (%s); retrying", cid, result.detail)
                    self.control.keep_failsafe(cid, first_delay_s=self.control.failsafe_retry_s[0])
                sampled = await link.session.configure_sampling(self.site.ocpp.meter_sample_s, MEASURANDS)
                caps.measurands = sampled
                ctx.event(
                    "capabilities", max_stack_level=caps.max_stack_level, units=caps.rate_units, measurands=sampled
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            LOG.exception("%s: setup failed", cid)


def _seen(st: ChargerState, clock: Clock) -> None:
    st.last_seen = clock()


def _auth_header(headers: Headers) -> str | None:
    try:
        return headers.get("Authorization")
    except Exception:
        return None
