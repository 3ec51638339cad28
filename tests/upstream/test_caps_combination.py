"""How stored CSMS profiles combine into a session's cap (OCPP 1.6 §3.13, 2.0.1 K01/K08), in
depotctl's units, over time: stack levels, Tx over TxDefault, ChargePointMax over both, its split
among sessions, W → A, numberPhases, DC, validity, Relative and Recurring schedules (across
midnight and a DST change)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import pytest

from controller.upstream.caps import CapBook
from tests.upstream.payloads import T0, HandClock, profile, set_request

H = timedelta(hours=1)
INF = math.inf
AMS = ZoneInfo("Europe/Amsterdam")


def _book(clock: HandClock | None = None) -> tuple[CapBook, HandClock]:
    clock = clock or HandClock()
    return CapBook(clock), clock


def _set(book: CapBook, version: str, connector: int, prof: dict[str, Any]) -> None:
    answer = book.set_profile("CP1", version, set_request(version, connector, prof))
    assert answer.status == "Accepted", answer.reason


def _cap(
    book: CapBook, tx: str | None = "7", *, connector: int = 1, unit: Literal["A", "kW"] = "A", phases: int = 3,
    volts: float = 230.0, start: datetime = T0, hours: float = 6.0, sharing: int | None = None,
) -> tuple[tuple[datetime, float], ...]:
    return book.cap_steps("CP1", connector, tx, unit=unit, phases_used=phases, voltage_v=volts, start=start,
                          end=start + timedelta(hours=hours), sharing=sharing)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_the_highest_stack_level_in_force_wins(version: str) -> None:
    """A higher stack level applies while it is in force (its start … start + duration); before and
    after it the lower one does."""
    book, _ = _book()
    _set(book, version, 0, profile(version, 1, stack=0, periods=((0, 20.0),)))
    _set(book, version, 0, profile(version, 2, stack=3, start=T0 + H, duration=3600, periods=((0, 10.0), (1800, 12.0))))
    _set(book, version, 0, profile(version, 3, stack=1, start=T0 + 4 * H, periods=((0, 25.0),)))
    assert _cap(book, None) == (
        (T0, 20.0), (T0 + H, 10.0), (T0 + 1.5 * H, 12.0), (T0 + 2 * H, 20.0), (T0 + 4 * H, 25.0),
    )


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_tx_profile_overrides_tx_default_even_above_it_and_charge_point_max_caps_both(version: str) -> None:
    book, _ = _book()
    book.transaction_started("CP1", 1, "7")
    _set(book, version, 0, profile(version, 1, stack=5, periods=((0, 10.0),)))
    assert _cap(book) == ((T0, 10.0),)
    _set(book, version, 1, profile(version, 2, "TxProfile", stack=0, tx=7, periods=((0, 20.0),)))
    assert _cap(book) == ((T0, 20.0),)  # Tx wins over TxDefault, whatever their stack levels
    assert _cap(book, "8", connector=2) == ((T0, 10.0),)  # another transaction: its TxDefault
    _set(book, version, 0, profile(version, 3, "ChargePointMaxProfile", start=T0 + H, duration=7200,
                                   periods=((0, 16.0),)))
    assert _cap(book) == ((T0, 20.0), (T0 + H, 16.0), (T0 + 3 * H, 20.0))
    book.transaction_ended("CP1", 1, "7")  # its TxProfile ends with it
    assert _cap(book, None) == ((T0, 10.0),)


def test_a_tx_default_on_the_connector_beats_connector_0_at_the_same_stack_level() -> None:
    book, _ = _book()
    _set(book, "1.6", 0, profile("1.6", 1, stack=2, periods=((0, 10.0),)))
    _set(book, "1.6", 2, profile("1.6", 2, stack=2, periods=((0, 14.0),)))
    _set(book, "1.6", 2, profile("1.6", 3, stack=1, periods=((0, 6.0),)))
    assert _cap(book, None, connector=2) == ((T0, 14.0),)
    assert _cap(book, None, connector=1) == ((T0, 10.0),)


def test_charge_point_max_is_shared_equally_by_the_sessions_on_the_charger() -> None:
    """The charger's total: by default split among the transactions the book knows there, or as
    the caller says (the sessions the planner has on it): their sum stays under the cap."""
    book, _ = _book()
    _set(book, "2.0.1", 0, profile("2.0.1", 1, "ChargePointMaxProfile", periods=((0, 30.0),)))
    assert _cap(book) == ((T0, 30.0),)
    book.transaction_started("CP1", 1, "7")
    book.transaction_started("CP1", 2, "8")
    assert _cap(book) == ((T0, 15.0),)
    assert _cap(book, sharing=3) == ((T0, 10.0),)
    _set(book, "2.0.1", 1, profile("2.0.1", 2, "TxProfile", stack=1, tx="7", periods=((0, 12.0),)))
    assert _cap(book) == ((T0, 12.0),)  # the lower of its share and its TxProfile


def test_watts_become_amps_per_used_phase() -> None:
    """W is the total over the phases used: 11 040 W is 16 A on each of 3 phases at 230 V and
    48 A on one; a ChargePointMax in W is shared before it is divided."""
    book, _ = _book()
    _set(book, "1.6", 0, profile("1.6", 1, unit="W", periods=((0, 11040.0),)))
    assert _cap(book, None, phases=3) == ((T0, pytest.approx(16.0)),)
    assert _cap(book, None, phases=1) == ((T0, pytest.approx(48.0)),)
    assert _cap(book, None, phases=1, volts=400.0) == ((T0, pytest.approx(27.6)),)  # a line-to-line charger
    _set(book, "1.6", 0, profile("1.6", 2, "ChargePointMaxProfile", unit="W", periods=((0, 13800.0),)))
    assert _cap(book, None, phases=3, sharing=2) == ((T0, pytest.approx(10.0)),)


def test_number_phases_limits_the_phases_an_amp_cap_may_use() -> None:
    """numberPhases 1 at 16 A: a three-phase session may draw the same total, 16/3 A per phase (no
    phase above 16 A, no more power than one phase at 16 A); a single-phase one 16 A. Without it
    OCPP assumes 3."""
    book, _ = _book()
    _set(book, "2.0.1", 0, profile("2.0.1", 1, periods=((0, 16.0, 1), (3600, 16.0, 2), (7200, 16.0))))
    assert _cap(book, None, phases=3, hours=3) == (
        (T0, pytest.approx(16.0 / 3)), (T0 + H, pytest.approx(32.0 / 3)), (T0 + 2 * H, 16.0),
    )
    assert _cap(book, None, phases=1, hours=3) == ((T0, 16.0),)


def test_a_dc_session_gets_kilowatts() -> None:
    """DC limits are kW in depotctl: W / 1000; A per phase of the charger's AC input × its phases
    (numberPhases where given) × the voltage per phase."""
    book, _ = _book()
    _set(book, "1.6", 0, profile("1.6", 1, unit="W", periods=((0, 50000.0),)))
    assert _cap(book, None, unit="kW") == ((T0, 50.0),)
    _set(book, "1.6", 0, profile("1.6", 2, stack=1, periods=((0, 32.0), (3600, 32.0, 1))))
    assert _cap(book, None, unit="kW", hours=2) == ((T0, pytest.approx(22.08)), (T0 + H, pytest.approx(7.36)))


def test_validity_and_start_in_the_future_and_expiry() -> None:
    """No cap before validFrom or an Absolute schedule's start; inf once the last one ends."""
    book, clock = _book()
    _set(book, "2.0.1", 0, profile("2.0.1", 1, valid_from=T0 + H, valid_to=T0 + 3 * H, periods=((0, 10.0),)))
    _set(book, "2.0.1", 0, profile("2.0.1", 2, stack=1, start=T0 + 2 * H, duration=1800, periods=((0, 8.0),)))
    assert _cap(book, None) == ((T0 + H, 10.0), (T0 + 2 * H, 8.0), (T0 + 2.5 * H, 10.0), (T0 + 3 * H, INF))
    clock.advance(hours=4)  # both have ended: dropped from the book
    assert _cap(book, None, start=clock.now) == ()
    assert [r for r in book.snapshot() if r["row"] == "profile"] == []


def test_relative_profiles_count_from_the_transactions_start_on_our_clock() -> None:
    clock = HandClock(T0 - timedelta(minutes=30))
    book, _ = _book(clock)
    book.transaction_started("CP1", 1, "7")
    clock.now = T0
    _set(book, "1.6", 1, profile("1.6", 1, "TxProfile", kind="Relative", duration=7200, periods=((0, 10.0),
                                                                                                 (3600, 20.0))))
    _set(book, "1.6", 0, profile("1.6", 2, kind="Relative", periods=((0, 6.0), (600, 9.0))))
    assert _cap(book, "7") == ((T0, 10.0), (T0 + 0.5 * H, 20.0), (T0 + 1.5 * H, 9.0))
    # a session the book saw no start of: from the start of the span asked
    assert _cap(book, None, connector=2) == ((T0, 6.0), (T0 + timedelta(minutes=10), 9.0))


def test_a_daily_profile_across_midnight() -> None:
    """22:00–06:00 local every day (Recurring Daily, 8 h), anchored on a startSchedule days ago."""
    start = datetime(2026, 12, 1, 22, 0, tzinfo=AMS)
    book, _ = _book()
    _set(book, "1.6", 0, profile("1.6", 1, kind="Recurring", recurrency="Daily", start=start, duration=8 * 3600,
                                 periods=((0, 10.0), (4 * 3600, 6.0))))
    local = [(t.astimezone(AMS).strftime("%a %H:%M"), v) for t, v in _cap(book, None, hours=37)]
    assert local == [
        ("Wed 22:00", 10.0), ("Thu 02:00", 6.0), ("Thu 06:00", INF), ("Thu 22:00", 10.0), ("Fri 02:00", 6.0),
    ]
    # from within a recurrence, past midnight
    inside = datetime(2026, 12, 10, 1, 0, tzinfo=AMS).astimezone(UTC)
    assert _cap(book, None, start=inside, hours=6)[:3] == (
        (inside, 10.0), (inside + H, 6.0), (inside + 5 * H, INF),
    )


@pytest.mark.parametrize(("anchor", "after"), [
    (datetime(2026, 3, 27, 22, 0, tzinfo=AMS), "23:00"),  # spring: CET → CEST
    (datetime(2026, 10, 23, 22, 0, tzinfo=AMS), "21:00"),  # autumn: CEST → CET
])
def test_a_daily_profile_keeps_its_utc_hour_across_a_dst_change(anchor: datetime, after: str) -> None:
    """Chargers keep UTC: a Daily profile restarts every 24 h of elapsed time, so after the change
    it starts an hour later (spring) or earlier (autumn) on the local clock — as the charger the
    CSMS believes it talks to would."""
    book, _ = _book()
    _set(book, "2.0.1", 0, profile("2.0.1", 1, kind="Recurring", recurrency="Daily", start=anchor, duration=3600,
                                   periods=((0, 10.0),)))
    start = (anchor + timedelta(days=1)).astimezone(UTC) - 2 * H
    steps = [t for t, v in _cap(book, None, start=start, hours=48) if v == 10.0]
    assert [t.astimezone(AMS).strftime("%d %H:%M") for t in steps][:2] == [
        f"{anchor.day + 1} 22:00", f"{anchor.day + 2} {after}",
    ]
    assert steps[1] - steps[0] == timedelta(hours=24)


def test_a_weekly_profile() -> None:
    monday = datetime(2026, 12, 7, 8, 0, tzinfo=AMS)
    book, _ = _book()
    _set(book, "1.6", 0, profile("1.6", 1, kind="Recurring", recurrency="Weekly", start=monday, duration=3600,
                                 periods=((0, 10.0),)))
    steps = _cap(book, None, hours=24 * 8)
    assert [(t.astimezone(AMS).strftime("%a %d %H:%M"), v) for t, v in steps] == [
        ("Mon 14 08:00", 10.0), ("Mon 14 09:00", INF),
    ]


def test_the_same_id_replaces_wherever_it_was() -> None:
    book, _ = _book()
    _set(book, "2.0.1", 1, profile("2.0.1", 1, periods=((0, 10.0),)))
    _set(book, "2.0.1", 2, profile("2.0.1", 1, periods=((0, 12.0),)))
    assert _cap(book, None, connector=1) == ()
    assert _cap(book, None, connector=2) == ((T0, 12.0),)


def test_several_schedules_limit_to_the_lowest_in_force() -> None:
    """2.0.1 may carry up to three schedules (ISO 15118 offers): the EV may pick any, the cap is
    the lowest of those in force."""
    book, _ = _book()
    prof = profile("2.0.1", 1, duration=3600, periods=((0, 16.0),))
    prof["chargingSchedule"].append({"id": 2, "chargingRateUnit": "W", "startSchedule": prof["chargingSchedule"][0][
        "startSchedule"], "duration": 7200, "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6900.0}]})
    _set(book, "2.0.1", 0, prof)
    assert _cap(book, None) == ((T0, pytest.approx(10.0)), (T0 + 2 * H, INF))


def test_later_plans_get_what_a_fresh_book_computes() -> None:
    """cap_steps answers the next plans from what it worked out (until the book changes): the same
    steps as a book that never asked before, as time moves on and after each change."""
    book, clock = _book()
    book.transaction_started("CP1", 1, "7")
    _set(book, "1.6", 0, profile("1.6", 1, kind="Recurring", recurrency="Daily", start=T0 - 20 * H, duration=7200,
                                 periods=((0, 10.0), (3600, 8.0))))
    _set(book, "1.6", 1, profile("1.6", 2, "TxProfile", stack=1, kind="Relative", duration=3 * 3600,
                                 periods=((0, 16.0), (5400, 12.0))))

    def fresh(tx: str, at: datetime) -> tuple[tuple[datetime, float], ...]:
        other = CapBook(HandClock(at))
        other.restore(book.snapshot())
        return _cap(other, tx, start=at, hours=24)

    tx = "7"
    seen = set()
    for minutes in (0, 15, 30, 45, 90, 105, 120, 600):
        at = T0 + timedelta(minutes=minutes)
        clock.now = at
        steps = _cap(book, tx, start=at, hours=24)
        assert steps == fresh(tx, at), minutes
        seen.add(steps)
        if minutes == 30:
            _set(book, "1.6", 0, profile("1.6", 3, "ChargePointMaxProfile", start=at, duration=3600,
                                         periods=((0, 9.0),)))
        if minutes == 90:
            book.transaction_ended("CP1", 1, "7")
            book.transaction_started("CP1", 1, "8")
            _set(book, "1.6", 1, profile("1.6", 4, "TxProfile", stack=1, kind="Relative", duration=3600,
                                         periods=((0, 7.0),)))
            tx = "8"
    assert len(seen) == 8  # every moment asked had its own steps
    earlier = T0 + timedelta(minutes=105)  # before what was worked out last
    assert _cap(book, tx, start=earlier, hours=24) == fresh(tx, earlier)
