"""The book's other requests and its memory: ClearChargingProfile, GetCompositeSchedule (answers
valid against the OCPP response schemas), a start's profile, the CSMS's transaction ids, and a
snapshot/restore round trip."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

import pytest

from controller.upstream.caps import PENDING_START_S, CapBook, ChargerRating
from tests.upstream.payloads import T0, HandClock, checked, profile, set_request

H = timedelta(hours=1)
BOTH = ("1.6", "2.0.1")


def _book(rating: ChargerRating | None = None) -> tuple[CapBook, HandClock]:
    clock = HandClock()
    return CapBook(clock, ratings=lambda cid: rating if cid == "CP1" else None), clock


def _set(book: CapBook, version: str, connector: int, prof: dict[str, Any], charger: str = "CP1") -> None:
    answer = book.set_profile(charger, version, set_request(version, connector, prof))
    assert answer.status == "Accepted", answer.reason


def _cap(
    book: CapBook, tx: str | None, connector: int = 1, charger: str = "CP1", hours: float = 4.0
) -> tuple[tuple[Any, float], ...]:
    return book.cap_steps(charger, connector, tx, unit="A", phases_used=3, voltage_v=230.0, start=T0,
                          end=T0 + timedelta(hours=hours))


def _ids(book: CapBook) -> list[int]:
    return sorted(
        (r["request"].get("csChargingProfiles") or r["request"]["chargingProfile"]).get("chargingProfileId")
        or (r["request"].get("csChargingProfiles") or r["request"]["chargingProfile"]).get("id")
        for r in book.snapshot() if r["row"] in ("profile", "pending")
    )


def _clear_request(version: str, pid: int | None = None, **criteria: Any) -> dict[str, Any]:
    if version == "1.6":
        names = {"connector": "connectorId", "purpose": "chargingProfilePurpose", "stack": "stackLevel"}
        out = {names[k]: v for k, v in criteria.items()}
        return out | ({"id": pid} if pid is not None else {})
    names = {"connector": "evseId", "purpose": "chargingProfilePurpose", "stack": "stackLevel"}
    crit = {names[k]: ("ChargingStationMaxProfile" if v == "ChargePointMaxProfile" else v) for k, v in criteria.items()}
    return ({"chargingProfileId": pid} if pid is not None else {}) | ({"chargingProfileCriteria": crit} if crit else {})


def _stocked(version: str) -> CapBook:
    book, _ = _book()
    book.transaction_started("CP1", 1, "7")
    _set(book, version, 0, profile(version, 1, "ChargePointMaxProfile", periods=((0, 30.0),)))
    _set(book, version, 0, profile(version, 2, stack=0, periods=((0, 20.0),)))
    _set(book, version, 1, profile(version, 3, stack=1, periods=((0, 18.0),)))
    _set(book, version, 2, profile(version, 4, stack=1, periods=((0, 17.0),)))
    _set(book, version, 1, profile(version, 5, "TxProfile", stack=1, tx=7, periods=((0, 16.0),)))
    book.remote_start_profile("CP1", version, 2, profile(version, 6, "TxProfile", stack=2, periods=((0, 8.0),)))
    return book


@pytest.mark.parametrize("version", BOTH)
@pytest.mark.parametrize(("pid", "criteria", "left"), [
    (3, {}, [1, 2, 4, 5, 6]),
    (3, {"purpose": "TxProfile"}, [1, 2, 4, 5, 6]),  # by id: the other criteria are not asked
    (None, {"purpose": "TxDefaultProfile", "stack": 1}, [1, 2, 5, 6]),
    (None, {"purpose": "TxProfile"}, [1, 2, 3, 4]),  # a start's waiting profile too
    (None, {"connector": 0}, [3, 4, 5, 6]),
    (None, {"connector": 1, "stack": 1}, [1, 2, 4, 6]),
    (None, {"purpose": "ChargePointMaxProfile"}, [2, 3, 4, 5, 6]),
    (None, {}, []),
])
def test_clear_by_id_by_criteria_and_all(version: str, pid: int | None, criteria: dict[str, Any],
                                        left: list[int]) -> None:
    book = _stocked(version)
    answer = book.clear("CP1", version, _clear_request(version, pid, **criteria))
    assert checked(version, "ClearChargingProfile", answer.payload) == {"status": "Accepted"}
    assert _ids(book) == left


@pytest.mark.parametrize("version", BOTH)
def test_clear_of_nothing_or_of_garbage_is_unknown_and_loses_nothing(version: str) -> None:
    book = _stocked(version)
    for request in (_clear_request(version, 99), _clear_request(version, None, stack=7), {"id": "x", "evseId": []}):
        answer = book.clear("CP1", version, request)
        assert answer.status == "Unknown" and answer.reason
        checked(version, "ClearChargingProfile", answer.payload)
    assert _ids(book) == [1, 2, 3, 4, 5, 6]
    assert _cap(book, "7") == ((T0, 16.0),)
    book.clear("CP1", version, _clear_request(version, 5))
    assert _cap(book, "7") == ((T0, 18.0),)


@pytest.mark.parametrize("version", BOTH)
def test_composite_answers_are_valid_and_combine_as_the_caps_do(version: str) -> None:
    book, _ = _book(ChargerRating(phases=3, volts_per_phase=230.0, max_a=32.0, connectors=2))
    book.transaction_started("CP1", 1, "7")
    _set(book, version, 0, profile(version, 1, "ChargePointMaxProfile", start=T0 + H, duration=3600,
                                   periods=((0, 24.0),)))
    _set(book, version, 0, profile(version, 2, periods=((0, 20.0), (5400, 12.5))))
    _set(book, version, 1, profile(version, 3, "TxProfile", stack=1, tx=7, kind="Relative", duration=1800,
                                   periods=((0, 10.0),)))
    connector = {"connectorId": 1} if version == "1.6" else {"evseId": 1}
    answer = book.composite("CP1", version, {**connector, "duration": 3 * 3600})
    payload = checked(version, "GetCompositeSchedule", answer.payload)
    schedule = payload["chargingSchedule"] if version == "1.6" else payload["schedule"]
    assert schedule["chargingRateUnit"] == "A" and schedule["duration"] == 3 * 3600
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 10.0}, {"startPeriod": 1800, "limit": 20.0},
        {"startPeriod": 5400, "limit": 12.5},
    ]
    # the charger's total in W; its maximum (32 A) where nothing limits
    station = {"connectorId": 0} if version == "1.6" else {"evseId": 0}
    answer = book.composite("CP1", version, {**station, "duration": 3 * 3600, "chargingRateUnit": "W"})
    payload = checked(version, "GetCompositeSchedule", answer.payload)
    schedule = payload["chargingSchedule"] if version == "1.6" else payload["schedule"]
    assert schedule["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 22080.0}, {"startPeriod": 3600, "limit": 16560.0},
        {"startPeriod": 7200, "limit": 22080.0},
    ]


@pytest.mark.parametrize("version", BOTH)
def test_composite_refusals(version: str) -> None:
    """An unknown connector, a negative duration, garbage, and — the charger's maximum unknown — a
    span no profile limits: Rejected (there is no honest number to report)."""
    book, _ = _book(ChargerRating(connectors=2))
    key = "connectorId" if version == "1.6" else "evseId"
    for request in ({key: 3, "duration": 60}, {key: 1, "duration": -1}, {key: "1", "duration": 60}, {}):
        answer = book.composite("CP1", version, request)
        assert answer.status == "Rejected" and answer.reason
        checked(version, "GetCompositeSchedule", answer.payload)
    answer = book.composite("CP1", version, {key: 1, "duration": 3600})
    assert answer.status == "Rejected" and "maximum is unknown" in answer.reason
    _set(book, version, 0, profile(version, 1, periods=((0, 16.0),)))
    answer = book.composite("CP1", version, {key: 1, "duration": 10 * 86400})
    schedule = answer.payload["chargingSchedule"] if version == "1.6" else answer.payload["schedule"]
    assert schedule["duration"] == 7 * 86400
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0}]


@pytest.mark.parametrize("version", BOTH)
def test_a_start_profile_becomes_the_tx_profile_of_the_transaction_that_starts(version: str) -> None:
    book, clock = _book()
    book.remote_start_profile("CP1", version, None, profile(version, 1, "TxProfile", stack=1, periods=((0, 10.0),)))
    book.remote_start_profile("CP1", version, 2, profile(version, 2, "TxProfile", stack=1, periods=((0, 11.0),)))
    assert _cap(book, None) == ()
    clock.advance(seconds=60)
    book.transaction_started("CP1", 2, "T2")  # the one for its connector first
    book.transaction_started("CP1", 1, "T1")  # then the one for any connector
    book.transaction_started("CP1", 3, "T3")  # nothing left for this one
    assert _cap(book, "T2", connector=2) == ((T0, 11.0),)
    assert _cap(book, "T1", connector=1) == ((T0, 10.0),)
    assert _cap(book, "T3", connector=3) == ()
    book.transaction_ended("CP1", 1, "T1")
    assert _cap(book, "T1", connector=1) == ()
    assert _ids(book) == [2]


def test_a_start_profile_for_a_running_transaction_binds_at_once_and_one_never_used_expires() -> None:
    """2.0.1 may start a transaction at plug-in, before RequestStartTransaction; a start's profile
    whose transaction never comes is dropped after PENDING_START_S."""
    book, clock = _book()
    book.transaction_started("CP1", 1, "T1")
    book.remote_start_profile("CP1", "2.0.1", 1, profile("2.0.1", 1, "TxProfile", periods=((0, 9.0),)))
    assert _cap(book, "T1") == ((T0, 9.0),)
    book.remote_start_profile("CP1", "2.0.1", 2, profile("2.0.1", 2, "TxProfile", periods=((0, 9.0),)))
    clock.advance(seconds=PENDING_START_S + 1)
    book.transaction_started("CP1", 2, "T2")
    assert _cap(book, "T2", connector=2) == ()


@pytest.mark.parametrize("version", BOTH)
def test_a_start_profile_that_is_not_well_formed_is_dropped(version: str) -> None:
    book, _ = _book()
    for bad in (
        profile(version, 1, "TxDefaultProfile"),
        profile(version, 2, "TxProfile", tx=5),
        profile(version, 3, "TxProfile", periods=((0, -1.0),)),
        {"chargingProfileId": "x"},
    ):
        book.remote_start_profile("CP1", version, 1, bad)
    book.transaction_started("CP1", 1, "5")
    assert _cap(book, "5") == () and _ids(book) == []


def test_a_tx_profile_may_name_the_transaction_by_the_csms_id() -> None:
    """1.6: a start answered locally while the CSMS was away has our id on the charger and the
    CSMS's id upstream; a TxProfile naming the CSMS's is the transaction's."""
    book, _ = _book()
    book.transaction_started("CP1", 1, "-3")
    answer = book.set_profile("CP1", "1.6", set_request("1.6", 1, profile("1.6", 1, "TxProfile", tx=4711)))
    assert answer.status == "Rejected"
    book.transaction_alias("CP1", "-3", "4711")
    _set(book, "1.6", 1, profile("1.6", 1, "TxProfile", tx=4711, periods=((0, 7.0),)))
    assert _cap(book, "-3") == ((T0, 7.0),)


def test_snapshot_and_restore_round_trip() -> None:
    """Everything survives a restart through JSON: profiles (both versions, their transactions), a
    start's waiting profile, transactions with their start and aliases; a bad row is skipped."""
    book, clock = _book()
    clock.now = T0 - timedelta(minutes=30)
    book.transaction_started("CP1", 1, "7")
    book.transaction_alias("CP1", "7", "4711")
    clock.now = T0
    _set(book, "1.6", 0, profile("1.6", 1, "ChargePointMaxProfile", periods=((0, 30.0),)))
    _set(book, "1.6", 1, profile("1.6", 2, "TxProfile", stack=1, kind="Relative", periods=((0, 10.0), (3600, 14.0))))
    _set(book, "2.0.1", 0, profile("2.0.1", 3, kind="Recurring", recurrency="Daily", duration=3600,
                                   start=T0 - 10 * H, periods=((0, 5.0),)), charger="CP2")
    book.remote_start_profile("CP2", "2.0.1", None, profile("2.0.1", 4, "TxProfile", periods=((0, 4.0),)))
    rows = json.loads(json.dumps(book.snapshot()))
    again, _ = _book()
    again.restore([*rows, {"row": "profile", "charger_id": "CP1", "version": "9.9"}, {"nonsense": True}])
    assert again.snapshot() == book.snapshot()
    assert _cap(again, "7") == _cap(book, "7") == ((T0, 10.0), (T0 + 0.5 * H, 14.0))
    assert _cap(again, None, charger="CP2", hours=24) == _cap(book, None, charger="CP2", hours=24) == (
        (T0 + 14 * H, 5.0), (T0 + 15 * H, math.inf),
    )
    again.transaction_started("CP2", 1, "N")
    assert _cap(again, "N", charger="CP2")[0] == (T0, 4.0)
    answer = again.set_profile("CP1", "1.6", set_request("1.6", 1, profile("1.6", 5, "TxProfile", tx=4711)))
    assert answer.status == "Accepted"
