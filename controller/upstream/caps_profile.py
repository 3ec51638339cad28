"""A charging profile from the CSMS, checked and read into a version-neutral :class:`CsmsProfile`.

Checked first against the OCPP JSON schema the ``ocpp`` package bundles (1.6 with decimal floats,
so its ``multipleOf 0.1`` judges 16.3 as the wire says it), then for sense; anything wrong raises
:class:`Refused` with an OCPP 2.0.1 reason code and a message naming the field. Both versions:

* ``stackLevel`` 0 … the book's maximum; ``chargingRateUnit`` A or W; every ``limit`` (and
  ``minChargingRate``) finite and >= 0; periods from ``startPeriod`` 0, strictly ascending;
  ``numberPhases`` 1 … 3; ``duration`` >= 0; ``validFrom`` before ``validTo``; ``Recurring``
  needs a ``recurrencyKind`` (one given to another kind is ignored);
* ``ChargePointMaxProfile`` (2.0.1 ``ChargingStationMaxProfile``) only on connector 0; a
  ``TxProfile`` only on a connector > 0; ``transactionId`` only on a TxProfile;
* 2.0.1 only: a TxProfile needs its ``transactionId`` (K01.FR.03); ChargingStationMax is never
  Relative (K01.FR.38); Absolute and Recurring need ``startSchedule``, Relative has none (K01.FR.40,
  .41); ``phaseToUse`` only with ``numberPhases`` 1 (K01.FR.19); ``ChargingStationExternalConstraints``
  is not the CSMS's to set.
* 1.6 only (the spec leaves it open, CSMSs in the field omit it): an Absolute or Recurring
  profile without ``startSchedule`` starts when we received it; a Relative one's ``startSchedule``
  is ignored.

Whether a TxProfile's transaction runs, and which profiles it replaces, is the book's to judge
(:mod:`controller.upstream.caps`). Pure; times are parsed as OCPP gives them (UTC).
"""

from __future__ import annotations

import decimal
import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Literal, cast

from jsonschema import Draft4Validator  # type: ignore[import-untyped]

from controller.chargers.clock import from_ocpp

Version = Literal["1.6", "2.0.1"]
Purpose = Literal["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]
"""Normalised: 2.0.1's ``ChargingStationMaxProfile`` is ``ChargePointMaxProfile`` here."""
Kind = Literal["Absolute", "Recurring", "Relative"]
Recurrency = Literal["Daily", "Weekly"]
RateUnit = Literal["A", "W"]
MAX_PHASES = 3


class Refused(Exception):
    """A request that is not well-formed; ``code`` is a 2.0.1 ``reasonCode`` (<= 20 characters)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Period:
    """``start_s`` after the schedule's start, ``limit`` in its unit, ``phases`` = numberPhases."""

    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True)
class Schedule:
    """One charging schedule. ``start`` ``None``: Relative (counted from the session's start)."""

    unit: RateUnit
    periods: tuple[Period, ...]
    start: datetime | None = None
    duration_s: int | None = None


@dataclass(frozen=True)
class CsmsProfile:
    """One profile the CSMS set, version-neutral; ``received_at`` on our clock."""

    profile_id: int
    connector_id: int
    stack_level: int
    purpose: Purpose
    kind: Kind
    schedules: tuple[Schedule, ...]
    received_at: datetime
    recurrency: Recurrency | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None

    def overlaps(self, other: CsmsProfile) -> bool:
        """Their validity periods (``validFrom`` … ``validTo``, open-ended where absent) overlap."""
        a0, a1 = self.valid_from, self.valid_to
        b0, b1 = other.valid_from, other.valid_to
        return (a1 is None or b0 is None or b0 < a1) and (b1 is None or a0 is None or a0 < b1)


@cache
def _validator(version: Version, name: str) -> Any:
    folder = "v16" if version == "1.6" else "v201"
    text = (resources.files("ocpp") / folder / "schemas" / f"{name}.json").read_text(encoding="utf-8-sig")
    return Draft4Validator(json.loads(text, parse_float=decimal.Decimal if version == "1.6" else float))


def plain_json(value: object) -> float:
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def schema_problem(version: Version, name: str, payload: object) -> str | None:
    """The first schema violation of ``payload`` against the ``ocpp`` package's schema ``name``
    (file name without ``.json``), or None. Never raises.

    A SetChargingProfile's periods (up to 1024 per schedule, and jsonschema takes ~0.1 ms each)
    are checked against their schema here (:func:`_period_problem`), the rest by jsonschema."""
    try:
        parse_float: Any = decimal.Decimal if version == "1.6" else float
        instance = json.loads(json.dumps(payload, allow_nan=False, default=plain_json), parse_float=parse_float)
        if name == set_request_name(version):
            for path, sched in _schedules(version, instance):
                periods = sched["chargingSchedulePeriod"]
                if version == "2.0.1" and len(periods) > MAX_PERIODS_201:
                    return f"{path}: more than {MAX_PERIODS_201} periods"
                for i, period in enumerate(periods):
                    if (problem := _period_problem(version, f"{path}/{i}", period)) is not None:
                        return problem
                sched["chargingSchedulePeriod"] = periods[:1]
        error = next(iter(_validator(version, name).iter_errors(instance)), None)
    except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        return f"not JSON: {exc}"
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "payload"
    return f"{where}: {error.message}"


MAX_PERIODS_201 = 1024
_PERIOD_KEYS = {
    "1.6": frozenset({"startPeriod", "limit", "numberPhases"}),
    "2.0.1": frozenset({"startPeriod", "limit", "numberPhases", "phaseToUse", "customData"}),
}


def _schedules(version: Version, instance: object) -> list[tuple[str, dict[str, Any]]]:
    """Each chargingSchedule of a SetChargingProfile request (as parsed) that has a period list."""
    key = "csChargingProfiles" if version == "1.6" else "chargingProfile"
    prof = instance.get(key) if isinstance(instance, dict) else None
    raw = prof.get("chargingSchedule") if isinstance(prof, dict) else None
    where = f"{key}/chargingSchedule"
    found = [(where, raw)] if version == "1.6" else list(
        (f"{where}/{i}", s) for i, s in enumerate(raw if isinstance(raw, list) else ())
    )
    return [
        (f"{path}/chargingSchedulePeriod", s) for path, s in found
        if isinstance(s, dict) and isinstance(s.get("chargingSchedulePeriod"), list)
    ]


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _period_problem(version: Version, where: str, period: object) -> str | None:
    """``period`` against the schema's ChargingSchedulePeriod (Draft 4: an integer is an int)."""
    if not isinstance(period, dict):
        return f"{where}: {period!r} is not of type 'object'"
    extra = sorted(set(period) - _PERIOD_KEYS[version])
    if extra:
        return f"{where}: Additional properties are not allowed ({', '.join(map(repr, extra))} were unexpected)"
    for key in ("startPeriod", "limit"):
        if key not in period:
            return f"{where}: {key!r} is a required property"
    for key in ("startPeriod", "numberPhases", "phaseToUse"):
        if key in period and not _is_integer(period[key]):
            return f"{where}/{key}: {period[key]!r} is not of type 'integer'"
    limit = period["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int | float | decimal.Decimal):
        return f"{where}/limit: {limit!r} is not of type 'number'"
    if version == "1.6" and (decimal.Decimal(limit) / decimal.Decimal("0.1")) % 1 != 0:
        return f"{where}/limit: {limit!r} is not a multiple of 0.1"
    custom = period.get("customData")
    if custom is not None and not (
        isinstance(custom, dict) and isinstance(custom.get("vendorId"), str) and len(custom["vendorId"]) <= 255
    ):
        return f"{where}/customData: {custom!r} is not a CustomDataType"
    return None


def set_request_name(version: Version) -> str:
    return "SetChargingProfile" if version == "1.6" else "SetChargingProfileRequest"


def parse_set_request(
    version: Version, payload: dict[str, Any], received_at: datetime, max_stack_level: int, remote_start: bool = False
) -> CsmsProfile:
    """A SetChargingProfile request payload → the profile (raises :class:`Refused`); ``remote_start``:
    a start's profile, :func:`wrap_profile` d (see :func:`read_profile`)."""
    problem = schema_problem(version, set_request_name(version), payload)
    if problem is not None:
        raise Refused("InvalidMessage", f"schema: {problem}")
    if version == "1.6":
        connector_id, raw = int(payload["connectorId"]), payload["csChargingProfiles"]
    else:
        connector_id, raw = int(payload["evseId"]), payload["chargingProfile"]
    return read_profile(version, connector_id, raw, received_at, max_stack_level, remote_start)


def wrap_profile(version: Version, connector_id: int, profile: dict[str, Any]) -> dict[str, Any]:
    """A bare chargingProfile (as RemoteStart/RequestStart carry it) as a SetChargingProfile request."""
    if version == "1.6":
        return {"connectorId": connector_id, "csChargingProfiles": profile}
    return {"evseId": connector_id, "chargingProfile": profile}


def _time(raw: object, field: str) -> datetime:
    try:
        return from_ocpp(cast(str, raw))
    except (TypeError, ValueError, AttributeError) as exc:
        raise Refused("InvalidValue", f"{field}: not a date-time: {raw!r}") from exc


def _number(raw: object, field: str) -> float:
    value = float(cast(float, raw))
    if not math.isfinite(value) or value < 0:
        raise Refused("InvalidValue", f"{field}: {raw!r} is not a finite number >= 0")
    return value


def _schedule(version: Version, kind: Kind, raw: dict[str, Any], where: str, received_at: datetime) -> Schedule:
    unit = raw["chargingRateUnit"]
    if unit not in ("A", "W"):
        raise Refused("UnsupportedRateUnit", f"{where}.chargingRateUnit: {unit!r} is not A or W")
    periods: list[Period] = []
    for i, p in enumerate(raw["chargingSchedulePeriod"]):
        at = f"{where}.chargingSchedulePeriod[{i}]"
        start_s = int(p["startPeriod"])
        if i == 0 and start_s != 0:
            raise Refused("InvalidSchedule", f"{at}.startPeriod: the first period starts at 0, not {start_s}")
        if periods and start_s <= periods[-1].start_s:
            raise Refused("InvalidSchedule", f"{at}.startPeriod: {start_s} is not after {periods[-1].start_s}")
        phases = p.get("numberPhases")
        if phases is not None and not 1 <= int(phases) <= MAX_PHASES:
            raise Refused("InvalidValue", f"{at}.numberPhases: {phases} is not 1 to 3")
        to_use = p.get("phaseToUse")
        if to_use is not None and (phases != 1 or not 1 <= int(to_use) <= MAX_PHASES):
            raise Refused("InvalidValue", f"{at}.phaseToUse: {to_use} needs numberPhases 1 and a phase 1 to 3")
        periods.append(Period(start_s, _number(p["limit"], f"{at}.limit"), None if phases is None else int(phases)))
    if not periods:
        raise Refused("InvalidSchedule", f"{where}.chargingSchedulePeriod: no period")
    if "minChargingRate" in raw:
        _number(raw["minChargingRate"], f"{where}.minChargingRate")
    duration = raw.get("duration")
    if duration is not None and int(duration) < 0:
        raise Refused("InvalidValue", f"{where}.duration: {duration} is negative")
    start: datetime | None = None
    raw_start = raw.get("startSchedule")
    if kind == "Relative":
        if raw_start is not None and version == "2.0.1":
            raise Refused("InvalidSchedule", f"{where}.startSchedule: a Relative profile has none (K01.FR.41)")
    elif raw_start is not None:
        start = _time(raw_start, f"{where}.startSchedule")
    elif version == "2.0.1":
        raise Refused("InvalidSchedule", f"{where}.startSchedule: an {kind} profile needs one (K01.FR.40)")
    else:
        start = received_at  # 1.6 leaves it open; CSMSs omit it: from when we got it
    return Schedule(unit, tuple(periods), start, None if duration is None else int(duration))


def read_profile(
    version: Version,
    connector_id: int,
    raw: dict[str, Any],
    received_at: datetime,
    max_stack_level: int,
    remote_start: bool = False,
) -> CsmsProfile:
    """A schema-valid chargingProfile object for ``connector_id`` → the profile (raises :class:`Refused`).

    ``remote_start``: the profile a RemoteStartTransaction / RequestStartTransaction carried: a
    TxProfile without ``transactionId`` (its transaction is about to start)."""
    where = "csChargingProfiles" if version == "1.6" else "chargingProfile"
    profile_id = int(raw["chargingProfileId"] if version == "1.6" else raw["id"])
    stack_level = int(raw["stackLevel"])
    if not 0 <= stack_level <= max_stack_level:
        raise Refused("InvalidStackLevel", f"{where}.stackLevel: {stack_level} is not 0 to {max_stack_level}")
    if connector_id < 0:
        raise Refused("UnknownEvse", f"connector {connector_id} does not exist")
    purpose_raw = raw["chargingProfilePurpose"]
    if purpose_raw == "ChargingStationExternalConstraints":
        raise Refused("InvalidProfile", f"{where}.chargingProfilePurpose: {purpose_raw} is not the CSMS's to set")
    purpose = cast(Purpose, "ChargePointMaxProfile" if purpose_raw == "ChargingStationMaxProfile" else purpose_raw)
    kind = cast(Kind, raw["chargingProfileKind"])
    if purpose == "ChargePointMaxProfile" and connector_id != 0:
        raise Refused("InvalidProfile", f"{purpose_raw} only on connector 0, not {connector_id}")
    if purpose == "ChargePointMaxProfile" and kind == "Relative" and version == "2.0.1":
        raise Refused("InvalidProfile", f"{purpose_raw} cannot be Relative (K01.FR.38)")
    if purpose == "TxProfile" and connector_id == 0:
        raise Refused("InvalidProfile", "TxProfile needs a connector > 0 (K01.FR.16)")
    tx_raw = raw.get("transactionId")
    if remote_start and purpose != "TxProfile":
        raise Refused("InvalidProfile", f"a start carries a TxProfile, not a {purpose_raw}")
    if remote_start and tx_raw is not None:
        raise Refused("InvalidProfile", f"{where}.transactionId: a start's profile has none (its transaction is new)")
    if tx_raw is not None and purpose != "TxProfile":
        raise Refused("InvalidProfile", f"{where}.transactionId: only a TxProfile has one")
    if tx_raw is None and purpose == "TxProfile" and version == "2.0.1" and not remote_start:
        raise Refused("TxNotFound", "TxProfile without transactionId (K01.FR.03)")
    recurrency = cast(Recurrency | None, raw.get("recurrencyKind")) if kind == "Recurring" else None
    if kind == "Recurring" and recurrency is None:
        raise Refused("InvalidProfile", f"{where}.recurrencyKind: a Recurring profile needs Daily or Weekly")
    valid_from = _time(raw["validFrom"], f"{where}.validFrom") if "validFrom" in raw else None
    valid_to = _time(raw["validTo"], f"{where}.validTo") if "validTo" in raw else None
    if valid_from is not None and valid_to is not None and valid_to <= valid_from:
        raise Refused("InvalidValue", f"{where}.validTo: not after validFrom")
    schedules_raw = raw["chargingSchedule"]
    schedules: tuple[Schedule, ...]
    if isinstance(schedules_raw, dict):
        schedules = (_schedule(version, kind, schedules_raw, f"{where}.chargingSchedule", received_at),)
    else:
        schedules = tuple(
            _schedule(version, kind, s, f"{where}.chargingSchedule[{i}]", received_at)
            for i, s in enumerate(schedules_raw)
        )
    return CsmsProfile(
        profile_id=profile_id,
        connector_id=connector_id,
        stack_level=stack_level,
        purpose=purpose,
        kind=kind,
        schedules=schedules,
        received_at=received_at,
        recurrency=recurrency,
        valid_from=valid_from,
        valid_to=valid_to,
        transaction_id=None if tx_raw is None else str(tx_raw),
    )
