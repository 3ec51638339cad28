"""Local-controller mode on ``depotctl status`` and on the status page (headless Chromium): the
CSMS, how many links are up, what is queued, and which chargers are not up or have a backlog."""

from __future__ import annotations

from datetime import timedelta

from rich.console import Console

from controller.api.app import create_app
from controller.api.models import StatusResponse, UpstreamInfo, UpstreamLinkInfo
from controller.client.view import render_status
from tests.api.samples import NOW, full_status, serving
from tests.api.test_page import Dom, browser, render  # noqa: F401  (the browser fixture)

URL = "wss://csms.example.com/ocpp"


def with_upstream() -> StatusResponse:
    links = [
        UpstreamLinkInfo(charger_id="CP-A", state="up", connected=True, queue_messages=0, since=NOW),
        UpstreamLinkInfo(charger_id="CP-B", state="down", connected=False, queue_messages=17,
                         since=NOW - timedelta(minutes=3)),
    ]
    info = UpstreamInfo(url=URL, connected=1, chargers=2, queue_messages=17, links=links)
    return full_status(failsafe=False).model_copy(update={"upstream": info})


def test_depotctl_status_shows_the_links_and_the_queue() -> None:
    console = Console(width=140, record=True, color_system=None)
    console.print(render_status(with_upstream()))
    text = console.export_text()
    assert f"upstream  {URL} · 1/2 links up · 17 queued" in text
    assert "CP-B down since" in text and "17 queued" in text
    assert "CP-A up" not in text  # a link that is up with nothing queued is not listed
    console = Console(width=140, record=True, color_system=None)
    console.print(render_status(full_status(failsafe=False)))
    assert "upstream" not in console.export_text()  # without ocpp.upstream: as before


async def test_the_status_page_shows_the_back_office(browser: str) -> None:  # noqa: F811
    async with serving(create_app(with_upstream)) as server:
        html, console = await render(browser, server.url + "/")
    assert not [line for line in console if "error" in line.lower()], console
    text = " ".join(Dom(html).text.split())
    assert f"Back office (CSMS) {URL}: 1 of 2 links up, 17 messages queued" in text
    assert "CP-B: down since" in text and "17 queued" in text
