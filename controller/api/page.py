"""The status page: one HTML page with its script and style sheet, served at the root (``/``).

No build step, no CDN, no web fonts: the files in ``controller/api/static/`` are served as they
are (a depot PC may be offline). The page itself polls ``GET /api/v1/status`` every 2 s and
renders it; everything it shows comes from that one document.

The files are read once, when the router is made (not on each request: the daemon's event loop
also runs the control loop). Every answer carries ``Cache-Control: no-cache`` and an ``ETag``, so
a browser revalidates on each load and gets a new version of the page right after an upgrade.
The content security policy allows only this origin: no inline script, no foreign requests.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

from fastapi import APIRouter, Request, Response

STATIC_PACKAGE = "controller.api"
STATIC_DIR = "static"

ASSETS: dict[str, tuple[str, str]] = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
"""URL path → (file in ``static/``, content type)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
}


@dataclass(frozen=True)
class Asset:
    """One served file: its bytes, content type and entity tag."""

    body: bytes
    media_type: str
    etag: str


def read_asset(name: str) -> bytes:
    """The bytes of ``static/NAME`` shipped with the package."""
    return resources.files(STATIC_PACKAGE).joinpath(STATIC_DIR, name).read_bytes()


def load_assets() -> dict[str, Asset]:
    """URL path → :class:`Asset`, for every entry of :data:`ASSETS`."""
    assets = {}
    for path, (name, media_type) in ASSETS.items():
        body = read_asset(name)
        assets[path] = Asset(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
    return assets


def _route(asset: Asset) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        headers = {**_HEADERS, "ETag": asset.etag}
        if asset.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        body = b"" if request.method == "HEAD" else asset.body
        response = Response(body, media_type=asset.media_type, headers=headers)
        if request.method == "HEAD":
            response.headers["Content-Length"] = str(len(asset.body))
        return response

    return serve


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def page_router() -> APIRouter:
    """The status page (``/``) and its assets (``/static/…``); mount it at the root, not under
    ``/api/v1``. Left out of the OpenAPI document: it is not part of the API."""
    router = APIRouter(include_in_schema=False)
    for path, asset in load_assets().items():
        router.add_api_route(path, _route(asset), methods=["GET", "HEAD"])
    return router
