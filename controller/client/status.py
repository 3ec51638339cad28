"""``depotctl status``: ask the running daemon for its status and print it.

The daemon's address comes from ``--url``, else from ``api.listen`` of the site file given with
``--config`` (a wildcard address is reached over loopback), else ``http://127.0.0.1:8080``. When
``DEPOTCTL_TOKEN`` is set it is sent as a bearer token. The request goes through the commands'
one client (:mod:`controller.client.api`).

Exit status: 0 with the status printed; 1 when the daemon cannot be asked (not running, no answer
in time, an HTTP error, an answer that is not a status), with one line on stderr; 2 for a bad
argument or an unreadable site file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pydantic import ValidationError

from controller.api.models import StatusResponse
from controller.client.api import TOKEN_ENV, ApiClient, Refused, Unreachable, add_where_options, base_url

DEFAULT_TIMEOUT_S = 3.0
STATUS_PATH = "/api/v1/status"  # = controller.api.app.STATUS_PATH, not imported: no FastAPI for a client
EXIT_FAILED = 1
EXIT_USAGE = 2


class StatusError(Exception):
    """The daemon could not be asked, or did not answer with a status; ``str()`` is the one-line reason."""


def register(sub: Any) -> None:
    """Add ``depotctl status`` to the ``depotctl`` sub-commands."""
    p = sub.add_parser("status", help="show the running daemon's status (fail-safe, loads, chargers, sessions)")
    add_where_options(p, DEFAULT_TIMEOUT_S)
    p.add_argument("--json", action="store_true", help="print the status as JSON, as the daemon sent it")
    p.set_defaults(func=_cmd_status)


def fetch_status(base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> str:
    """``GET {base_url}/api/v1/status`` and return the body; :class:`StatusError` with a one-line reason."""
    client = ApiClient(base_url, token, timeout_s, "depotctl status")
    try:
        body = client.fetch("GET", "/status")
    except Refused as exc:
        raise StatusError(_http_error(base_url + STATUS_PATH, exc)) from None
    except Unreachable as exc:
        raise StatusError(str(exc)) from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        url = base_url + STATUS_PATH
        raise StatusError(f"depotctl status: {url} answered with a body that is not UTF-8 text") from None


def parse_status(body: str, url: str) -> StatusResponse:
    """The body as a :class:`StatusResponse`, or :class:`StatusError` naming the first bad field."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise StatusError(f"depotctl status: {url} did not answer with JSON ({exc.msg} at char {exc.pos})") from None
    try:
        return StatusResponse.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "the body"
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise StatusError(f"depotctl status: {url} sent an invalid status: {where}: {first['msg']}{more}") from None


def _http_error(url: str, exc: Refused) -> str:
    detail = ""
    try:
        raw = exc.body[:4096].decode("utf-8", "replace")
        body = json.loads(raw)
        detail = str(body["detail"]) if isinstance(body, dict) and "detail" in body else raw
    except ValueError:
        pass
    detail = " ".join(detail.split())[:300]
    message = f"depotctl status: {url} answered HTTP {exc.status} {exc.reason}"
    if detail:
        message += f": {detail}"
    if exc.status in (401, 403):
        message += f" (set {TOKEN_ENV} to an API token)" if not os.environ.get(TOKEN_ENV) else f" (check {TOKEN_ENV})"
    return message


def _cmd_status(args: argparse.Namespace) -> int:
    base = base_url(args)
    if base is None:
        return EXIT_USAGE
    try:
        body = fetch_status(base, timeout_s=args.timeout, token=os.environ.get(TOKEN_ENV) or None)
        status = parse_status(body, base + STATUS_PATH)
    except StatusError as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        sys.stdout.write(body if body.endswith("\n") else body + "\n")
        return 0
    from rich.console import Console

    from controller.client.view import render_status

    piped_width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    Console(file=sys.stdout, width=piped_width).print(render_status(status))
    return 0
