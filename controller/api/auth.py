"""Who may call the HTTP API: bearer tokens from ``api.tokens_file``, checked on every request.

**With a tokens file** (see :mod:`controller.fleet.tokens`): every request under ``/api/v1``
needs ``Authorization: Bearer TOKEN``. No token, or one that is not in the file → 401 with
``WWW-Authenticate: Bearer``. A known token outside its role (a viewer writing) → 403 with the
reason. A fleet token limited to a ``tenant`` or a ``vehicles`` list sees only those vehicles and
their sessions: lists are filtered, and a single vehicle outside its scope answers 404 exactly
like an unknown one, so vehicle ids of other tenants do not leak.

**Without a tokens file** the API is read-only: when ``api.listen`` is a loopback address (the
default ``127.0.0.1:8080``), everyone who can reach it reads everything (as a viewer) and every
write answers 403 saying how to configure tokens. When it listens on an address other machines can
reach, every ``/api/v1`` request answers 403 with that explanation: fleet data does not go on the
network unauthenticated. ``/`` (the status page) and ``/openapi.json`` are always public; the
page sends the token it was given.

The file is read at start (a bad file stops the start) and again on SIGHUP (:meth:`Auth.reload`;
a bad file then is logged and the previous tokens stay in force).

Routes get the caller through the :func:`reader` / :func:`writer` dependencies (which also put
the bearer scheme into the OpenAPI document), checked by the app's :class:`Auth`
(:func:`install_auth`). ``GET /api/v1/status`` comes from :func:`controller.api.app.create_app`,
so it is guarded by a small ASGI middleware (:func:`protect_status`) that sets :data:`CALLER` for
:meth:`Auth.scoped_status`.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Receive, Scope, Send

from controller.api.app import STATUS_PATH, StatusProvider
from controller.api.models import ChargerInfo, StatusResponse
from controller.config.listen import parse_listen
from controller.config.problems import ConfigError
from controller.fleet.tokens import Principal, TokenFile, load_tokens
from controller.model import Site

log = logging.getLogger(__name__)

ANONYMOUS = Principal("anonymous", "viewer")
"""The caller when there is no tokens file (and the API listens on loopback): may read everything."""

CALLER: ContextVar[Principal | None] = ContextVar("depotctl_api_caller", default=None)
"""The caller of the request being served, set by :func:`protect_status` for the status provider."""

SETUP_HINT = (
    "create a token with `depotctl token add NAME --role fleet --file /etc/depotctl/tokens.yaml`, "
    "set api.tokens_file to that file in the site file and reload depotctl (SIGHUP), "
    "then send it as `Authorization: Bearer TOKEN` (depotctl reads it from $DEPOTCTL_TOKEN)"
)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="A token from api.tokens_file (`depotctl token add`); roles viewer, fleet, admin.",
)


class TokensFileError(OSError):
    """The tokens file cannot be used at start; ``str()`` names the file and every problem."""


class AuthError(HTTPException):
    """401 or 403 with a reason; a 401 carries ``WWW-Authenticate: Bearer``."""

    def __init__(self, status_code: int, detail: str, *, error: str | None = None) -> None:
        headers = None
        if status_code == 401:
            headers = {"WWW-Authenticate": f'Bearer error="{error}"' if error else "Bearer"}
        super().__init__(status_code=status_code, detail=detail, headers=headers)


def is_loopback_listen(listen: str) -> bool:
    """Whether ``api.listen`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    try:
        host, _ = parse_listen(listen, "api.listen")
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "" (every address) or a host name


def scope_of(principal: Principal, site: Site) -> frozenset[str] | None:
    """The vehicle ids a caller is limited to, or None when it may see (and, by role, write) all."""
    if principal.role != "fleet" or (principal.vehicles is None and principal.tenant is None):
        return None
    return frozenset(v.id for v in principal.visible_vehicles(site))


@dataclass
class Auth:
    """The tokens in force and the checks on them; one per daemon, shared by every request.

    ``tokens`` None: no tokens file (see the module docstring). ``listen``: ``api.listen`` as
    bound at start (decides what callers without a tokens file may do).
    """

    path: str | None
    listen: str
    tokens: TokenFile | None = None

    @classmethod
    def load(cls, site: Site) -> Auth:
        """Read ``site.api.tokens_file`` (if set). Raises :class:`TokensFileError` naming every problem."""
        path = site.api.tokens_file
        auth = cls(path, site.api.listen)
        if path is not None:
            try:
                auth.tokens = load_tokens(path)
            except ConfigError as exc:
                raise TokensFileError(f"api.tokens_file {path} is not usable:\n{exc}") from None
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise TokensFileError(f"api.tokens_file {path}: cannot read it: {reason}") from None
        auth._announce(site)
        return auth

    def reload(self, site: Site) -> bool:
        """Re-read the tokens file named by ``site.api.tokens_file`` (SIGHUP). A file that does
        not load is logged and the tokens in force stay; returns whether the new file is in force."""
        path = site.api.tokens_file
        if path is None:
            if self.path is not None:
                log.warning("api.tokens_file removed from the site file: the API is read-only without tokens now")
            self.path, self.tokens = None, None
            self._announce(site)
            return True
        try:
            tokens = load_tokens(path)
        except (ConfigError, OSError, UnicodeDecodeError) as exc:
            log.error("reload of api.tokens_file %s refused, the previous tokens stay in force:\n%s", path, exc)
            return False
        self.path, self.tokens = path, tokens
        self._announce(site)
        return True

    def _announce(self, site: Site) -> None:
        if self.tokens is None:
            if is_loopback_listen(self.listen):
                log.info("API without api.tokens_file: read-only for local callers on %s", self.listen)
            else:
                log.warning(
                    "API on %s has no api.tokens_file: every /api/v1 request is refused; %s", self.listen, SETUP_HINT
                )
            return
        log.info("API tokens: %d from %s", len(self.tokens.entries), self.tokens.path)
        for warning in self.tokens.unknown_scope(site):
            log.warning("%s", warning)

    # --- checks ---------------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> Principal:
        """The caller for an ``Authorization`` header value; :class:`AuthError` (401/403) if none."""
        if self.tokens is None:
            if is_loopback_listen(self.listen):
                return ANONYMOUS
            raise AuthError(
                403,
                f"the API listens on {self.listen}, reachable from other machines, and has no api.tokens_file, "
                f"so it answers nobody: {SETUP_HINT}",
            )
        if not authorization:
            raise AuthError(401, "missing bearer token: send `Authorization: Bearer TOKEN`")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "the Authorization header must be `Bearer TOKEN`", error="invalid_request")
        principal = self.tokens.authenticate(token.strip())
        if principal is None:
            raise AuthError(401, "unknown or revoked token", error="invalid_token")
        return principal

    def require_write(self, principal: Principal) -> None:
        """403 unless the caller's role may change departures, schedules and assignments."""
        if principal.can_write:
            return
        if principal is ANONYMOUS:
            raise AuthError(403, f"the API is read-only: no api.tokens_file is configured; {SETUP_HINT}")
        raise AuthError(403, f"token {principal.name!r} has role {principal.role}, which may only read")

    # --- the status document --------------------------------------------------------------------
    def scoped_status(self, status: StatusProvider, site: Callable[[], Site]) -> StatusProvider:
        """``status`` limited to the current caller's (:data:`CALLER`) vehicles: sessions of other
        vehicles (and sessions without a vehicle) are left out of a scoped fleet caller's status,
        and so are plan warnings naming vehicles it may not see."""

        def provider() -> StatusResponse:
            answer = status()
            caller = CALLER.get()
            if caller is None:
                return answer
            return filter_status(answer, caller, site())

        return provider


def auth_of(request: Request) -> Auth:
    """The :class:`Auth` of the app serving ``request`` (``app.state.auth``, :func:`install_auth`)."""
    auth: Auth = request.app.state.auth
    return auth


def install_auth(app: FastAPI, auth: Auth) -> None:
    """Check every route's callers with ``auth`` (the :func:`reader` / :func:`writer` dependencies)
    and put ``GET /api/v1/status`` behind it (:func:`protect_status`)."""
    app.state.auth = auth
    protect_status(app, auth)


async def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """Dependency: any authenticated caller (viewer, fleet, admin)."""
    del credentials  # declared for the OpenAPI document; the header is parsed here
    return auth_of(request).authenticate(request.headers.get("authorization"))


async def writer(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    """Dependency: a caller that may write (fleet within its scope, admin)."""
    del credentials
    auth = auth_of(request)
    principal = auth.authenticate(request.headers.get("authorization"))
    auth.require_write(principal)
    return principal


def filter_status(status: StatusResponse, principal: Principal, site: Site) -> StatusResponse:
    """``status`` as ``principal`` may see it (unchanged unless it is a scoped fleet token)."""
    scope = scope_of(principal, site)
    if scope is None:
        return status
    hidden = [v.id for v in site.vehicles if v.id not in scope]
    plan = status.plan
    if plan is not None and hidden:
        warnings = [w for w in plan.warnings if not any(v in w for v in hidden)]
        plan = plan.model_copy(update={"warnings": warnings})
    return status.model_copy(update={"chargers": filter_chargers(status.chargers, scope), "plan": plan})


def filter_chargers(chargers: list[ChargerInfo], scope: frozenset[str] | None) -> list[ChargerInfo]:
    """Every charger (shared equipment), with only the sessions of vehicles in ``scope`` (None: all)."""
    if scope is None:
        return chargers
    return [
        c.model_copy(update={"sessions": [s for s in c.sessions if s.vehicle_id in scope]}) for c in chargers
    ]


class _StatusGate:
    """ASGI middleware: authenticate ``GET /api/v1/status`` and set :data:`CALLER` while it runs."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != STATUS_PATH:
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope.get("headers", ()):
            if key == b"authorization":
                header = value.decode("latin-1")
        try:
            principal = self.auth.authenticate(header)
        except AuthError as exc:
            response = JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
            await response(scope, receive, send)
            return
        token = CALLER.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            CALLER.reset(token)


def protect_status(app: FastAPI, auth: Auth) -> None:
    """Put ``GET /api/v1/status`` behind ``auth`` (call before the app serves its first request),
    and say so in the OpenAPI document."""
    app.add_middleware(_StatusGate, auth=auth)
    original = app.openapi

    def openapi() -> dict[str, Any]:
        doc = original()
        operation = doc.get("paths", {}).get(STATUS_PATH, {}).get("get")
        if operation is not None and "security" not in operation:
            operation["security"] = [{_bearer.scheme_name: []}]
            operation.setdefault("responses", {}).setdefault("401", {"description": "No or unknown bearer token."})
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
