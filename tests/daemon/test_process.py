"""``depotctl run`` as a process against the rig: SIGKILL and restart, SIGHUP reloads, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import yaml

from tests.daemon.rigged import Rigged, rigged, start_process, steady, stop_process, wait_async, wait_for

FAILSAFE_A = 6.0
TTL_S = 12.0  # rigged.FAST
CHARGING = ("CP07", "CP08")


def _composite(r: Rigged, cid: str) -> float:
    value = r.rig.sim(cid).composite_a()
    return 99.0 if value is None else value


async def _session_ids(r: Rigged) -> set[str]:
    status = await r.status()
    return {s["session_id"] for c in status["chargers"] for s in c["sessions"]}


def _open_sessions(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT session_id FROM sessions WHERE stopped_at IS NULL")}


async def test_sigkill_chargers_fall_back_at_ttl_then_restart_restores_sessions(tmp_path: Path) -> None:
    async with rigged(tmp_path, process=True) as r:
        await steady(r)
        await asyncio.sleep(2.0)  # the session starts reach the disk (batched every 0.5 s)
        before = await _session_ids(r)
        assert len(before) == 3
        assert r.proc is not None
        r.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(r.proc.wait, 10)

        # the chargers keep their last limit until the profile's duration ends, then fall back
        assert all(_composite(r, c) > FAILSAFE_A for c in CHARGING)
        took = await wait_for(
            lambda: all(_composite(r, c) <= FAILSAFE_A + 1e-6 for c in CHARGING), TTL_S + 3.0, "fail-safe at the TTL"
        )
        assert took > 1.0  # not at once: the profile ran its course
        assert _open_sessions(r.storage) == before  # nothing committed was lost

        # restart on the same history: sessions restored, control resumes
        r.proc = start_process(r.site_path, r.log_path or tmp_path / "daemon.log")

        async def restored() -> bool:
            return await _session_ids(r) == before

        await wait_async(restored, 20, "the same sessions after the restart")
        await wait_for(lambda: all(_composite(r, c) > FAILSAFE_A + 1.0 for c in CHARGING), 20, "control resumed")
        assert "restored 3 open session(s)" in r.log()
        assert _open_sessions(r.storage) == before


async def test_sighup_bad_file_keeps_running_good_file_applies_without_dropping_chargers(tmp_path: Path) -> None:
    async with rigged(tmp_path, process=True) as r:
        await steady(r)
        assert r.proc is not None
        good_text = r.site_path.read_text()
        loaded_at = (await r.status())["config_loaded_at"]
        links = {cid: sim.ws for cid, sim in r.rig.sims.items()}

        # a bad file: refused, still running on the old one
        r.site_path.write_text(good_text.replace("limit_a: '100'", "limit_a: lots", 1).replace(
            "limit_a: 100", "limit_a: lots", 1))
        r.proc.send_signal(signal.SIGHUP)
        await wait_for(lambda: "reload of" in r.log() and "refused" in r.log(), 10, "the refusal in the log")
        status = await r.status()
        assert r.proc.poll() is None
        assert status["config_loaded_at"] == loaded_at
        assert {n["id"]: n["limit_a"] for n in status["nodes"]}["feeder-b"] == 100.0

        # a good file with feeder-b at 50 A: applied, every charger still on its first link
        data = yaml.safe_load(good_text)
        for c in data["circuits"]:
            if c["id"] == "feeder-b":
                c["limit_a"] = 50
        r.site_path.write_text(yaml.safe_dump(data, sort_keys=False))
        r.proc.send_signal(signal.SIGHUP)

        async def applied() -> bool:
            nodes = {n["id"]: n["limit_a"] for n in (await r.status())["nodes"]}
            return nodes["feeder-b"] == 50.0

        await wait_async(applied, 10, "the new feeder-b limit")
        await wait_for(lambda: max(r.rig.loads()["feeder-b"]) <= 50.0, 10, "feeder-b under its new limit")
        assert all(r.rig.sims[cid].ws is ws and r.rig.sims[cid].connected() for cid, ws in links.items())
        assert r.proc.poll() is None


async def test_sigterm_leaves_failsafe_limits_and_exits_0(tmp_path: Path) -> None:
    async with rigged(tmp_path, process=True) as r:
        await steady(r)
        assert r.proc is not None
        code = await asyncio.to_thread(stop_process, r.proc, signal.SIGTERM)
        assert code == 0, r.log()[-2000:]
        assert all(_composite(r, c) <= FAILSAFE_A + 1e-6 for c in CHARGING)
        with sqlite3.connect(r.storage) as conn:
            kinds = [row[0] for row in conn.execute("SELECT detail FROM events ORDER BY id")]
        assert kinds[-1] == "controller stopped"


async def test_systemd_notify_ready_after_a_good_cycle_watchdog_and_stopping(tmp_path: Path) -> None:
    """Under systemd (``$NOTIFY_SOCKET``): READY=1 once a cycle is good, WATCHDOG=1 while cycles
    complete (every half ``$WATCHDOG_USEC``), STOPPING=1 on SIGTERM."""
    import os
    import socket

    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    received: list[str] = []

    def drain() -> None:
        while True:
            try:
                received.extend(sock.recv(4096).decode().splitlines())
            except BlockingIOError:
                return

    env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the daemon process inherits them
    try:
        async with rigged(tmp_path, process=True) as r:
            await steady(r)
            await asyncio.sleep(2.5)
            drain()
            assert "READY=1" in received
            assert received.count("WATCHDOG=1") >= 2
            assert r.proc is not None
            assert await asyncio.to_thread(stop_process, r.proc, signal.SIGTERM) == 0
            drain()
            assert "STOPPING=1" in received
    finally:
        sock.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
