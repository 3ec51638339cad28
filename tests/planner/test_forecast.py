"""A day-ahead base-load forecast makes later slots more careful, never the plan less safe."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from controller.planner.plan import plan
from tests.planner.test_plan import NOW, safe, sess, snap


def _later_load(p: object, start_h: float, end_h: float) -> float:
    """Planned feeder current (a0 and a1, A per phase) in slots starting inside [start_h, end_h)."""
    total = 0.0
    for sp in p.sessions:  # type: ignore[attr-defined]
        for start, limit in sp.schedule:
            if NOW + timedelta(hours=start_h) <= start < NOW + timedelta(hours=end_h):
                total = max(total, limit)
    return total


def test_a_forecast_peak_moves_energy_out_of_it_and_keeps_needs_met() -> None:
    sessions = (sess("s1", "a1", need=30.0, dep_h=10.0), sess("s2", "a2", need=30.0, dep_h=10.0))
    plain = snap(*sessions)
    peak = {"grid": ((NOW, (5.0, 5.0, 5.0)), (NOW + timedelta(hours=1), (95.0, 95.0, 95.0)),
                     (NOW + timedelta(hours=4), (5.0, 5.0, 5.0)))}
    careful = replace(plain, base_load_forecast_a=peak)
    p_plain, _ = plan(plain)
    p_careful, _ = plan(careful)
    safe(careful, p_careful)
    # the grid has 98 A usable; with 95 A forecast base, at most 3 A are left in hours 1–4
    for sp in p_careful.sessions:
        for start, limit in sp.schedule:
            if NOW + timedelta(hours=1) <= start < NOW + timedelta(hours=4):
                assert limit == 0.0 or limit <= 3.0 + 1e-6
    assert all(sp.will_meet_departure for sp in p_careful.sessions)
    assert p_plain.sessions[0].limit.value > 0


def test_a_forecast_below_the_measured_load_loosens_only_later_hours() -> None:
    measured = {"grid": (60.0, 60.0, 60.0)}
    sessions = (sess("s1", "a1", need=200.0, dep_h=6.0), sess("s2", "a2", need=200.0, dep_h=6.0))
    base = snap(*sessions, base=measured)
    low = replace(base, base_load_forecast_a={"grid": ((NOW, (0.0, 0.0, 0.0)),)})
    p_base, _ = plan(base)
    p_low, _ = plan(low)
    # the enforced first slot and the next hour never get more than the measured load leaves
    for sp_low, sp_base in zip(p_low.sessions, p_base.sessions, strict=True):
        assert sp_low.limit.value <= sp_base.limit.value + 1e-9
    # after an hour the feeder (40 A) rather than the grid (98 − 60 = 38 A) is the limit
    for hours in (2.0, 3.0, 4.0):
        at = NOW + timedelta(hours=hours)
        in_force = [next(lim for start, lim in reversed(sp.schedule) if start <= at) for sp in p_low.sessions]
        assert sum(in_force) > 38.0 - 1e-6, (hours, in_force)
    assert sum(sp.expected_energy_kwh for sp in p_low.sessions) > sum(sp.expected_energy_kwh for sp in p_base.sessions)


def test_a_bad_forecast_is_ignored_with_a_warning() -> None:
    sessions = (sess("s1", "a1"),)
    bad = replace(snap(*sessions), base_load_forecast_a={"nowhere": ((NOW, (1.0, 1.0, 1.0)),),
                                                          "grid": ((NOW, ("x", 1.0, 1.0)),)})  # type: ignore[dict-item]
    p, _ = plan(bad)
    assert any("nowhere" in w for w in p.warnings)
    assert any("unreadable" in w for w in p.warnings)
    assert p.sessions[0].limit.value > 0


def test_a_nearly_full_battery_is_not_promised_its_full_rate() -> None:
    from controller.planner.instance import build_instance, taper_caps

    full_soon = sess("s1", "a1", need=10.0, dep_h=6.0, soc_pct=95.0, battery_kwh=60.0)
    empty = sess("s2", "a2", need=10.0, dep_h=6.0, soc_pct=10.0, battery_kwh=60.0)
    unknown = sess("s3", "a3", need=10.0, dep_h=6.0)
    inst = build_instance(snap(full_soon, empty, unknown))
    caps = [taper_caps(p, inst.grid) for p in inst.sessions]
    assert caps[2] is None
    assert caps[1] is not None and caps[1][0] == 1.0
    assert caps[0] is not None and caps[0][0] < 0.4  # 95 % full: about a third of the rate
    assert all(b <= a + 1e-12 for a, b in zip(caps[0], caps[0][1:], strict=False))  # only ever falls
    p, _ = plan(snap(full_soon, empty, unknown))
    expected = {sp.session_id: sp.expected_energy_kwh for sp in p.sessions}
    assert expected["s2"] == 10.0 or abs(expected["s2"] - 10.0) < 1e-6
