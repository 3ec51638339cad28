"""The one client of the daemon's HTTP API, for the commands that talk to a running daemon
(``depotctl status``, ``depart``, ``schedule import``).

Plain urllib, no FastAPI: the CLI stays quick to start. Where the daemon is: ``--url``, else
``api.listen`` of the ``--config`` site file (a wildcard address is reached over loopback), else
``http://127.0.0.1:8080``; the token from ``--token-file`` (``depart``, ``schedule``) or
``$DEPOTCTL_TOKEN``. No proxy for a loopback address (a depot PC often has ``http_proxy`` set for
its package updates).

Failures are exceptions with one-line messages: :class:`Unreachable` when no daemon answers,
:class:`Refused` when it answered with an error (one line per problem of a 422).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.config.listen import local_url, parse_listen
from controller.config.loader import load_site
from controller.config.reading import read_or_report

API_PREFIX = "/api/v1"  # = controller.api.app.API_PREFIX, not imported: no FastAPI for a client
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 5.0
TOKEN_ENV = "DEPOTCTL_TOKEN"


class Unreachable(Exception):
    """No daemon answered (not running, wrong address, no answer in time); ``str()`` is one line."""


class Refused(Exception):
    """The daemon answered with an HTTP error. ``status``: its code; ``lines``: one per problem;
    ``reason`` and ``body``: the HTTP reason phrase and (the start of) the answer's body."""

    def __init__(self, status: int, lines: list[str], reason: str = "", body: bytes = b"") -> None:
        self.status = status
        self.lines = lines
        self.reason = reason
        self.body = body
        super().__init__("; ".join(lines))


@dataclass
class ApiClient:
    """Requests to ``base_url`` (``http://HOST:PORT``) with an optional bearer ``token``."""

    base_url: str
    token: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    command: str = "depotctl"
    _opener: urllib.request.OpenerDirector = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # no proxy for loopback (a depot PC often has http_proxy set for its package updates)
        handlers = [urllib.request.ProxyHandler({})] if is_loopback(self.base_url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, data=json.dumps(body).encode(), content_type="application/json")

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def post_csv(self, path: str, text: str) -> Any:
        return self.request("POST", path, data=text.encode("utf-8"), content_type="text/csv; charset=utf-8")

    def request(self, method: str, path: str, *, data: bytes | None = None, content_type: str | None = None) -> Any:
        """``method`` ``{base_url}/api/v1{path}``; the JSON answer, or :class:`Unreachable` / :class:`Refused`."""
        body = self.fetch(method, path, data=data, content_type=content_type)
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise Unreachable(f"{self.command}: {self.base_url + API_PREFIX + path} did not answer with JSON") from None

    def fetch(self, method: str, path: str, *, data: bytes | None = None, content_type: str | None = None) -> bytes:
        """``method`` ``{base_url}/api/v1{path}``; the answer's body as sent, or :class:`Unreachable` /
        :class:`Refused`."""
        url = self.base_url + API_PREFIX + path
        headers = {"Accept": "application/json"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                raw = _read_error_body(exc)
                raise Refused(exc.code, _error_lines(exc.code, exc.reason, raw), str(exc.reason), raw) from None
        except urllib.error.URLError as exc:
            raise Unreachable(self._unreachable(exc.reason)) from None
        except (TimeoutError, OSError) as exc:  # a timeout or reset while reading the body
            raise Unreachable(self._unreachable(exc)) from None
        except http.client.HTTPException as exc:  # something that does not speak HTTP on that port
            what = type(exc).__name__
            raise Unreachable(f"{self.command}: {self.base_url} did not answer in HTTP ({what})") from None
        except ValueError as exc:  # e.g. a port out of range
            raise Unreachable(f"{self.command}: cannot ask {self.base_url}: {exc}") from None
        return body

    def _unreachable(self, reason: object) -> str:
        return unreachable(self.base_url, reason, self.timeout_s, self.command)


def _read_error_body(exc: urllib.error.HTTPError) -> bytes:
    try:
        return exc.read(65536)
    except OSError:
        return b""


def _error_lines(code: int, reason: str, raw: bytes) -> list[str]:
    """The daemon's error answer as lines: ``field: reason`` per problem of a 422, else the detail."""
    try:
        detail = json.loads(raw.decode("utf-8", "replace")).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, list) and detail:
        return [f"{p.get('field', '?')}: {p.get('reason', p)}" if isinstance(p, dict) else str(p) for p in detail]
    text = " ".join(str(detail).split()) if detail else reason
    line = f"HTTP {code}: {text}"
    if code == 401:
        line += f" (give an API token in ${TOKEN_ENV} or with --token-file)"
    return [line]


def is_loopback(base_url: str) -> bool:
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def unreachable(base_url: str, reason: object, timeout_s: float, command: str = "depotctl status") -> str:
    """Why no daemon answered, in one line (``reason``: the socket's or urllib's)."""
    if isinstance(reason, ConnectionRefusedError):
        return f"depotctl is not running: nothing answers on {base_url} (connection refused)"
    if isinstance(reason, TimeoutError | socket.timeout):
        return f"{command}: no answer from {base_url} within {timeout_s:g} s"
    if isinstance(reason, socket.gaierror):
        return f"{command}: cannot reach {base_url}: unknown host ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return f"{command}: cannot reach {base_url}: {reason.strerror}"
    return f"{command}: cannot reach {base_url}: {reason}"


# --- where the daemon is, and the command-line options that say it -------------------------------------


def url_for_listen(listen: str) -> str:
    """Base URL to reach a daemon listening on ``listen`` from this machine (wildcard → loopback)."""
    host, port = parse_listen(listen, "api.listen")
    return local_url(host, port)


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


def url_arg(text: str) -> str:
    """``--url``: ``http(s)://HOST:PORT``, without a trailing slash."""
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT, got {text!r}")
    return text.rstrip("/")


def timeout_arg(text: str) -> float:
    """``--timeout``: seconds, more than 0 and at most 300."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 300 s, got {text}")
    return value


def add_where_options(parser: argparse.ArgumentParser, timeout_s: float) -> None:
    """``--config`` / ``--url`` and ``--timeout``: where the daemon is, how long to wait for it."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="site file: talk to the daemon at its api.listen address")
    where.add_argument(
        "--url", type=url_arg, metavar="URL", help=f"base URL of the daemon's API (default {DEFAULT_URL})"
    )
    parser.add_argument(
        "--timeout", type=timeout_arg, default=timeout_s, metavar="S",
        help=f"give up after S seconds without an answer (default {timeout_s:g})",
    )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` / ``--url``, ``--token-file`` and ``--timeout`` (``depart``, ``schedule import``)."""
    add_where_options(parser, DEFAULT_TIMEOUT_S)
    parser.add_argument("--token-file", metavar="FILE", help=f"read the API token from FILE (default: ${TOKEN_ENV})")


def client_from_args(args: argparse.Namespace, command: str) -> ApiClient | None:
    """The client for the parsed options, or None after printing why not (exit status 2)."""
    token = os.environ.get(TOKEN_ENV) or None
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            print(f"{command}: cannot read the token file {args.token_file}: {reason}", file=sys.stderr)
            return None
        if not token:
            print(f"{command}: the token file {args.token_file} is empty", file=sys.stderr)
            return None
    base = base_url(args, command, "nothing sent")
    if base is None:
        return None
    return ApiClient(base, token, args.timeout, command)
