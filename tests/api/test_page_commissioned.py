"""The status page's "Commissioned" column, rendered by headless Chromium: per charger its last
commissioning — passed, failed, running now, never — and nothing from a daemon that does not say."""

from __future__ import annotations

import pytest

from controller.api.app import create_app
from controller.api.models import StatusResponse
from tests.api.samples import full_status, serving
from tests.api.test_page import Dom, find_browser, render

STATES = {"CP-01": "failed", "DC-150": "running", "CP-09": "passed"}


def _status() -> StatusResponse:
    status = full_status(failsafe=False)
    chargers = [c.model_copy(update={"commissioned": STATES[c.id]}) for c in status.chargers]
    return status.model_copy(update={"chargers": chargers})


async def test_the_commissioned_column() -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("Chromium not found: install it with `apt-get install chromium` (Debian)")
    async with serving(create_app(_status)) as server:
        html, console = await render(browser, server.url + "/")
    dom = Dom(html)
    assert not console, console
    header = dom.rows["chargers"][0]
    assert "Control Commissioned Limit (why)" in header
    assert "✓ Controlled" in dom.row("chargers", "CP-01") and "⚠ Failed" in dom.row("chargers", "CP-01")
    assert "⟳ Running" in dom.row("chargers", "DC-150")
    assert "✓ Passed" in dom.row("chargers", "CP-09")
    assert 'data-label="Commissioned"' in html and 'title="being commissioned now' in html

    never = full_status(failsafe=False)  # every charger "never" (the model's default)
    async with serving(create_app(lambda: never)) as server:
        html, _ = await render(browser, server.url + "/")
    assert all("Never" in Dom(html).row("chargers", cid) for cid in STATES)
