"""The prices file: its format, every kind of bad line, keeping the previous prices, re-reading on change.

Real files in ``tmp_path``; times are pinned instants passed in (nothing reads the wall clock).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.energy.prices import PricesError, PricesFile, parse_prices

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 3, 28, 12, 0, tzinfo=AMS)  # the day before the spring DST change


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def test_naive_times_are_site_local_across_the_spring_change() -> None:
    steps = parse_prices("2026-03-29T01:00,0.10\n2026-03-29T03:00,0.20\n", "p.csv", AMS)
    assert steps == ((utc(2026, 3, 29, 0), 0.10), (utc(2026, 3, 29, 1), 0.20))  # one hour apart: 02:00 never was


def test_every_format_the_module_promises() -> None:
    text = (
        "start,price_per_kwh\n"
        "# day-ahead, EUR/kWh\n"
        "\n"
        "2026-03-29T04:00,0.171\n"  # naive → CEST (+02:00), listed first: lines are sorted
        "2026-03-29T00:00+01:00,0.182\n"
        "2026-03-29T00:30Z,-0.012\n"  # Z, and a negative price
        '"2026-03-29T00:15:00+01:00", 0.176\n'  # quoted, a space after the comma
    )
    assert parse_prices(text, "prices.csv", AMS) == (
        (utc(2026, 3, 28, 23, 0), 0.182),
        (utc(2026, 3, 28, 23, 15), 0.176),
        (utc(2026, 3, 29, 0, 30), -0.012),
        (utc(2026, 3, 29, 2, 0), 0.171),
    )


def test_semicolons_with_a_decimal_comma_and_no_header() -> None:
    text = "2026-03-28T22:00;0,25\n2026-03-28T23:00;0,5\n"
    assert parse_prices(text, "p.csv", AMS) == ((utc(2026, 3, 28, 21), 0.25), (utc(2026, 3, 28, 22), 0.5))


BAD_LINES = [
    ("2026-03-28T10:00,0.2,EUR", "expected 2 columns (start, price per kWh), got 3"),
    ("2026-03-28T10:00", "expected 2 columns (start, price per kWh), got 1"),
    (",0.2", "the start time is empty"),
    ("tomorrow,0.2", "start 'tomorrow' is not an ISO 8601 date-time"),
    ("2026-13-01T00:00,0.2", "start '2026-13-01T00:00' is not an ISO 8601 date-time"),
    ("2026-03-29T02:30,0.2", "2026-03-29T02:30:00 does not exist in Europe/Amsterdam (the clocks skip it)"),
    ("2026-10-25T02:30,0.2", "2026-10-25T02:30:00 happens twice in Europe/Amsterdam (the clocks go back)"),
    ("2026-03-28T10:00,cheap", "price 'cheap' is not a number"),
    ("2026-03-28T10:00,", "no price"),
    ("2026-03-28T10:00,nan", "price 'nan' is not a finite number"),
    ("2026-03-28T10:00,-inf", "price '-inf' is not a finite number"),
    ("2026-03-28T10:00,0,25", "expected 2 columns (start, price per kWh), got 3"),  # a decimal comma needs ';'
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_each_bad_line_is_named_by_file_and_line(line: str, message: str) -> None:
    text = f"start,price\n2026-03-28T09:00,0.30\n{line}\n2026-03-28T11:00,0.31\n"
    with pytest.raises(PricesError) as err:
        parse_prices(text, "/var/lib/depotctl/prices.csv", AMS)
    (problem,) = err.value.problems  # the good lines around it are no problem
    assert problem.startswith(f"/var/lib/depotctl/prices.csv:3: {message}"), problem


def test_a_duplicate_start_names_both_lines_even_when_written_differently() -> None:
    text = "2026-03-28T09:00,0.30\n2026-03-28T10:00,0.31\n2026-03-28T09:00+01:00,0.32\n"
    with pytest.raises(PricesError) as err:
        parse_prices(text, "p.csv", AMS)
    dup = "p.csv:3: start 2026-03-28T08:00:00+00:00 is already on line 1 (one price per start)"
    assert err.value.problems == (dup,)


def test_every_problem_is_listed_in_line_order() -> None:
    text = "2026-03-28T09:00,x\n2026-03-28T09:00,0.3\nnever,0.1\n2026-03-28T09:00,0.4\n"
    with pytest.raises(PricesError) as err:
        parse_prices(text, "p.csv", AMS)
    assert [p.split(":")[1] for p in err.value.problems] == ["1", "3", "4"]
    assert str(err.value).count("\n") == 2


def test_a_file_without_prices_is_refused() -> None:
    for text in ("", "start,price\n", "# nothing yet\n\n"):
        with pytest.raises(PricesError, match=r"^p\.csv: no prices in the file$"):
            parse_prices(text, "p.csv", AMS)


def _write(path: Path, text: str | bytes, mtime_s: float) -> None:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    os.utime(path, (mtime_s, mtime_s))  # a distinct modification time per version, whatever the file system


def test_a_bad_file_keeps_the_previous_prices_until_a_good_one_comes(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    book = PricesFile(path, AMS)
    t0 = NOW

    first = book.poll(t0)  # missing: refused, nothing to keep yet
    assert first is not None and not first.ok and book.steps == ()
    assert book.error == f"{path}: cannot read: No such file or directory"
    assert book.poll(t0 + timedelta(seconds=3)) is None  # still missing: not read (nor logged) again

    _write(path, "2026-03-28T12:00,0.30\n2026-03-28T13:00,0.35\n", 1_000_000)
    read = book.poll(t0 + timedelta(seconds=6))
    assert read is not None and read.ok and read.steps == 2
    good = book.steps
    assert book.loaded_at == t0 + timedelta(seconds=6) and book.error is None
    assert book.poll(t0 + timedelta(seconds=9)) is None  # unchanged: not read again

    _write(path, "2026-03-28T12:00,0.30\n2026-03-28T13:00,O.35\n", 1_000_100)  # a letter O: refused
    bad = book.poll(t0 + timedelta(seconds=12))
    assert bad is not None and not bad.ok
    assert book.error == f"{path}:2: price 'O.35' is not a number"
    assert book.error_at == t0 + timedelta(seconds=12)
    assert book.steps == good and book.loaded_at == t0 + timedelta(seconds=6)  # the previous prices stay

    _write(path, b"2026-03-28T12:00,0.30\n\xff\n", 1_000_200)
    assert (r := book.poll(t0 + timedelta(seconds=15))) is not None and not r.ok
    assert book.error == f"{path}: not UTF-8 text (byte 22)" and book.steps == good

    path.unlink()  # the operator's cron replaces it: gone for a moment
    assert (r := book.poll(t0 + timedelta(seconds=18))) is not None and not r.ok and book.steps == good

    _write(path, "2026-03-28T12:00,0.30\n2026-03-28T13:00,0.29\n2026-03-28T14:00,0.28\n", 1_000_300)
    fixed = book.poll(t0 + timedelta(seconds=21))
    assert fixed is not None and fixed.ok and book.error is None and book.error_at is None
    assert [p for _, p in book.steps] == [0.30, 0.29, 0.28]


def test_same_size_new_mtime_is_read_again_and_reload_reads_regardless(tmp_path: Path) -> None:
    path = tmp_path / "prices.csv"
    _write(path, "2026-03-28T12:00,0.30\n", 1_000_000)
    book = PricesFile(path, AMS)
    assert (r := book.poll(NOW)) is not None and r.ok
    _write(path, "2026-03-28T12:00,0.31\n", 1_000_050)  # same size, new content
    assert (r := book.poll(NOW + timedelta(seconds=3))) is not None and r.ok
    assert book.steps[0][1] == 0.31
    assert book.poll(NOW + timedelta(seconds=6)) is None
    again = book.reload(NOW + timedelta(seconds=9))  # SIGHUP: read whatever the file says
    assert again.ok and book.loaded_at == NOW + timedelta(seconds=9)
