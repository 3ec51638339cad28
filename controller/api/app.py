"""The FastAPI application: ``/api/v1/…`` routes and the OpenAPI document.

:func:`create_app` takes the daemon's state through plain callables, so the app holds no state of
its own and tests serve it with a fixed :class:`~controller.api.models.StatusResponse`. Later
routers (vehicles, departures, …) go under the same ``/api/v1`` prefix through ``routers=``.

No interactive docs UI: it loads JavaScript from a CDN, which a depot PC cannot reach. The
OpenAPI document is at ``/openapi.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from fastapi import APIRouter, FastAPI, HTTPException

from controller import __version__
from controller.api.models import ErrorResponse, StatusResponse
from controller.api.page import page_router

API_PREFIX = "/api/v1"
OPENAPI_PATH = "/openapi.json"
STATUS_PATH = f"{API_PREFIX}/status"

StatusProvider = Callable[[], StatusResponse]
"""Builds the current status. Called in the event loop thread for each request: keep it quick and
non-blocking (read the daemon's in-memory state, no I/O)."""

log = logging.getLogger(__name__)


class StatusUnavailable(Exception):
    """Raised by a status provider when there is nothing to report yet (e.g. the daemon is starting).

    The message becomes the ``detail`` of the 503 answer.
    """


def status_router(status: StatusProvider) -> APIRouter:
    """``GET /status`` (mounted under ``/api/v1``): the provider's answer, or 503 if it raises."""
    router = APIRouter(tags=["status"])

    @router.get(
        "/status",
        response_model=StatusResponse,
        summary="Site status",
        responses={503: {"model": ErrorResponse, "description": "The daemon cannot report yet (starting)."}},
    )
    async def get_status() -> StatusResponse:
        """Fail-safe state, grid and circuit loads, chargers with their sessions, meters, plan and loop."""
        try:
            return status()
        except StatusUnavailable as exc:
            detail = str(exc) or "depotctl is starting"
        except Exception as exc:
            log.exception("status: the provider failed")
            detail = f"status not available: {type(exc).__name__}: {exc}"
        raise HTTPException(status_code=503, detail=detail, headers={"Retry-After": "1"})

    return router


def create_app(status: StatusProvider, *, routers: Iterable[APIRouter] = (), page: bool = True) -> FastAPI:
    """The depotctl HTTP API.

    ``status``: called for each ``GET /api/v1/status``; when it raises, the answer is 503 with
    ``{"detail": …}`` (raise :class:`StatusUnavailable` with a message for the expected cases).
    ``routers``: further routers, mounted under ``/api/v1``.
    ``page``: serve the status page at ``/`` (see :mod:`controller.api.page`).
    """
    app = FastAPI(
        title="depotctl",
        version=__version__,
        description="HTTP API of depotctl, the load-management daemon of an EV fleet depot.",
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    v1 = APIRouter(prefix=API_PREFIX)
    v1.include_router(status_router(status))
    for router in routers:
        v1.include_router(router)
    app.include_router(v1)
    if page:
        app.include_router(page_router())
    return app
