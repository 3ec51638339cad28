"""The OCPP-J frame validator (hil/ocpp_schema.py): CALLs against their request schema, CALLRESULTs
against the response schema of the CALL they answer (pending ids per direction), CALLERROR shape
and codes, the frame itself."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hil.ocpp_schema import FrameValidator, actions, validator_for

BOOT_201 = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
BOOT_201_ANSWER = {"currentTime": "2026-03-02T10:00:00Z", "interval": 300, "status": "Accepted"}


def frame(*items: Any) -> str:
    return json.dumps(list(items))


def reasons(v: FrameValidator, direction: str, text: str | bytes) -> list[str]:
    return [x.reason for x in v.check("in" if direction == "in" else "out", text)]


def test_a_valid_exchange_both_ways_has_no_violation() -> None:
    v = FrameValidator("2.0.1", check_sent=True)
    assert reasons(v, "in", frame(2, "1", "BootNotification", BOOT_201)) == []
    assert reasons(v, "out", frame(3, "1", BOOT_201_ANSWER)) == []
    assert reasons(v, "out", frame(2, "c1", "Reset", {"type": "OnIdle"})) == []
    assert reasons(v, "in", frame(3, "c1", {"status": "Scheduled"})) == []
    assert v.violations == [] and v.frames_checked == 4 and v.pending("in") == v.pending("out") == {}


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_a_call_with_a_wrong_type_or_a_missing_field(version: str) -> None:
    v = FrameValidator(version)
    payload: dict[str, Any] = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    if version == "2.0.1":
        payload = {"evseId": "1", "connectorId": 1, "connectorStatus": "Available"}  # no timestamp
    found = reasons(v, "in", frame(2, "9", "StatusNotification", payload))
    if version == "1.6":
        assert found == []  # timestamp is optional in 1.6
        found = reasons(v, "in", frame(2, "10", "StatusNotification", {**payload, "connectorId": "1"}))
        assert found == ["CALL StatusNotification: $.connectorId: '1' is not of type 'integer'"]
        found = reasons(v, "in", frame(2, "11", "StatusNotification", {"connectorId": 1, "status": "Available"}))
        assert found == ["CALL StatusNotification: $: 'errorCode' is a required property"]
    else:
        assert sorted(found) == [
            "CALL StatusNotification: $.evseId: '1' is not of type 'integer'",
            "CALL StatusNotification: $: 'timestamp' is a required property",
        ]


def test_a_callresult_is_checked_against_the_response_of_the_call_it_answers() -> None:
    v = FrameValidator("1.6")
    v.check("out", frame(2, "r1", "RemoteStartTransaction", {"idTag": "TAG"}))
    v.check("out", frame(2, "r2", "GetCompositeSchedule", {"connectorId": 1, "duration": 60}))
    # the answer to r1 shaped like a StartTransaction answer: wrong for RemoteStartTransaction
    found = reasons(v, "in", frame(3, "r1", {"transactionId": 5, "idTagInfo": {"status": "Accepted"}}))
    assert "CALLRESULT to RemoteStartTransaction: $: 'status' is a required property" in found
    assert any("Additional properties are not allowed" in r for r in found)
    assert reasons(v, "in", frame(3, "r2", {"status": "Accepted"})) == []
    # answered once only; and an answer travelling the same way as its CALL matches nothing
    assert reasons(v, "in", frame(3, "r2", {"status": "Accepted"})) == ["CALLRESULT 'r2' answers no pending CALL"]
    v.check("in", frame(2, "h1", "Heartbeat", {}))
    assert reasons(v, "in", frame(3, "h1", {"currentTime": "2026-03-02T10:00:00Z"})) == [
        "CALLRESULT 'h1' answers no pending CALL"
    ]


def test_callerror_shape_and_codes_per_version() -> None:
    v16, v201 = FrameValidator("1.6"), FrameValidator("2.0.1")
    for v in (v16, v201):
        v.check("out", frame(2, "a", "Reset", {"type": "Hard" if v is v16 else "Immediate"}))
        v.check("out", frame(2, "b", "Reset", {"type": "Soft" if v is v16 else "OnIdle"}))
    assert reasons(v16, "in", frame(4, "a", "FormationViolation", "", {})) == []
    assert reasons(v201, "in", frame(4, "a", "FormationViolation", "", {})) == [
        "CALLERROR code 'FormationViolation' is not an OCPP 2.0.1 error code"
    ]
    assert reasons(v16, "in", frame(4, "b", "GenericError", 5, [])) == [
        "CALLERROR description is not a string",
        "CALLERROR details is not a JSON object",
    ]
    assert reasons(v201, "in", frame(4, "b", "GenericError", "x")) == ["a CALLERROR has 5 elements, this one 4"]
    assert reasons(v201, "in", frame(4, "zz", "GenericError", "", {})) == ["CALLERROR 'zz' answers no pending CALL"]


def test_broken_frames() -> None:
    v = FrameValidator("1.6")
    assert reasons(v, "in", "[2, 'x'") == ["not JSON (Expecting value: line 1 column 5 (char 4))"]
    assert reasons(v, "in", "{}") == ["not a JSON array [MessageTypeId, UniqueId, ...]"]
    assert reasons(v, "in", frame(5, "1", {})) == ["MessageTypeId 5 is not 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)"]
    assert reasons(v, "in", frame(2, 1, "Heartbeat", {})) == ["UniqueId 1 is not a string"]
    assert reasons(v, "in", frame(2, "x" * 37, "Heartbeat", {})) == ["UniqueId is 37 characters (at most 36)"]
    assert reasons(v, "in", frame(2, "u", "Frobnicate", {})) == ["CALL Frobnicate: no such action in OCPP 1.6"]
    assert reasons(v, "in", frame(2, "../x", "../../etc", {})) == ["CALL ../../etc: no such action in OCPP 1.6"]
    assert reasons(v, "in", b'[2,"b","Heartbeat",{}]') == ["a binary frame (OCPP-J frames are text)"]
    v.check("in", frame(2, "p", "Heartbeat", {}))
    assert reasons(v, "in", frame(2, "p", "Heartbeat", {})) == [
        "CALL Heartbeat: UniqueId 'p' reused while Heartbeat is unanswered"
    ]


def test_numbers_and_times_as_written() -> None:
    v = FrameValidator("1.6", check_sent=True)
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]},
    }
    assert (
        reasons(v, "out", frame(2, "1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})) == []
    )
    profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 21.45
    found = reasons(v, "out", frame(2, "2", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile}))
    assert found == [
        "CALL SetChargingProfile: $.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[0].limit: "
        "Decimal('21.45') is not a multiple of 0.1"
    ]
    start = {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2026-03-02T10:00:00"}
    assert reasons(v, "in", frame(2, "3", "StartTransaction", start)) == [
        "CALL StartTransaction: $.timestamp: '2026-03-02T10:00:00' is not a 'date-time'"
    ]
    start["timestamp"] = "2026-03-02T11:00:00.5+01:00"
    assert reasons(v, "in", frame(2, "4", "StartTransaction", start)) == []


def test_frames_sent_are_noted_not_judged_unless_asked() -> None:
    v = FrameValidator("2.0.1")
    assert reasons(v, "out", frame(2, "1", "Reset", {"type": "Sometime"})) == []
    assert v.pending("out") == {"1": "Reset"} and v.violations == []
    v.reset()
    assert v.pending("out") == {}


def test_validators_are_compiled_once_and_every_action_has_one() -> None:
    assert validator_for("1.6", "MeterValues", "request") is validator_for("1.6", "MeterValues", "request")
    assert validator_for("2.0.1", "Nope", "request") is None
    for version in ("1.6", "2.0.1"):
        for action in actions(version):
            assert validator_for(version, action, "request") is not None
            assert validator_for(version, action, "response") is not None
    assert "TransactionEvent" in actions("2.0.1") and "StartTransaction" in actions("1.6")
    with pytest.raises(ValueError, match=r"OCPP version '2\.1'"):
        FrameValidator("2.1")
