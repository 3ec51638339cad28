"""Charging-profile semantics of the simulated charge point (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hil.chargers.composite import ProfileStore, RunningTx, SimProfile, from_v16, from_v201, schedule_limit

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TX = RunningTx("7", T0)


def prof(
    pid: int,
    purpose: str,
    stack: int,
    limit: float,
    *,
    connector: int = 1,
    start: datetime | None = T0,
    duration: int | None = None,
    kind: str = "Absolute",
    unit: str = "A",
    tx: str | None = None,
    periods: tuple[tuple[int, float, int | None], ...] | None = None,
    **kw: object,
) -> SimProfile:
    return SimProfile(
        pid,
        connector,
        stack,
        purpose,
        kind,
        unit,
        periods or ((0, limit, None),),
        start,
        duration,
        transaction_id=tx,
        installed_at=T0,
        **kw,
    )  # type: ignore[arg-type]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_nothing_installed_is_unconstrained() -> None:
    assert ProfileStore().composite_a(T0, 1, TX) is None


def test_higher_stack_level_wins_until_its_duration_ends() -> None:
    s = ProfileStore()
    s.install(prof(1, "TxDefaultProfile", 0, 6, connector=0))
    s.install(prof(101, "TxDefaultProfile", 1, 16, duration=60))
    assert s.composite_a(at(10), 1, None) == 16
    assert s.composite_a(at(59.9), 1, None) == 16
    assert s.composite_a(at(60), 1, None) == 6  # expired → the fail-safe below


def test_txprofile_over_txdefault_only_for_its_transaction() -> None:
    s = ProfileStore()
    s.install(prof(1, "TxDefaultProfile", 0, 6, connector=0))
    s.install(prof(201, "TxProfile", 0, 20, tx="7"))
    assert s.composite_a(at(1), 1, TX) == 20  # TxProfile wins even at a lower stack level
    assert s.composite_a(at(1), 1, RunningTx("8", T0)) == 6
    assert s.composite_a(at(1), 1, None) == 6
    s.transaction_ended(1)
    assert s.composite_a(at(1), 1, TX) == 6


def test_charge_point_max_caps_unless_ignored() -> None:
    for ignores, expected in ((False, 10.0), (True, 16.0)):
        s = ProfileStore(ignores_charge_point_max=ignores)
        s.install(prof(1, "TxDefaultProfile", 0, 16, connector=0))
        s.install(prof(2, "ChargePointMaxProfile", 0, 10, connector=0))
        assert s.composite_a(at(1), 1, None) == expected


def test_periods_valid_from_to_and_future_start() -> None:
    p = prof(5, "TxDefaultProfile", 1, 0, periods=((0, 16.0, None), (30, 8.0, None)), duration=100, valid_to=at(80))
    assert schedule_limit(p, at(10), None, 230) == 16
    assert schedule_limit(p, at(30), None, 230) == 8
    assert schedule_limit(p, at(80), None, 230) is None  # validTo
    assert schedule_limit(prof(6, "TxDefaultProfile", 1, 9, start=at(5)), at(1), None, 230) is None  # gap
    assert schedule_limit(prof(7, "TxDefaultProfile", 1, 9, valid_from=at(5)), at(1), None, 230) is None


def test_relative_runs_from_transaction_start_and_watts_convert() -> None:
    p = prof(
        8,
        "TxProfile",
        1,
        0,
        kind="Relative",
        start=None,
        duration=120,
        unit="W",
        periods=((0, 11040.0, 3), (60, 4140.0, 1)),
        tx="7",
    )
    tx = RunningTx("7", at(-100))
    assert schedule_limit(p, at(-50), tx, 230) == 11040 / (230 * 3)  # 50 s in: 16 A on 3 phases
    assert schedule_limit(p, at(0), tx, 230) == 4140 / 230  # 100 s in: 18 A on 1 phase
    assert schedule_limit(p, at(0), RunningTx("7", at(-30)), 230) == 16.0  # another start, another offset
    assert schedule_limit(p, at(20), tx, 230) is None  # 120 s after the transaction start


def test_recurring_daily() -> None:
    p = prof(
        9, "TxDefaultProfile", 1, 0, kind="Recurring", recurrency="Daily", duration=3600, periods=((0, 10.0, None),)
    )
    assert schedule_limit(p, T0 + timedelta(days=3, minutes=30), None, 230) == 10
    assert schedule_limit(p, T0 + timedelta(days=3, hours=2), None, 230) is None


def test_same_stack_and_purpose_replaces_and_clear() -> None:
    s = ProfileStore()
    s.install(prof(101, "TxDefaultProfile", 1, 16))
    s.install(prof(102, "TxDefaultProfile", 1, 10))
    assert len(s.profiles) == 1 and s.composite_a(at(1), 1, None) == 10
    s.install(prof(102, "TxDefaultProfile", 2, 12))  # same id replaces too
    assert len(s.profiles) == 1 and s.composite_a(at(1), 1, None) == 12
    assert s.clear(profile_id=102) == 1 and s.composite_a(at(1), 1, None) is None


def test_connector_specific_txdefault_beats_connector_0_on_a_tie() -> None:
    s = ProfileStore()
    s.install(prof(1, "TxDefaultProfile", 0, 6, connector=0))
    s.install(prof(2, "TxDefaultProfile", 0, 13, connector=2))
    assert s.composite_a(at(1), 2, None) == 13 and s.composite_a(at(1), 1, None) == 6


def test_parsers_for_both_versions() -> None:
    v16 = {
        "charging_profile_id": 3,
        "stack_level": 1,
        "charging_profile_purpose": "TxProfile",
        "charging_profile_kind": "Absolute",
        "transaction_id": 42,
        "charging_schedule": {
            "charging_rate_unit": "A",
            "start_schedule": "2026-05-01T12:00:00Z",
            "duration": 60,
            "charging_schedule_period": [{"start_period": 0, "limit": 16.0}],
        },
    }
    p = from_v16(1, v16, T0)
    assert (p.transaction_id, p.start_schedule, p.duration_s, p.periods) == ("42", T0, 60, ((0, 16.0, None),))
    v201 = {
        "id": 4,
        "stack_level": 0,
        "charging_profile_purpose": "ChargingStationMaxProfile",
        "charging_profile_kind": "Absolute",
        "charging_schedule": [
            {
                "id": 1,
                "charging_rate_unit": "W",
                "start_schedule": "2026-05-01T12:00:00.000Z",
                "charging_schedule_period": [{"start_period": 0, "limit": 22000, "number_phases": 3}],
            }
        ],
    }
    q = from_v201(0, v201, T0)
    assert q.purpose == "ChargePointMaxProfile" and q.periods == ((0, 22000.0, 3),)


def test_composite_schedule_over_time() -> None:
    from hil.chargers.composite import composite_schedule

    s = ProfileStore()
    s.install(prof(1, "TxDefaultProfile", 0, 6, connector=0))
    s.install(prof(101, "TxDefaultProfile", 1, 0, periods=((0, 16.0, None), (10, 10.0, None)), duration=20))
    assert composite_schedule(s, T0, 30, 1, None, 32.0) == [(0, 16.0), (10, 10.0), (20, 6.0)]
    assert composite_schedule(ProfileStore(), T0, 5, 1, None, 32.0) == [(0, 32.0)]
