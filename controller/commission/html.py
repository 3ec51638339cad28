"""The site acceptance report: every charger's commissioning on one self-contained HTML page.

:func:`site_report` is a pure function of the reports, the site's name, the date and the
controller's version (``depotctl commission --all --report FILE`` passes the daemon's clock, never
the wall clock). The page has no external assets (the style is inline, no script, no font or
image fetched), every text from a charger or the site file is escaped, and it prints: a summary
table, then per charger its result, what it is (OCPP version, vendor, model, firmware), what was
measured, a table of every check (PASS / FAIL / SKIP as words, not colour alone), what the run
could not test (an incomplete run: not passed), the lines to add to the site file and what
changed since its last commissioning; a charger that was not run (not connected) is listed as
such. A sign-off block ends it.

The helpers :func:`measured_text`, :func:`site_lines` and :func:`result_word` are shared with the
terminal output of ``depotctl commission`` so both say the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

from controller.commission.options import IEC_61851_REACTION_S
from controller.commission.report import Check, Report, reaction_line_s

__all__ = [
    "CHECK_WORD",
    "NOT_CONNECTED",
    "Entry",
    "NotRun",
    "failed_checks",
    "measured_text",
    "reaction_line_s",
    "result_word",
    "site_lines",
    "site_report",
]

NONE = "—"
NOT_CONNECTED = "not connected — not commissioned"


@dataclass(frozen=True)
class NotRun:
    """A charger of the site that was not commissioned, and why (e.g. :data:`NOT_CONNECTED`)."""

    charger: str
    reason: str = NOT_CONNECTED


Entry = Report | NotRun
"""One charger on the page: its report, or why it has none."""

CHECK_WORD = {"passed": "PASS", "failed": "FAIL", "skipped": "SKIP"}


# --- shared with the terminal ---------------------------------------------------------------------------


def measured_text(value: float | int | str | list[str] | None) -> str:
    """A check's ``measured`` as text: ``—`` for none, numbers to two decimals at most, lists joined."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{round(value, 2):g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or NONE
    return str(value)


def site_lines(report: Report) -> list[str]:
    """The lines to add under the charger in the site file: its ``ocpp_quirks`` (when it needs any)
    and its ``reaction_s`` (:attr:`Report.reaction_s_line`: only a reaction slower than the 5 s the
    controller allows by default); empty when there is nothing to add."""
    return [line for line in (report.ocpp_quirks_line, report.reaction_s_line) if line]


def result_word(report: Report) -> str:
    """``PASSED``, ``FAILED`` (a check failed), ``INCOMPLETE`` (finished without a failed check but
    without testing everything asked: :attr:`Report.incomplete`), ``ABORTED`` (the run did not
    finish) or ``RUNNING``."""
    if report.state == "aborted":
        return "ABORTED"
    if report.state == "running":
        return "RUNNING"
    if report.failed:
        return "FAILED"
    return "INCOMPLETE" if report.incomplete else "PASSED"


def failed_checks(report: Report) -> list[Check]:
    return [c for c in report.checks if c.passed is False]


# --- the page --------------------------------------------------------------------------------------------


STYLE = """
:root { --pass: #17692f; --fail: #b3141c; --skip: #5f6368; --line: #c8ccd0; }
* { box-sizing: border-box; }
body { font: 11pt/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #111; margin: 2em auto; max-width: 60em; padding: 0 1em; }
h1 { font-size: 1.6em; margin: 0 0 .3em; }
h2 { font-size: 1.25em; margin: 1.6em 0 .4em; border-bottom: 2px solid #111; padding-bottom: .15em; }
h3 { font-size: 1em; margin: 1em 0 .3em; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1.2em; margin: .4em 0; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
table { border-collapse: collapse; width: 100%; margin: .4em 0; }
th, td { border: 1px solid var(--line); padding: .25em .45em; text-align: left; vertical-align: top; }
th { background: #eef0f2; }
td.measured { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.detail { font-size: .92em; }
.badge { display: inline-block; font-weight: 700; padding: 0 .4em; border: 1.5px solid currentColor;
         border-radius: .25em; letter-spacing: .03em; }
.pass { color: var(--pass); }
.fail { color: var(--fail); }
.skip { color: var(--skip); }
tr.check-fail td { background: #fdecec; }
tr.check-fail td:first-child { color: var(--fail); font-weight: 600; }
tr.check-skip td { color: var(--skip); }
pre.lines { background: #f4f5f6; border: 1px solid var(--line); padding: .5em .8em; margin: .3em 0;
            white-space: pre-wrap; }
p.none { color: var(--skip); font-style: italic; }
section.charger { break-inside: avoid-page; page-break-inside: avoid; }
.signoff { margin-top: 3em; display: grid; grid-template-columns: repeat(3, 1fr); gap: 2em; }
.signoff div { border-top: 1px solid #111; padding-top: .2em; font-size: .9em; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid-page; page-break-after: avoid; }
  tr { break-inside: avoid; page-break-inside: avoid; }
}
"""


def site_report(
    entries: Sequence[Entry],
    *,
    site: str,
    at: datetime,
    controller_version: str,
    changes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The whole page. ``entries``: one per charger, in the order to show them; ``at``: the date of
    the report (aware; its zone is the one every time on the page is shown in); ``changes``: per
    charger the lines that differ from its previous commissioning (absent: not known)."""
    changes = changes or {}
    date = _when(at, at)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Site acceptance — {_e(site)} — {_e(at.strftime('%Y-%m-%d'))}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        "<header>",
        "<h1>Site acceptance report</h1>",
        '<dl class="meta">',
        f"<dt>Site</dt><dd>{_e(site)}</dd>",
        f"<dt>Date</dt><dd>{_e(date)}</dd>",
        f"<dt>Controller</dt><dd>depotctl {_e(controller_version)}</dd>",
        f"<dt>Chargers</dt><dd>{_e(_counts(entries))}</dd>",
        "</dl>",
        "</header>",
        _summary(entries),
    ]
    parts += [_charger(e, at, changes.get(e.charger)) for e in entries]
    parts += [
        '<section class="signoff">',
        "<div>Commissioned by (name)</div><div>Date</div><div>Signature</div>",
        "</section>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _when(when: datetime | None, zone_of: datetime) -> str:
    if when is None:
        return NONE
    local = when.astimezone(zone_of.tzinfo)
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


def _counts(entries: Sequence[Entry]) -> str:
    reports = [e for e in entries if isinstance(e, Report)]
    passed = sum(r.passed for r in reports)
    not_run = len(entries) - len(reports)
    text = f"{len(entries)}: {passed} passed, {len(reports) - passed} not passed"
    return text + f", {not_run} not commissioned" if not_run else text


def _result_badge(entry: Entry) -> str:
    if isinstance(entry, NotRun):
        return '<span class="badge skip">NOT COMMISSIONED</span>'
    word = result_word(entry)
    return f'<span class="badge {"pass" if word == "PASSED" else "fail"}">{word}</span>'


def _summary(entries: Sequence[Entry]) -> str:
    rows = []
    for e in entries:
        if isinstance(e, NotRun):
            rows.append(
                f'<tr><td><a href="#{_anchor(e.charger)}">{_e(e.charger)}</a></td><td>{_result_badge(e)}</td>'
                f"<td>{_e(e.reason)}</td><td>{NONE}</td></tr>"
            )
            continue
        failed = ", ".join(c.name for c in failed_checks(e))
        if e.incomplete:
            failed = "; ".join(x for x in (failed, f"not tested: {_not_tested_names(e)}") if x)
        failed = failed or NONE
        lines = "<br>".join(f"<code>{_e(line)}</code>" for line in site_lines(e)) or NONE
        rows.append(
            f'<tr><td><a href="#{_anchor(e.charger)}">{_e(e.charger)}</a></td><td>{_result_badge(e)}</td>'
            f"<td>{_e(failed)}</td><td>{lines}</td></tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="4">no chargers in the site file</td></tr>')
    return "\n".join(
        [
            "<section><h2>Summary</h2>",
            "<table><thead><tr><th>charger</th><th>result</th><th>failed checks (or why not run)</th>"
            "<th>lines to add to the site file</th></tr></thead><tbody>",
            *rows,
            "</tbody></table></section>",
        ]
    )


def _not_tested_names(report: Report) -> str:
    """What an incomplete run did not test, by name (``EV checks``, ``profile_expiry`` …)."""
    return ", ".join(dict.fromkeys(reason.split(":", 1)[0] for reason in report.incomplete))


def _anchor(charger: str) -> str:
    return "charger-" + "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in charger)


def _charger(entry: Entry, at: datetime, changes: Sequence[str] | None) -> str:
    head = f'<section class="charger" id="{_anchor(entry.charger)}"><h2>{_e(entry.charger)} {_result_badge(entry)}</h2>'
    if isinstance(entry, NotRun):
        return f'{head}<p class="none">{_e(entry.reason)}.</p></section>'
    r = entry
    facts = [
        ("OCPP", r.ocpp_version),
        ("Vendor", r.vendor),
        ("Model", r.model),
        ("Firmware", r.firmware),
        ("Started", _when(r.started, at)),
        ("Finished", _when(r.finished, at)),
        ("Clock offset", None if r.clock_offset_s is None else f"{r.clock_offset_s:+.1f} s (charger minus controller)"),
        ("Phases in use", r.phases_in_use),
        ("Units accepted", ", ".join(r.units) or None),
        ("EV reaction", None if r.reaction_s is None else f"{measured_text(r.reaction_s)} s (the slowest step down)"),
        ("EV checks", "skipped (--no-ev)" if r.no_ev else None),
        ("Aborted", r.error if r.state != "finished" else None),
    ]
    always = {"OCPP", "Vendor", "Model", "Firmware"}  # shown as — when unknown; the rest only when there
    meta = "".join(
        f"<dt>{_e(k)}</dt><dd>{_e(NONE if v is None else v)}</dd>" for k, v in facts if v is not None or k in always
    )
    rows = [_check_row(c) for c in r.checks] or ['<tr><td colspan="4">no check was made</td></tr>']
    lines = site_lines(r)
    add = (
        f'<pre class="lines">{_e(chr(10).join(lines))}</pre>'
        if lines
        else '<p class="none">Nothing to add: no quirk needed, no reaction slower than'
        f" {IEC_61851_REACTION_S:g} s measured.</p>"
    )
    parts = [
        head,
        f'<dl class="meta">{meta}</dl>',
        "<table><thead><tr><th>check</th><th>result</th><th>measured</th><th>detail</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
    ]
    if r.incomplete:
        parts += [
            "<h3>Not tested — the run is incomplete</h3>",
            '<ul class="incomplete">' + "".join(f"<li>{_e(x)}</li>" for x in r.incomplete) + "</ul>",
        ]
    parts += [
        f"<h3>Add under <code>{_e(r.charger)}</code> in the site file</h3>",
        add,
    ]
    if changes is not None:
        parts.append("<h3>Changes since the last commissioning</h3>")
        parts.append(
            "<ul>" + "".join(f"<li>{_e(c)}</li>" for c in changes) + "</ul>" if changes else '<p class="none">None.</p>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def _check_row(check: Check) -> str:
    css = {"passed": "pass", "failed": "fail", "skipped": "skip"}[check.status]
    return (
        f'<tr class="check-{css}"><td>{_e(check.name)}</td>'
        f'<td><span class="badge {css}">{CHECK_WORD[check.status]}</span></td>'
        f'<td class="measured">{_e(measured_text(check.measured))}</td>'
        f'<td class="detail">{_e(check.detail) or NONE}</td></tr>'
    )
