from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.chargers.profiles import (
    BACKDATE_S,
    START_MARGIN_S,
    UNKNOWN_OFFSET_S,
    NoSafeProfile,
    Target,
    control_profile,
    failsafe_profile,
    floor_tenth,
    lowers,
    same_intent,
    to_v16,
    to_v201,
)
from tests.chargers.schemas import validate

NOW = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
AC = Target("cp1", kind="ac", phases=3, voltage_v=230.0, min_a=6.0)
DC = Target("dc1", kind="dc", phases=3)


def _validate_both(spec_v16: dict[str, object], spec_v201: dict[str, object], connector: int) -> None:
    validate("1.6", "SetChargingProfile", "request", {"connectorId": connector, "csChargingProfiles": spec_v16})
    validate("2.0.1", "SetChargingProfile", "request", {"evseId": connector, "chargingProfile": spec_v201})


def test_failsafe_is_permanent_absolute_from_1970_txdefault_stack_zero_on_connector_zero() -> None:
    """Issue 12 hazard 9: started before any clock a charger can show (or be set back to, also in
    the middle of a transaction, where a Relative schedule's start would move into its future)."""
    spec = failsafe_profile(AC, 6.0, NOW)
    assert (spec.stack_level, spec.purpose, spec.connector_id, spec.kind) == (0, "TxDefaultProfile", 0, "Absolute")
    assert spec.start_schedule == datetime(1970, 1, 1, tzinfo=UTC)
    assert spec.duration_s is None and spec.expires_at is None and spec.valid_to is None
    wire = to_v16(spec)
    assert "validTo" not in wire and "duration" not in wire["chargingSchedule"]
    assert wire["chargingSchedule"]["startSchedule"].startswith("1970-01-01T00:00:00")
    assert wire["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6.0, "numberPhases": 3}]
    w201 = to_v201(spec)
    assert "validTo" not in w201 and w201["chargingSchedule"][0]["startSchedule"].startswith("1970-01-01")
    _validate_both(wire, w201, 0)
    assert failsafe_profile(AC, 6.0) == spec  # needs no clock at all


def test_relative_failsafe_option_has_no_start_at_all() -> None:
    for option in ("relative_failsafe", "relative_profiles"):
        spec = failsafe_profile(AC.with_quirks([option]), 6.0)
        assert spec.kind == "Relative" and spec.start_schedule is None
        assert spec.duration_s is None and spec.valid_to is None
        _validate_both(to_v16(spec), to_v201(spec), 0)


def test_failsafe_dc_in_watts() -> None:
    spec = failsafe_profile(DC, 10.0, NOW)
    assert spec.unit == "W" and spec.periods[0].limit == 10000.0 and spec.periods[0].phases is None
    assert spec.max_planner_limit == pytest.approx(10.0)


def test_control_txprofile_with_periods_and_ttl() -> None:
    schedule = [
        (NOW + timedelta(seconds=60), 12.34),
        (NOW + timedelta(seconds=90), 12.34),
        (NOW + timedelta(hours=1), 32),
    ]
    spec = control_profile(
        AC, now=NOW, limit=16.27, schedule=schedule, ttl_s=120, connector_id=1, transaction_id=42, clock_offset_s=0.0
    )
    assert spec.purpose == "TxProfile" and spec.stack_level == 1 and spec.transaction_id == 42
    assert spec.start_schedule == NOW - timedelta(seconds=BACKDATE_S + START_MARGIN_S)
    assert spec.expires_at == NOW + timedelta(seconds=120) and spec.valid_to == NOW + timedelta(seconds=120)
    assert spec.duration_s == 155
    assert [(p.start_s, p.limit) for p in spec.periods] == [(0, 16.2), (95, 12.3)]  # merged, beyond-TTL dropped
    wire = to_v16(spec)
    assert wire["transactionId"] == 42 and wire["validTo"] == "2026-03-04T05:08:07.890Z"
    w201 = to_v201(spec)
    assert w201["transactionId"] == "42" and w201["validTo"] == wire["validTo"]
    _validate_both(wire, w201, 1)


@pytest.mark.parametrize("offset_s", [-120.0, 120.0, -7 * 365 * 86400.0])
def test_control_profile_runs_on_the_chargers_clock(offset_s: float) -> None:
    """Issue 12 hazards 9 and 10: a charger 2 min behind, 2 min ahead or reset years back sees
    the profile in force at once and ending (validTo and duration) ttl after our now."""
    off = timedelta(seconds=offset_s)
    sched = [(NOW + timedelta(seconds=60), 10.0)]
    spec = control_profile(AC, now=NOW, limit=16, schedule=sched, ttl_s=120, transaction_id=1, clock_offset_s=offset_s)
    charger_now = NOW + off
    assert spec.start_schedule is not None and spec.start_schedule <= charger_now - timedelta(seconds=BACKDATE_S)
    assert spec.valid_to == charger_now + timedelta(seconds=120)
    assert spec.start_schedule + timedelta(seconds=spec.duration_s or 0) >= spec.valid_to
    assert spec.expires_at == NOW + timedelta(seconds=120)  # our clock
    # the 10 A period starts 60 s after our now on the charger's clock
    assert spec.start_schedule + timedelta(seconds=spec.periods[1].start_s) == charger_now + timedelta(seconds=60)
    _validate_both(to_v16(spec), to_v201(spec), 1)


def test_unmeasured_offset_starts_early_enough_for_any_plausible_clock() -> None:
    spec = control_profile(AC, now=NOW, limit=16, ttl_s=120)
    assert spec.start_schedule == NOW - timedelta(seconds=BACKDATE_S + START_MARGIN_S + UNKNOWN_OFFSET_S)
    assert spec.valid_to == NOW + timedelta(seconds=120) and spec.clock_offset_s is None


def test_control_without_transaction_is_txdefault_on_connector() -> None:
    spec = control_profile(AC, now=NOW, limit=10, ttl_s=60, connector_id=2)
    assert (spec.purpose, spec.connector_id, spec.stack_level) == ("TxDefaultProfile", 2, 1)
    assert spec.profile_id != failsafe_profile(AC, 6, NOW).profile_id


def test_max_periods_caps_the_schedule() -> None:
    schedule = [(NOW + timedelta(seconds=10 * i), float(i)) for i in range(1, 20)]
    spec = control_profile(AC, now=NOW, limit=6, schedule=schedule, ttl_s=300, max_periods=3)
    assert len(spec.periods) == 3


def test_quirk_power_only_converts_to_watts_by_the_phases_in_use() -> None:
    """Issue 12 hazard 5: W = A × V × phases in use (1 when unknown), so no phase exceeds its A."""
    w = AC.with_quirks(["power_only"])
    three = control_profile(w.with_phases_in_use(3), now=NOW, limit=16, ttl_s=60)
    assert three.unit == "W" and three.periods[0].limit == 16 * 230 * 3 and three.periods[0].phases == 3
    assert three.max_planner_limit == pytest.approx(16.0)
    for phases in (None, 1):
        one = control_profile(w.with_phases_in_use(phases), now=NOW, limit=16, ttl_s=60)
        assert one.periods[0].limit == 16 * 230 and one.periods[0].phases == 1
        assert one.max_planner_limit == pytest.approx(16.0)
        # a charger dividing W by the phases its EV actually uses: never above 16 A on one phase
        for used in (1, 2, 3):
            assert one.periods[0].limit / (230 * used) <= 16.0 + 1e-9
    single = Target("cp1", phases=1, quirks=frozenset({"power_only"}), phases_in_use=3)
    assert control_profile(single, now=NOW, limit=16, ttl_s=60).periods[0].limit == 16 * 230  # a 1-phase charger
    fs = failsafe_profile(w.with_phases_in_use(3), 6.0)
    assert fs.periods[0].limit == 6 * 230 and fs.periods[0].phases == 1 and fs.max_planner_limit == 6.0
    _validate_both(to_v16(fs), to_v201(fs), 0)


def test_quirk_stack_level_zero_only() -> None:
    t = AC.with_quirks(["stack_level_zero_only"])
    spec = control_profile(t, now=NOW, limit=16, ttl_s=60, transaction_id=7)
    assert spec.stack_level == 0 and spec.purpose == "TxProfile"
    with pytest.raises(NoSafeProfile):
        control_profile(t, now=NOW, limit=16, ttl_s=60)


def test_quirk_txdefault_on_connector_0() -> None:
    spec = control_profile(AC.with_quirks(["txdefault_on_connector_0"]), now=NOW, limit=16, ttl_s=60, connector_id=1)
    assert spec.connector_id == 0 and spec.stack_level == 1


def test_quirk_relative_profiles_from_when_we_saw_the_transaction_start() -> None:
    t = AC.with_quirks(["relative_profiles"])
    seen = NOW - timedelta(seconds=600)
    spec = control_profile(
        t,
        now=NOW,
        limit=16,
        ttl_s=60,
        transaction_id=3,
        transaction_seen_at=seen,
        transaction_started_at=seen - timedelta(seconds=2),
        schedule=[(NOW + timedelta(seconds=30), 10)],
        clock_offset_s=0.0,
    )
    assert spec.kind == "Relative" and spec.start_schedule is None
    assert spec.duration_s == 660 and [p.start_s for p in spec.periods] == [0, 630]
    assert spec.expires_at == NOW + timedelta(seconds=60) and spec.valid_to == NOW + timedelta(seconds=60)
    assert spec.expires_not_before == NOW + timedelta(seconds=58)
    _validate_both(to_v16(spec), to_v201(spec), 1)
    fs = failsafe_profile(t, 6, NOW)
    assert fs.kind == "Relative" and fs.start_schedule is None


def test_relative_profile_is_bounded_by_our_clock_not_the_chargers_start_stamp() -> None:
    """Issue 12 hazard 11: a start stamped 2000-01-01 (clock reset) never gives a decades-long profile."""
    t = AC.with_quirks(["relative_profiles"])
    spec = control_profile(
        t,
        now=NOW,
        limit=16,
        ttl_s=60,
        transaction_id=3,
        transaction_seen_at=NOW - timedelta(seconds=30),
        transaction_started_at=datetime(2000, 1, 1, tzinfo=UTC),
    )
    assert spec.duration_s is not None and spec.duration_s <= 30 + 60 + 1
    restored = control_profile(t, now=NOW, limit=16, ttl_s=60, transaction_id=3)  # no seen_at: from now
    assert restored.duration_s == 60


def test_quirk_no_zero_limit_and_no_resume_after_zero() -> None:
    assert control_profile(AC.with_quirks(["no_zero_limit"]), now=NOW, limit=0, ttl_s=60).periods[0].limit == 0.1
    spec = control_profile(AC.with_quirks(["no_resume_after_zero"]), now=NOW, limit=0, ttl_s=60)
    assert spec.periods[0].limit == 6.0 and spec.max_planner_limit == 6.0
    assert control_profile(AC, now=NOW, limit=0, ttl_s=60).periods[0].limit == 0.0


def test_same_intent_deadband() -> None:
    a = control_profile(AC, now=NOW, limit=16, ttl_s=60)
    b = control_profile(AC, now=NOW + timedelta(seconds=15), limit=16.4, ttl_s=60)
    c = control_profile(AC, now=NOW + timedelta(seconds=15), limit=17, ttl_s=60)
    assert same_intent(a, b, 0.5) and not same_intent(a, c, 0.5)
    w = AC.with_quirks(["power_only"])
    w3 = control_profile(w.with_phases_in_use(3), now=NOW, limit=16, ttl_s=60)
    w1 = control_profile(w.with_phases_in_use(1), now=NOW, limit=16, ttl_s=60)
    assert not same_intent(w3, w1, 0.5)  # same A, another W: 3 × the current on one phase


def test_lowers_finds_any_lower_period() -> None:
    sched = [(NOW + timedelta(seconds=60), 10.0)]
    a = control_profile(AC, now=NOW, limit=16, schedule=sched, ttl_s=120, clock_offset_s=0.0)
    same = control_profile(AC, now=NOW + timedelta(seconds=5), limit=16, schedule=sched, ttl_s=120, clock_offset_s=0.0)
    later_dip = [(NOW + timedelta(seconds=60), 9.9)]
    dip = control_profile(AC, now=NOW, limit=16, schedule=later_dip, ttl_s=120, clock_offset_s=0.0)
    assert not lowers(a, same) and lowers(a, dip)
    assert lowers(a, control_profile(AC, now=NOW, limit=15.8, ttl_s=120)) and not lowers(a, a)


@given(st.floats(min_value=0, max_value=1000, allow_nan=False))
def test_floor_tenth_is_a_multiple_of_a_tenth_and_never_above(value: float) -> None:
    r = floor_tenth(value)
    assert r <= value + 1e-6 and value - r < 0.1 + 1e-6
    validate(
        "1.6",
        "SetChargingProfile",
        "request",
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxDefaultProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": r}],
                },
            },
        },
    )


@given(
    st.floats(min_value=0, max_value=80, allow_nan=False),
    st.lists(
        st.tuples(st.integers(min_value=-100, max_value=10000), st.floats(min_value=0, max_value=80)), max_size=30
    ),
    st.sampled_from([AC, DC, AC.with_quirks(["power_only"]), AC.with_quirks(["relative_profiles"])]),
)
def test_control_profiles_always_validate(limit: float, points: list[tuple[int, float]], target: Target) -> None:
    schedule = [(NOW + timedelta(seconds=s), v) for s, v in points]
    spec = control_profile(target, now=NOW, limit=limit, schedule=schedule, ttl_s=600, transaction_id=5)
    starts = [p.start_s for p in spec.periods]
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert spec.expires_at is not None and spec.expires_at >= NOW + timedelta(seconds=600)
    _validate_both(to_v16(spec), to_v201(spec), 1)


def test_the_schema_check_rejects_bad_date_times() -> None:
    import jsonschema

    good = {"currentTime": "2026-01-01T00:00:00.000Z", "interval": 300, "status": "Accepted"}
    validate("1.6", "BootNotification", "response", good)
    for bad in ("2026-01-01 00:00:00", "2026-01-01T00:00:00", "yesterday"):
        with pytest.raises(jsonschema.ValidationError):
            validate("1.6", "BootNotification", "response", {**good, "currentTime": bad})


# --- W per A from the site's phasor model (issue 18) ---------------------------------------------
def _site(service: str, voltage_v: float, chargers: str) -> object:
    from controller.config import load_site_text

    return load_site_text(
        f"""site: {{name: T, timezone: UTC, service: {service}, voltage_v: {voltage_v}}}
grid: {{limit_a: 400}}
ocpp: {{security_profile: 0}}
chargers:
{chargers}
"""
    ).site


def test_w_for_a_line_to_line_charger_is_amps_times_its_208_volts() -> None:
    """A 208 V Level 2 charger between L1 and L2 of a 208Y/120 V service: W = A × 208, not
    A × 120 (a third of the power it may draw) nor A × 3 × 120 (a charger dividing that by its
    208 V would draw 1.7 × the A planned)."""
    import math

    from controller.chargers.profiles import from_wire, target_for, to_wire
    from controller.model.site import Site

    site = _site("wye", 120, "  - {id: L2, phases: 1, phase_rotation: L1-L2, max_a: 48}")
    assert isinstance(site, Site)
    t = target_for(site, site.charger("L2"), ["power_only"])
    v_ll = 120 * math.sqrt(3)  # 207.8 V
    assert t.w_per_a == pytest.approx((v_ll,))
    for phases in (None, 1, 3):  # a single-phase charger: whatever is said of its EV's phases
        tp = t.with_phases_in_use(phases)
        assert to_wire(tp, 16.0) == floor_tenth(16.0 * v_ll)
        assert to_wire(tp, 16.0) / v_ll <= 16.0  # it never draws more than planned at its voltage
        assert from_wire(tp, to_wire(tp, 16.0)) == pytest.approx(16.0, abs=0.001)
        spec = control_profile(tp, now=NOW, limit=16, ttl_s=60)
        assert spec.unit == "W" and spec.periods[0].phases == 1
    # 240 V split-phase: A × 240
    split = _site("split-phase", 120, "  - {id: L2, phases: 1, phase_rotation: L1-L2, max_a: 40}")
    assert isinstance(split, Site)
    assert to_wire(target_for(split, split.charger("L2"), ["power_only"]), 32.0) == pytest.approx(32 * 240.0)


def test_w_for_a_single_phase_car_on_a_three_phase_charger_on_a_delta_service() -> None:
    """240 V delta (no neutral): a single-phase car draws between two lines at 240 V, a
    three-phase one 3 × 138.6 V per A. Unknown phases: sized for one (the worst case still holds:
    a charger dividing the W by 3 × 138.6 V for a three-phase car gives each phase less)."""
    import math

    from controller.chargers.profiles import target_for, to_wire
    from controller.model.site import Site

    site = _site("delta", 240, "  - {id: X, phases: 3, max_a: 32}")
    assert isinstance(site, Site)
    t = target_for(site, site.charger("X"), ["power_only"])
    ln = 240 / math.sqrt(3)
    assert t.w_per_a == pytest.approx((240.0, 240.0, 3 * ln))
    assert to_wire(t, 16.0) == floor_tenth(16 * 240.0)  # unknown: one phase, line to line
    assert to_wire(t.with_phases_in_use(1), 16.0) == floor_tenth(16 * 240.0)
    assert to_wire(t.with_phases_in_use(3), 16.0) == floor_tenth(16 * 3 * ln)
    for used_w in (240.0, 3 * ln):  # what a charger may divide by, for the EV it really has
        assert to_wire(t, 16.0) / used_w <= 16.0 + 1e-9
    # a European wye site is unchanged: 230 V per phase in use
    eu = _site("wye", 230, "  - {id: E, phases: 3, max_a: 32}\n  - {id: D, kind: dc, max_kw: 50}")
    assert isinstance(eu, Site)
    te = target_for(eu, eu.charger("E"), ["power_only"])
    assert te.w_per_a == pytest.approx((230.0, 460.0, 690.0))
    assert to_wire(te.with_phases_in_use(3), 16.0) == 16 * 230 * 3
    assert target_for(eu, eu.charger("D")).full_watts_per_a == pytest.approx(690.0)
