"""The departure estimate from a vehicle's history (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.fleet.departure_estimate import (
    DEFAULT_RULE,
    DepartureSample,
    EstimateRule,
    history_offset_s,
    planned_departure,
)

DECLARED = datetime(2026, 3, 10, 16, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def history(*offsets_min: float) -> list[DepartureSample]:
    """One past session per offset (actual − declared, minutes), a day apart, oldest first."""
    out = []
    for i, off in enumerate(offsets_min):
        declared = DECLARED - timedelta(days=len(offsets_min) - i)
        out.append(DepartureSample(declared, declared + timedelta(minutes=off)))
    return out


def test_too_little_history_plans_against_the_declared_departure() -> None:
    est = planned_departure(DECLARED, history(-60, -60, -60, -60), NOW)
    assert est.at == DECLARED and not est.from_history and est.samples == 4


def test_a_habitual_early_leaver_is_planned_earlier() -> None:
    # leaves 30-90 min early every time: the 2nd earliest of 5 (at most one in five earlier)
    est = planned_departure(DECLARED, history(-30, -90, -45, -60, -75), NOW)
    assert est.at == DECLARED - timedelta(minutes=75)
    assert est.from_history and est.offset_s == -75 * 60


def test_an_occasional_early_departure_does_not_move_it() -> None:
    # one session in ten left two hours early, the others on time or late
    est = planned_departure(DECLARED, history(-120, 0, 5, 30, 90, 0, 10, 60, 120, 15), NOW)
    assert est.at == DECLARED


def test_one_odd_session_among_five_is_ignored() -> None:
    assert history_offset_s(history(-600, 0, 10, 20, 30)) == 0.0
    assert history_offset_s(history(-600, -30, 10, 20, 30)) == -30 * 60


def test_late_history_never_moves_it_later() -> None:
    est = planned_departure(DECLARED, history(60, 90, 120, 180, 240, 300), NOW)
    assert est.at == DECLARED and est.history_offset_s == 0.0


def test_only_the_last_window_counts() -> None:
    early = [-90.0] * 20
    on_time = [0.0] * 20
    assert planned_departure(DECLARED, history(*early, *on_time), NOW).at == DECLARED
    assert planned_departure(DECLARED, history(*on_time, *early), NOW).at == DECLARED - timedelta(minutes=90)


def test_bounded_by_max_early_and_by_now_plus_lead() -> None:
    assert planned_departure(DECLARED, history(*[-600] * 6), NOW).at == DECLARED - timedelta(hours=4)
    late_now = DECLARED - timedelta(minutes=40)
    est = planned_departure(DECLARED, history(*[-60] * 6), late_now)
    assert est.at == late_now + timedelta(minutes=15)
    # past the estimate and still plugged in: "very soon" until the declared departure itself
    assert planned_departure(DECLARED, history(*[-60] * 6), DECLARED - timedelta(minutes=5)).at == DECLARED
    assert planned_departure(DECLARED, history(*[-60] * 6), DECLARED + timedelta(hours=1)).at == DECLARED


def test_rule_is_validated() -> None:
    with pytest.raises(ValueError):
        EstimateRule(window=5, min_samples=6)
    with pytest.raises(ValueError):
        EstimateRule(quantile=1.0)


@given(
    offsets=st.lists(st.floats(-1440, 1440), max_size=30),
    now_before_min=st.floats(-600, 1440),
)
def test_never_later_than_declared_nor_before_now_plus_lead(offsets: list[float], now_before_min: float) -> None:
    now = DECLARED - timedelta(minutes=now_before_min)
    est = planned_departure(DECLARED, history(*offsets), now)
    assert est.at <= DECLARED
    assert est.at >= min(DECLARED, now + timedelta(seconds=DEFAULT_RULE.min_lead_s))
    assert est.at >= DECLARED - timedelta(seconds=DEFAULT_RULE.max_early_s)
