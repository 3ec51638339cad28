"""Issue 12 hazard 5: a W limit never lets one phase exceed the A planned for it.

W = planned A × voltage × the phases the connector's EV is measured on (else as reported, else 1).
Through the real OCPP path: a charger that offers only power (capabilities), 1.6 and 2.0.1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from controller.chargers.state import Reading, Transaction
from tests.chargers.conftest import eventually, make_site
from tests.chargers.scripted import LoopClock, ScriptedCharger
from tests.chargers.test_control import Rig

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def power_only(version: str) -> Callable[[str, dict[str, Any]], dict[str, Any] | None]:
    """Answers capability reads as a charger that takes W only."""

    def answer(action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        if action == "GetConfiguration":
            return {
                "configurationKey": [
                    {"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"}
                ]
            }
        if action == "GetVariables":
            return {
                "getVariableResult": [
                    {
                        "attributeStatus": "Accepted" if d["variable"]["name"] == "RateUnit" else "UnknownVariable",
                        **({"attributeValue": "W"} if d["variable"]["name"] == "RateUnit" else {}),
                        "component": d["component"],
                        "variable": d["variable"],
                    }
                    for d in payload["getVariableData"]
                ]
            }
        return None

    return answer


def _limit_and_phases(version: str, payload: dict[str, Any]) -> tuple[str, float, int | None]:
    profile = payload["csChargingProfiles"] if version == "1.6" else payload["chargingProfile"]
    schedule = profile["chargingSchedule"] if version == "1.6" else profile["chargingSchedule"][0]
    period = schedule["chargingSchedulePeriod"][0]
    return schedule["chargingRateUnit"], float(period["limit"]), period.get("numberPhases")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_w_limits_are_sized_by_the_phases_in_use(version: str, server_factory: Callable[..., Any]) -> None:
    clock = LoopClock(T0)
    site = make_site([{"id": "CP1", "connectors": 2}])
    cs = await server_factory(site, clock=clock)
    ch = ScriptedCharger("CP1", clock, version=version, answer=power_only(version))
    await ch.connect(f"ws://127.0.0.1:{cs.port}/ocpp")
    try:
        await ch.boot()
        await eventually(lambda: cs.control.failsafe_installed("CP1"), what="fail-safe")
        # the fail-safe in W holds any EV to 6 A on any phase: sized for one phase
        assert _limit_and_phases(version, ch.profiles()[0]) == ("W", 6 * 230.0, 1)
        assert cs.control.budget("CP1").value == pytest.approx(12.0)  # 6 A on each of two connectors

        one = await ch.start_transaction(1)
        # nothing measured yet: the worst case, one phase
        assert (await cs.control.apply("CP1", 16.0, connector=1)).status == "accepted"
        assert _limit_and_phases(version, ch.profiles()[-1]) == ("W", 16 * 230.0, 1)
        # a 1-phase EV (measured): still 16 A × 230 V, never 3 × that on its one phase
        await ch.meter_values(1, (16.0, 0.0, 0.0), transaction_id=one)
        assert (await cs.control.apply("CP1", 20.0, connector=1)).status == "accepted"
        assert _limit_and_phases(version, ch.profiles()[-1]) == ("W", 20 * 230.0, 1)
        assert cs.control.connector_budget("CP1", 1).value == pytest.approx(20.0)

        three = await ch.start_transaction(2)
        await ch.meter_values(2, (10.0, 10.0, 10.0), transaction_id=three)
        assert (await cs.control.apply("CP1", 16.0, connector=2)).status == "accepted"
        assert _limit_and_phases(version, ch.profiles()[-1]) == ("W", 16 * 230.0 * 3, 3)
        assert cs.control.connector_budget("CP1", 2).value == pytest.approx(16.0)
    finally:
        await ch.close()


async def test_new_session_does_not_inherit_the_last_sessions_phases() -> None:
    rig = Rig(make_site([{"id": "CP0", "ocpp_quirks": ["power_only"]}]))
    s = rig.plug("CP0", tx=5)
    st = rig.state("CP0")
    st.connector(1).measured.current_a = [
        Reading(16.0, rig.clock()),
        Reading(16.0, rig.clock()),
        Reading(16.0, rig.clock()),
    ]
    st.note_meter_values(1)
    await rig.control.apply("CP0", 16.0)
    assert s.sent[-1].periods[0].limit == 16 * 230 * 3
    rig.clock.advance(30)
    st.connector(1).transaction = Transaction(6, 1, "TAG", None, rig.clock(), seen_at=rig.clock())
    await rig.control.apply("CP0", 16.0)
    assert s.sent[-1].periods[0].limit == 16 * 230  # the 3-phase readings were the last session's
