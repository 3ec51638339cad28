"""Every SetChargingProfile the book refuses, in both versions: Rejected (never raised), the reason
named, the answer valid against the response schema, and nothing already accepted lost."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from controller.upstream.caps import CapBook, ChargerRating
from tests.upstream.payloads import T0, HandClock, checked, profile, set_request

Payload = dict[str, Any]
BOTH = ("1.6", "2.0.1")


def _book() -> tuple[CapBook, HandClock]:
    clock = HandClock()
    book = CapBook(clock, ratings=lambda cid: ChargerRating(max_a=32.0, connectors=2))
    book.transaction_started("CP1", 1, "7")
    return book, clock


def _edit(prof: Payload, version: str, path: str, value: object) -> Payload:
    """Set ``path`` (dotted; ``sched`` = the (first) chargingSchedule, ``period0`` its first period)."""
    sched = prof["chargingSchedule"] if version == "1.6" else prof["chargingSchedule"][0]
    target: dict[str, Any]
    if path.startswith("sched."):
        target, key = sched, path[6:]
    elif path.startswith("period"):
        index, key = path[6:].split(".")
        target = sched["chargingSchedulePeriod"][int(index)]
    else:
        target, key = prof, path
    if value is DELETE:
        target.pop(key, None)
    else:
        target[key] = value
    return prof


DELETE = object()
Case = tuple[str, tuple[str, ...], Callable[[str], Payload], str]


def _tx(version: str, **kw: Any) -> Payload:
    return profile(version, 9, "TxProfile", tx=7, **kw)


CASES: list[Case] = [
    ("no schedule", BOTH, lambda v: set_request(v, 1, _edit(profile(v, 1), v, "chargingSchedule", DELETE)),
     "schema"),
    ("unit kW", BOTH, lambda v: set_request(v, 1, _edit(profile(v, 1), v, "sched.chargingRateUnit", "kW")), "schema"),
    ("limit not a number", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1), v, "period0.limit", "16")), "schema"),
    ("1.6 limit not a multiple of 0.1", ("1.6",),
     lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.25),))), "multiple"),
    ("a later period's limit not a multiple of 0.1", ("1.6",),
     lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.0), (60, 10.1), (120, 8.05)))), "multiple"),
    ("a later period with an unknown field", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.maxA", 3)),
     "additional properties"),
    ("a later period without a limit", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.limit", DELETE)),
     "required"),
    ("a later period's start not an integer", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.startPeriod",
                                       60.5)), "integer"),
    ("a later period's phases a boolean", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.numberPhases",
                                       True)), "integer"),
    ("a later period's limit a boolean", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.limit", True)),
     "number"),
    ("a later period's customData without vendorId", ("2.0.1",),
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0), (60, 10.0))), v, "period1.customData",
                                       {"x": 1})), "customData"),
    ("more than 1024 periods", ("2.0.1",),
     lambda v: set_request(v, 1, profile(v, 1, periods=tuple((60 * i, 16.0) for i in range(1025)))), "1024"),
    ("connector not an integer", BOTH, lambda v: {**set_request(v, 1, profile(v, 1)),
                                                 ("connectorId" if v == "1.6" else "evseId"): "1"}, "schema"),
    ("negative stack level", BOTH, lambda v: set_request(v, 1, profile(v, 1, stack=-1)), "stackLevel"),
    ("stack level above the maximum", BOTH, lambda v: set_request(v, 1, profile(v, 1, stack=100)), "stackLevel"),
    ("negative limit", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((0, -1.0),))), "limit"),
    ("infinite limit", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((0, math.inf),))), "JSON"),
    ("NaN limit", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((0, math.nan),))), "JSON"),
    ("negative minChargingRate", BOTH,
     lambda v: set_request(v, 1, _edit(profile(v, 1), v, "sched.minChargingRate", -6.0)), "minChargingRate"),
    ("first period not at 0", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((60, 16.0),))), "first"),
    ("periods not ascending", BOTH,
     lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.0), (600, 10.0), (300, 8.0)))), "not after"),
    ("two periods at one time", BOTH,
     lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.0), (0, 10.0)))), "not after"),
    ("no period", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=())), "period"),
    ("four phases", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.0, 4),))), "numberPhases"),
    ("zero phases", BOTH, lambda v: set_request(v, 1, profile(v, 1, periods=((0, 16.0, 0),))), "numberPhases"),
    ("phaseToUse on three phases", ("2.0.1",),
     lambda v: set_request(v, 1, _edit(profile(v, 1, periods=((0, 16.0, 3),)), v, "period0.phaseToUse", 2)),
     "phaseToUse"),
    ("negative duration", BOTH, lambda v: set_request(v, 1, profile(v, 1, duration=-60)), "duration"),
    ("validTo before validFrom", BOTH,
     lambda v: set_request(v, 1, profile(v, 1, valid_from=T0 + timedelta(hours=2), valid_to=T0 + timedelta(hours=1))),
     "validTo"),
    ("not a date-time", BOTH, lambda v: set_request(v, 1, _edit(profile(v, 1), v, "validFrom", "yesterday")),
     "date-time"),
    ("Recurring without recurrencyKind", BOTH, lambda v: set_request(v, 1, profile(v, 1, kind="Recurring")),
     "recurrencyKind"),
    ("ChargePointMax on a connector", BOTH,
     lambda v: set_request(v, 1, profile(v, 1, "ChargePointMaxProfile")), "connector 0"),
    ("ChargingStationMax Relative", ("2.0.1",),
     lambda v: set_request(v, 0, profile(v, 1, "ChargePointMaxProfile", kind="Relative")), "K01.FR.38"),
    ("ExternalConstraints from the CSMS", ("2.0.1",),
     lambda v: set_request(v, 0, profile(v, 1, "ChargingStationExternalConstraints")), "not the CSMS"),
    ("TxProfile on connector 0", BOTH, lambda v: set_request(v, 0, _tx(v)), "connector > 0"),
    ("transactionId on a TxDefaultProfile", BOTH, lambda v: set_request(v, 1, profile(v, 1, tx=7)), "only a Tx"),
    ("TxProfile without transactionId", ("2.0.1",),
     lambda v: set_request(v, 1, profile(v, 9, "TxProfile")), "K01.FR.03"),
    ("Absolute without startSchedule", ("2.0.1",), lambda v: set_request(v, 1, profile(v, 1, start=None)),
     "K01.FR.40"),
    ("Relative with startSchedule", ("2.0.1",),
     lambda v: set_request(v, 1, _edit(profile(v, 1, kind="Relative"), v, "sched.startSchedule",
                                       "2026-12-09T13:00:00Z")), "K01.FR.41"),
    ("TxProfile: no transaction on the connector", BOTH,
     lambda v: set_request(v, 2, profile(v, 9, "TxProfile", tx=None if v == "1.6" else "8")), "transaction"),
    ("TxProfile: its transaction is on another connector", BOTH, lambda v: set_request(v, 2, _tx(v)),
     "runs on connector 1"),
    ("TxProfile: unknown transaction", BOTH,
     lambda v: set_request(v, 1, profile(v, 9, "TxProfile", tx=8)), "no transaction 8"),
    ("no such connector", BOTH, lambda v: set_request(v, 3, profile(v, 1)), "no connector 3"),
    ("negative connector", BOTH, lambda v: set_request(v, -1, profile(v, 1)), "connector -1"),
    ("not JSON at all", BOTH, lambda v: set_request(v, 1, {**profile(v, 1), "validFrom": object()}), "JSON"),
    ("not an object", BOTH, lambda v: {"connectorId": 1, "evseId": 1, "csChargingProfiles": [],
                                       "chargingProfile": []}, "schema"),
]


@pytest.mark.parametrize(
    ("version", "case"),
    [(v, c) for c in CASES for v in c[1]],
    ids=[f"{v}-{c[0]}" for c in CASES for v in c[1]],
)
def test_a_refused_profile_is_rejected_with_its_reason_and_loses_nothing(version: str, case: Case) -> None:
    _, _, build, reason = case
    book, _ = _book()
    kept = set_request(version, 0, profile(version, 1, "ChargePointMaxProfile", periods=((0, 20.0),)))
    assert book.set_profile("CP1", version, kept).status == "Accepted"
    before = book.snapshot()
    answer = book.set_profile("CP1", version, build(version))
    assert answer.status == "Rejected", answer
    assert reason.lower() in answer.reason.lower()
    checked(version, "SetChargingProfile", answer.payload)
    if version == "2.0.1":
        info = answer.payload["statusInfo"]
        assert info["reasonCode"] and reason.lower() in info["additionalInfo"].lower()
    else:
        assert answer.payload == {"status": "Rejected"}
    assert book.snapshot() == before


@pytest.mark.parametrize("version", BOTH)
def test_the_same_profiles_well_formed_are_accepted(version: str) -> None:
    """The counterparts of the refusals: a 1.6 limit of 16.3 (a multiple of 0.1 as the wire says
    it), 0 A, numberPhases 1 with phaseToUse, a TxProfile on its transaction's connector."""
    book, _ = _book()
    ok = [
        set_request(version, 1, profile(version, 1, periods=((0, 16.3), (600, 0.0)))),
        set_request(version, 1, profile(version, 2, stack=1, periods=((0, 16.0, 1),))),
        set_request(version, 0, profile(version, 3, "ChargePointMaxProfile", stack=99)),
        set_request(version, 1, _tx(version)),
        set_request(version, 0, profile(version, 4, stack=2, kind="Recurring", recurrency="Daily", duration=3600)),
    ]
    if version == "2.0.1":
        ok.append(set_request(version, 1, _edit(profile(version, 5, stack=3, periods=((0, 16.0, 1),)), version,
                                                "period0.phaseToUse", 2)))
    for payload in ok:
        answer = book.set_profile("CP1", version, payload)
        assert answer.status == "Accepted", answer.reason
        assert checked(version, "SetChargingProfile", answer.payload) == {"status": "Accepted"}


def test_1_6_fills_what_the_field_omits() -> None:
    """1.6 leaves ``startSchedule`` open: an Absolute profile without it starts when we received it;
    a Relative one's ``startSchedule`` is ignored (it counts from the transaction's start)."""
    book, clock = _book()
    clock.advance(minutes=10)
    assert book.set_profile("CP1", "1.6", set_request("1.6", 1, profile("1.6", 1, start=None, duration=600))).status \
        == "Accepted"
    relative = _edit(profile("1.6", 2, "TxProfile", stack=1, kind="Relative", periods=((0, 8.0),)), "1.6",
                     "sched.startSchedule", "2030-01-01T00:00:00Z")
    assert book.set_profile("CP1", "1.6", set_request("1.6", 1, relative)).status == "Accepted"
    steps = book.cap_steps("CP1", 1, "7", unit="A", phases_used=3, voltage_v=230.0,
                           start=clock.now, end=clock.now + timedelta(hours=1))
    assert steps == ((clock.now, 8.0),)
    book.transaction_ended("CP1", 1, "7")
    steps = book.cap_steps("CP1", 1, None, unit="A", phases_used=3, voltage_v=230.0,
                           start=clock.now, end=clock.now + timedelta(hours=1))
    assert steps == ((clock.now, 16.0), (clock.now + timedelta(minutes=10), math.inf))


def test_2_0_1_refuses_a_second_profile_in_the_same_slot_where_1_6_replaces() -> None:
    """K01.FR.06: same purpose, stack level and EVSE, another id, overlapping validity → Rejected;
    validities apart → both kept; 1.6 (§3.13.2) replaces instead."""
    book, _ = _book()
    first = profile("2.0.1", 1, valid_to=T0 + timedelta(hours=2), periods=((0, 10.0),))
    assert book.set_profile("CP1", "2.0.1", set_request("2.0.1", 1, first)).status == "Accepted"
    overlapping = profile("2.0.1", 2, valid_from=T0 + timedelta(hours=1), periods=((0, 12.0),))
    answer = book.set_profile("CP1", "2.0.1", set_request("2.0.1", 1, overlapping))
    assert answer.status == "Rejected" and "K01.FR.06" in answer.reason
    apart = profile("2.0.1", 2, valid_from=T0 + timedelta(hours=2), periods=((0, 12.0),))
    assert book.set_profile("CP1", "2.0.1", set_request("2.0.1", 1, apart)).status == "Accepted"
    tx_a = profile("2.0.1", 10, "TxProfile", stack=1, tx="7")
    tx_b = profile("2.0.1", 11, "TxProfile", stack=1, tx="7")
    assert book.set_profile("CP1", "2.0.1", set_request("2.0.1", 1, tx_a)).status == "Accepted"
    answer = book.set_profile("CP1", "2.0.1", set_request("2.0.1", 1, tx_b))
    assert answer.status == "Rejected" and "K01.FR.39" in answer.reason
    steps = book.cap_steps("CP1", 1, None, unit="A", phases_used=3, voltage_v=230.0,
                           start=T0, end=T0 + timedelta(hours=3))
    assert steps == ((T0, 10.0), (T0 + timedelta(hours=2), 12.0))

    old, _ = _book()
    assert old.set_profile("CP1", "1.6", set_request("1.6", 1, profile("1.6", 1, periods=((0, 10.0),)))).status \
        == "Accepted"
    assert old.set_profile("CP1", "1.6", set_request("1.6", 1, profile("1.6", 2, periods=((0, 12.0),)))).status \
        == "Accepted"
    assert [r["request"]["csChargingProfiles"]["chargingProfileId"] for r in old.snapshot()
            if r["row"] == "profile"] == [2]
