"""``depotctl commission``: commission one charger (or every connected one) on the running daemon.

``depotctl commission CHARGER`` starts a run (``POST /api/v1/chargers/{id}/commission``, an admin
token), then asks for the report about once a second (``GET``), printing each check as it
completes — name, PASS/FAIL/SKIP, what was measured, the detail — and at the end the result, the
quirks, the lines to add under the charger in the site file (``ocpp_quirks: […]``, ``reaction_s:
N``) and what changed since its last commissioning. ``--json`` prints only the final report (the
daemon's JSON) on stdout. ``--timeout S`` bounds each run (default 900 s): a run still going then
is left to the daemon and the command fails.

``depotctl commission --all [--report FILE.html]`` does every connected charger of the status, one
after the other (a charger without an EV charging gets the checks that need none, and is reported
INCOMPLETE unless ``--no-ev`` says no EV is to be tested), and writes the site acceptance report
(:mod:`controller.commission.html`), chargers that are not connected included as not
commissioned. Its date, the site's name and the controller's version come from the daemon's
status (its clock, not this machine's).

Exit status: 0 the run passed — every check passed and everything asked was tested (checks skipped
with ``--no-ev``, or not applying to the charger, do not fail it); 1 a check failed, the run was
incomplete (the EV checks not made for want of an EV charging without ``--no-ev``, a check not
made for want of headroom), a run was aborted or timed out, the daemon went away, or the report
could not be written; 2 bad input — a bad
argument, an unknown charger, one that is not connected or already being commissioned, no token or
the wrong one, no daemon answering — with one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.client.api import TOKEN_ENV, ApiClient, Refused, Unreachable, client_from_args, url_arg
from controller.client.args import positive
from controller.commission.html import (
    CHECK_WORD,
    NOT_CONNECTED,
    Entry,
    NotRun,
    failed_checks,
    measured_text,
    result_word,
    site_lines,
    site_report,
)
from controller.commission.report import Check, Report

COMMAND = "depotctl commission"
DEFAULT_RUN_TIMEOUT_S = 900.0
POLL_S = 1.0
"""How often the report is asked for while a run goes on [s]."""
REQUEST_TIMEOUT_S = 10.0
"""How long one HTTP request may take [s]."""
EXIT_FAILED = 1
EXIT_USAGE = 2


class BadInput(Exception):
    """Nothing was started: an unknown charger, one not connected or already being commissioned, no
    token, no daemon … ``str()`` is the one line to print; ``reason`` the daemon's words alone."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


# --- arguments -------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Add ``depotctl commission``."""
    p = sub.add_parser(
        "commission",
        help="commission a charger on the running daemon: check what it does with a profile, print the report",
    )
    p.add_argument("charger", nargs="?", metavar="CHARGER", help="charger id from the site file")
    p.add_argument("--all", action="store_true", help="every connected charger in turn (no CHARGER)")
    p.add_argument(
        "--report", metavar="FILE.html", help="write the site acceptance report (one self-contained HTML page)"
    )
    p.add_argument("--no-ev", action="store_true", help="skip the checks that need an EV plugged in and charging")
    p.add_argument("--json", action="store_true", help="print only the final report as JSON (--all: a list)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", metavar="FILE", help="site file: talk to the daemon at its api.listen address")
    where.add_argument("--url", type=url_arg, metavar="URL", help="base URL of the daemon's API")
    p.add_argument("--token-file", metavar="FILE", help=f"read the admin API token from FILE (default: ${TOKEN_ENV})")
    p.add_argument(
        "--timeout",
        type=positive,
        default=DEFAULT_RUN_TIMEOUT_S,
        metavar="S",
        help=f"give up on a run after S seconds (default {DEFAULT_RUN_TIMEOUT_S:g}); the daemon finishes it",
    )
    p.set_defaults(func=_cmd_commission)


def _check_args(args: argparse.Namespace) -> None:
    if args.all and args.charger is not None:
        raise BadInput(f"give CHARGER or --all, not both (got {args.charger!r} and --all)")
    if not args.all and args.charger is None:
        raise BadInput("give the charger to commission (CHARGER), or --all")
    if args.report is not None:
        path = Path(args.report)
        if path.is_dir():
            raise BadInput(f"--report {args.report}: is a directory; give a file name such as site-acceptance.html")
        if not path.parent.is_dir():
            raise BadInput(f"--report {args.report}: no such directory {str(path.parent)!r}")


# --- the command ---------------------------------------------------------------------------------------------


def _cmd_commission(args: argparse.Namespace) -> int:
    try:
        _check_args(args)
    except BadInput as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    client = client_from_args(args, COMMAND)
    if client is None:
        return EXIT_USAGE
    client.timeout_s = REQUEST_TIMEOUT_S  # --timeout bounds the run, not one request
    out: TextIO | None = None if args.json else sys.stdout
    try:
        if args.all:
            return commission_all(client, no_ev=args.no_ev, timeout_s=args.timeout, out=out, report=args.report)
        outcome = commission_one(client, args.charger, no_ev=args.no_ev, timeout_s=args.timeout, out=out)
    except BadInput as exc:
        print(f"{COMMAND}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unreachable as exc:
        print(f"{exc} (the run, if it started, goes on in the daemon)", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(outcome.answer, indent=2, ensure_ascii=False))
    if args.report is not None and not _write_report(client, [outcome.report], {args.charger: outcome.changes}, args):
        return EXIT_FAILED
    return outcome.code


# --- one run ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one run ended: the daemon's last answer (Report JSON + ``changes``) and the exit status."""

    report: Report
    answer: dict[str, Any]
    code: int
    timed_out: bool = False
    changes: list[str] = field(default_factory=list)


def commission_one(
    client: ApiClient,
    charger: str,
    *,
    no_ev: bool = False,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    out: TextIO | None = None,
    poll_s: float = POLL_S,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Start a run of ``charger`` and follow it to its end (at most ``timeout_s``), printing each new
    check and then the report to ``out`` (None: print nothing). :class:`BadInput` when the daemon
    refused to start it (nothing was started), :class:`Unreachable` when the daemon went away."""
    path = f"/chargers/{urllib.parse.quote(charger, safe='')}/commission"
    try:
        client.request("POST", path, data=json.dumps({"no_ev": no_ev}).encode(), content_type="application/json")
    except Refused as exc:
        reason = _reason(exc)
        if exc.status >= 500:
            raise Unreachable(f"{COMMAND}: {charger}: the daemon failed to start the run: {reason}") from None
        raise BadInput(f"{charger}: {reason}", reason) from None
    except Unreachable as exc:
        raise BadInput(str(exc)) from None
    _say(out, f"commissioning {charger} on {client.base_url}" + (" (EV checks skipped: --no-ev)" if no_ev else ""))
    deadline = monotonic() + timeout_s
    shown = 0
    while True:
        try:
            answer: dict[str, Any] = client.get(path)
        except Refused as exc:
            raise Unreachable(f"{COMMAND}: {charger}: cannot follow the run: {_reason(exc)}") from None
        report = Report.from_json(answer)
        for check in report.checks[shown:]:
            _say(out, "  " + check_line(check))
        shown = max(shown, len(report.checks))
        if report.state != "running":
            break
        left_s = deadline - monotonic()
        if left_s <= 0:
            _say(out, f"{charger}: no result within {timeout_s:g} s: the run goes on in the daemon")
            changes = _changes(answer)
            return Outcome(report, answer, EXIT_FAILED, timed_out=True, changes=changes)
        sleep(min(poll_s, left_s))
    changes = _changes(answer)
    if out is not None:
        first = _first_commissioning(client, charger)
        for line in report_lines(report, changes, first=first):
            _say(out, line)
    return Outcome(report, answer, 0 if report.passed else EXIT_FAILED, changes=changes)


def _changes(answer: dict[str, Any]) -> list[str]:
    changes = answer.get("changes")
    return [str(c) for c in changes] if isinstance(changes, list) else []


def _first_commissioning(client: ApiClient, charger: str) -> bool | None:
    """True when this is the charger's first finished run (history of one), None when not known."""
    path = f"/chargers/{urllib.parse.quote(charger, safe='')}/commission/history?limit=2"
    try:
        history = client.get(path)
    except (Refused, Unreachable):
        return None
    if not isinstance(history, list):
        return None
    finished = [h for h in history if isinstance(h, dict) and h.get("state") != "running"]
    return len(finished) < 2


def _reason(exc: Refused) -> str:
    """The daemon's error in its own words: ``HTTP 404: unknown charger 'X'`` → ``unknown charger 'X'``."""
    return "; ".join(re.sub(r"^HTTP \d+: ", "", line) for line in exc.lines) or f"HTTP {exc.status} {exc.reason}"


def _say(out: TextIO | None, line: str) -> None:
    if out is not None:
        print(line, file=out, flush=True)


# --- the words ------------------------------------------------------------------------------------------------


NAME_W = 17  # "resume_after_zero"
MEASURED_W = 10


def check_line(check: Check) -> str:
    """``PASS  clock              0.3        the charger's clock …`` — one check as it completes."""
    measured = measured_text(check.measured)
    line = f"{CHECK_WORD[check.status]:<4}  {check.name:<{NAME_W}}  {measured:<{MEASURED_W}}"
    return f"{line}  {check.detail}".rstrip() if check.detail else line.rstrip()


def report_lines(report: Report, changes: Sequence[str], *, first: bool | None = None) -> list[str]:
    """The report after the checks: the result, the charger, its quirks, the lines to add to the site
    file, and what changed since the last commissioning (``first``: no earlier run; None: not known)."""
    counts = {s: sum(c.status == s for c in report.checks) for s in ("passed", "failed", "skipped")}
    tally = f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    word = result_word(report)
    if word == "PASSED":
        head = f"{report.charger}: PASSED — every check passed ({tally})"
    elif word == "FAILED":
        names = ", ".join(c.name for c in failed_checks(report))
        head = f"{report.charger}: FAILED — {names} ({tally})"
    elif word == "INCOMPLETE":
        head = f"{report.charger}: INCOMPLETE — not everything was tested ({tally})"
    elif word == "ABORTED":
        head = f"{report.charger}: ABORTED — {report.error or 'the run did not finish'} ({tally})"
    else:
        head = f"{report.charger}: RUNNING — not finished yet ({tally})"
    lines = [head]
    if report.state != "aborted":
        lines += [f"  not tested: {reason}" for reason in report.incomplete]
    what = [
        f"OCPP {report.ocpp_version}" if report.ocpp_version else None,
        " ".join(x for x in (report.vendor, report.model) if x) or None,
        f"firmware {report.firmware}" if report.firmware else None,
    ]
    if any(what):
        lines.append("  charger: " + " · ".join(x for x in what if x))
    lines.append("  quirks: " + (", ".join(report.quirks) if report.quirks else "none"))
    add = site_lines(report)
    if add:
        lines.append(f"  add under {report.charger} in the site file:")
        lines += [f"      {line}" for line in add]
    else:
        lines.append("  nothing to add to the site file")
    if changes:
        lines.append("  changes since the last commissioning:")
        lines += [f"    - {c}" for c in changes]
    elif first is True:
        lines.append(f"  first commissioning of {report.charger}: nothing to compare with")
    elif first is False:
        lines.append("  no change since the last commissioning")
    return lines


# --- every charger, and the site report -----------------------------------------------------------------------


def commission_all(
    client: ApiClient,
    *,
    no_ev: bool = False,
    timeout_s: float = DEFAULT_RUN_TIMEOUT_S,
    out: TextIO | None = None,
    report: str | None = None,
    poll_s: float = POLL_S,
) -> int:
    """Every connected charger of the daemon's status in turn, then the site report (``report``).
    Exit status: 0 all passed, 1 one did not (or the report could not be written), 2 none connected."""
    try:
        status = client.get("/status")
    except Refused as exc:
        raise BadInput(f"cannot read the daemon's status: {_reason(exc)}") from None
    except Unreachable as exc:
        raise BadInput(str(exc)) from None
    chargers = [(str(c["id"]), bool(c.get("connected"))) for c in status.get("chargers", [])]
    connected = [cid for cid, up in chargers if up]
    _say(
        out,
        f"{len(chargers)} charger{'s' if len(chargers) != 1 else ''} in the site file, {len(connected)} connected: "
        + (", ".join(connected) or "none"),
    )
    entries: dict[str, Entry] = {cid: NotRun(cid) for cid, up in chargers if not up}
    answers: list[dict[str, Any]] = []
    changes: dict[str, list[str]] = {}
    code = 0
    for cid in connected:
        try:
            outcome = commission_one(client, cid, no_ev=no_ev, timeout_s=timeout_s, out=out, poll_s=poll_s)
        except BadInput as exc:
            print(f"{COMMAND}: {exc}", file=sys.stderr)
            entries[cid] = NotRun(
                cid, NOT_CONNECTED if "not connected" in exc.reason else f"not commissioned: {exc.reason}"
            )
            if "not connected" not in exc.reason:
                code = EXIT_FAILED
            continue
        entries[cid] = outcome.report
        answers.append(outcome.answer)
        changes[cid] = outcome.changes
        code = max(code, outcome.code)
        _say(out, "")
    ordered = [entries[cid] for cid, _ in chargers]
    ran = [e for e in ordered if isinstance(e, Report)]
    not_run = [e for e in ordered if isinstance(e, NotRun)]
    for e in not_run:
        if out is None:
            print(f"{COMMAND}: {e.charger}: {e.reason}", file=sys.stderr)
    _say(out, summary_line(ran, not_run))
    if out is None:
        print(json.dumps(answers, indent=2, ensure_ascii=False))
    if report is not None and not _write_site_report(client, ordered, changes, report, out):
        return EXIT_FAILED
    if not ran:
        print(f"{COMMAND}: no charger is connected: nothing commissioned", file=sys.stderr)
        return EXIT_USAGE
    return code


def summary_line(ran: Sequence[Report], not_run: Sequence[NotRun]) -> str:
    passed = [r.charger for r in ran if r.passed]
    failed = [r.charger for r in ran if not r.passed]
    parts = [f"{len(passed)} passed"]
    parts.append(f"{len(failed)} not passed ({', '.join(failed)})" if failed else "0 not passed")
    if not_run:
        parts.append(f"{len(not_run)} not commissioned ({', '.join(e.charger for e in not_run)})")
    return "site: " + ", ".join(parts)


def _write_report(
    client: ApiClient, entries: Sequence[Entry], changes: dict[str, list[str]], args: argparse.Namespace
) -> bool:
    return _write_site_report(client, entries, changes, args.report, None if args.json else sys.stdout)


def _write_site_report(
    client: ApiClient, entries: Sequence[Entry], changes: dict[str, list[str]], path: str, out: TextIO | None
) -> bool:
    """Write the HTML page to ``path``; False after saying why it could not be."""
    try:
        status = client.get("/status")
        site, version = str(status["site"]), str(status["version"])
        at = datetime.fromisoformat(status["now"]).astimezone(ZoneInfo(status["timezone"]))
    except (Refused, Unreachable) as exc:
        print(f"{COMMAND}: {path} not written: cannot read the daemon's status: {exc}", file=sys.stderr)
        return False
    except (KeyError, TypeError, ValueError, ZoneInfoNotFoundError) as exc:
        print(
            f"{COMMAND}: {path} not written: the daemon's status has no site, version, now or timezone ({exc})",
            file=sys.stderr,
        )
        return False
    page = site_report(entries, site=site, at=at, controller_version=version, changes=changes)
    try:
        Path(path).write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"{COMMAND}: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return False
    _say(out, f"site acceptance report written to {path}")
    return True
