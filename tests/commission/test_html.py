"""The site acceptance report (``controller/commission/html.py``): every charger and every check on
the page, text escaped, nothing fetched from outside, the lines to add; rendered in headless Chromium.

The reports are built by hand (a run's result is the runner's business, tested with the rig): one
charger that passed, one that failed with a quirk and a slow measured reaction, one aborted, one whose
vendor, firmware and details carry markup, one incomplete (no EV charging, not --no-ev) and one
that was not connected.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.commission.html import (
    NOT_CONNECTED,
    NotRun,
    measured_text,
    reaction_line_s,
    result_word,
    site_lines,
    site_report,
)
from controller.commission.report import CHECK_NAMES, EV_CHECKS, Check, Report

AT = datetime(2026, 12, 9, 14, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIMEOUT_S = 30.0
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def report(charger: str, failed: frozenset[str] = frozenset(), *, no_ev: bool = False, **kw: object) -> Report:
    checks = tuple(
        Check(
            name,
            None if no_ev and name in EV_CHECKS else name not in failed,
            0.6 if name == "follows_limit" else None,
            f"{name}: sent this, got that",
        )
        for name in CHECK_NAMES
    )
    fields: dict[str, object] = {
        "started": AT,
        "finished": AT + timedelta(minutes=4),
        "state": "finished",
        "checks": checks,
        "ocpp_version": "1.6",
        "vendor": "ACME",
        "model": "Wallbox 22",
        "firmware": "3.1.4",
        "no_ev": no_ev,
        "controller_version": "0.1.0",
    }
    fields.update(kw)
    return Report(charger, **fields)  # type: ignore[arg-type]


NO_EV_CHARGING = "EV checks: No EV charging: no transaction on connector 1 within 30 s."
INCOMPLETE = report(
    "CP06",
    checks=tuple(Check(n, None if n in EV_CHECKS else True, None, f"{n}: ok") for n in CHECK_NAMES),
    incomplete=(NO_EV_CHARGING,),
)


def site() -> list[Report | NotRun]:
    hostile = report(
        "CP<3>&",
        frozenset({"clock"}),
        vendor=HOSTILE,
        firmware='1.0" onload="x',
        checks=(Check("clock", False, 121.46, HOSTILE), Check("connects", True, "1.6", "ok")),
    )
    return [
        report("CP01", reaction_s=0.64),
        report(
            "CP02",
            frozenset({"power_profile", "profile_expiry"}),
            quirks=("holds_last_limit", "power_only"),
            reaction_s=7.44,
            phases_in_use=1,
            units=("A",),
            clock_offset_s=-120.3,
        ),
        report("CP03", no_ev=True),
        Report(
            "CP04",
            AT,
            AT + timedelta(seconds=40),
            "aborted",
            (Check("connects", True),),
            error="the charger disconnected",
        ),
        hostile,
        INCOMPLETE,
        NotRun("CP05"),
    ]


def page(changes: dict[str, list[str]] | None = None) -> str:
    return site_report(site(), site="Demo depot", at=AT, controller_version="0.1.0", changes=changes)


class _Text(HTMLParser):
    """The page's text as a browser shows it (entities decoded), and its elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)


def parsed(html: str) -> _Text:
    p = _Text()
    p.feed(html)
    p.close()
    return p


def test_every_charger_and_check_is_on_the_page() -> None:
    html = page()
    text = " ".join(parsed(html).text)
    assert "Demo depot" in text and "2026-12-09 14:00:00 CET" in text and "depotctl 0.1.0" in text
    for charger in ("CP01", "CP02", "CP03", "CP04", "CP<3>&", "CP05", "CP06"):
        assert charger in text, charger
    for name in CHECK_NAMES:
        assert text.count(name) >= 4, name  # one row per check of each of CP01 … CP03, more in CP02's summary
    assert "7: 2 passed, 4 not passed, 1 not commissioned" in text
    assert "FAILED" in text and "PASSED" in text and "ABORTED" in text and "the charger disconnected" in text
    assert NOT_CONNECTED in text
    # CP03 ran without an EV: its EV checks are there, skipped
    cp03 = html[html.index('id="charger-CP03"') : html.index('id="charger-CP04"')]
    assert cp03.count(">SKIP<") == len(EV_CHECKS) and cp03.count(">PASS<") == len(CHECK_NAMES) - len(EV_CHECKS)
    assert "skipped (--no-ev)" in cp03


def test_the_lines_to_add_and_the_measurements() -> None:
    html = page()
    cp02 = html[html.index('id="charger-CP02"') : html.index('id="charger-CP03"')]
    assert '<pre class="lines">ocpp_quirks: [holds_last_limit, power_only]\nreaction_s: 7.5</pre>' in cp02
    assert "-120.3 s" in cp02 and ">1<" in cp02 and "Units accepted" in cp02
    assert cp02.count('class="check-fail"') == 2  # power_profile, profile_expiry
    cp01 = html[html.index('id="charger-CP01"') : html.index('id="charger-CP02"')]
    assert "0.64 s (the slowest step down)" in cp01 and ">0.6<" in cp01  # measured, shown ...
    assert '<pre class="lines">' not in cp01 and "Nothing to add" in cp01  # ... but within 5 s: no line
    cp03 = html[html.index('id="charger-CP03"') : html.index('id="charger-CP04"')]
    assert "Nothing to add" in cp03


def test_reaction_and_measured_words() -> None:
    assert [reaction_line_s(x) for x in (0.64, 2.0, 2.01, 0.001, 500.0)] == [0.7, 2.0, 2.1, 0.1, 120.0]
    assert site_lines(report("X", quirks=("power_only",))) == ["ocpp_quirks: [power_only]"]
    assert site_lines(report("X")) == []
    # a reaction_s line only above the 5 s the controller allows by default (a shorter one would shorten it)
    assert [site_lines(report("X", reaction_s=r)) for r in (0.05, 4.99, 5.0, 5.01, 7.44)] == [
        [], [], [], ["reaction_s: 5.1"], ["reaction_s: 7.5"],
    ]  # fmt: skip
    assert [measured_text(v) for v in (None, 3, 1.23456, ["A", "W"], [], "1.6", True)] == [
        "—",
        "3",
        "1.23",
        "A, W",
        "—",
        "1.6",
        "yes",
    ]


def test_text_is_escaped() -> None:
    html = page()
    p = parsed(html)
    assert "script" not in p.tags and "img" not in p.tags
    assert not any(name.startswith("on") for name, _ in p.attrs)
    text = " ".join(p.text)
    assert HOSTILE in text and '1.0" onload="x' in text  # shown as written, not run
    assert "&lt;script&gt;" in html and "CP&lt;3&gt;&amp;" in html


def test_self_contained_and_printable() -> None:
    html = page()
    p = parsed(html)
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert not {"script", "link", "img", "iframe", "object"} & set(p.tags)
    assert not re.search(r"(?:src|href)=\"(?!#)", html), "only in-page links"
    assert "url(" not in html and "@import" not in html and "http" not in html
    assert "@media print" in html and "page-break-inside: avoid" in html


def test_changes_since_the_last_commissioning() -> None:
    html = page({"CP01": [], "CP02": ["firmware 3.1.3 → 3.1.4", "power_profile passed before, fails now"]})
    cp01 = html[html.index('id="charger-CP01"') : html.index('id="charger-CP02"')]
    cp02 = html[html.index('id="charger-CP02"') : html.index('id="charger-CP03"')]
    assert "Changes since the last commissioning" in cp01 and "None." in cp01
    assert "<li>firmware 3.1.3 → 3.1.4</li>" in cp02 and "<li>power_profile passed before, fails now</li>" in cp02
    assert "Changes since" not in html[html.index('id="charger-CP03"') :]  # not known: not claimed


def test_an_incomplete_run_has_not_passed() -> None:
    assert not INCOMPLETE.passed and INCOMPLETE.state == "finished" and result_word(INCOMPLETE) == "INCOMPLETE"
    failed = report("X", frozenset({"clock"}), incomplete=(NO_EV_CHARGING,))
    assert result_word(failed) == "FAILED"  # a failed check says more than what was not tested
    html = page()
    cp06 = html[html.index('id="charger-CP06"') : html.index('id="charger-CP05"')]
    assert '<span class="badge fail">INCOMPLETE</span>' in cp06 and "Not tested — the run is incomplete" in cp06
    assert f"<li>{NO_EV_CHARGING}</li>" in cp06
    summary = html[: html.index('id="charger-CP01"')]
    assert '<span class="badge fail">INCOMPLETE</span></td><td>not tested: EV checks</td>' in summary


def test_an_empty_site() -> None:
    text = " ".join(parsed(site_report([], site="Empty", at=AT, controller_version="0.1.0")).text)
    assert "no chargers in the site file" in text


def render_dom(path: Path) -> str:
    """``path`` loaded by headless Chromium: the DOM it built (bounded; the browser's process group
    is killed when it takes longer than :data:`BROWSER_TIMEOUT_S`)."""
    with tempfile.TemporaryDirectory(prefix="depotctl-chromium-") as profile:
        args = [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--dump-dom", path.as_uri(),
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
        )
        try:
            out, err = proc.communicate(timeout=BROWSER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"chromium did not render {path} within {BROWSER_TIMEOUT_S:.0f} s") from None
    dom = out.decode(errors="replace")
    assert proc.returncode == 0 and "</html>" in dom, f"chromium exit {proc.returncode}:\n{err.decode()[-2000:]}"
    return dom


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} absent: install Chromium to render the site report")
def test_renders_in_headless_chromium(tmp_path: Path) -> None:
    path = tmp_path / "site-acceptance.html"
    path.write_text(page({"CP02": ["firmware 3.1.3 → 3.1.4"]}), encoding="utf-8")
    dom = render_dom(path)
    p = parsed(dom)
    text = " ".join(p.text)
    for charger in ("CP01", "CP02", "CP03", "CP04", "CP<3>&", "CP05", "CP06"):
        assert charger in text, charger
    for name in CHECK_NAMES:
        assert name in text, name
    assert "table" in p.tags and p.tags.count("section") == 9  # summary, seven chargers, sign-off
    assert "script" not in p.tags and "img" not in p.tags  # the hostile text stayed text
    assert HOSTILE in text and "ocpp_quirks: [holds_last_limit, power_only]" in text
