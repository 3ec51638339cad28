from __future__ import annotations

from controller.rules.learn import observed_max_a


def test_a_vehicle_following_its_limit_is_not_limited() -> None:
    assert observed_max_a(16.0, 15.6, 6.0) is None


def test_a_vehicle_drawing_well_below_its_limit_is_planned_at_what_it_takes() -> None:
    assert observed_max_a(32.0, 12.0, 6.0) == 13.0


def test_never_below_the_minimum_and_nothing_learnt_from_a_paused_vehicle() -> None:
    assert observed_max_a(32.0, 4.0, 6.0) == 6.0
    assert observed_max_a(32.0, 0.0, 6.0) is None
    assert observed_max_a(0.0, 0.0, 6.0) is None
