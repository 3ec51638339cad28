"""The commissioning API under ``/api/v1``: start an acceptance test of one charger, read its reports.

* ``POST /chargers/{id}/commission`` (role admin; optional body ``{"no_ev": false, "connector": 1}``,
  unknown fields → 422): 202 with the run's first report (state running, no checks yet); 404
  for a charger the site file does not have; 409 when it is not connected, a run of it is already
  going on, or the site is in fail-safe.
* ``GET /chargers/{id}/commission`` (any reader): the latest report (running: the checks so far)
  plus ``changes`` — one line per difference from the charger's previous finished report; 404
  when it was never commissioned.
* ``GET /chargers/{id}/commission/history?limit=N``: its reports, newest first.
* ``GET /commission``: every commissioned charger's latest report (the site report).

A report is :meth:`controller.commission.report.Report.to_json`. The daemon is reached only
through a :class:`~controller.api.faces.CommissionFace` (``app.state.commission``,
:func:`install_commission`); callers through the app's :class:`~controller.api.auth.Auth`.
"""

# No ``from __future__ import annotations``: FastAPI reads the routes' ``Annotated`` dependencies as objects.

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from controller.api.auth import ANONYMOUS, SETUP_HINT, AuthError, reader
from controller.api.faces import CommissionFace, CommissionRefused
from controller.api.fleet_io import ERRORS
from controller.api.models import ErrorResponse
from controller.fleet.tokens import Principal
from controller.store.commission import MAX_HISTORY

REPORT_DOC = "A commissioning report (`Report.to_json`: charger, started, finished, state, passed, checks, quirks, …)."


class CommissionIn(BaseModel):
    """How to commission the charger (every field optional)."""

    model_config = ConfigDict(extra="forbid")
    no_ev: bool = Field(False, description="Skip the checks that need an EV charging (they are reported skipped).")
    connector: int = Field(1, ge=1, description="The connector (EVSE) to test.")


def install_commission(app: FastAPI, face: CommissionFace) -> None:
    """Serve the commissioning routes of ``app`` from ``face`` (``app.state.commission``)."""
    app.state.commission = face


def commission_of(request: Request) -> CommissionFace:
    """Dependency: the daemon's commissioning part (``app.state.commission``)."""
    face: CommissionFace = request.app.state.commission
    return face


async def admin(caller: Annotated[Principal, Depends(reader)]) -> Principal:
    """Dependency: a caller with role admin (commissioning sends a charger limits of its own)."""
    if caller.is_admin:
        return caller
    if caller is ANONYMOUS:
        raise AuthError(403, f"the API is read-only: no api.tokens_file is configured; {SETUP_HINT}")
    raise AuthError(403, f"token {caller.name!r} has role {caller.role}; commissioning a charger needs role admin")


Reader = Annotated[Principal, Depends(reader)]
Admin = Annotated[Principal, Depends(admin)]
Face = Annotated[CommissionFace, Depends(commission_of)]

NOT_KNOWN: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such charger in the site file, or never commissioned."}
}
router = APIRouter(tags=["commissioning"], responses={**ERRORS, **NOT_KNOWN})


def commission_router() -> APIRouter:
    """The commissioning routes (mount under ``/api/v1``); served from :func:`install_commission`'s face."""
    return router


def _known(face: CommissionFace, charger_id: str) -> None:
    if not any(ch.id == charger_id for ch in face.site.chargers):
        raise HTTPException(404, detail=f"unknown charger {charger_id!r}")


@router.post(
    "/chargers/{charger_id}/commission",
    status_code=202,
    summary="Commission a charger",
    responses={
        202: {"description": "Started: " + REPORT_DOC},
        409: {"model": ErrorResponse, "description": "Not connected, already running, or the site is in fail-safe."},
    },
)
async def post_commission(
    charger_id: str,
    caller: Admin,
    face: Face,
    body: Annotated[CommissionIn | None, Body()] = None,
) -> JSONResponse:
    """Start the acceptance test of one charger. While it runs the charger is left out of the plan
    and budgeted at its maximum; it is never offered more than its circuits' headroom."""
    del caller
    wanted = body or CommissionIn()
    charger = next((ch for ch in face.site.chargers if ch.id == charger_id), None)
    if charger is not None and wanted.connector > charger.connectors:
        reason = f"charger {charger_id} has {charger.connectors} connector(s)"
        raise HTTPException(422, detail=[{"field": "connector", "reason": reason}])
    try:
        report = face.start(charger_id, connector=wanted.connector, no_ev=wanted.no_ev)
    except CommissionRefused as exc:
        raise HTTPException(exc.status, detail=exc.detail) from None
    return JSONResponse(report.to_json(), status_code=202)


@router.get(
    "/chargers/{charger_id}/commission",
    summary="A charger's latest commissioning",
    responses={200: {"description": REPORT_DOC + " Plus `changes`: what differs from the previous finished one."}},
)
async def get_commission(charger_id: str, caller: Reader, face: Face) -> JSONResponse:
    """The latest report (running: the checks so far) with ``changes`` since the previous finished one."""
    del caller
    _known(face, charger_id)
    latest = face.latest(charger_id)
    if latest is None:
        raise HTTPException(404, detail=f"charger {charger_id} was never commissioned")
    report, changes = latest
    return JSONResponse({**report.to_json(), "changes": changes})


@router.get(
    "/chargers/{charger_id}/commission/history",
    summary="A charger's commissioning history",
    responses={200: {"description": "Its reports, newest first."}},
)
async def get_commission_history(
    charger_id: str,
    caller: Reader,
    face: Face,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="At most this many reports.")] = 20,
) -> JSONResponse:
    """Every report of the charger, newest first (at most ``limit``)."""
    del caller
    _known(face, charger_id)
    return JSONResponse([r.to_json() for r in await face.history(charger_id, limit)])


@router.get(
    "/commission",
    summary="The site's commissioning",
    responses={200: {"description": "Every commissioned charger's latest report."}},
)
async def get_site_commission(caller: Reader, face: Face) -> JSONResponse:
    """Every commissioned charger's latest report, in the site file's order."""
    del caller
    return JSONResponse([r.to_json() for r in face.site_report()])
