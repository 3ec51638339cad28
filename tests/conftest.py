"""The suite's root conftest: optionally runs the whole session with the wall clock pinned.

No test may depend on the day or the hour it runs (tests take injected clocks, see
``tests/daemon/clocks.py``). To check that, CI runs the date-sensitive tests again with the
process's wall clock moved to chosen instants (``.ci/run``)::

    DEPOTCTL_TEST_WALL_CLOCK='2026-12-07T00:30:00+01:00[Europe/Amsterdam]' .venv/bin/python -m pytest tests/api

The value is an ISO 8601 date-time with its UTC offset, optionally followed by an IANA zone in
brackets (RFC 9557). From ``pytest_configure`` on (so collection sees it too) until the session
ends, time-machine moves ``time.time``, ``datetime.now``, ``date.today`` and friends there and lets
them tick at the real pace (``time.monotonic`` and ``perf_counter`` are left alone, so asyncio,
timeouts and Hypothesis deadlines are not disturbed). With a zone, the process's local time zone
(``TZ``) is that zone as well. Unset or empty: nothing is patched.

Only this process is moved: a daemon a test starts as a subprocess, SQLite's ``'now'`` and a
browser keep the machine's clock.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import time_machine

WALL_CLOCK_ENV = "DEPOTCTL_TEST_WALL_CLOCK"
_FORMAT = re.compile(r"^(?P<iso>[^\[\]]+?)(?:\[(?P<zone>[^\[\]]+)\])?$")
_TRAVELLER = pytest.StashKey[time_machine.travel]()


def wall_clock_from_env(environ: Mapping[str, str] = os.environ) -> datetime | None:
    """The instant ``DEPOTCTL_TEST_WALL_CLOCK`` names (aware; in its zone if one is given), or None."""
    raw = environ.get(WALL_CLOCK_ENV, "").strip()
    if not raw:
        return None
    match = _FORMAT.match(raw)
    try:
        if match is None:
            raise ValueError("expected YYYY-MM-DDTHH:MM[:SS]±HH:MM, optionally followed by [Area/City]")
        at = datetime.fromisoformat(match["iso"])
        if at.tzinfo is None:
            raise ValueError("the instant needs its UTC offset (e.g. +01:00), else it is not one instant")
        if match["zone"] is not None:
            zone = ZoneInfo(match["zone"])
            local = at.astimezone(zone)
            if local.utcoffset() != at.utcoffset():
                raise ValueError(f"{match['zone']} is at UTC{local.strftime('%z')} then, not {at.strftime('%z')}")
            at = local
    except (ValueError, ZoneInfoNotFoundError) as error:
        raise pytest.UsageError(f"{WALL_CLOCK_ENV}={raw!r}: {error}") from None
    return at


def pytest_configure(config: pytest.Config) -> None:
    at = wall_clock_from_env()
    if at is None:
        return
    traveller = time_machine.travel(at, tick=True)
    traveller.start()
    config.stash[_TRAVELLER] = traveller


def pytest_unconfigure(config: pytest.Config) -> None:
    traveller = config.stash.get(_TRAVELLER, None)
    if traveller is not None:
        traveller.stop()
        del config.stash[_TRAVELLER]


def _pinned_line() -> str | None:
    at = wall_clock_from_env()
    if at is None:
        return None
    return f"wall clock pinned ({WALL_CLOCK_ENV}): {at.isoformat()} {at.strftime('%a')} {at.tzname()}, ticking"


def pytest_report_header(config: pytest.Config) -> str | None:
    return _pinned_line()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    line = _pinned_line()  # also under -q, which hides the header: a log says which run this was
    if line is not None:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def pinned_wall_clock() -> datetime | None:
    """Where the session's wall clock started (``DEPOTCTL_TEST_WALL_CLOCK``), or None when unpinned."""
    return wall_clock_from_env()
