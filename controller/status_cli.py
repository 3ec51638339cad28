"""``depotctl status``: ask the running daemon for its status and print it.

The daemon's address comes from ``--url``, else from ``api.listen`` of the site file given with
``--config`` (a wildcard address is reached over loopback), else ``http://127.0.0.1:8080``. When
``DEPOTCTL_TOKEN`` is set it is sent as a bearer token.

Exit status: 0 with the status printed; 1 when the daemon cannot be asked (not running, no answer
in time, an HTTP error, an answer that is not a status), with one line on stderr; 2 for a bad
argument or an unreadable site file.
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pydantic import ValidationError

from controller.api.models import StatusResponse
from controller.cli import EXIT_USAGE
from controller.config.loader import load_site
from controller.config.reading import read_or_report

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 3.0
STATUS_PATH = "/api/v1/status"  # = controller.api.app.STATUS_PATH, not imported: no FastAPI for a client
TOKEN_ENV = "DEPOTCTL_TOKEN"
EXIT_FAILED = 1


class StatusError(Exception):
    """The daemon could not be asked, or did not answer with a status; ``str()`` is the one-line reason."""


def register(sub: Any) -> None:
    """Add ``depotctl status`` to the ``depotctl`` sub-commands."""
    p = sub.add_parser("status", help="show the running daemon's status (fail-safe, loads, chargers, sessions)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="site file: ask the daemon at its api.listen address")
    where.add_argument("--url", type=_url, metavar="URL", help=f"base URL of the daemon's API (default {DEFAULT_URL})")
    p.add_argument("--json", action="store_true", help="print the status as JSON, as the daemon sent it")
    p.add_argument(
        "--timeout", type=_timeout, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"give up after S seconds without an answer (default {DEFAULT_TIMEOUT_S:g})",
    )
    p.set_defaults(func=_cmd_status)


def _url(text: str) -> str:
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT, got {text!r}")
    return text.rstrip("/")


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 300 s, got {text}")
    return value


def url_for_listen(listen: str) -> str:
    """Base URL to reach a daemon listening on ``listen`` from this machine (wildcard → loopback)."""
    from controller.api.server import local_url, parse_listen

    host, port = parse_listen(listen)
    return local_url(host, port)


def fetch_status(base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None) -> str:
    """``GET {base_url}/api/v1/status`` and return the body; :class:`StatusError` with a one-line reason.

    Proxies from the environment are not used for loopback addresses (a depot PC often has
    ``http_proxy`` set for its package updates).
    """
    url = base_url + STATUS_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(base_url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise StatusError(_http_error(url, exc)) from None
    except urllib.error.URLError as exc:
        raise StatusError(_unreachable(base_url, exc.reason, timeout_s)) from None
    except (TimeoutError, OSError) as exc:  # a timeout or reset while reading the body
        raise StatusError(_unreachable(base_url, exc, timeout_s)) from None
    except http.client.HTTPException as exc:  # something that does not speak HTTP on that port
        raise StatusError(f"depotctl status: {base_url} did not answer in HTTP ({type(exc).__name__})") from None
    except ValueError as exc:  # e.g. a port out of range
        raise StatusError(f"depotctl status: cannot ask {base_url}: {exc}") from None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
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


def _is_loopback(base_url: str) -> bool:
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unreachable(base_url: str, reason: object, timeout_s: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return f"depotctl is not running: nothing answers on {base_url} (connection refused)"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"depotctl status: no answer from {base_url} within {timeout_s:g} s"
    if isinstance(reason, socket.gaierror):
        return f"depotctl status: cannot reach {base_url}: unknown host ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"depotctl status: cannot reach {base_url}: {reason.strerror}"
    return f"depotctl status: cannot reach {base_url}: {reason}"


def _http_error(url: str, exc: urllib.error.HTTPError) -> str:
    detail = ""
    try:
        raw = exc.read(4096).decode("utf-8", "replace")
        body = json.loads(raw)
        detail = str(body["detail"]) if isinstance(body, dict) and "detail" in body else raw
    except (OSError, ValueError):
        pass
    detail = " ".join(detail.split())[:300]
    message = f"depotctl status: {url} answered HTTP {exc.code} {exc.reason}"
    if detail:
        message += f": {detail}"
    if exc.code in (401, 403):
        message += f" (set {TOKEN_ENV} to an API token)" if not os.environ.get(TOKEN_ENV) else f" (check {TOKEN_ENV})"
    return message


def base_url(args: argparse.Namespace, command: str = "depotctl", outcome: str = "status not asked") -> str | None:
    """``--url``, else the ``--config`` site file's ``api.listen``, else the default; None after
    printing why a site file cannot give one (``outcome``: what was not done, for that message)."""
    if args.url is not None:
        return str(args.url)
    if args.config is None:
        return DEFAULT_URL
    loaded = read_or_report(load_site, args.config, outcome)
    if loaded is None:
        return None
    try:
        return url_for_listen(loaded.site.api.listen)
    except ValueError as exc:
        print(f"{command}: {args.config}: {exc}", file=sys.stderr)
        return None


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

    from controller.view import render_status

    piped_width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
    Console(file=sys.stdout, width=piped_width).print(render_status(status))
    return 0
