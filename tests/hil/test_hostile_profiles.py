"""Profile semantics of the hostile charger, pure (times are the charger's own clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hil.chargers.composite import ProfileStore, Rate, RunningTx, SimProfile, schedule_limit, schedule_rate
from hil.ev import EvParams, EvState, grid_currents

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


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
    phases: int | None = None,
    tx: str | None = None,
    valid_to: datetime | None = None,
    installed_at: datetime = T0,
) -> SimProfile:
    return SimProfile(
        pid,
        connector,
        stack,
        purpose,
        kind,
        unit,
        ((0, limit, phases),),
        start,
        duration,
        valid_to=valid_to,
        transaction_id=tx,
        installed_at=installed_at,
    )


def test_w_is_divided_by_the_phases_in_use_and_number_phases_only_caps() -> None:
    p = prof(1, "TxDefaultProfile", 1, 11040.0, unit="W", phases=3)
    assert schedule_limit(p, at(1), None, 230, phases=1) == 48.0
    assert schedule_limit(p, at(1), None, 230, phases=3) == 16.0
    assert schedule_limit(p, at(1), None, 230, phases=1, w_conversion="number_phases") == 16.0
    capped = prof(2, "TxDefaultProfile", 1, 11040.0, unit="W", phases=1)
    assert schedule_limit(capped, at(1), None, 230, phases=3) == 48.0  # numberPhases 1: one phase in use
    s = ProfileStore()
    s.install(capped)
    c = s.composite(at(1), 1, None, phases=3)
    assert (c.limit_a, c.phases, c.limit_w) == (48.0, 1, 11040.0)
    assert Rate(16.0, "A", 1).amps(3, 230) == 16.0


def test_txdefault_is_ignored_while_a_txprofile_is_in_force_whatever_the_stack_levels() -> None:
    s = ProfileStore()
    tx = RunningTx("7", T0)
    s.install(prof(1, "TxDefaultProfile", 8, 25, connector=0))
    s.install(prof(2, "TxProfile", 0, 12, tx="7", duration=60))
    assert s.composite_a(at(1), 1, tx) == 12
    assert s.composite_a(at(61), 1, tx) == 25  # over: falls back to the TxDefault


def test_hold_last_keeps_the_last_period_until_valid_to_only() -> None:
    p = SimProfile(
        3,
        1,
        1,
        "TxProfile",
        "Absolute",
        "A",
        ((0, 20.0, None), (5, 16.0, None)),
        T0,
        10,
        valid_to=at(30),
        transaction_id="7",
        installed_at=T0,
    )
    tx = RunningTx("7", T0)
    assert schedule_rate(p, at(11), tx) is None
    assert schedule_rate(p, at(11), tx, hold_last=True) == Rate(16.0, "A", None)
    assert schedule_rate(p, at(30), tx, hold_last=True) is None
    s = ProfileStore(schedule_end="hold_last")
    s.install(p)
    assert s.composite_a(at(29), 1, tx) == 16.0 and s.composite_a(at(30), 1, tx) is None


def test_relative_and_startless_absolute_start_with_charging_or_at_installation() -> None:
    installed = at(100)
    rel = prof(4, "TxDefaultProfile", 1, 10, kind="Relative", start=None, duration=60, installed_at=installed)
    assert schedule_limit(rel, at(150), None, 230) == 10  # no transaction: 50 s after installation
    assert schedule_limit(rel, at(170), None, 230) is None
    assert schedule_limit(rel, at(150), RunningTx("1", at(140)), 230) == 10  # 10 s into charging
    startless = prof(5, "TxDefaultProfile", 1, 10, start=None, duration=60, installed_at=installed)
    assert schedule_limit(startless, at(150), RunningTx("1", at(0)), 230) is None  # 150 s into charging
    assert schedule_limit(startless, at(150), None, 230) == 10


def test_future_start_is_not_in_force_and_charge_point_max_is_shared() -> None:
    assert schedule_limit(prof(6, "TxDefaultProfile", 1, 10, start=at(5)), at(4.999), None, 230) is None
    s = ProfileStore()
    s.install(prof(7, "ChargePointMaxProfile", 0, 30, connector=0))
    assert s.composite(at(1), 1, None, cp_max_share=3).limit_a == 10.0
    ignoring = ProfileStore(ignores_charge_point_max=True)
    ignoring.install(prof(7, "ChargePointMaxProfile", 0, 30, connector=0))
    assert ignoring.composite(at(1), 1, None, cp_max_share=3).limit_a is None


def test_a_two_phase_ev_draws_on_l1_and_l2() -> None:
    assert grid_currents(EvParams(phases=2), EvState(0.0, 50.0, draw_a=16.0)) == (16.0, 16.0, 0.0)
