"""The status page: served with the right headers, and rendered by headless Chromium.

The browser tests serve the app under real uvicorn on a free loopback port (fixed sample statuses,
and once the real daemon against the hil rig), run ``chromium --headless --dump-dom`` on it and
check the rendered DOM. The sample pages are rendered concurrently, once per module, to keep the
browser part to a few seconds. Without Chromium they are skipped with a message saying how to
install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import tempfile
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from controller.api.app import STATUS_PATH, StatusUnavailable, create_app
from controller.api.models import StatusResponse
from controller.api.page import ASSETS
from tests.api.samples import FAILSAFE_REASON, aget, empty_status, full_status, serving, sparse_status
from tests.api.test_status_api import REJECTED, safety_status

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "Chromium not found: install it with `apt-get install chromium` (Debian) to run the status-page test"
BROWSER_TIMEOUT_S = 30.0
TOKEN = "s3cret-token"
OTHER_TENANT = "other-tenant-token"


# ------------------------------------------------------------------ without a browser


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """Like ``samples.http_get``, with a method and request headers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


async def test_page_and_assets_are_served_with_types_and_no_cache() -> None:
    async with serving(create_app(full_status)) as server:
        answers = {path: await aget(server.url + path) for path in ("/", "/static/app.js", "/static/style.css")}
        etag = answers["/static/app.js"][1]["etag"]
        revalidated = await asyncio.to_thread(
            _request, server.url + "/static/app.js", headers={"If-None-Match": etag}
        )
        head = await asyncio.to_thread(_request, server.url + "/", "HEAD")
        openapi = json.loads((await aget(server.url + "/openapi.json"))[2])
        missing = await aget(server.url + "/static/nope.js")

    types = {"/": "text/html", "/static/app.js": "text/javascript", "/static/style.css": "text/css"}
    for path, (code, headers, body) in answers.items():
        assert code == 200, path
        assert headers["content-type"] == f"{types[path]}; charset=utf-8", path
        assert headers["cache-control"] == "no-cache", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert "default-src 'none'" in headers["content-security-policy"], path
        assert body, path
        assert not re.search(rb"https?://", body), f"{path} refers to another site (the depot PC may be offline)"
    html = answers["/"][2].decode()
    assert '<script src="static/app.js"' in html
    assert '<link rel="stylesheet" href="static/style.css">' in html
    assert 'const STATUS_URL = "api/v1/status"' in answers["/static/app.js"][2].decode()  # relative: proxy-safe
    assert revalidated[0] == 304 and revalidated[2] == b""
    assert head[0] == 200 and head[2] == b"" and int(head[1]["content-length"]) == len(answers["/"][2])
    # author CSS (main {display: grid}) would otherwise show elements the script hides
    assert "[hidden] { display: none !important; }" in answers["/static/style.css"][2].decode()
    assert set(ASSETS) == set(types)
    assert not set(openapi["paths"]) & set(types), "the page is not part of the API document"
    assert missing[0] == 404


async def test_page_can_be_left_out() -> None:
    async with serving(create_app(full_status, page=False)) as server:
        code, _, body = await aget(server.url + "/")
        status_code = (await aget(server.url + STATUS_PATH))[0]
    assert code == 404 and json.loads(body) == {"detail": "Not Found"}
    assert status_code == 200


# ------------------------------------------------------------------ the rendered DOM


class Dom(HTMLParser):
    """The text of a dumped DOM: of the whole body, per element id, per table row (under the
    nearest element with an id), and the tree depth of each circuit."""

    VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"})
    SKIP = frozenset({"script", "style", "noscript", "title"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict[str, str], list[str]]] = []
        self.by_id: dict[str, str] = {}
        self.hidden: set[str] = set()
        self.rows: dict[str, list[str]] = {}
        self.node_depth: dict[str, int] = {}
        self.text_parts: list[str] = []
        self.feed(html)
        self.close()
        self.text = _norm(" ".join(self.text_parts))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if "id" in attributes and "hidden" in attributes:
            self.hidden.add(attributes["id"])
        if tag not in self.VOID:
            self.stack.append((tag, attributes, []))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            name, attributes, parts = self.stack.pop()
            text = _norm(" ".join(parts))
            if "id" in attributes:
                self.by_id[attributes["id"]] = text
            if name == "tr":
                owner = next((a["id"] for _, a, _ in reversed(self.stack) if "id" in a), "")
                self.rows.setdefault(owner, []).append(text)
            if "node-id" in attributes.get("class", "").split():
                self.node_depth[text] = sum(1 for t, _, _ in self.stack if t == "ul")
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if any(tag in self.SKIP for tag, _, _ in self.stack):
            return
        for _, _, parts in self.stack:
            parts.append(data)
        if any(tag == "body" for tag, _, _ in self.stack):
            self.text_parts.append(data)

    def row(self, section: str, *needles: str) -> str:
        """The one row of ``section`` that contains every needle."""
        found = [r for r in self.rows.get(section, []) if all(n in r for n in needles)]
        assert len(found) == 1, f"rows of {section} with {needles}: {found} (all: {self.rows.get(section)})"
        return found[0]


def _norm(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Rendered:
    dom: Dom
    html: str
    console: list[str]
    requests: list[dict[str, str]] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No script error shown on the page, nothing logged to the browser console."""
        assert "page-error" in self.dom.hidden, self.dom.by_id.get("page-error")
        assert not self.console, self.console


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_browser()
    if path is None:
        pytest.skip(INSTALL_HINT)
    return path


async def render(browser: str, url: str, budget_ms: int = 5000) -> tuple[str, list[str]]:
    """``url`` loaded in headless Chromium: (the DOM after ``budget_ms`` of virtual time, the
    console messages it logged). The browser runs in its own process group with its own profile,
    and is killed if it does not finish within :data:`BROWSER_TIMEOUT_S`."""
    with tempfile.TemporaryDirectory(prefix="depotctl-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            browser, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--mute-audio",
            f"--user-data-dir={profile}", "--window-size=1280,1024",
            "--enable-logging=stderr", "--v=0",
            f"--virtual-time-budget={budget_ms}", "--dump-dom", url,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env={**os.environ, "LANG": "en_GB.UTF-8", "TZ": "UTC"},
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), BROWSER_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            raise AssertionError(f"{browser} did not finish within {BROWSER_TIMEOUT_S:.0f} s on {url}") from None
        finally:
            if proc.returncode is None:  # cancelled
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
    html = out.decode(errors="replace")
    stderr = err.decode(errors="replace")
    assert proc.returncode == 0 and "</html>" in html, f"{browser} exit {proc.returncode}:\n{stderr[-3000:]}"
    console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
    return html, console


def with_bearer(app: Asgi, token: str, seen: list[dict[str, str]]) -> Asgi:
    """``app`` behind a bearer check on ``/api/…``: none or an unknown token → 401, the token of
    another tenant (``OTHER_TENANT``) → 403."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            seen.append(headers)
            given = headers.get("authorization")
            if given != f"Bearer {token}":
                code, detail = (
                    (403, "token not allowed here") if given == f"Bearer {OTHER_TENANT}"
                    else (401, "missing bearer token") if given is None else (401, "unknown token")
                )
                body = json.dumps({"detail": detail}).encode()
                await send({"type": "http.response.start", "status": code,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def breaking_after(app: Asgi, good: int) -> Asgi:
    """``app`` whose status answers break off mid-body (the connection drops) after ``good`` of them."""
    calls = 0

    async def flaky(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal calls
        if scope["type"] == "http" and scope["path"] == STATUS_PATH:
            calls += 1
            if calls > good:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", b"5000")]})
                await send({"type": "http.response.body", "body": b'{"version": "0.', "more_body": True})
                raise ConnectionAbortedError("test: the daemon went away")
        await app(scope, receive, send)

    return flaky


def answering(app: Asgi, body: bytes) -> Asgi:
    """``app`` whose status answer is ``body`` (200, JSON) instead of the real one."""

    async def fixed(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == STATUS_PATH:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return fixed


BROKEN = full_status().model_dump_json().replace("2024-03-12T14:30:05+01:00", "half past two").encode()
"""A status the script cannot render (``now`` is no time)."""

STARTING = "depotctl is starting: waiting for the first meter reading"


def answers(*statuses: StatusResponse | None) -> Callable[[], StatusResponse]:
    """A provider giving ``statuses`` in turn, then the last one again and again; ``None`` → 503."""
    given = 0

    def provider() -> StatusResponse:
        nonlocal given
        status = statuses[min(given, len(statuses) - 1)]
        given += 1
        if status is None:
            raise StatusUnavailable(STARTING)
        return status

    return provider


Case = tuple[Callable[[list[dict[str, str]]], Asgi], str]
CASES: dict[str, Case] = {
    # name: (app made with the list that records the API requests' headers, address to open)
    # The page polls every 2 s, so in 5 s of virtual time it renders up to three answers in turn; an
    # earlier answer that broke the page would leave the (sticky) page error shown.
    "failsafe": (lambda seen: create_app(answers(empty_status(), safety_status())), "/"),
    "normal": (lambda seen: with_bearer(create_app(lambda: full_status(failsafe=False)), TOKEN, seen),
               f"/#token={TOKEN}"),
    "sparse": (lambda seen: create_app(answers(sparse_status(), None)), "/"),
    "gone": (lambda seen: breaking_after(create_app(full_status), good=1), "/"),
    "no-token": (lambda seen: with_bearer(create_app(full_status), TOKEN, seen), "/"),
    "bad-token": (lambda seen: with_bearer(create_app(full_status), TOKEN, seen), f"/#token={OTHER_TENANT}"),
    "broken": (lambda seen: answering(create_app(full_status), BROKEN), "/"),
}


async def _render_case(browser: str, case: Case) -> Rendered:
    make, path = case
    seen: list[dict[str, str]] = []
    async with serving(make(seen)) as server:
        html, console = await render(browser, server.url + path)
    return Rendered(Dom(html), html, console, seen)


@pytest.fixture(scope="module")
def pages(browser: str) -> Iterator[dict[str, Rendered]]:
    """Every case of :data:`CASES` rendered, concurrently (each with its own server and browser)."""

    async def all_cases() -> dict[str, Rendered]:
        done = await asyncio.gather(*(_render_case(browser, case) for case in CASES.values()))
        return dict(zip(CASES, done, strict=True))

    yield asyncio.run(all_cases())


def test_failsafe_page(pages: dict[str, Rendered]) -> None:
    page = pages["failsafe"]
    dom = page.dom
    page.assert_clean()  # the empty site rendered first, without an error
    assert "connection" in dom.hidden
    assert dom.by_id["failsafe-title"] == f"FAIL-SAFE: {FAILSAFE_REASON}"
    assert "Since 14:29:23 (42 s ago)" in dom.by_id["failsafe-detail"]  # site time Europe/Berlin (+01:00)
    assert 'class="banner wide banner-failsafe"' in page.html
    assert dom.by_id["site"] == "Bus Depot Nord"
    assert "Updated 14:30:05 · site time Europe/Berlin" in dom.by_id["meta"]

    # the circuit tree: parents before children, nested, loads against limit − margin
    assert dom.node_depth == {"grid": 1, "feeder-a": 2, "hall-2": 3, "feeder-b": 2}
    circuits = dom.by_id["circuits"]
    assert circuits.index("grid") < circuits.index("feeder-a") < circuits.index("hall-2") < circuits.index("feeder-b")
    assert "L1 312.5 / 390.0 A · 80 %" in circuits
    assert "L3 405.2 / 390.0 A · 104 % OVER by 15.2 A" in circuits
    assert "feeder-a planned" in circuits and "L1 120.0 / 245.0 A · 49 % planned" in circuits  # no meter: the plan
    assert "L2 41.0 / 60.0 A · 68 %" in circuits
    assert "feeder-b no meter, no plan" in circuits and "L1 no data" in circuits
    assert "215.4 kW · contract 250.0 kW · meter grid-main" in circuits

    # chargers: every id, with limit, why, draw, vehicle, energy, SoC
    chargers = dom.by_id["chargers"]
    for sample in full_status().chargers:
        assert sample.id in chargers
    assert "2 of 3 chargers connected, 1 offline." in chargers
    cp01 = dom.row("chargers", "CP-01")
    for text in ("hall-2", "Connected OCPP 1.6", "32.0 A plan", "31.8 · 31.5 · 0.0 A", "BUS-101 #1",
                 "62.4 / 180.0 kWh", "48 %", "18:00", "17:20", "Ready"):
        assert text in cp01, (text, cp01)
    assert "At risk (short 48.5 kWh)" in dom.row("chargers", "tx-1002")  # second session of CP-01
    assert "90.5 kW circuit feeder-a L2" in dom.row("chargers", "DC-150")
    assert "VAN-7" in dom.row("chargers", "DC-150")
    assert "Offline" in dom.row("chargers", "CP-09") and "6.0 A failsafe" in dom.row("chargers", "CP-09")

    # departures: ready / at risk per vehicle, soonest first
    departures = dom.by_id["departures"]
    assert "1 of 2 departures at risk." in departures
    assert departures.index("BUS-101") < departures.index("tx-1002")
    bus = dom.row("departures", "BUS-101")
    assert "Ready" in bus and "At risk" not in bus and "18:00 in 3 h 30 min" in bus
    unknown = dom.row("departures", "tx-1002")
    assert "At risk (short 48.5 kWh)" in unknown and "Wed 13 Mar 06:30" in unknown
    assert "VAN-7" not in departures  # no departure set

    # meters, plan, loop
    grid_meter = dom.row("meters", "grid-main")
    assert grid_meter == "grid-main 12.0 s ⚠ Stale timeout reading 10.0.0.20:502 unit 1 18,234 / 3 / 17"
    assert "hall-2-sub 0.8 s Fresh none" in dom.row("meters", "hall-2-sub")
    system = dom.by_id["system"]
    assert "14:30:01 (4 s ago) by highs in 38.7 ms for 3 sessions" in system
    assert "cannot get 250.0 kWh" in system


def test_the_bill_and_a_refused_prices_file(pages: dict[str, Rendered]) -> None:
    page = pages["failsafe"]
    bill = page.dom.by_id["bill"]
    assert "bill-section" not in page.dom.hidden
    assert "Price now 0.2412 EUR/kWh (prices file)" in bill
    assert "Today 1,834.5 kWh imported, 402.77 EUR" in bill
    # (the DOM's text runs are joined with a space: "00:00 )", "07:45 – …")
    assert "Peak this month 231.6 kW (15-min average since Fri 1 Mar 00:00 ); demand charge 3,242.40 EUR" in bill
    assert "Highest window 231.6 kW over Tue 5 Mar 07:45 – Tue 5 Mar 08:00 (readings cover 90 %)" in bill
    assert "Window now 188.2 kW over 14:30 – 14:45" in bill
    assert "Prices file /var/lib/depotctl/prices.csv: 96 prices until Wed 13 Mar 00:00" in bill
    assert "Refused, the prices read before stay in force: /var/lib/depotctl/prices.csv:7: price 'O.31'" in bill
    assert "PV 41.3 kW (meter pv-roof)" in bill
    assert "bill-section" in pages["sparse"].dom.hidden  # an older daemon's status: no section


def test_chargers_under_control_or_not(pages: dict[str, Rendered]) -> None:
    """Per charger: uncontrolled (why, since when), fail-safe profile confirmed or not, clock offset."""
    page = pages["failsafe"]
    dom = page.dom
    chargers = dom.by_id["chargers"]
    assert ("2 of 3 chargers connected, 1 offline. 1 UNCONTROLLED. 1 without a confirmed fail-safe profile."
            in chargers)
    cp01 = dom.row("chargers", "CP-01")
    assert (f"⚠ UNCONTROLLED {REJECTED} since 14:25:05 (5 min ago); budgeted at its draw, up to its maximum"
            " ✓ Fail-safe profile confirmed ⚠ clock 120 s behind") in cp01
    assert "Controlled" not in cp01
    dc150 = dom.row("chargers", "DC-150")
    assert "✓ Controlled ✓ Fail-safe profile confirmed clock 0.4 s ahead" in dc150
    assert "UNCONTROLLED" not in dc150 and "⚠ clock" not in dc150
    cp09 = dom.row("chargers", "CP-09")  # offline: neither "controlled" nor "uncontrolled"
    assert ("⚠ No confirmed fail-safe profile budgeted at its maximum; unlimited should depotctl stop"
            " ⚠ clock 75 s ahead") in cp09
    assert "Controlled" not in cp09 and "UNCONTROLLED" not in cp09
    # the uncontrolled charger's row is marked, the others not
    marked = [row for row in re.findall(r'<tr class="bad-row">.*?</tr>', page.html, re.S) if "charger-id" in row]
    assert len(marked) == 1 and ">CP-01<" in marked[0]
    assert "Control" in dom.rows["chargers"][0]  # the column's header


def test_normal_page_with_a_token(pages: dict[str, Rendered]) -> None:
    page = pages["normal"]
    page.assert_clean()
    assert page.dom.by_id["failsafe-title"] == "Normal control"
    assert "banner-normal" in page.html and "banner-failsafe" not in page.html
    assert "FAIL-SAFE" not in page.dom.text
    assert "Ready" in page.dom.row("departures", "BUS-101")
    assert "At risk" in page.dom.row("departures", "tx-1002")
    # the token from the address went into every request, and out of the address
    assert page.requests and {r.get("authorization") for r in page.requests} == {f"Bearer {TOKEN}"}
    assert "A token is saved in this browser." in page.dom.by_id["token-state"]
    assert TOKEN not in page.html
    # a status without control state (an older daemon): unknown, never shown as fine
    assert "clock not measured" in page.dom.row("chargers", "CP-01")
    assert "Fail-safe profile" not in page.dom.text and "UNCONTROLLED" not in page.dom.text


def test_sparse_page_then_starting(pages: dict[str, Rendered]) -> None:
    page = pages["sparse"]
    page.assert_clean()
    dom = page.dom
    assert dom.by_id["failsafe-title"] == "FAIL-SAFE: starting"
    assert 'unknown time zone "Not/AZone"' in dom.by_id["meta"]  # falls back to the browser's zone, says so
    assert "L1 no data" in dom.by_id["circuits"]
    cpx = dom.row("chargers", "CP-X")
    assert "Offline" in cpx and "none sent" in cpx and "not reported" in cpx and "no vehicle plugged in" in cpx
    assert "No departures set" in dom.by_id["departures"]
    assert "no reading yet" in dom.row("meters", "grid-main")
    assert "no plan yet" in dom.by_id["system"] and "History store off" in dom.by_id["system"]
    # then the daemon answered 503: said so, the last status stays, dimmed
    assert f"cannot report yet: {STARTING}" in dom.by_id["connection"]
    assert "connection" not in dom.hidden
    assert 'id="content" class="stale"' in page.html


def test_daemon_not_reachable(pages: dict[str, Rendered]) -> None:
    page = pages["gone"]
    assert "page-error" in page.dom.hidden
    notice = page.dom.by_id["connection"]
    assert "Daemon not reachable (connection failed)" in notice and "retrying every 2 s" in notice
    assert "Showing the last status received" in notice
    assert 'id="content" class="stale"' in page.html
    assert "CP-01" in page.dom.by_id["chargers"]


def test_no_token_is_a_message_not_a_blank_page(pages: dict[str, Rendered]) -> None:
    page = pages["no-token"]
    assert "page-error" in page.dom.hidden
    assert "Access denied (401: missing bearer token)" in page.dom.by_id["connection"]
    assert "Enter it under “API token” above." in page.dom.by_id["connection"]
    assert "content" in page.dom.hidden and "No token saved." in page.dom.by_id["token-state"]
    assert page.dom.by_id["meta"] == "No status received yet."
    assert '<details class="token" id="token-box" open="">' in page.html
    assert {r.get("authorization") for r in page.requests} == {None}

    other = pages["bad-token"]
    assert "Access denied (403: token not allowed here): the saved token may not read" in other.dom.by_id["connection"]
    assert {r.get("authorization") for r in other.requests} == {f"Bearer {OTHER_TENANT}"}


def test_a_script_error_is_shown_on_the_page(pages: dict[str, Rendered]) -> None:
    """What :meth:`Rendered.assert_clean` relies on: a status the script cannot render shows an error."""
    page = pages["broken"]
    assert "page-error" not in page.dom.hidden
    assert page.dom.by_id["page-error"].startswith("Page error: Invalid time value.")
    assert any("RangeError" in line for line in page.console), page.console


async def test_page_against_the_rig(browser: str, tmp_path: Path) -> None:
    """The real daemon against the hil rig: the page it serves shows its chargers, circuits and
    the scheduled van, and that every charger is under control (fail-safe profile confirmed, clock
    measured: the rig's chargers keep our time)."""
    from tests.daemon.rigged import rigged, wait_async

    async with rigged(tmp_path) as r:

        async def van_planned() -> bool:
            status = await r.status()
            sessions = [s for c in status["chargers"] for s in c["sessions"] if s["vehicle_id"] == "VAN-01"]
            planned = bool(sessions) and sessions[0]["will_meet_departure"] is not None
            confirmed = all(c["failsafe_installed"] and c["clock_offset_s"] is not None for c in status["chargers"])
            return planned and confirmed and not status["failsafe"]["active"]

        await wait_async(van_planned, 20, "normal control and a plan for VAN-01")
        status = await r.status()
        html, console = await render(browser, r.api_url + "/", budget_ms=3000)
    page = Rendered(Dom(html), html, console)
    page.assert_clean()
    dom = page.dom
    assert dom.by_id["site"] == status["site"]
    assert set(dom.node_depth) == {n["id"] for n in status["nodes"]}
    for charger in status["chargers"]:
        assert charger["id"] in dom.by_id["chargers"]
    assert dom.by_id["failsafe-title"] == "Normal control"
    assert "VAN-01" in dom.row("chargers", "CP01")
    for charger in status["chargers"]:
        assert charger["uncontrolled"] is None and abs(charger["clock_offset_s"]) < 5.0, charger
        assert re.search(r"✓ Controlled ✓ Fail-safe profile confirmed clock \d+\.\d s (ahead|behind)",
                         dom.row("chargers", charger["id"]))
    assert "UNCONTROLLED" not in dom.text and "No confirmed fail-safe profile" not in dom.text
    assert re.search(r"Ready|At risk", dom.row("departures", "VAN-01"))
    assert re.search(r"L1 \d+\.\d / \d+\.\d A · \d+ %", dom.by_id["circuits"])

