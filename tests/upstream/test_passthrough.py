"""The transparent proxy with the CSMS up: what the chargers send reaches the CSMS unchanged and its
answers reach the chargers; the CSMS's calls reach the chargers; depotctl's own calls stay local
and depotctl's state stays what it is without upstream. One 1.6 and one 2.0.1 charger in each
test, closed loop on real websockets."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import websockets.asyncio.client
from websockets.typing import Subprotocol

from hil.csms import CallErrorAnswer, CsmsOptions
from hil.ev import EvParams
from tests.upstream.conftest import TAGS, eventually, proxied

EV = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.2)
CHARGERS = {"A16": "1.6", "B201": "2.0.1"}


async def test_boot_authorise_start_meter_values_remote_stop_and_start(tmp_path: Path) -> None:
    options = CsmsOptions(id_tags=TAGS, call_timeout_s=3.0, heartbeat_interval_s=123)
    async with proxied(tmp_path, list(CHARGERS), csms_options=options) as loop:
        csms = loop.csms
        sims = {cid: await loop.charger(cid, v, meter_interval_s=0.3) for cid, v in CHARGERS.items()}
        for cid in CHARGERS:
            await csms.wait_connected(cid, booted=1)
            # the boot reached depotctl too, and the charger got the CSMS's answer (its interval)
            assert loop.cs.state(cid).vendor == "depotctl-hil"
            [boot] = loop.answers(cid, "BootNotification")
            assert boot[2]["interval"] == 123
            assert csms.log(cid).version == CHARGERS[cid]

        # authorise: the CSMS's verdict reaches the charger
        await sims["A16"].cp.authorize("BLOCKED")
        assert loop.answers("A16", "Authorize")[-1][2]["idTagInfo"]["status"] == "Blocked"
        await sims["B201"].cp.authorize("BLOCKED")
        assert loop.answers("B201", "Authorize")[-1][2]["idTokenInfo"]["status"] == "Blocked"

        for sim in sims.values():
            await sim.plug_in(EV, id_tag="TAG")
        for cid, sim in sims.items():
            [tx] = csms.transactions(cid)
            assert sim.connectors[1].tx is not None
            assert sim.connectors[1].tx.transaction_id == tx.key  # 1.6: the CSMS's id, not depotctl's
            own = loop.cs.state(cid).transaction(1)
            assert own is not None and str(own.transaction_id) == tx.key  # depotctl's TxProfiles name it
        assert csms.transactions("A16")[0].transaction_id == 100001

        # meter values reach the CSMS with its transaction ids, and depotctl's state
        for cid in CHARGERS:
            tx = csms.transactions(cid)[0]
            await eventually(lambda tx=tx: len(tx.meter_values) >= 3, 5.0, f"{cid} meter values")  # type: ignore[misc]
            assert {m.transaction_id for m in tx.meter_values} == {tx.key}
            assert loop.cs.state(cid).connectors[1].measured.energy_wh is not None

        # depotctl controls the chargers: its profiles are on them, and the CSMS never saw them
        for cid, sim in sims.items():
            await eventually(lambda sim=sim: bool(sim.store.profiles), 5.0, f"{cid} profiles")  # type: ignore[misc]
            actions = {f.action for f in csms.log(cid).frames}
            assert not actions & {"SetChargingProfile", "GetConfiguration", "ChangeConfiguration",
                                  "GetVariables", "SetVariables"}

        # remote stop, then remote start (the EV is still plugged in)
        for cid, sim in sims.items():
            tx = csms.transactions(cid)[0]
            assert (await csms.remote_stop(cid, tx.transaction_id))["status"] == "Accepted"
            await eventually(lambda tx=tx: tx.ended, 5.0, f"{cid} stopped")  # type: ignore[misc]
            await eventually(lambda cid=cid: loop.cs.state(cid).transaction(1) is None, 5.0, "depotctl saw the stop")  # type: ignore[misc]
            assert tx.stop_reason == "Remote"
            await eventually(lambda sim=sim: sim.connectors[1].tx is None, 5.0, "the charger got the answer")  # type: ignore[misc]
            assert (await csms.remote_start(cid, "TAG"))["status"] == "Accepted"
            await eventually(lambda cid=cid: len(csms.transactions(cid)) == 2, 5.0, f"{cid} remote start")  # type: ignore[misc]
            second = csms.transactions(cid)[1]
            await eventually(lambda cid=cid: loop.cs.state(cid).transaction(1) is not None, 5.0, "depotctl saw it")  # type: ignore[misc]
            assert str(loop.cs.state(cid).transaction(1).transaction_id) == second.key  # type: ignore[union-attr]
        assert csms.transactions("A16")[1].transaction_id == 100002
        assert loop.proxy.queue_depth() == 0
        assert all(s.connected for s in loop.proxy.status())
        loop.assert_clean()


async def test_the_csmss_calls_reach_the_chargers_with_ids_of_depotctls_own(tmp_path: Path) -> None:
    async with proxied(tmp_path, [*CHARGERS, "HUNG"]) as loop:
        csms = loop.csms
        sims = {cid: await loop.charger(cid, v) for cid, v in CHARGERS.items()}
        for cid in CHARGERS:
            await csms.wait_connected(cid, booted=1)
            # the charger's own DataTransfer: the CSMS's answer, not depotctl's (UnknownVendorId)
            if CHARGERS[cid] == "1.6":
                from ocpp.v16 import call as c16

                answer = await sims[cid].cp.call(c16.DataTransfer(vendor_id="acme", data="x"))
            else:
                from ocpp.v201 import call as c201

                answer = await sims[cid].cp.call(c201.DataTransfer(vendor_id="acme", data="x"))
            assert answer.status == "Accepted"
            assert csms.log(cid).data_transfers[-1]["vendorId"] == "acme"

            assert (await csms.data_transfer(cid, "acme", "hello"))["status"] == "UnknownVendorId"
            assert (await csms.trigger_message(cid, "StatusNotification", 1))["status"] == "Accepted"
            await eventually(lambda cid=cid: len(csms.log(cid).statuses) >= 2, 3.0, "the triggered status")  # type: ignore[misc]
            # meter sampling changed by the CSMS: passed on, then set again to what both need
            sim = sims[cid]
            await eventually(lambda sim=sim: "Current.Import" in sim.measurands(), 3.0, "depotctl's sampling")  # type: ignore[misc]
            if CHARGERS[cid] == "1.6":
                assert (await csms.change_configuration(cid, "MeterValueSampleInterval", "7"))["status"] == "Accepted"
                answer = await csms.change_configuration(cid, "MeterValuesSampledData", "Energy.Active.Import.Register")
                assert answer["status"] == "Accepted"
            else:  # and smart charging switched off: refused, never forwarded
                out = await csms.set_variables(cid, [("SmartChargingCtrlr", "Enabled", "false"),
                                                     ("SampledDataCtrlr", "TxUpdatedInterval", "7")])
                assert [r["attributeStatus"] for r in out["setVariableResult"]] == ["Rejected", "Accepted"]
                assert out["setVariableResult"][0]["variable"]["name"] == "Enabled"
                got = [f[3] for f in loop.received[cid] if f[0] == 2 and f[2] == "SetVariables"]
                assert not [i for p in got for i in p["setVariableData"] if i["variable"]["name"] == "Enabled"]
                # names are case-insensitive in 2.0.1; the charger's credentials and network are depotctl's
                out = await csms.set_variables(cid, [("smartchargingctrlr", "ENABLED", "false"),
                                                     ("SecurityCtrlr", "BasicAuthPassword", "0123456789abcdef"),
                                                     ("OCPPCommCtrlr", "NetworkConfigurationPriority", "2")])
                assert [r["attributeStatus"] for r in out["setVariableResult"]] == ["Rejected"] * 3
                profile = {"configurationSlot": 2, "connectionData": {
                    "ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": "wss://csms.example.com/ocpp",
                    "messageTimeout": 30, "securityProfile": 1, "ocppInterface": "Wired0"}}
                assert (await csms.call(cid, "SetNetworkProfile", profile))["status"] == "Rejected"
                got = [f for f in loop.received[cid] if f[0] == 2 and f[2] in ("SetVariables", "SetNetworkProfile")]
                assert not [f for f in got if f[2] == "SetNetworkProfile"]
                names = {i["variable"]["name"].casefold() for f in got if f[2] == "SetVariables"
                         for i in f[3]["setVariableData"]}
                assert not names & {"enabled", "basicauthpassword", "networkconfigurationpriority"}
            if CHARGERS[cid] == "1.6":  # the charger's password and where it connects are depotctl's
                for key in ("AuthorizationKey", "CentralSystemURL"):
                    assert (await csms.change_configuration(cid, key, "0123456789abcdef"))["status"] == "Rejected"
                got = [f[3].get("key") for f in loop.received[cid] if f[0] == 2 and f[2] == "ChangeConfiguration"]
                assert "AuthorizationKey" not in got and "CentralSystemURL" not in got
            assert ("MeterValueSampleInterval", "7", "Accepted") in sim.record.config_changes
            await eventually(  # the shorter interval, depotctl's measurands and the CSMS's
                lambda sim=sim: sim.config["MeterValueSampleInterval"] == "1" and "Current.Import" in sim.measurands(),  # type: ignore[misc]
                3.0, "sampling set again")
            assert "Energy.Active.Import.Register" in sim.measurands()
            # a call the charger does not implement: its CALLERROR goes back as it is
            try:
                await csms.reset(cid)
            except CallErrorAnswer as exc:
                assert exc.code == "NotImplemented"
            else:
                raise AssertionError("the charger's CALLERROR did not reach the CSMS")
            forwarded = [f for f in loop.received[cid] if f[0] == 2 and f[2] in ("DataTransfer", "TriggerMessage")]
            assert forwarded and all(str(f[1]).startswith("up-") for f in forwarded)

        # a charger that answers depotctl but never the CSMS's call: the CSMS hears so within the
        # proxy's timeout, and meanwhile the charger's one call slot is known to be taken
        async with websockets.asyncio.client.connect(
            f"{loop.url}/HUNG", subprotocols=[Subprotocol("ocpp1.6")], open_timeout=2, ping_interval=None
        ) as ws:
            answering = asyncio.create_task(_answer_all_but_data_transfer(ws))
            try:
                await csms.wait_connected("HUNG", booted=1)
                await eventually(lambda: loop.cs.control.failsafe_installed("HUNG"), 5.0, "HUNG set up")
                await asyncio.sleep(0.5)  # the rest of depotctl's set-up (sampling)
                assert loop.cs.control.lowerable_now("HUNG")
                t0 = asyncio.get_running_loop().time()
                call = asyncio.create_task(csms.data_transfer("HUNG", "acme"))
                await asyncio.sleep(1.2)
                assert not loop.cs.control.lowerable_now("HUNG")  # a decrease would wait behind it
                try:
                    await call
                except CallErrorAnswer as exc:
                    assert exc.code == "InternalError"
                else:
                    raise AssertionError("no CALLERROR for an unanswered call")
                assert asyncio.get_running_loop().time() - t0 < 2.5
                assert loop.cs.control.lowerable_now("HUNG")
            finally:
                answering.cancel()
        loop.assert_clean()


async def _answer_all_but_data_transfer(ws: websockets.asyncio.client.ClientConnection) -> None:
    """A bare 1.6 charger: boots, accepts what depotctl asks, never answers a DataTransfer."""
    answers = {"GetConfiguration": {"configurationKey": []}, "SetChargingProfile": {"status": "Accepted"},
               "ChangeConfiguration": {"status": "Accepted"}}
    await ws.send(json.dumps([2, "b1", "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}]))
    async for raw in ws:
        frame = json.loads(raw)
        if frame[0] == 2 and frame[2] in answers:
            await ws.send(json.dumps([3, frame[1], answers[frame[2]]]))
