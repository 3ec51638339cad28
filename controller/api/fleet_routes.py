"""The fleet API under ``/api/v1``: chargers, sessions, vehicles and departures, schedules, reports.

Every route is a module-level function taking its dependencies: the caller, from the app's
:class:`~controller.api.auth.Auth` (:func:`~controller.api.auth.reader`: any role;
:func:`~controller.api.auth.writer`: fleet or admin), and the daemon's fleet, a
:class:`~controller.api.faces.FleetFace` (``app.state.fleet``, :func:`install_fleet`). Routes run
in the event loop (memory only; the history reads run in a worker thread). What a scoped fleet
token may not see is left out of lists, and a single vehicle outside its scope is answered 404
like an unknown one.

Errors (:mod:`controller.api.fleet_io`): 404 ``{"detail": "…"}`` for an unknown vehicle or
charger; 422 ``{"detail": [{"field", "reason"}, …]}`` for bad input, both from the fleet book's
checks and from request parsing. A refused change is not applied at all.

``POST /schedules/import`` takes the CSV file as the raw request body (``Content-Type: text/csv``),
not as a multipart form: ``curl --data-binary @file.csv -H 'Content-Type: text/csv'`` and the CLI
send it that way, and the server needs no form parser.
"""

from datetime import date
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response

from controller.api.auth import filter_chargers, reader, scope_of, writer
from controller.api.faces import FleetFace
from controller.api.fleet_io import (
    ERRORS,
    NOT_FOUND,
    csv_body,
    departure_info,
    live_session,
    localised,
    newest_first,
    not_found,
    one_off_info,
    parse_departure_at,
    past_session,
    refused_as_422,
    schedule_entries,
    schedule_info,
)
from controller.api.fleet_models import (
    AssignIn,
    AssignInfo,
    DailyReportInfo,
    DepartureCleared,
    DepartureIn,
    DepartureInfo,
    DepartureSet,
    ScheduleIn,
    ScheduleInfo,
    SchedulesDeleted,
    SessionRecord,
    VehicleInfo,
)
from controller.api.models import ChargerInfo, ErrorResponse
from controller.fleet.book import FleetError, Problem, check_need
from controller.fleet.tokens import Principal
from controller.model import Vehicle

# --- dependencies -----------------------------------------------------------------------------------------
# (This module does not use ``from __future__ import annotations``: FastAPI reads the route
# signatures' ``Annotated`` dependencies as objects.)


def install_fleet(app: FastAPI, fleet: FleetFace) -> None:
    """Serve the fleet routes of ``app`` from ``fleet`` (``app.state.fleet``)."""
    app.state.fleet = fleet


def fleet_of(request: Request) -> FleetFace:
    """Dependency: the daemon's fleet (``app.state.fleet``)."""
    fleet: FleetFace = request.app.state.fleet
    return fleet


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
Fleet = Annotated[FleetFace, Depends(fleet_of)]


def _tz(fleet: FleetFace) -> ZoneInfo:
    return ZoneInfo(fleet.site.site.timezone)


def _vehicle_for(fleet: FleetFace, caller: Principal, vehicle_id: str) -> Vehicle:
    """The vehicle, or 404 when it is unknown or outside the caller's scope."""
    vehicle = next((v for v in fleet.site.vehicles if v.id == vehicle_id), None)
    if vehicle is None or not caller.can_read(vehicle):
        raise not_found(f"unknown vehicle {vehicle_id!r}")
    return vehicle


def _vehicle_info(fleet: FleetFace, vehicle: Vehicle) -> VehicleInfo:
    r = fleet.readiness(vehicle)
    zone = _tz(fleet)
    now = fleet.now()
    return VehicleInfo(
        id=vehicle.id, tenant=vehicle.tenant, battery_kwh=vehicle.battery_kwh, priority=vehicle.priority,
        departure=departure_info(r.departure, zone), need_kwh=r.need_kwh, charger_id=r.charger_id,
        session_id=r.session_id, delivered_kwh=r.delivered_kwh, expected_kwh=r.expected_kwh,
        will_be_ready=r.will_be_ready,
        one_offs=[one_off_info(o, zone) for o in fleet.one_offs(now) if o.vehicle_id == vehicle.id],
    )


def _next_departure(fleet: FleetFace, vehicle_id: str) -> DepartureInfo | None:
    return departure_info(fleet.departure_of(vehicle_id, fleet.now()), _tz(fleet))


# --- the routes ------------------------------------------------------------------------------------------

router = APIRouter(responses=ERRORS)
"""The fleet routes (mount under ``/api/v1``: :func:`fleet_router`)."""


def fleet_router() -> APIRouter:
    """The fleet routes; the app serves them from :func:`install_fleet`'s fleet and
    :func:`~controller.api.auth.install_auth`'s callers."""
    return router


# --- chargers and sessions ------------------------------------------------------------------------------


@router.get("/chargers", response_model=list[ChargerInfo], tags=["chargers"], summary="Chargers")
async def get_chargers(caller: Reader, fleet: Fleet) -> list[ChargerInfo]:
    """Every charger with its connection, limit, draw and sessions (a scoped fleet token sees only
    the sessions of its vehicles)."""
    return filter_chargers(fleet.chargers(), scope_of(caller, fleet.site))


@router.get("/sessions", response_model=list[SessionRecord], tags=["chargers"], summary="Charging sessions")
async def get_sessions(
    caller: Reader,
    fleet: Fleet,
    active: Annotated[
        bool, Query(description="true: running sessions; false: every session of the last 7 days.")
    ] = True,
) -> list[SessionRecord]:
    """Running sessions, or (``active=false``) the history of the last 7 days, newest first,
    running ones included with live values. A scoped fleet token sees its vehicles' sessions only."""
    scope = scope_of(caller, fleet.site)
    live = {s["session_id"]: live_session(s) for s in fleet.sessions(active=True)}
    if active:
        records = list(live.values())
    else:
        past = [past_session(row, row["session_id"] in live) for row in await fleet.recent_sessions()]
        merged = {r.session_id: r for r in past} | live
        records = sorted(merged.values(), key=newest_first)
    zone = _tz(fleet)
    return [localised(r, zone) for r in records if scope is None or r.vehicle_id in scope]


@router.put(
    "/chargers/{charger_id}/vehicle", response_model=AssignInfo, tags=["chargers"],
    summary="Say which vehicle is at a charger", responses=NOT_FOUND,
)
async def put_charger_vehicle(charger_id: str, body: AssignIn, caller: Writer, fleet: Fleet) -> AssignInfo:
    """The charger's running session (and its next one) takes this vehicle, with its departure."""
    if not any(c.id == charger_id for c in fleet.site.chargers):
        raise not_found(f"unknown charger {charger_id!r}")
    vehicle = _vehicle_for(fleet, caller, body.vehicle)
    scope = scope_of(caller, fleet.site)
    if scope is not None:
        running = [s for s in fleet.sessions() if s["charger_id"] == charger_id and s["vehicle_id"]]
        if any(s["vehicle_id"] not in scope for s in running):
            raise HTTPException(403, detail=f"charger {charger_id} is charging a vehicle outside your scope")
    with refused_as_422():
        sid = fleet.assign(charger_id, vehicle.id)
    return AssignInfo(charger_id=charger_id, vehicle=vehicle.id, session_id=sid)


# --- vehicles and departures ------------------------------------------------------------------------------


@router.get("/vehicles", response_model=list[VehicleInfo], tags=["vehicles"], summary="Vehicles and readiness")
async def get_vehicles(caller: Reader, fleet: Fleet) -> list[VehicleInfo]:
    """The vehicles the token may see, each with its next departure and readiness."""
    return [_vehicle_info(fleet, v) for v in caller.visible_vehicles(fleet.site)]


@router.get(
    "/vehicles/{vehicle_id}", response_model=VehicleInfo, tags=["vehicles"], summary="One vehicle",
    responses=NOT_FOUND,
)
async def get_vehicle(vehicle_id: str, caller: Reader, fleet: Fleet) -> VehicleInfo:
    """The vehicle's next departure (time, need, rule, source), the energy the plan expects to
    deliver by then, whether it will be ready, and the charger it is plugged in at."""
    return _vehicle_info(fleet, _vehicle_for(fleet, caller, vehicle_id))


@router.put(
    "/vehicles/{vehicle_id}/departure", response_model=DepartureSet, tags=["vehicles"],
    summary="Set a one-off departure", responses=NOT_FOUND,
)
async def put_departure(vehicle_id: str, body: DepartureIn, caller: Writer, fleet: Fleet) -> DepartureSet:
    """Set the vehicle's one-off departure (it replaces the vehicle's other departures on that
    site-local day). Persisted and re-planned at once."""
    vehicle = _vehicle_for(fleet, caller, vehicle_id)
    with refused_as_422():
        try:
            at = parse_departure_at(body.at)
        except ValueError as exc:
            need = check_need(fleet.site, vehicle.id, body.energy_kwh, body.target_soc_pct, body.priority)
            raise FleetError([Problem("at", str(exc)), *(Problem(f, r) for f, r in need)]) from None
        one_off = fleet.set_departure(vehicle.id, at, body.energy_kwh, body.target_soc_pct, body.priority)
    zone = _tz(fleet)
    return DepartureSet(
        vehicle=vehicle.id, timezone=zone.key, one_off=one_off_info(one_off, zone),
        next_departure=_next_departure(fleet, vehicle.id),
    )


@router.delete(
    "/vehicles/{vehicle_id}/departure", response_model=DepartureCleared, tags=["vehicles"],
    summary="Remove the one-off departures", responses=NOT_FOUND,
)
async def delete_departure(vehicle_id: str, caller: Writer, fleet: Fleet) -> DepartureCleared:
    """Remove the vehicle's upcoming one-off departures; its schedules apply again."""
    vehicle = _vehicle_for(fleet, caller, vehicle_id)
    with refused_as_422():
        removed = fleet.clear_departure(vehicle.id)
    return DepartureCleared(vehicle=vehicle.id, removed=removed, next_departure=_next_departure(fleet, vehicle.id))


# --- schedules --------------------------------------------------------------------------------------------


@router.get("/schedules", response_model=list[ScheduleInfo], tags=["schedules"], summary="Run-time schedules")
async def get_schedules(caller: Reader, fleet: Fleet) -> list[ScheduleInfo]:
    """The recurring departures set through the API or a CSV import (those of the token's
    vehicles). The site file's own ``schedules:`` apply too and are not listed here."""
    return [schedule_info(e) for e in fleet.schedules(scope_of(caller, fleet.site))]


@router.put("/schedules", response_model=list[ScheduleInfo], tags=["schedules"], summary="Replace schedules")
async def put_schedules(items: list[ScheduleIn], caller: Writer, fleet: Fleet) -> list[ScheduleInfo]:
    """Replace the run-time schedules of the token's vehicles (all vehicles for admin) with these,
    all or nothing. Answers the schedules now in force."""
    scope = scope_of(caller, fleet.site)
    with refused_as_422():
        fleet.put_schedules(schedule_entries(items, fleet.scoped_site(scope)), scope)
    return [schedule_info(e) for e in fleet.schedules(scope)]


@router.delete("/schedules", response_model=SchedulesDeleted, tags=["schedules"], summary="Remove schedules")
async def delete_schedules(caller: Writer, fleet: Fleet) -> SchedulesDeleted:
    """Remove the run-time schedules of the token's vehicles (all for admin)."""
    return SchedulesDeleted(removed=fleet.delete_schedules(scope_of(caller, fleet.site)))


@router.post(
    "/schedules/import", response_model=list[ScheduleInfo], tags=["schedules"], summary="Import a schedules CSV",
    responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The CSV file itself (header vehicle,days,at,energy_kwh,target_soc_pct,priority).",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
async def import_schedules(request: Request, caller: Writer, fleet: Fleet) -> list[ScheduleInfo]:
    """Replace the run-time schedules of the token's vehicles with the CSV's, all or nothing:
    a bad row rejects the whole file (422 with ``line N: column`` fields)."""
    text = await csv_body(request)
    scope = scope_of(caller, fleet.site)
    with refused_as_422():
        fleet.import_schedules(text, scope)
    return [schedule_info(e) for e in fleet.schedules(scope)]


# --- reports ----------------------------------------------------------------------------------------------


@router.get(
    "/reports/daily", response_model=DailyReportInfo, tags=["reports"], summary="Daily report",
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "JSON, or CSV with format=csv.",
        },
        503: {"model": ErrorResponse, "description": "No history database (storage)."},
    },
)
async def get_daily_report(
    caller: Reader,
    fleet: Fleet,
    day: Annotated[
        date | None, Query(alias="date", description="Site-local day YYYY-MM-DD; default today.")
    ] = None,
    fmt: Annotated[
        Literal["json", "csv"], Query(alias="format", description="json, or csv (a file download).")
    ] = "json",
) -> Any:
    """Per vehicle: energy delivered and requested, departures met and missed; the site peak per
    phase; per charger: availability and session success rate. A scoped fleet token gets its
    vehicles' rows only (availability and the site peak are site-wide)."""
    when = day or fleet.now().astimezone(_tz(fleet)).date()
    try:
        report = await fleet.daily_report(when, scope_of(caller, fleet.site))
    except FileNotFoundError as exc:
        raise HTTPException(503, detail=f"no report: {exc}") from None
    if fmt == "csv":
        return Response(
            report.to_csv(), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="depotctl-daily-{when.isoformat()}.csv"'},
        )
    return DailyReportInfo.model_validate(report.to_dict())
