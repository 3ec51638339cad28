"""The transparent proxy with the CSMS up: what the chargers send reaches the CSMS unchanged and its
answers reach the chargers; the CSMS's calls reach the chargers; depotctl's own calls stay local
and depotctl's state stays what it is without upstream. One 1.6 and one 2.0.1 charger in each
test, closed loop on real websockets."""

from __future__ import annotations

from pathlib import Path

from hil.csms import CsmsOptions
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
