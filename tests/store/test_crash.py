"""kill -9 safety: everything flushed before the kill comes back; only unflushed puts may be lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils

from controller.store import restore

N = 300
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import UTC, datetime, timedelta
    from controller.store import AcceptedProfile, Departure, Event, SessionStart, SessionStop, Store

    T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    def at(s): return T0 + timedelta(seconds=s)

    path, n = sys.argv[1], int(sys.argv[2])
    store = Store(path, batch_max=50, batch_interval_s=0.05)
    for i in range(n):
        store.put(SessionStart(f"s{i}", f"cp{i % 10}", 1, f"v{i}", at(i)))
        if i % 3 == 0:
            store.put(SessionStop(f"s{i}", f"cp{i % 10}", 1, f"v{i}", at(i + 60), 1.0, True))
        store.put(Departure(f"d{i}", f"v{i}", at(i), departure_at=at(86_400 + i), energy_kwh=50.0))
        store.put(AcceptedProfile(f"cp{i % 10}", 1, float(i), "A", at(i + 300), at(i)))
    store.put(Event(at(n), "failsafe_enter", "grid meter stale"))
    assert store.flush(10.0), store.counters()
    print("flushed", flush=True)
    # more records, some of which may still be queued or mid-commit when the kill comes
    for i in range(n, n + 5000):  # fewer than the queue bound: none dropped, so commits form a prefix
        store.put(SessionStart(f"s{i}", "cpX", 1, f"v{i}", at(i)))
    time.sleep(60)
    """
)


def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    db_path = tmp_path / "depot.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db_path), str(N)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded: the child flushes within seconds or fails its assert
        assert line.strip() == b"flushed", proc.stderr.read() if proc.stderr else b""
        time.sleep(0.02)  # let some of the unflushed records be committed, others not
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()

    got = restore(db_path)
    open_ids = {s.session_id for s in got.open_sessions}
    flushed_open = {f"s{i}" for i in range(N) if i % 3 != 0}
    assert flushed_open <= open_ids  # every committed open session is back
    assert not {f"s{i}" for i in range(N) if i % 3 == 0} & open_ids  # stopped ones stay stopped
    extra = open_ids - flushed_open
    # the only others are ones put after the flush: lost or kept, but whole records, in put order
    extra_idx = sorted(int(s[1:]) for s in extra)
    assert all(N <= i < N + 5000 for i in extra_idx)
    assert extra_idx == list(range(N, N + len(extra_idx)))  # a prefix: nothing later survives an earlier loss

    assert {d.departure_id for d in got.departures} == {f"d{i}" for i in range(N)}
    assert all(d.departure_at == at(86_400 + int(d.departure_id[1:])) for d in got.departures)
    # the last accepted profile per charger is the last one put for it
    for c in range(10):
        last = max(i for i in range(N) if i % 10 == c)
        p = got.profiles[(f"cp{c}", 1)]
        assert (p.limit, p.valid_until) == (float(last), at(last + 300))
    assert got.last_failsafe is not None and got.was_in_failsafe

    db = sqlite_utils.Database(db_path)
    stopped = db.execute("SELECT COUNT(*) FROM sessions WHERE stopped_at IS NOT NULL").fetchone()[0]
    db.close()
    assert stopped == len(range(0, N, 3))
