"""What local-controller mode keeps in SQLite (the history database, tables of schema version 7).

:class:`UpstreamStore` owns one connection of its own and one worker thread: every write is
committed before the awaiting caller goes on (a charger is answered locally only once the message
it sent is on disk — WAL, ``synchronous=NORMAL``: a committed row survives a ``kill -9``), the
event loop never waits for the disk, and the thread keeps the writes in the order they were asked
for. :meth:`UpstreamStore.load` reads it all back at start-up.

Kept: the queue of transaction messages the CSMS has not answered (per charger, in order, as the
charger sent them), the map of local 1.6 transaction ids to the CSMS's, the CSMS's answers about
id tags and its local list, and the CSMS's charging profiles (the cap book's rows).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from controller.store.schema import connect, migrate

LOG = logging.getLogger("depotctl.upstream.store")
T = TypeVar("T")


@dataclass(frozen=True)
class Queued:
    """One transaction message waiting for the CSMS, as the charger sent it."""

    seq: int
    charger_id: str
    version: str
    unique_id: str
    action: str
    payload: dict[str, Any]
    local_tx_id: int | None
    """A 1.6 StartTransaction answered locally: the transaction id the charger was given."""
    queued_at: datetime


@dataclass
class Loaded:
    queue: dict[str, list[Queued]] = field(default_factory=dict)
    """Per charger, in order."""
    tx_ids: dict[tuple[str, int], int | None] = field(default_factory=dict)
    """(charger, local id) → the CSMS's id (``None``: not known yet)."""
    auth: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    """(version, token, source, info)."""
    caps: list[dict[str, Any]] = field(default_factory=list)
    tx_lowest: int = 0
    """The lowest local 1.6 transaction id ever handed out (0: none)."""


def _ts(at: datetime) -> float:
    return at.timestamp()


class UpstreamStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="depotctl-upstream-store")
        self._conn: sqlite3.Connection | None = None
        self.writes = 0
        self.errors = 0

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._in_thread, fn)

    def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            conn = connect(self.path)
            migrate(conn)
            self._conn = conn
        try:
            with self._conn:
                out = fn(self._conn)
        except sqlite3.Error:
            self.errors += 1
            raise
        self.writes += 1
        return out

    async def close(self) -> None:
        def shut(_conn: sqlite3.Connection) -> None:
            return None

        if self._conn is not None:
            await self._run(shut)
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        self._executor.shutdown(wait=False)

    # --- start-up -----------------------------------------------------------------------------
    async def load(self) -> Loaded:
        def read(conn: sqlite3.Connection) -> Loaded:
            out = Loaded()
            for row in conn.execute(
                "SELECT seq, charger_id, version, unique_id, action, payload, local_tx_id, queued_at"
                " FROM upstream_queue ORDER BY seq"
            ):
                q = Queued(
                    int(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]), json.loads(row[5]),
                    None if row[6] is None else int(row[6]), datetime.fromtimestamp(float(row[7]), UTC),
                )
                out.queue.setdefault(q.charger_id, []).append(q)
            for cid, local, csms in conn.execute("SELECT charger_id, local_id, csms_id FROM upstream_tx_ids"):
                out.tx_ids[(str(cid), int(local))] = None if csms is None else int(csms)
            for version, token, source, info in conn.execute(
                "SELECT version, token, source, info FROM upstream_auth ORDER BY updated_at"
            ):
                out.auth.append((str(version), str(token), str(source), json.loads(info)))
            floor = conn.execute("SELECT lowest FROM upstream_tx_floor WHERE id = 1").fetchone()
            out.tx_lowest = int(floor[0]) if floor is not None else 0
            row = conn.execute("SELECT rows FROM upstream_caps WHERE id = 1").fetchone()
            if row is not None:
                out.caps = list(json.loads(row[0]))
            return out

        return await self._run(read)

    # --- the queue ----------------------------------------------------------------------------
    async def enqueue(
        self,
        charger_id: str,
        version: str,
        unique_id: str,
        action: str,
        payload: dict[str, Any],
        local_tx_id: int | None,
        queued_at: datetime,
    ) -> Queued:
        """Append one message (committed when this returns)."""
        text = json.dumps(payload, separators=(",", ":"))

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO upstream_queue (charger_id, version, unique_id, action, payload, local_tx_id, queued_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (charger_id, version, unique_id, action, text, local_tx_id, _ts(queued_at)),
            )
            if local_tx_id is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO upstream_tx_ids (charger_id, local_id, csms_id, created_at)"
                    " VALUES (?, ?, NULL, ?)",
                    (charger_id, local_tx_id, _ts(queued_at)),
                )
                conn.execute(
                    "INSERT INTO upstream_tx_floor (id, lowest) VALUES (1, ?)"
                    " ON CONFLICT(id) DO UPDATE SET lowest = MIN(lowest, excluded.lowest)",
                    (local_tx_id,),
                )
            return int(cur.lastrowid or 0)

        seq = await self._run(write)
        return Queued(seq, charger_id, version, unique_id, action, payload, local_tx_id, queued_at)

    async def delivered(self, seq: int, mapped: tuple[str, int, int] | None = None, at: datetime | None = None) -> None:
        """The CSMS answered message ``seq``: it leaves the queue; ``mapped`` = (charger, local
        id, CSMS id) when it was a StartTransaction answered locally (in the same transaction)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM upstream_queue WHERE seq = ?", (seq,))
            if mapped is not None:
                conn.execute(
                    "UPDATE upstream_tx_ids SET csms_id = ?, mapped_at = ? WHERE charger_id = ? AND local_id = ?",
                    (mapped[2], _ts(at) if at is not None else None, mapped[0], mapped[1]),
                )

        await self._run(write)

    async def forget_tx(self, charger_id: str, local_id: int) -> None:
        """A local transaction id no message names any more (its transaction ended, all delivered)."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM upstream_tx_ids WHERE charger_id = ? AND local_id = ?", (charger_id, local_id))

        await self._run(write)

    # --- authorisation and caps ---------------------------------------------------------------
    async def put_auth(self, version: str, token: str, source: str, info: dict[str, Any] | None, at: datetime) -> None:
        """Keep (``info``) or drop (``None``) what the CSMS said about one id tag."""

        def write(conn: sqlite3.Connection) -> None:
            if info is None:
                conn.execute(
                    "DELETE FROM upstream_auth WHERE version = ? AND token = ? AND source = ?", (version, token, source)
                )
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO upstream_auth (version, token, source, info, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (version, token, source, json.dumps(info, separators=(",", ":")), _ts(at)),
                )

        await self._run(write)

    async def clear_auth_list(self, version: str) -> None:
        """The CSMS sent a full local list: the old one goes."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM upstream_auth WHERE version = ? AND source = 'list'", (version,))

        await self._run(write)

    async def put_caps(self, rows: list[dict[str, Any]], at: datetime) -> None:
        text = json.dumps(rows, separators=(",", ":"), default=str)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO upstream_caps (id, rows, updated_at) VALUES (1, ?, ?)", (text, _ts(at))
            )

        await self._run(write)
