"""The dated prices file (``tariff.prices_file``): parse it, keep the last good one, re-read it.

**Format** — a CSV, one price step per line: ``start, price per kWh``::

    start,price_per_kwh
    2026-03-29T00:00+01:00,0.182
    2026-03-29T01:00+01:00,0.176
    2026-03-29 03:00,0.171

* ``start`` is an ISO 8601 date-time. With a UTC offset (``+01:00``, ``Z``) it is that instant;
  without one it is **site-local** wall time (``site.timezone``). A site-local time that does not
  exist (the hour the clocks skip) or that happens twice (the hour they repeat) is refused: give
  its offset (``2026-10-25T02:00+01:00``).
* ``price_per_kwh`` is a number in the tariff's currency (negative prices are allowed: day-ahead
  markets have them).
* A header line is optional: the first line is taken as one when neither of its cells parses.
  Blank lines and lines starting with ``#`` are skipped. The separator is ``,``, or ``;`` when the
  first line has one — then a decimal comma (``0,182``) is read too.
* Each step holds until the next one; the last until the end of its (site-local) hour. Lines
  may come in any order (they are sorted); two lines with the same start are refused.

**Bad input** loses nothing: a file with any bad line is refused as a whole, every problem named
``file:line: what`` (:class:`PricesError`), and the prices read before stay in force.
:class:`PricesFile` re-reads the file when its size or modification time changes (:meth:`~PricesFile.poll`,
cheap: one ``stat``) and on demand (:meth:`~PricesFile.reload`, the daemon's SIGHUP).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

PriceStep = tuple[datetime, float]
"""``(from, price per kWh)``: from this instant (aware, UTC) until the next step."""

MAX_FILE_BYTES = 16 * 1024 * 1024
"""A prices file larger than this is refused (a year of 15-minute prices is about 1.5 MB)."""
MAX_PROBLEMS = 20
"""At most this many problems are listed in one refusal (and how many more there were)."""


class PricesError(ValueError):
    """The prices file was refused: every problem as ``file:line: what`` (or ``file: what``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        super().__init__("\n".join(shown) + (f"\n… and {more} more problem(s)" if more > 0 else ""))


def local_instant(naive: datetime, tz: ZoneInfo) -> datetime | str:
    """The instant a site-local wall time names, or why it names none (a DST gap) or two (a repeat)."""
    early = naive.replace(tzinfo=tz, fold=0)
    late = naive.replace(tzinfo=tz, fold=1)
    if early.utcoffset() != late.utcoffset():
        gap = early.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive
        if gap:
            return f"{naive.isoformat()} does not exist in {tz.key} (the clocks skip it): give its UTC offset"
        return (
            f"{naive.isoformat()} happens twice in {tz.key} (the clocks go back): give its UTC offset, e.g. "
            f"{early.isoformat()} or {late.isoformat()}"
        )
    return early.astimezone(UTC)


def _price(cell: str, decimal_comma: bool) -> float | None:
    text = cell.replace(",", ".") if decimal_comma else cell
    try:
        return float(text)
    except ValueError:
        return None


def _start(cell: str, tz: ZoneInfo) -> datetime | str:
    try:
        t = datetime.fromisoformat(cell)
    except ValueError:
        return f"start {cell!r} is not an ISO 8601 date-time (e.g. 2026-03-29T14:00+01:00)"
    if t.tzinfo is None:
        return local_instant(t, tz)
    return t.astimezone(UTC)


def parse_prices(text: str, source: str, tz: ZoneInfo) -> tuple[PriceStep, ...]:
    """The steps of a prices file's ``text`` (read from ``source``, for messages), sorted by start.

    Raises :class:`PricesError` naming every bad line (see the module docstring)."""
    problems: list[str] = []
    rows: list[tuple[int, datetime, float]] = []
    delimiter: str | None = None
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if delimiter is None:
            delimiter = ";" if ";" in line else ","
        cells = [c.strip() for c in next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))]
        is_first, first = first, False
        where = f"{source}:{number}"
        if len(cells) != 2:
            if not (is_first and _looks_like_header(cells)):
                problems.append(f"{where}: expected 2 columns (start, price per kWh), got {len(cells)}")
            continue
        start_cell, price_cell = cells
        start = _start(start_cell, tz) if start_cell else "the start time is empty"
        price = _price(price_cell, delimiter == ";") if price_cell else None
        if is_first and isinstance(start, str) and price is None:
            continue  # a header
        if isinstance(start, str):
            problems.append(f"{where}: {start}")
        if price is None:
            problems.append(f"{where}: price {price_cell!r} is not a number" if price_cell else f"{where}: no price")
        elif not math.isfinite(price):
            problems.append(f"{where}: price {price_cell!r} is not a finite number")
        if isinstance(start, datetime) and price is not None and math.isfinite(price):
            rows.append((number, start, price))
    seen: dict[datetime, int] = {}
    for number, start, _ in rows:
        if start in seen:
            problems.append(
                f"{source}:{number}: start {start.isoformat()} is already on line {seen[start]} (one price per start)"
            )
        else:
            seen[start] = number
    if not rows and not problems:
        problems.append(f"{source}: no prices in the file")
    if problems:
        problems.sort(key=_line_of)
        raise PricesError(problems)
    return tuple(sorted(((start, price) for _, start, price in rows), key=lambda s: s[0]))


def _looks_like_header(cells: list[str]) -> bool:
    return all(_price(c, True) is None for c in cells) and not any(c[:1].isdigit() for c in cells)


def _line_of(problem: str) -> int:
    head = problem.split(": ", 1)[0]
    tail = head.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


Signature = tuple[int, int, int]
"""What tells a changed file apart without reading it: (size, mtime in ns, inode)."""


@dataclass(frozen=True)
class PricesRead:
    """One read of the prices file: the steps it gave (``ok``), or why it was refused (``error``)."""

    ok: bool
    steps: int
    error: str | None = None


class PricesFile:
    """The prices file at ``path``: the last good steps, and the last refusal while it stands.

    Only a successful read replaces :attr:`steps`; a missing, unreadable or bad file sets
    :attr:`error` (and :attr:`error_at`) and keeps the steps read before. The next good read clears
    the error.
    """

    def __init__(self, path: str | Path, tz: ZoneInfo) -> None:
        self.path = Path(path)
        self.tz = tz
        self.steps: tuple[PriceStep, ...] = ()
        self.loaded_at: datetime | None = None
        self.error: str | None = None
        self.error_at: datetime | None = None
        self._tried: Signature | None = None  # the file's signature at the last read (good or bad)
        self._tried_once = False

    def signature(self) -> Signature | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_size, st.st_mtime_ns, st.st_ino)

    def poll(self, now: datetime) -> PricesRead | None:
        """Read the file again if it changed since the last read (or was never read); None if not."""
        sig = self.signature()
        if self._tried_once and sig == self._tried:
            return None
        return self._read(now, sig)

    def reload(self, now: datetime) -> PricesRead:
        """Read the file now, changed or not (SIGHUP)."""
        return self._read(now, self.signature())

    def _read(self, now: datetime, sig: Signature | None) -> PricesRead:
        self._tried, self._tried_once = sig, True
        try:
            if sig is not None and sig[0] > MAX_FILE_BYTES:
                too_big = f"{self.path}: {sig[0]} bytes, more than the {MAX_FILE_BYTES} a prices file may have"
                raise PricesError([too_big])
            try:
                raw = self.path.read_bytes()
            except OSError as exc:
                raise PricesError([f"{self.path}: cannot read: {exc.strerror or exc}"]) from None
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise PricesError([f"{self.path}: not UTF-8 text (byte {exc.start})"]) from None
            steps = parse_prices(text, str(self.path), self.tz)
        except PricesError as exc:
            self.error, self.error_at = str(exc), now
            return PricesRead(False, len(self.steps), self.error)
        self.steps, self.loaded_at = steps, now
        self.error = self.error_at = None
        return PricesRead(True, len(steps))
