from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.ev import EvParams, EvState, ev_max_a, grid_currents, step

P = EvParams(max_a=16, phases=3, battery_kwh=50, reaction_s=2.0)


def test_follows_the_offer_after_the_reaction_delay() -> None:
    s = step(P, EvState(0.0, 50.0), 0.0, 10.0)
    assert s.draw_a == 0.0
    s = step(P, s, 1.9, 10.0)
    assert s.draw_a == 0.0
    s = step(P, s, 2.0, 10.0)
    assert s.draw_a == 10.0
    s = step(P, s, 3.0, 32.0)
    s = step(P, s, 4.9, 32.0)
    assert s.draw_a == 10.0
    s = step(P, s, 5.0, 32.0)
    assert s.draw_a == 16.0  # the EV's own max


def test_pauses_below_minimum_and_energy_integrates() -> None:
    s = step(P, EvState(0.0, 50.0), 0.0, 16.0)
    s = step(P, s, 2.0, 16.0)
    s = step(P, s, 3602.0, 16.0)
    assert s.energy_kwh == pytest.approx(16 * 3 * 230 / 1000, rel=1e-6)
    s = step(P, s, 3603.0, 5.0)
    s = step(P, s, 3606.0, 5.0)
    assert s.draw_a == 0.0


def test_one_phase_ev_uses_l1_only() -> None:
    p = EvParams(phases=1)
    s = step(p, step(p, EvState(0.0, 10.0), 0.0, 16.0), 10.0, 16.0)
    assert grid_currents(p, s) == (16.0, 0.0, 0.0)


def test_taper_and_full() -> None:
    assert ev_max_a(P, 50) == 16 and ev_max_a(P, 90) == pytest.approx(8.0) and ev_max_a(P, 100) == 0
    s = step(P, step(P, EvState(0.0, 99.9), 0.0, 16.0), 2.0, 16.0)
    s = step(P, s, 20000.0, 16.0)
    assert s.soc_pct == pytest.approx(100.0) and s.draw_a == 0.0


@given(st.lists(st.tuples(st.floats(0, 100), st.one_of(st.none(), st.floats(0, 64))), max_size=40))
def test_never_draws_above_offer_seen_or_own_max(moves: list[tuple[float, float | None]]) -> None:
    s, t = EvState(0.0, 30.0), 0.0
    for dt, offer in moves:
        t += dt
        s = step(P, s, t, offer)
        assert 0 <= s.draw_a <= P.max_a
        assert s.applied_a is None or s.draw_a <= s.applied_a + 1e-9
        assert 30.0 <= s.soc_pct <= 100.0
