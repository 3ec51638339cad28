from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import load_site_text
from controller.model.site import Site
from controller.simulate import allocate

SITE = load_site_text(
    """site: {name: T, timezone: UTC}
grid: {limit_a: 100, margin_a: 0}
ocpp: {security_profile: 0}
circuits: [{id: f, limit_a: 40, margin_a: 0}]
chargers:
  - {id: A, circuit: f, phases: 3, max_a: 32}
  - {id: B, circuit: f, phases: 3, max_a: 32}
  - {id: C, phases: 1, phase_rotation: L2, max_a: 32}
  - {id: D, phases: 3, max_a: 10}
"""
).site
T0 = datetime(2026, 3, 2, tzinfo=UTC)


def demand(site: Site, key: str, charger: str, hours: float = 8.0, cap: float | None = None) -> allocate.Demand:
    ch = site.charger(charger)
    return allocate.Demand(
        key=key,
        charger=ch,
        phases=ch.grid_phases,
        cap_a=cap if cap is not None else (ch.max_a or 0.0),
        min_a=ch.min_a,
        deadline=T0 + timedelta(hours=hours),
        nodes=site.ancestors(ch.circuit),
    )


def test_equal_share_is_max_min_fair_under_the_feeder() -> None:
    room = allocate.residual_a(SITE, {"grid": (10.0, 10.0, 10.0)})
    alloc = allocate.equal_share([demand(SITE, "a", "A"), demand(SITE, "b", "B"), demand(SITE, "d", "D")], room)
    assert alloc["a"] == pytest.approx(20.0) and alloc["b"] == pytest.approx(20.0)  # the 40 A feeder, halved
    assert alloc["d"] == pytest.approx(10.0)  # capped by its own maximum


def test_equal_share_pauses_rather_than_going_below_minimum() -> None:
    room = allocate.residual_a(SITE, {"grid": (0.0, 0.0, 0.0), "f": (30.0, 30.0, 30.0)})
    alloc = allocate.equal_share([demand(SITE, "a", "A", 4), demand(SITE, "b", "B", 9)], room)
    # 10 A for two would be 5 A each (< 6 A): the later deadline pauses, the other gets all 10 A
    assert alloc == {"a": pytest.approx(10.0), "b": 0.0}


def test_edf_serves_the_earliest_departure_first() -> None:
    room = allocate.residual_a(SITE, {})
    alloc = allocate.edf([demand(SITE, "late", "A", 9), demand(SITE, "early", "B", 2)], room)
    assert alloc["early"] == pytest.approx(32.0)
    assert alloc["late"] == pytest.approx(8.0)


def test_llf_serves_the_least_laxity_first_where_edf_would_not() -> None:
    """Feeder f has room for one vehicle at full rate. "small" departs first but needs 1 kWh (laxity
    ≈ 2 h − 3 min); "big" departs an hour later and needs 40 kWh at 22 kW (laxity ≈ 3 h − 1.8 h)."""
    room = allocate.residual_a(SITE, {"f": (8.0, 8.0, 8.0)})  # 40 − 8 = 32 A per phase under f
    kw = 32 * 230 * 3 / 1000
    small = dataclasses.replace(demand(SITE, "small", "A", hours=2), need_kwh=1.0, max_kw=kw)
    big = dataclasses.replace(demand(SITE, "big", "B", hours=3), need_kwh=40.0, max_kw=kw)
    assert big.latest_start < small.latest_start < small.deadline < big.deadline
    assert allocate.edf([small, big], room) == {"small": pytest.approx(32.0), "big": 0.0}
    assert allocate.llf([small, big], room) == {"big": pytest.approx(32.0), "small": 0.0}


def test_llf_without_a_known_rate_or_need_is_edf() -> None:
    d = demand(SITE, "a", "A", hours=4)
    assert d.latest_start == d.deadline
    assert dataclasses.replace(d, need_kwh=5.0).latest_start == d.deadline  # no rate known
    assert dataclasses.replace(d, need_kwh=11.0, max_kw=22.0).latest_start == d.deadline - timedelta(minutes=30)


@settings(max_examples=60, deadline=None)
@given(
    base=st.tuples(*[st.floats(0, 120) for _ in range(3)]),
    feeder_base=st.tuples(*[st.floats(0, 50) for _ in range(3)]),
    picks=st.lists(st.sampled_from(["A", "B", "C", "D"]), min_size=1, max_size=4, unique=True),
    policy=st.sampled_from(["equal", "edf", "llf"]),
    needs=st.lists(st.floats(0, 80), min_size=4, max_size=4),
)
def test_no_node_or_phase_is_ever_over_its_room(
    base: tuple[float, float, float],
    feeder_base: tuple[float, float, float],
    picks: list[str],
    policy: str,
    needs: list[float],
) -> None:
    room = allocate.residual_a(SITE, {"grid": base, "f": feeder_base})
    demands = [
        dataclasses.replace(demand(SITE, c, c, hours=i + 1), need_kwh=needs[i], max_kw=22.0)
        for i, c in enumerate(picks)
    ]
    rule = {"equal": allocate.equal_share, "edf": allocate.edf, "llf": allocate.llf}[policy]
    alloc = rule(demands, room)
    for (node, phase), left in room.items():
        used = sum(alloc[d.key] for d in demands if (node, phase) in d.uses())
        assert used <= left + 1e-6
    for d in demands:
        assert alloc[d.key] == 0.0 or d.min_a - 1e-9 <= alloc[d.key] <= d.cap_a + 1e-9
