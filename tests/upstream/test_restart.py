"""``kill -9`` of ``depotctl run`` while the CSMS is away loses nothing: the queued transaction
messages (meter values, the 1.6 StopTransaction, the 2.0.1 TransactionEvent Ended) are in SQLite,
and the restarted daemon delivers them to the CSMS once the chargers are back, in order, with the
original timestamps and the CSMS's transaction ids, each once. The CSMS's caps survive too."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

from tests.daemon.rigged import start_process, steady, wait_async
from tests.upstream.conftest import sent_timestamps
from tests.upstream.daemon_rig import upstream_rigged


def _queued(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as conn:
        return [(str(c), str(a), str(p)) for c, a, p in conn.execute(
            "SELECT charger_id, action, payload FROM upstream_queue ORDER BY seq")]


async def test_kill_9_during_the_outage_loses_nothing(tmp_path: Path) -> None:
    async with upstream_rigged(tmp_path, process=True) as up:
        r, csms = up.r, up.csms
        await steady(r)
        txs: dict[str, Any] = {}
        for cid in ("CP07", "CP08"):
            await csms.wait_until(lambda cid=cid: bool(csms.transactions(cid)), 10.0, f"{cid} transaction")  # type: ignore[misc]
            txs[cid] = csms.transactions(cid)[0]
        assert (await csms.set_cap("CP07", 10.0))["status"] == "Accepted"  # kept across the restart too

        await csms.go_away()

        async def queueing() -> bool:
            status = (await r.status())["upstream"]
            return bool(status["connected"] == 0 and status["queue_messages"] >= 6)

        await wait_async(queueing, 15.0, "meter values queued while the CSMS is away")
        for cid in ("CP07", "CP08"):
            await r.rig.sim(cid).unplug()  # the transactions end while the CSMS is away
        queued = _queued(r.storage)
        actions = {(c, a) for c, a, _ in queued}
        assert ("CP07", "StopTransaction") in actions and ("CP08", "TransactionEvent") in actions
        assert any('"eventType":"Ended"' in p for c, a, p in queued if c == "CP08")

        assert r.proc is not None
        r.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(r.proc.wait, 10)
        assert _queued(r.storage) == queued  # on disk, nothing lost with the process

        await csms.come_back()
        assert r.log_path is not None
        r.proc = start_process(r.site_path, r.log_path)

        async def delivered() -> bool:
            status = (await r.status())["upstream"]
            return bool(status["queue_messages"] == 0 and status["connected"] == 2)

        await wait_async(delivered, 25.0, "the backlog delivered after the restart")
        assert _queued(r.storage) == []
        for cid, tx in txs.items():
            assert tx.ended, cid
            # every meter value, in order, with the charger's own stamps, under the CSMS's id
            assert [m.timestamp for m in tx.meter_values] == sent_timestamps(up.sent, cid, tx.key), cid
            assert {m.transaction_id for m in tx.meter_values} == {tx.key}
        assert txs["CP07"].stop_reason == "EVDisconnected"
        composite = await csms.get_composite_schedule("CP07", 0, 300, "A")  # the restarted cap book's answer
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0
        assert txs["CP08"].events[-1].event_type == "Ended"
        up.assert_clean()  # no duplicate, no unknown transaction, every frame valid both ways
