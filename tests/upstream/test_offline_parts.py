"""The pure parts of the outage: the id-tag cache (``offline_authorize``) and the local 1.6
transaction ids; the store they persist to, on a real SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controller.daemon.history import parse_transaction_id
from controller.upstream.authcache import AuthCache
from controller.upstream.store import UpstreamStore
from controller.upstream.txids import TxIds

NOW = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # a Sunday just after midnight, the spring DST change day


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(("policy", "v16", "v201"), [
    ("accept", "Accepted", "Accepted"), ("reject", "Invalid", "Invalid"), ("cache", "Invalid", "Unknown")])
def test_a_tag_never_answered_by_the_csms(policy: str, v16: str, v201: str) -> None:
    cache = AuthCache(policy)  # type: ignore[arg-type]
    assert cache.answer("1.6", "TAG", NOW) == {"status": v16}
    assert cache.answer("2.0.1", {"idToken": "TAG", "type": "ISO14443"}, NOW) == {"status": v201}


def test_cache_keeps_the_csmss_answers_per_version_and_token_type() -> None:
    cache = AuthCache("cache")
    assert cache.learn("1.6", "TAG", {"status": "Blocked"})
    assert not cache.learn("1.6", "TAG", {"status": "Blocked"})  # unchanged: nothing to persist
    token = {"idToken": "TAG", "type": "ISO14443"}
    cache.learn("2.0.1", token, {"status": "Accepted"})
    assert cache.answer("1.6", "TAG", NOW) == {"status": "Blocked"}
    assert cache.answer("2.0.1", token, NOW) == {"status": "Accepted"}
    assert cache.answer("2.0.1", {"idToken": "TAG", "type": "eMAID"}, NOW) == {"status": "Unknown"}
    assert cache.learn("1.6", None, {"status": "Accepted"}) == [] and cache.learn("1.6", "X", "nonsense") == []


def test_expired_entries_do_not_authorise() -> None:
    cache = AuthCache("cache")
    cache.learn("1.6", "OLD", {"status": "Accepted", "expiryDate": _iso(NOW - timedelta(minutes=1))})
    cache.learn("1.6", "NEW", {"status": "Accepted", "expiryDate": _iso(NOW + timedelta(days=1))})
    assert cache.answer("1.6", "OLD", NOW) == {"status": "Expired"}
    assert cache.answer("1.6", "NEW", NOW)["status"] == "Accepted"
    token = {"idToken": "T", "type": "ISO14443"}
    cache.learn("2.0.1", token, {"status": "Accepted", "cacheExpiryDateTime": _iso(NOW - timedelta(seconds=1))})
    assert cache.answer("2.0.1", token, NOW) == {"status": "Unknown"}


def test_the_local_list_wins_full_replaces_differential_updates() -> None:
    cache = AuthCache("cache")
    cache.learn("1.6", "A", {"status": "Accepted"})
    changes = cache.learn_local_list("1.6", {"listVersion": 1, "updateType": "Full", "localAuthorizationList": [
        {"idTag": "A", "idTagInfo": {"status": "Blocked"}}, {"idTag": "B", "idTagInfo": {"status": "Accepted"}}]})
    assert changes[0].clear_list and len(changes) == 3
    assert cache.answer("1.6", "A", NOW) == {"status": "Blocked"}  # the list before the answers
    cache.learn_local_list("1.6", {"listVersion": 2, "updateType": "Differential", "localAuthorizationList": [
        {"idTag": "A"}, {"idTag": "C", "idTagInfo": {"status": "Accepted"}}]})
    assert cache.answer("1.6", "A", NOW) == {"status": "Accepted"}  # off the list: the CSMS's answer again
    assert cache.answer("1.6", "C", NOW) == {"status": "Accepted"}
    cache.learn_local_list("1.6", {"listVersion": 3, "updateType": "Full"})
    assert cache.answer("1.6", "B", NOW) == {"status": "Invalid"}


def test_local_transaction_ids_are_negative_and_never_reused_after_a_restart() -> None:
    ids = TxIds()
    a, b = ids.new_local("CP1"), ids.new_local("CP2")
    assert (a, b) == (-1, -2) and ids.is_local(a) and not ids.is_local(100001) and not ids.is_local(True)
    ids.map("CP1", a, 100001)
    assert ids.csms_id("CP1", a) == 100001 and ids.local_id("CP1", 100001) == a and ids.csms_id("CP2", b) is None
    later = TxIds()
    later.restore({("CP1", -1): 100001, ("CP2", -7): None})
    assert later.new_local("CP3") == -8
    assert later.local_id("CP1", 100001) == -1
    later.forget("CP1", -1)
    assert later.local_id("CP1", 100001) is None
    # every mapping gone (their transactions over): the floor kept apart still keeps ids fresh
    assert TxIds().new_local("CP1") == -1
    fresh = TxIds()
    fresh.restore({}, lowest=-8)
    assert fresh.new_local("CP1") == -9
    assert parse_transaction_id("-8") == -8 and parse_transaction_id("100001") == 100001
    assert parse_transaction_id("CP08-tx1") == "CP08-tx1" and parse_transaction_id("-") == "-"


async def test_the_store_gives_back_what_it_kept(tmp_path: Path) -> None:
    db = tmp_path / "depot.db"
    store = UpstreamStore(db)
    assert (await store.load()).queue == {}
    first = await store.enqueue("CP1", "1.6", "m1", "StartTransaction", {"connectorId": 1}, -1, NOW)
    await store.enqueue("CP1", "1.6", "m2", "MeterValues", {"connectorId": 1, "transactionId": -1}, None, NOW)
    await store.enqueue("CP2", "2.0.1", "m3", "TransactionEvent", {"eventType": "Ended"}, None, NOW)
    await store.put_auth("1.6", "TAG", "answer", {"status": "Accepted"}, NOW)
    await store.put_caps([{"charger": "CP1", "request": {"a": 1}}], NOW)
    await store.close()

    again = UpstreamStore(db)
    loaded = await again.load()
    assert [q.unique_id for q in loaded.queue["CP1"]] == ["m1", "m2"] and loaded.queue["CP1"][0].local_tx_id == -1
    assert loaded.queue["CP1"][0].queued_at == NOW
    assert loaded.tx_ids == {("CP1", -1): None}
    assert loaded.auth == [("1.6", "TAG", "answer", {"status": "Accepted"})]
    assert loaded.caps == [{"charger": "CP1", "request": {"a": 1}}]
    await again.delivered(first.seq, ("CP1", -1, 100001), NOW)
    await again.put_auth("1.6", "TAG", "answer", None, NOW)
    loaded = await again.load()
    assert [q.unique_id for q in loaded.queue["CP1"]] == ["m2"] and loaded.tx_ids == {("CP1", -1): 100001}
    assert loaded.auth == []
    await again.forget_tx("CP1", -1)  # its transaction over: the mapping goes, the floor stays
    loaded = await again.load()
    assert loaded.tx_ids == {} and loaded.tx_lowest == -1
    await again.close()
