"""A small client of the daemon's HTTP API for the command line (``depotctl depart``, ``schedule import``).

Plain urllib, no FastAPI: the CLI stays quick to start. Where the daemon is and which token to
send are found as ``depotctl status`` finds them (:mod:`controller.status_cli`): ``--url``, else
``api.listen`` of the ``--config`` site file, else ``http://127.0.0.1:8080``; the token from
``--token-file`` or ``$DEPOTCTL_TOKEN``.

Failures are exceptions with one-line messages: :class:`Unreachable` when no daemon answers,
:class:`Refused` when it answered with an error (one line per problem of a 422).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.status_cli import DEFAULT_URL, TOKEN_ENV, _is_loopback, _timeout, _unreachable, _url, base_url

API_PREFIX = "/api/v1"  # = controller.api.app.API_PREFIX, not imported: no FastAPI for a client
DEFAULT_TIMEOUT_S = 5.0


class Unreachable(Exception):
    """No daemon answered (not running, wrong address, no answer in time); ``str()`` is one line."""


class Refused(Exception):
    """The daemon answered with an HTTP error. ``status``: its code; ``lines``: one per problem."""

    def __init__(self, status: int, lines: list[str]) -> None:
        self.status = status
        self.lines = lines
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
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(self.base_url) else []
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
                raise Refused(exc.code, _error_lines(exc.code, exc.reason, exc.read(65536))) from None
        except urllib.error.URLError as exc:
            raise Unreachable(self._unreachable(exc.reason)) from None
        except (TimeoutError, OSError) as exc:
            raise Unreachable(self._unreachable(exc)) from None
        except http.client.HTTPException as exc:
            what = type(exc).__name__
            raise Unreachable(f"{self.command}: {self.base_url} did not answer in HTTP ({what})") from None
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise Unreachable(f"{self.command}: {url} did not answer with JSON") from None

    def _unreachable(self, reason: object) -> str:
        return _unreachable(self.base_url, reason, self.timeout_s).replace("depotctl status:", f"{self.command}:", 1)


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


# --- command-line options shared by the fleet commands ---------------------------------------------------


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` / ``--url``, ``--token-file`` and ``--timeout``, as ``depotctl status`` has them."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="site file: talk to the daemon at its api.listen address")
    where.add_argument("--url", type=_url, metavar="URL", help=f"base URL of the daemon's API (default {DEFAULT_URL})")
    parser.add_argument("--token-file", metavar="FILE", help=f"read the API token from FILE (default: ${TOKEN_ENV})")
    parser.add_argument(
        "--timeout", type=_timeout, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"give up after S seconds without an answer (default {DEFAULT_TIMEOUT_S:g})",
    )


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
