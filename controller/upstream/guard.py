"""What the CSMS may not change on a charger behind depotctl, and what depotctl sets again after it.

Configuration writes pass through (the issue: ChangeConfiguration from the CSMS passes), with
these exceptions that would defeat the fail-closed design (docs/safety.md, hazards 29 and 35):

* **Smart charging switched off** (2.0.1 ``SetVariables`` of ``SmartChargingCtrlr.Enabled`` or
  ``.Available`` to false): the charger would ignore every profile — the fail-safe included — and
  let its EVs draw their maximum. Such an item is answered ``Rejected`` without being forwarded;
  the call's other items go on. (1.6 has no standard key for it.) Meter values switched off
  (``SampledDataCtrlr.Enabled`` false) likewise.
* **The charger taken away from depotctl**: 2.0.1 ``SetNetworkProfile`` and writes of
  ``OCPPCommCtrlr.NetworkConfigurationPriority``, ``SecurityCtrlr.BasicAuthPassword``,
  ``.SecurityProfile`` or ``.Identity``; 1.6 ``ChangeConfiguration`` of ``AuthorizationKey``,
  ``SecurityProfile`` or any key naming a URL (vendors' central-system URL keys). After a reboot the
  charger would connect straight to the CSMS, or no longer log in to depotctl, and a CSMS talking
  to it directly could install any profile. Refused (``Rejected``), never forwarded.

Names are matched case-insensitively (OCPP 2.0.1 says component and variable names are).

* **Meter values made slower or stripped** (1.6 ``MeterValueSampleInterval`` /
  ``MeterValuesSampledData``; 2.0.1 ``SampledDataCtrlr.TxUpdatedInterval`` / ``TxUpdatedMeasurands``):
  depotctl measures each charger's draw from them. The write is forwarded, and when the charger
  accepted it depotctl sets sampling again to what both need: the shorter interval and depotctl's
  measurands plus the CSMS's (:func:`merged_sampling`) — the CSMS still gets at least what it asked.
"""

from __future__ import annotations

from typing import Any

OFF_WHEN_FALSE = frozenset({
    ("smartchargingctrlr", "enabled"), ("smartchargingctrlr", "available"), ("sampleddatactrlr", "enabled"),
})
NEVER_201 = frozenset({
    ("ocppcommctrlr", "networkconfigurationpriority"), ("securityctrlr", "basicauthpassword"),
    ("securityctrlr", "securityprofile"), ("securityctrlr", "identity"),
})
NEVER_16 = frozenset({"authorizationkey", "securityprofile"})
REFUSED_ACTIONS = frozenset({"SetNetworkProfile"})
"""CSMS calls refused outright (answered ``Rejected``, never forwarded)."""
SAMPLING_16 = {"metervaluesampleinterval": "interval", "metervaluessampleddata": "measurands"}
SAMPLING_201 = {("sampleddatactrlr", "txupdatedinterval"): "interval",
                ("sampleddatactrlr", "txupdatedmeasurands"): "measurands"}


def _is_false(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("false", "0")


def _fold(value: Any) -> str:
    return str(value).strip().casefold() if value is not None else ""


def guard_key(item: dict[str, Any]) -> tuple[str, str]:
    return _fold((item.get("component") or {}).get("name")), _fold((item.get("variable") or {}).get("name"))


def refused_items(payload: dict[str, Any]) -> list[int]:
    """Indexes of the ``setVariableData`` items of a 2.0.1 SetVariables depotctl refuses: smart
    charging or meter values switched off, the charger's network or credentials changed."""
    out = []
    for i, item in enumerate(payload.get("setVariableData") or []):
        if not isinstance(item, dict):
            continue
        key = guard_key(item)
        if key in NEVER_201 or (key in OFF_WHEN_FALSE and _is_false(item.get("attributeValue"))):
            out.append(i)
    return out


def refused_key_16(payload: dict[str, Any]) -> bool:
    """A 1.6 ChangeConfiguration depotctl refuses: the charger's credentials, security profile or
    a URL it connects to."""
    key = _fold(payload.get("key"))
    return key in NEVER_16 or "url" in key


def rejected_result(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "attributeStatus": "Rejected",
        "component": item.get("component"),
        "variable": item.get("variable"),
        "attributeStatusInfo": {"reasonCode": "NotSupported",
                                "additionalInfo": "depotctl (local controller) keeps this setting"},
    }


def sampling_asked(version: str, action: str, payload: dict[str, Any]) -> dict[str, str]:
    """What a configuration write from the CSMS asks of meter sampling: ``interval`` and/or
    ``measurands`` → the value asked (empty: it does not touch sampling)."""
    out: dict[str, str] = {}
    if version == "1.6" and action == "ChangeConfiguration":
        what = SAMPLING_16.get(_fold(payload.get("key")))
        if what is not None and isinstance(payload.get("value"), str):
            out[what] = payload["value"]
    elif version != "1.6" and action == "SetVariables":
        for item in payload.get("setVariableData") or []:
            if not isinstance(item, dict):
                continue
            what = SAMPLING_201.get(guard_key(item))
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
