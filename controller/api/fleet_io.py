"""The fleet API's requests in and answers out: errors, conversions, the CSV body (no routes here:
:mod:`controller.api.fleet_routes`).

Errors: 404 ``{"detail": "…"}`` for an unknown vehicle or charger; 422 ``{"detail": [{"field",
"reason"}, …]}`` for bad input, both from the fleet book's checks and from request parsing
(:func:`install_error_handlers` gives FastAPI's own validation errors the same shape).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from controller.api.app import API_PREFIX
from controller.api.fleet_models import (
    DepartureInfo,
    OneOffInfo,
    ProblemsResponse,
    ScheduleIn,
    ScheduleInfo,
    SessionRecord,
)
from controller.api.models import ErrorResponse
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
from controller.model import Site

MAX_CSV_BYTES = 1 << 20
"""Largest schedules CSV accepted [bytes] (a depot with thousands of vehicles stays far below)."""
CSV_TYPES = ("text/csv", "application/csv", "text/plain")
_LIST_BODIES = {f"{API_PREFIX}/schedules": "schedules"}  # name of a list body in 422 field paths
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No or unknown bearer token."},
    403: {"model": ErrorResponse, "description": "The token's role may not do this."},
    422: {"model": ProblemsResponse, "description": "Bad input: every problem with its field; nothing applied."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
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


def not_found(what: str) -> HTTPException:
    return HTTPException(404, detail=what)


# --- conversions ---------------------------------------------------------------------------------------


def departure_info(need: DepartureNeed | None, tz: ZoneInfo) -> DepartureInfo | None:
    if need is None:
        return None
    return DepartureInfo(
        at=need.at.astimezone(tz), rule=need.rule, source=need.source, energy_kwh=need.energy_kwh,
        target_soc_pct=need.target_soc_pct, priority=need.priority,
    )


def one_off_info(o: OneOff, tz: ZoneInfo) -> OneOffInfo:
    return OneOffInfo(
        at=o.at.astimezone(tz), energy_kwh=o.energy_kwh, target_soc_pct=o.target_soc_pct, priority=o.priority
    )


def schedule_info(e: ScheduleEntry) -> ScheduleInfo:
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


def schedule_entries(items: Sequence[ScheduleIn], site: Site) -> list[ScheduleEntry]:
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


async def csv_body(request: Request) -> str:
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


def live_session(s: dict[str, Any]) -> SessionRecord:
    return SessionRecord(
        session_id=s["session_id"], charger_id=s["charger_id"], connector=s["connector"],
        vehicle_id=s["vehicle_id"], active=True, started_at=s["started_at"], stopped_at=None,
        delivered_kwh=s["delivered_kwh"], energy_need_kwh=s["energy_need_kwh"], departure_at=s["departure_at"],
        expected_kwh=s["expected_kwh"], will_meet_departure=s["will_meet_departure"], soc_pct=s["soc_pct"],
    )


def past_session(row: dict[str, Any], running: bool) -> SessionRecord:
    return SessionRecord(
        session_id=row["session_id"], charger_id=row["charger_id"], connector=row["connector"],
        vehicle_id=row["vehicle_id"], active=running, started_at=row["started_at"], stopped_at=row["stopped_at"],
        delivered_kwh=row["energy_kwh"], energy_need_kwh=row["energy_need_kwh"], departure_at=None,
        expected_kwh=None, will_meet_departure=row["met_departure"], soc_pct=None,
    )


def newest_first(r: SessionRecord) -> float:
    t = r.started_at or r.stopped_at
    return -t.timestamp() if t is not None else 0.0


def localised(r: SessionRecord, tz: ZoneInfo) -> SessionRecord:
    def local(t: datetime | None) -> datetime | None:
        return None if t is None else t.astimezone(tz)

    return r.model_copy(
        update={"started_at": local(r.started_at), "stopped_at": local(r.stopped_at),
                "departure_at": local(r.departure_at)}
    )

