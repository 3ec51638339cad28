from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.chargers.profiles import (
    NoSafeProfile,
    Target,
    control_profile,
    failsafe_profile,
    floor_tenth,
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


def test_failsafe_is_permanent_txdefault_stack_zero_on_connector_zero() -> None:
    spec = failsafe_profile(AC, 6.0, NOW)
    assert (spec.stack_level, spec.purpose, spec.connector_id) == (0, "TxDefaultProfile", 0)
    assert spec.duration_s is None and spec.expires_at is None
    assert spec.start_schedule is not None and spec.start_schedule < NOW
    wire = to_v16(spec)
    assert "validTo" not in wire and "duration" not in wire["chargingSchedule"]
    assert wire["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 6.0, "numberPhases": 3}]
    _validate_both(wire, to_v201(spec), 0)


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
    spec = control_profile(AC, now=NOW, limit=16.27, schedule=schedule, ttl_s=120, connector_id=1, transaction_id=42)
    assert spec.purpose == "TxProfile" and spec.stack_level == 1 and spec.transaction_id == 42
    assert spec.start_schedule == NOW - timedelta(seconds=5)
    assert spec.expires_at == NOW + timedelta(seconds=120)
    assert spec.duration_s == 125
    assert [(p.start_s, p.limit) for p in spec.periods] == [(0, 16.2), (65, 12.3)]  # merged, beyond-TTL dropped
    wire = to_v16(spec)
    assert wire["transactionId"] == 42
    w201 = to_v201(spec)
    assert w201["transactionId"] == "42"
    _validate_both(wire, w201, 1)


def test_control_without_transaction_is_txdefault_on_connector() -> None:
    spec = control_profile(AC, now=NOW, limit=10, ttl_s=60, connector_id=2)
    assert (spec.purpose, spec.connector_id, spec.stack_level) == ("TxDefaultProfile", 2, 1)
    assert spec.profile_id != failsafe_profile(AC, 6, NOW).profile_id


def test_max_periods_caps_the_schedule() -> None:
    schedule = [(NOW + timedelta(seconds=10 * i), float(i)) for i in range(1, 20)]
    spec = control_profile(AC, now=NOW, limit=6, schedule=schedule, ttl_s=300, max_periods=3)
    assert len(spec.periods) == 3


def test_quirk_power_only_converts_to_watts() -> None:
    spec = control_profile(AC.with_quirks(["power_only"]), now=NOW, limit=16, ttl_s=60)
    assert spec.unit == "W" and spec.periods[0].limit == 16 * 230 * 3
    assert spec.max_planner_limit == pytest.approx(16.0)


def test_quirk_stack_level_zero_only() -> None:
    t = AC.with_quirks(["stack_level_zero_only"])
    spec = control_profile(t, now=NOW, limit=16, ttl_s=60, transaction_id=7)
    assert spec.stack_level == 0 and spec.purpose == "TxProfile"
    with pytest.raises(NoSafeProfile):
        control_profile(t, now=NOW, limit=16, ttl_s=60)


def test_quirk_txdefault_on_connector_0() -> None:
    spec = control_profile(AC.with_quirks(["txdefault_on_connector_0"]), now=NOW, limit=16, ttl_s=60, connector_id=1)
    assert spec.connector_id == 0 and spec.stack_level == 1


def test_quirk_relative_profiles_from_transaction_start() -> None:
    t = AC.with_quirks(["relative_profiles"])
    started = NOW - timedelta(seconds=600)
    spec = control_profile(
        t,
        now=NOW,
        limit=16,
        ttl_s=60,
        transaction_id=3,
        transaction_started_at=started,
        schedule=[(NOW + timedelta(seconds=30), 10)],
    )
    assert spec.kind == "Relative" and spec.start_schedule is None
    assert spec.duration_s == 660 and [p.start_s for p in spec.periods] == [0, 630]
    _validate_both(to_v16(spec), to_v201(spec), 1)
    fs = failsafe_profile(t, 6, NOW)
    assert fs.kind == "Relative" and fs.start_schedule is None


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
