"""Outside caps (issue 17): ``SessionState.cap`` from the operator's CSMS bounds every slot of the
plan — the least cap in force during the slot; 0 pauses; an AC cap below the minimum current is 0;
the limit's source says "csms cap" where it binds. Pinned now: Thursday 2026-11-26 18:00:07 CET."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from controller.model import Charger, Circuit, Control, Grid, SessionState, Site, SiteInfo, Snapshot, Tariff
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from tests.planner.checks import bound_violations, cap_violations, limit_violations, slot_values
from tests.planner.test_cost import TOU

NO_TARIFF = Tariff()
NOW = datetime(2026, 11, 26, 17, 0, 7, tzinfo=UTC)


def site(tariff: Tariff = NO_TARIFF) -> Site:
    return Site(
        site=SiteInfo(name="t", timezone="Europe/Berlin"),
        grid=Grid(limit_a=160.0, margin_a=2.0),
        circuits=(Circuit(id="feeder-a", limit_a=125.0, margin_a=0.0),),
        chargers=(
            Charger(id="a1", circuit="feeder-a", kind="ac", phases=3, phase_rotation="L1-L2-L3", max_a=32.0),
            Charger(id="a2", circuit="feeder-a", kind="ac", phases=3, phase_rotation="L2-L3-L1", max_a=32.0),
            Charger(id="d1", circuit="feeder-a", kind="dc", phases=3, phase_rotation="L1-L2-L3", min_a=0.0,
                    max_kw=50.0),
        ),
        control=Control(horizon_h=12.0),
        tariff=tariff,
    )


def sess(sid: str, charger: str, cap: tuple[tuple[datetime, float], ...], need: float = 60.0) -> SessionState:
    return SessionState(session_id=sid, charger_id=charger, vehicle_id=f"v-{sid}", energy_need_kwh=need,
                        departure_at=NOW + timedelta(hours=8), arrived_at=NOW - timedelta(hours=1), cap=cap)


def snap(*sessions: SessionState, tariff: Tariff = NO_TARIFF) -> Snapshot:
    return Snapshot(site=site(tariff), now=NOW, base_load_a={"grid": (5.0, 5.0, 5.0)}, sessions=sessions)


def check(s: Snapshot) -> tuple[object, dict[str, list[float]]]:
    p, _ = plan(s, PlannerState())
    assert limit_violations(s, p) == []
    assert bound_violations(s, p) == []
    assert cap_violations(s, p) == []
    return p, slot_values(p)


def slot_at(p: object, when: datetime) -> int:
    return max(k for k, start in enumerate(p.slot_starts) if start <= when)  # type: ignore[attr-defined]


@pytest.mark.parametrize("tariff", [Tariff(), TOU], ids=["no tariff", "time of use"])
def test_the_outside_cap_holds_in_every_slot_and_zero_pauses(tariff: Tariff) -> None:
    cap = ((NOW - timedelta(minutes=5), 10.0), (NOW + timedelta(hours=1), 0.0),
           (NOW + timedelta(hours=2, minutes=10), math.inf))
    dc_cap = ((NOW + timedelta(minutes=30), 20.0),)
    s = snap(sess("s1", "a1", cap), sess("s2", "a2", ()), sess("d", "d1", dc_cap, need=200.0), tariff=tariff)
    p, values = check(s)
    s1 = p.session("s1")  # type: ignore[attr-defined]
    if tariff == Tariff():  # charged now as far as the cap lets it
        assert s1.limit.value == 10.0 and s1.limit.source == "csms cap"
    one, two_ten = slot_at(p, NOW + timedelta(hours=1)), slot_at(p, NOW + timedelta(hours=2, minutes=10))
    assert all(v == 0.0 for v in values["s1"][one:two_ten])  # paused while the cap is 0
    assert max(values["s1"][:one]) <= 10.0
    d = p.session("d")  # type: ignore[attr-defined]
    assert d.limit.value == 50.0 or tariff != Tariff()  # no cap yet in the first slot
    half = slot_at(p, NOW + timedelta(minutes=30))
    assert max(values["d"][half:]) <= 20.0  # a slot with the cap in force for part of it is capped


def test_an_ac_cap_below_the_minimum_current_is_zero_and_the_energy_goes_elsewhere() -> None:
    s = snap(sess("s1", "a1", ((NOW - timedelta(hours=1), 4.0),)), sess("s2", "a2", ()))
    p, values = check(s)
    s1 = p.session("s1")  # type: ignore[attr-defined]
    assert s1.limit.value == 0.0 and s1.limit.source == "csms cap"
    assert s1.expected_energy_kwh == 0.0 and set(values["s1"]) == {0.0}
    assert p.session("s2").limit.value == 32.0  # type: ignore[attr-defined]


def test_a_cap_not_on_the_limit_resolution_rounds_down_and_an_unreadable_cap_holds_at_zero() -> None:
    s = snap(sess("s1", "a1", ((NOW - timedelta(hours=1), 12.35),)),
             sess("s2", "a2", ((datetime(2026, 11, 26, 17, 0), 16.0),)))  # a time without a zone
    p, _ = check(s)
    assert p.session("s1").limit.value == 12.3  # type: ignore[attr-defined]
    assert p.session("s2").limit.value == 0.0  # type: ignore[attr-defined]
    assert any("s2: outside cap unreadable" in w for w in p.warnings)  # type: ignore[attr-defined]


def test_caps_hold_over_consecutive_cycles_with_the_deadband_and_the_kept_model() -> None:
    cap = ((NOW - timedelta(minutes=5), 31.8),)
    s = snap(sess("s1", "a1", ()), sess("s2", "a2", ()))
    state = PlannerState()
    p, state = plan(s, state)
    assert p.session("s1").limit.value == 32.0
    # the CSMS now caps s1 just under its last limit: the deadband must not hold the old 32 A
    capped = replace(s, now=NOW + timedelta(seconds=15), sessions=(sess("s1", "a1", cap), sess("s2", "a2", ())))
    p2, _ = plan(capped, state)
    assert cap_violations(capped, p2) == []
    assert p2.session("s1").limit.value == 31.8 and p2.session("s1").limit.source == "csms cap"
