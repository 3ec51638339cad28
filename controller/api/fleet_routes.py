"""The fleet API under ``/api/v1``: chargers, sessions, vehicles and departures, schedules, reports.

Every route takes the caller from :class:`~controller.api.auth.Auth` (``reader``: any role;
``writer``: fleet or admin) and works through the daemon's
:class:`~controller.daemon.fleet.FleetService`, in the event loop (memory only; the history reads
run in a worker thread). What a scoped fleet token may not see is left out of lists, and a single
vehicle outside its scope is answered 404 like an unknown one.

Errors: 404 ``{"detail": "…"}`` for an unknown vehicle or charger; 422 ``{"detail": [{"field",
"reason"}, …]}`` for bad input, both from the fleet book's checks and from request parsing
(:func:`install_error_handlers` gives FastAPI's own validation errors the same shape). A refused
change is not applied at all.

``POST /schedules/import`` takes the CSV file as the raw request body (``Content-Type: text/csv``),
not as a multipart form: ``curl --data-binary @file.csv -H 'Content-Type: text/csv'`` and the CLI
send it that way, and the server needs no form parser.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from controller.api.app import API_PREFIX
from controller.api.auth import Auth, filter_chargers, scope_of
from controller.api.fleet_models import (
    AssignIn,
    AssignInfo,
    DailyReportInfo,
    DepartureCleared,
    DepartureIn,
    DepartureInfo,
    DepartureSet,
    OneOffInfo,
    ProblemsResponse,
    ScheduleIn,
    ScheduleInfo,
    SchedulesDeleted,
    SessionRecord,
    VehicleInfo,
)
from controller.api.models import ChargerInfo, ErrorResponse
from controller.fleet.book import (
    FleetError,
    Problem,
    ScheduleEntry,
    check_need,
    format_days,
    format_hhmm,
    parse_days,
    parse_hhmm,
)
from controller.fleet.departures import DepartureNeed, OneOff
from controller.fleet.tokens import Principal
from controller.model import Site, Vehicle

if TYPE_CHECKING:
    from controller.daemon.fleet import FleetService

MAX_CSV_BYTES = 1 << 20
"""Largest schedules CSV accepted [bytes] (a depot with thousands of vehicles stays far below)."""
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
_LIST_BODIES = {f"{API_PREFIX}/schedules": "schedules"}  # name of a list body in 422 field paths
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or unknown bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role may not do this."},
    422: {"model": ProblemsResponse, "description": "Bad input: every problem with its field; nothing applied."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "No such vehicle or charger (or not one the token may see)."}
}


# --- errors --------------------------------------------------------------------------------------------


@contextmanager
def refused_as_422() -> Iterator[None]:
    """Turn a :class:`FleetError` into a 422 answer listing each problem."""
    try:
        yield
    except FleetError as exc:
        raise HTTPException(422, detail=_problems(exc.problems)) from None


def _problems(problems: Sequence[Problem]) -> list[dict[str, str]]:
    return [{"field": p.field, "reason": p.reason} for p in problems]


def _field(loc: Sequence[int | str], path: str) -> str:
    """A pydantic error location as a field path: ``("body", 0, "days")`` → ``schedules[0].days``."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        where = parts.pop(0)
        if not parts or (isinstance(parts[0], int) and where == "body" and path not in _LIST_BODIES):
            return "body"
    out = _LIST_BODIES.get(path, "body") if parts and isinstance(parts[0], int) else ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _reason(error: dict[str, Any]) -> str:
    if error.get("type") == "json_invalid":
        ctx = error.get("ctx") or {}
        return f"not valid JSON: {ctx.get('error', error.get('msg'))}"
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    reason = str(error.get("msg", "invalid"))
    value = error.get("input")
    if error.get("type") != "missing" and value is not None and not isinstance(value, dict | list):
        reason += f" (got {value!r})"
    return reason


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    path = request.url.path
    detail = [{"field": _field(e.get("loc", ()), path), "reason": _reason(e)} for e in exc.errors()]
    return JSONResponse({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Answer FastAPI's own request validation errors as ``422 {"detail": [{"field", "reason"}]}``."""
    app.add_exception_handler(RequestValidationError, _validation_error)


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, detail=what)


# --- conversions ---------------------------------------------------------------------------------------


def _departure(need: DepartureNeed | None, tz: ZoneInfo) -> DepartureInfo | None:
    if need is None:
        return None
    return DepartureInfo(
        at=need.at.astimezone(tz), rule=need.rule, source=need.source, energy_kwh=need.energy_kwh,
        target_soc_pct=need.target_soc_pct, priority=need.priority,
    )


def _one_off(o: OneOff, tz: ZoneInfo) -> OneOffInfo:
    return OneOffInfo(
        at=o.at.astimezone(tz), energy_kwh=o.energy_kwh, target_soc_pct=o.target_soc_pct, priority=o.priority
    )


def _schedule(e: ScheduleEntry) -> ScheduleInfo:
    return ScheduleInfo(
        id=e.id, vehicle=e.vehicle_id, days=format_days(e.days), at=format_hhmm(e.at), energy_kwh=e.energy_kwh,
        target_soc_pct=e.target_soc_pct, priority=e.priority,
    )


def parse_departure_at(text: str) -> datetime:
    """``at`` of a departure: an ISO 8601 date and time, naive (site-local) or with an offset."""
    value = text.strip()
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        at = None
    if at is None or len(value) <= len("2024-11-27"):
        raise ValueError(
            f"{value!r} is not a date and time; give ISO 8601 site-local time like 2024-11-27T05:30, "
            "or with its UTC offset like 2024-11-27T05:30+01:00"
        )
    return at


def _entries(items: Sequence[ScheduleIn], site: Site) -> list[ScheduleEntry]:
    """The request's entries as book entries (ids ``<vehicle>#<n>`` where none is given). When a day
    or a time does not parse, raises with every problem of every entry; otherwise the book checks
    the whole set (and reports the same way)."""
    problems: list[Problem] = []
    used = {i.id for i in items if i.id is not None}
    counts: dict[str, int] = {}
    out: list[ScheduleEntry] = []
    for i, item in enumerate(items):
        where = f"schedules[{i}]"
        entry_id = item.id
        if entry_id is None:
            n = counts.get(item.vehicle, 0) + 1
            while f"{item.vehicle}#{n}" in used:
                n += 1
            counts[item.vehicle] = n
            entry_id = f"{item.vehicle}#{n}"
            used.add(entry_id)
        bad: list[Problem] = []
        try:
            days = parse_days(item.days)
        except ValueError as exc:
            bad.append(Problem(f"{where}.days", str(exc)))
        try:
            at = parse_hhmm(item.at)
        except ValueError as exc:
            bad.append(Problem(f"{where}.at", str(exc)))
        need = check_need(site, item.vehicle, item.energy_kwh, item.target_soc_pct, item.priority)
        problems += bad + [Problem(f"{where}.{f}", r) for f, r in need]
        if not bad:
            out.append(
                ScheduleEntry(entry_id, item.vehicle, days, at, item.energy_kwh, item.target_soc_pct, item.priority)
            )
    if len(out) < len(items):  # a day or time did not parse: report it with every other problem
        raise FleetError(problems)
    return out


# --- the router ------------------------------------------------------------------------------------------


def fleet_router(fleet: "FleetService", auth: Auth) -> APIRouter:
    """The fleet routes (mount under ``/api/v1``), working on ``fleet`` with callers checked by ``auth``.

    (This module does not use ``from __future__ import annotations``: the route signatures refer to
    the local ``Reader`` / ``Writer`` aliases, which FastAPI must see as objects.)
    """
    router = APIRouter(responses=_ERRORS)
    Reader = Annotated[Principal, Depends(auth.reader)]
    Writer = Annotated[Principal, Depends(auth.writer)]

    def tz() -> ZoneInfo:
        return ZoneInfo(fleet.site.site.timezone)

    def vehicle_for(caller: Principal, vehicle_id: str) -> Vehicle:
        """The vehicle, or 404 when it is unknown or outside the caller's scope."""
        vehicle = next((v for v in fleet.site.vehicles if v.id == vehicle_id), None)
        if vehicle is None or not caller.can_read(vehicle):
            raise _not_found(f"unknown vehicle {vehicle_id!r}")
        return vehicle

    def vehicle_info(vehicle: Vehicle) -> VehicleInfo:
        r = fleet.readiness(vehicle)
        zone = tz()
        now = fleet.d.clock()
        return VehicleInfo(
            id=vehicle.id, tenant=vehicle.tenant, battery_kwh=vehicle.battery_kwh, priority=vehicle.priority,
            departure=_departure(r.departure, zone), need_kwh=r.need_kwh, charger_id=r.charger_id,
            session_id=r.session_id, delivered_kwh=r.delivered_kwh, expected_kwh=r.expected_kwh,
            will_be_ready=r.will_be_ready,
            one_offs=[_one_off(o, zone) for o in fleet.one_offs(now) if o.vehicle_id == vehicle.id],
        )

    def next_departure(vehicle_id: str) -> DepartureInfo | None:
        return _departure(fleet.departure_of(vehicle_id, fleet.d.clock()), tz())

    # --- chargers and sessions ------------------------------------------------------------------
    @router.get("/chargers", response_model=list[ChargerInfo], tags=["chargers"], summary="Chargers")
    async def get_chargers(caller: Reader) -> list[ChargerInfo]:
        """Every charger with its connection, limit, draw and sessions (a scoped fleet token sees only
        the sessions of its vehicles)."""
        return filter_chargers(fleet.chargers(), scope_of(caller, fleet.site))

    @router.get("/sessions", response_model=list[SessionRecord], tags=["chargers"], summary="Charging sessions")
    async def get_sessions(
        caller: Reader,
        active: Annotated[
            bool, Query(description="true: running sessions; false: every session of the last 7 days.")
        ] = True,
    ) -> list[SessionRecord]:
        """Running sessions, or (``active=false``) the history of the last 7 days, newest first,
        running ones included with live values. A scoped fleet token sees its vehicles' sessions only."""
        scope = scope_of(caller, fleet.site)
        live = {s["session_id"]: _live_session(s) for s in fleet.sessions(active=True)}
        if active:
            records = list(live.values())
        else:
            past = [_past_session(row, row["session_id"] in live) for row in await fleet.recent_sessions()]
            merged = {r.session_id: r for r in past} | live
            records = sorted(merged.values(), key=_newest_first)
        zone = tz()
        return [_localised(r, zone) for r in records if scope is None or r.vehicle_id in scope]

    @router.put(
        "/chargers/{charger_id}/vehicle", response_model=AssignInfo, tags=["chargers"],
        summary="Say which vehicle is at a charger", responses=_NOT_FOUND,
    )
    async def put_charger_vehicle(charger_id: str, body: AssignIn, caller: Writer) -> AssignInfo:
        """The charger's running session (and its next one) takes this vehicle, with its departure."""
        if not any(c.id == charger_id for c in fleet.site.chargers):
            raise _not_found(f"unknown charger {charger_id!r}")
        vehicle = vehicle_for(caller, body.vehicle)
        scope = scope_of(caller, fleet.site)
        if scope is not None:
            running = [s for s in fleet.sessions() if s["charger_id"] == charger_id and s["vehicle_id"]]
            if any(s["vehicle_id"] not in scope for s in running):
                raise HTTPException(403, detail=f"charger {charger_id} is charging a vehicle outside your scope")
        with refused_as_422():
            sid = fleet.assign(charger_id, vehicle.id)
        return AssignInfo(charger_id=charger_id, vehicle=vehicle.id, session_id=sid)

    # --- vehicles and departures ----------------------------------------------------------------
    @router.get("/vehicles", response_model=list[VehicleInfo], tags=["vehicles"], summary="Vehicles and readiness")
    async def get_vehicles(caller: Reader) -> list[VehicleInfo]:
        """The vehicles the token may see, each with its next departure and readiness."""
        return [vehicle_info(v) for v in caller.visible_vehicles(fleet.site)]

    @router.get(
        "/vehicles/{vehicle_id}", response_model=VehicleInfo, tags=["vehicles"], summary="One vehicle",
        responses=_NOT_FOUND,
    )
    async def get_vehicle(vehicle_id: str, caller: Reader) -> VehicleInfo:
        """The vehicle's next departure (time, need, rule, source), the energy the plan expects to
        deliver by then, whether it will be ready, and the charger it is plugged in at."""
        return vehicle_info(vehicle_for(caller, vehicle_id))

    @router.put(
        "/vehicles/{vehicle_id}/departure", response_model=DepartureSet, tags=["vehicles"],
        summary="Set a one-off departure", responses=_NOT_FOUND,
    )
    async def put_departure(
        vehicle_id: str, body: DepartureIn, caller: Writer
    ) -> DepartureSet:
        """Set the vehicle's one-off departure (it replaces the vehicle's other departures on that
        site-local day). Persisted and re-planned at once."""
        vehicle = vehicle_for(caller, vehicle_id)
        with refused_as_422():
            try:
                at = parse_departure_at(body.at)
            except ValueError as exc:
                need = check_need(fleet.site, vehicle.id, body.energy_kwh, body.target_soc_pct, body.priority)
                raise FleetError([Problem("at", str(exc)), *(Problem(f, r) for f, r in need)]) from None
            one_off = fleet.set_departure(vehicle.id, at, body.energy_kwh, body.target_soc_pct, body.priority)
        zone = tz()
        return DepartureSet(
            vehicle=vehicle.id, timezone=zone.key, one_off=_one_off(one_off, zone),
            next_departure=next_departure(vehicle.id),
        )

    @router.delete(
        "/vehicles/{vehicle_id}/departure", response_model=DepartureCleared, tags=["vehicles"],
        summary="Remove the one-off departures", responses=_NOT_FOUND,
    )
    async def delete_departure(vehicle_id: str, caller: Writer) -> DepartureCleared:
        """Remove the vehicle's upcoming one-off departures; its schedules apply again."""
        vehicle = vehicle_for(caller, vehicle_id)
        with refused_as_422():
            removed = fleet.clear_departure(vehicle.id)
        return DepartureCleared(vehicle=vehicle.id, removed=removed, next_departure=next_departure(vehicle.id))

    # --- schedules --------------------------------------------------------------------------------
    @router.get("/schedules", response_model=list[ScheduleInfo], tags=["schedules"], summary="Run-time schedules")
    async def get_schedules(caller: Reader) -> list[ScheduleInfo]:
        """The recurring departures set through the API or a CSV import (those of the token's
        vehicles). The site file's own ``schedules:`` apply too and are not listed here."""
        return [_schedule(e) for e in fleet.schedules(scope_of(caller, fleet.site))]

    @router.put("/schedules", response_model=list[ScheduleInfo], tags=["schedules"], summary="Replace schedules")
    async def put_schedules(items: list[ScheduleIn], caller: Writer) -> list[ScheduleInfo]:
        """Replace the run-time schedules of the token's vehicles (all vehicles for admin) with these,
        all or nothing. Answers the schedules now in force."""
        scope = scope_of(caller, fleet.site)
        with refused_as_422():
            fleet.put_schedules(_entries(items, fleet.scoped_site(scope)), scope)
        return [_schedule(e) for e in fleet.schedules(scope)]

    @router.delete("/schedules", response_model=SchedulesDeleted, tags=["schedules"], summary="Remove schedules")
    async def delete_schedules(caller: Writer) -> SchedulesDeleted:
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
    async def import_schedules(request: Request, caller: Writer) -> list[ScheduleInfo]:
        """Replace the run-time schedules of the token's vehicles with the CSV's, all or nothing:
        a bad row rejects the whole file (422 with ``line N: column`` fields)."""
        text = await _csv_body(request)
        scope = scope_of(caller, fleet.site)
        with refused_as_422():
            fleet.import_schedules(text, scope)
        return [_schedule(e) for e in fleet.schedules(scope)]

    # --- reports ------------------------------------------------------------------------------------
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
        when = day or fleet.d.clock().astimezone(tz()).date()
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

    return router


async def _csv_body(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in CSV_TYPES:
        raise HTTPException(
            415, detail=f"send the CSV file as the request body with Content-Type: text/csv (got {media or 'none'!r})"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_CSV_BYTES:
            raise HTTPException(413, detail=f"the CSV file is larger than {MAX_CSV_BYTES // 1024} KiB")
        chunks.append(chunk)
    try:
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = Problem("file", f"not UTF-8 text (byte {exc.start}); save the file as CSV UTF-8")
        raise HTTPException(422, detail=_problems([problem])) from None


def _live_session(s: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=s["session_id"], charger_id=s["charger_id"], connector=s["connector"],
        vehicle_id=s["vehicle_id"], active=True, started_at=s["started_at"], stopped_at=None,
        delivered_kwh=s["delivered_kwh"], energy_need_kwh=s["energy_need_kwh"], departure_at=s["departure_at"],
        expected_kwh=s["expected_kwh"], will_meet_departure=s["will_meet_departure"], soc_pct=s["soc_pct"],
    )


def _past_session(row: dict[str, Any], running: bool) -> SessionRecord:
    return SessionRecord(
        session_id=row["session_id"], charger_id=row["charger_id"], connector=row["connector"],
        vehicle_id=row["vehicle_id"], active=running, started_at=row["started_at"], stopped_at=row["stopped_at"],
        delivered_kwh=row["energy_kwh"], energy_need_kwh=row["energy_need_kwh"], departure_at=None,
        expected_kwh=None, will_meet_departure=row["met_departure"], soc_pct=None,
    )


def _newest_first(r: SessionRecord) -> float:
    t = r.started_at or r.stopped_at
    return -t.timestamp() if t is not None else 0.0


def _localised(r: SessionRecord, tz: ZoneInfo) -> SessionRecord:
    def local(t: datetime | None) -> datetime | None:
        return None if t is None else t.astimezone(tz)

    return r.model_copy(
        update={"started_at": local(r.started_at), "stopped_at": local(r.stopped_at),
                "departure_at": local(r.departure_at)}
    )
