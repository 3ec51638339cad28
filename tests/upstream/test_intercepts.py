"""The CSMS's smart charging never reaches the chargers: SetChargingProfile, ClearChargingProfile and
GetCompositeSchedule are answered from the cap book; a remote start's profile is taken off the start
and kept as a cap. One 1.6 and one 2.0.1 charger, closed loop."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from controller.chargers.profiles import FAILSAFE_PROFILE_ID, control_profile_id
from hil.csms import charging_profile
from hil.ev import EvParams
from tests.upstream.conftest import eventually, proxied

EV = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.2)
CHARGERS = {"A16": "1.6", "B201": "2.0.1"}
CSMS_PROFILE_IDS = {900, 901, 902}


async def test_profiles_from_the_csms_become_caps_and_never_reach_the_charger(tmp_path: Path) -> None:
    async with proxied(tmp_path, list(CHARGERS)) as loop:
        csms, caps = loop.csms, loop.caps
        assert caps is not None
        sims = {cid: await loop.charger(cid, v) for cid, v in CHARGERS.items()}
        for cid, version in CHARGERS.items():
            await csms.wait_connected(cid, booted=1)
            purpose = "ChargePointMaxProfile" if version == "1.6" else "ChargingStationMaxProfile"
            assert (await csms.set_cap(cid, 10.0, purpose=purpose, profile_id=900))["status"] == "Accepted"
            # well-formed but wrong (a TxProfile without a transaction): Rejected, as a charger would
            answer = await csms.set_cap(cid, 8.0, purpose="TxProfile", profile_id=901, stack_level=1)
            assert answer["status"] == "Rejected"
            now = loop.clock()
            steps = caps.cap_steps(cid, 1, None, unit="A", phases_used=3, voltage_v=230.0, start=now,
                                   end=now + timedelta(hours=1))
            assert steps and steps[0][1] == 10.0
            composite = await csms.get_composite_schedule(cid, 1, 600, "A")
            assert composite["status"] == "Accepted"
            periods = (composite["chargingSchedule"] if version == "1.6" else composite["schedule"])[
                "chargingSchedulePeriod"]
            assert periods[0]["limit"] == 10.0

            # a start carrying a TxProfile: the charger gets the start without it
            await sims[cid].plug_in(EV, id_tag="TAG", start=False)
            profile = charging_profile(version, profile_id=902, purpose="TxProfile", limit=7.0, kind="Relative",
                                       stack_level=1)
            assert (await csms.remote_start(cid, "TAG", 1, charging_profile=profile))["status"] == "Accepted"
            await eventually(lambda cid=cid: loop.cs.state(cid).transaction(1) is not None, 5.0, "the start")  # type: ignore[misc]
            starts = [f for f in loop.received[cid] if f[0] == 2 and f[2] in ("RemoteStartTransaction",
                                                                                "RequestStartTransaction")]
            assert len(starts) == 1 and "chargingProfile" not in starts[0][3]
            tx = loop.cs.state(cid).transaction(1)
            assert tx is not None
            now = loop.clock()
            steps = caps.cap_steps(cid, 1, str(tx.transaction_id), unit="A", phases_used=3, voltage_v=230.0,
                                   start=now, end=now + timedelta(hours=1))
            assert steps and steps[0][1] == 7.0  # min(ChargePointMax 10, the start's TxProfile 7)

            assert (await csms.clear_charging_profile(cid, profile_id=900))["status"] == "Accepted"
            assert (await csms.clear_charging_profile(cid, profile_id=900))["status"] == "Unknown"

        # the chargers hold depotctl's profiles only
        for cid, sim in sims.items():
            got = [p for action, p in sim.record.profiles_received]
            ids = {p.get("charging_profile_id", p.get("id")) for p in got}
            assert ids and not ids & CSMS_PROFILE_IDS, cid
            own = {FAILSAFE_PROFILE_ID, control_profile_id(1, "TxProfile"), control_profile_id(1, "TxDefaultProfile")}
            assert ids <= own, ids
            assert not [f for f in loop.received[cid] if f[0] == 2 and f[2] in (
                "ClearChargingProfile", "GetCompositeSchedule")]
        loop.assert_clean()
