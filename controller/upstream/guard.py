"""What the CSMS may not change on a charger behind depotctl, and what depotctl sets again after it.

Configuration writes pass through (the issue: ChangeConfiguration from the CSMS passes), with two
exceptions that would defeat the fail-closed design (docs/safety.md):

* **Smart charging switched off** (2.0.1 ``SetVariables`` of ``SmartChargingCtrlr.Enabled`` or
  ``.Available`` to false): the charger would ignore every profile — the fail-safe included — and
  let its EVs draw their maximum. Such an item is answered ``Rejected`` without being forwarded;
  the call's other items go on. (1.6 has no standard key for it.)
* **Meter values made slower or stripped** (1.6 ``MeterValueSampleInterval`` /
  ``MeterValuesSampledData``; 2.0.1 ``SampledDataCtrlr.TxUpdatedInterval`` / ``TxUpdatedMeasurands``):
  depotctl measures each charger's draw from them. The write is forwarded, and when the charger
  accepted it depotctl sets sampling again to what both need: the shorter interval and depotctl's
  measurands plus the CSMS's (:func:`merged_sampling`) — the CSMS still gets at least what it asked.
"""

from __future__ import annotations

from typing import Any

SMART_OFF = frozenset({("SmartChargingCtrlr", "Enabled"), ("SmartChargingCtrlr", "Available")})
SAMPLING_16 = {"MeterValueSampleInterval": "interval", "MeterValuesSampledData": "measurands"}
SAMPLING_201 = {("SampledDataCtrlr", "TxUpdatedInterval"): "interval",
                ("SampledDataCtrlr", "TxUpdatedMeasurands"): "measurands"}


def _is_false(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("false", "0")


def refused_items(payload: dict[str, Any]) -> list[int]:
    """Indexes of the ``setVariableData`` items of a 2.0.1 SetVariables that switch smart charging off."""
    out = []
    for i, item in enumerate(payload.get("setVariableData") or []):
        if not isinstance(item, dict):
            continue
        key = ((item.get("component") or {}).get("name"), (item.get("variable") or {}).get("name"))
        if key in SMART_OFF and _is_false(item.get("attributeValue")):
            out.append(i)
    return out


def rejected_result(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "attributeStatus": "Rejected",
        "component": item.get("component"),
        "variable": item.get("variable"),
        "attributeStatusInfo": {"reasonCode": "NotSupported",
                       "additionalInfo": "depotctl (local controller) keeps smart charging on"},
    }


def sampling_asked(version: str, action: str, payload: dict[str, Any]) -> dict[str, str]:
    """What a configuration write from the CSMS asks of meter sampling: ``interval`` and/or
    ``measurands`` → the value asked (empty: it does not touch sampling)."""
    out: dict[str, str] = {}
    if version == "1.6" and action == "ChangeConfiguration":
        what = SAMPLING_16.get(str(payload.get("key")))
        if what is not None and isinstance(payload.get("value"), str):
            out[what] = payload["value"]
    elif version != "1.6" and action == "SetVariables":
        for item in payload.get("setVariableData") or []:
            if not isinstance(item, dict):
                continue
            key = (str((item.get("component") or {}).get("name")), str((item.get("variable") or {}).get("name")))
            what = SAMPLING_201.get(key)
            if what is not None and isinstance(item.get("attributeValue"), str):
                out[what] = item["attributeValue"]
    return out


def merged_sampling(
    ours_interval_s: int, ours: tuple[str, ...], asked: dict[str, str]
) -> tuple[int, tuple[str, ...]]:
    """The sampling that serves both: the shorter interval (a CSMS's 0 — none — does not count),
    depotctl's measurands and then the CSMS's."""
    interval = ours_interval_s
    try:
        theirs = int(asked.get("interval", ""))
        if 0 < theirs < interval:
            interval = theirs
    except ValueError:
        pass
    measurands = list(ours)
    for m in (asked.get("measurands") or "").split(","):
        m = m.strip()
        if m and m not in measurands:
            measurands.append(m)
    return interval, tuple(measurands)
