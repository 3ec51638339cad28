"""The CSMS away in the middle of transactions: the depot keeps charging under depotctl's control,
id tags are answered from the cache, transaction messages are queued durably, and when the CSMS
returns it gets the backlog in order with the original timestamps and its own transaction ids —
before anything live. 1.6 and 2.0.1 chargers side by side.

"A minute" of outage, in test time: the outage spans about ten meter-value intervals (0.3 s each)
and as many reconnection attempts (back-off 0.05 s doubling to 0.4 s, the product's 1 s to 60 s
scaled down): the states the product goes through in a minute — link down, attempts refused,
messages queued one after another, a transaction starting and one ending while away — all
happen; only the wall-clock length differs. `make soak` runs it with a real minute
(``DEPOTCTL_OUTAGE_S=60``).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path
from typing import Any

from controller.upstream.proxy import ProxyOptions
from hil.ev import EvParams
from tests.upstream.conftest import FAST_LINK, Loop, eventually, proxied, sent_timestamps

EV = EvParams(max_a=32, phases=3, battery_kwh=60, reaction_s=0.2)
CHARGERS = {"A16": "1.6", "B201": "2.0.1", "C16": "1.6"}
OUTAGE_S = float(os.environ.get("DEPOTCTL_OUTAGE_S", "3.0"))  # make soak: a real minute
METER_S = 0.3


def queued_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM upstream_queue").fetchone()[0])


async def test_csms_away_mid_transaction_then_back(tmp_path: Path) -> None:
    async with proxied(tmp_path, list(CHARGERS)) as loop:
        csms = loop.csms
        sims = {cid: await loop.charger(cid, v, meter_interval_s=METER_S) for cid, v in CHARGERS.items()}
        for cid in CHARGERS:
            await csms.wait_connected(cid, booted=1)
        for cid in ("A16", "B201"):
            await sims[cid].plug_in(EV, id_tag="TAG")
        await sims["C16"].cp.authorize("T16")  # the CSMS's answer is cached
        running = {cid: csms.transactions(cid)[0] for cid in ("A16", "B201")}
        for cid, tx in running.items():
            await eventually(lambda tx=tx: len(tx.meter_values) >= 2, 5.0, f"{cid} live meter values")  # type: ignore[misc]

        await csms.go_away()
        await eventually(lambda: not any(s.connected for s in loop.proxy.status()), 3.0, "links down")

        # away: control goes on — a limit pushed now is what the chargers hold
        for cid in ("A16", "B201"):
            result = await loop.cs.control.apply(cid, 12.0, source="test")
            assert result.status == "accepted", result
            assert sims[cid].composite_a() == 12.0
        # id tags from the cache: the CSMS's earlier answers, and "unknown" for the rest
        await sims["C16"].cp.authorize("T16")
        await sims["C16"].cp.authorize("NEW")
        await sims["B201"].cp.authorize("NEW")
        assert [a[2]["idTagInfo"]["status"] for a in loop.answers("C16", "Authorize")] == ["Accepted"] * 2 + [
            "Invalid"]
        assert loop.answers("B201", "Authorize")[-1][2]["idTokenInfo"]["status"] == "Unknown"
        # a transaction starts while away: a local (negative) id
        await sims["C16"].plug_in(EV, id_tag="T16")
        local = sims["C16"].connectors[1].tx
        assert local is not None and int(local.transaction_id) < 0
        own = loop.cs.state("C16").transaction(1)
        assert own is not None and own.transaction_id == int(local.transaction_id)  # depotctl's profiles name it
        await asyncio.sleep(OUTAGE_S / 2)
        depth = loop.proxy.queue_depth()
        assert depth >= 8 and queued_rows(loop.store_path) >= depth  # on disk before the charger was answered
        # and transactions end while away
        await sims["A16"].unplug()
        await sims["B201"].unplug()
        await asyncio.sleep(OUTAGE_S / 2)
        assert loop.proxy.counters["replayed"] == 0
        assert loop.proxy.link_failures() >= 4

        await csms.come_back()
        await eventually(lambda: loop.proxy.queue_depth() == 0, 10.0, "the backlog delivered")
        assert queued_rows(loop.store_path) == 0

        for cid, tx in running.items():
            await eventually(lambda tx=tx: tx.ended, 3.0, f"{cid} stop delivered")  # type: ignore[misc]
            assert tx.meter_stop_wh is not None or tx.events[-1].event_type == "Ended"
            # every meter value, in order, as stamped by the charger
            assert [m.timestamp for m in tx.meter_values] == sent_timestamps(loop.sent, cid, tx.key)
            # and the outage held many of them (a loaded machine's sim charger sends fewer than 1 per METER_S)
            assert len(tx.meter_values) >= OUTAGE_S / METER_S / 4
        # the transaction started while away got a CSMS id, and every message of it names that id
        [started_away] = csms.transactions("C16")
        assert isinstance(started_away.transaction_id, int) and started_away.transaction_id > 100000
        assert loop.proxy.txids.csms_id("C16", int(local.transaction_id)) == started_away.transaction_id
        assert started_away.meter_values and all(
            m.transaction_id == started_away.key for m in started_away.meter_values)
        # live again: new meter values of that transaction go straight up, with the CSMS's id
        before = len(started_away.meter_values)
        await eventually(lambda: len(started_away.meter_values) >= before + 2, 3.0, "live meter values")
        await sims["C16"].unplug()
        await eventually(lambda: started_away.ended, 3.0, "the stop")
        assert loop.proxy.txids.csms_id("C16", int(local.transaction_id)) is None  # done: forgotten
        _no_live_before_backlog(loop)
        loop.assert_clean()


def _no_live_before_backlog(loop: Loop) -> None:
    """On the connection after the outage, each charger's queued transaction messages came before
    any of its messages sent after the CSMS came back (checked by the charger's own stamps)."""
    for cid in CHARGERS:
        frames = [f for f in loop.csms.log(cid).frames if f.direction == "in" and f.message_type == 2]
        after = [f for f in frames if f.connection >= 2]
        stamps: list[Any] = [_stamp(f.payload) for f in after]
        stamps = [s for s in stamps if s is not None]
        assert stamps == sorted(stamps), cid


def _stamp(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    if "timestamp" in payload:
        return str(payload["timestamp"])
    values = payload.get("meterValue") or []
    return str(values[0]["timestamp"]) if values else None


async def test_a_csms_too_slow_to_answer_gets_everything_at_least_once_never_an_id_reused(tmp_path: Path) -> None:
    """The worst back office short of none: it answers every MeterValues after the proxy stopped
    waiting. Each is answered locally and queued under a message id of its own (the CSMS may still
    be working on the first), the link is remade after two unanswered calls; once the CSMS is quick
    again everything arrives — some twice (at least once) — and no id was reused."""
    options = ProxyOptions(link=FAST_LINK, answer_within_s=0.4, forward_timeout_s=1.5)
    async with proxied(tmp_path, ["S16"], options=options) as loop:
        csms = loop.csms
        sim = await loop.charger("S16", "1.6", meter_interval_s=0.2)
        await csms.wait_connected("S16", booted=1)
        await sim.plug_in(EV, id_tag="TAG")
        [tx] = csms.transactions("S16")
        csms.o.answer_delays_s = {"MeterValues": 0.6}
        await eventually(lambda: loop.proxy.counters["answered_locally_timeout"] >= 1, 3.0, "a call timing out")
        await eventually(lambda: loop.proxy.queue_depth() >= 5, 3.0, "later ones queued behind it")
        csms.o.answer_delays_s = {}
        await eventually(lambda: loop.proxy.queue_depth() == 0, 5.0, "the backlog delivered")
        await sim.unplug()
        await eventually(lambda: tx.ended, 3.0, "the stop")
        assert set(sent_timestamps(loop.sent, "S16", tx.key)) <= {m.timestamp for m in tx.meter_values}
        assert csms.violations() == [] and csms.violations(direction="out") == []
        assert sim.validator is not None and sim.validator.violations == []
        assert {a.kind for a in csms.anomalies} <= {"call_while_pending", "out_of_order"}  # the late ones
