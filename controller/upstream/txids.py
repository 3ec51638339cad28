"""Local 1.6 transaction ids and their CSMS ids.

A 1.6 charger learns its transaction id from the StartTransaction answer. While the CSMS is away
depotctl answers with a **local id** and maps it to the CSMS's once the queued StartTransaction
has been answered upstream. The rule that keeps the two apart: local ids are **negative**
(−1, −2, …: one counter for the site, never reused — it continues below the lowest id ever
handed out, which is kept in SQLite); a CSMS numbers its transactions upwards from 1 (every known
back office does; a 1.6 ``transactionId`` is a JSON integer, and chargers keep it in a signed
32-bit field, so a negative id is valid on both sides). The charger keeps using the local id to
the end of its transaction; depotctl's own state knows that id (its TxProfiles name it), and the
relay rewrites it to the CSMS's id in every message going up, and the CSMS's id back to the
local one in every call coming down (RemoteStopTransaction, a TxProfile's ``transactionId``).

2.0.1 needs none of this: the station makes its own transaction ids.
"""

from __future__ import annotations


class TxIds:
    def __init__(self) -> None:
        self._to_csms: dict[tuple[str, int], int | None] = {}
        self._to_local: dict[tuple[str, int], int] = {}
        self._lowest = 0

    def restore(self, rows: dict[tuple[str, int], int | None], lowest: int = 0) -> None:
        """The mappings kept, and the lowest local id ever handed out (kept apart: a mapping goes
        when its transaction is over, the floor never)."""
        self._lowest = min(self._lowest, lowest)
        for (cid, local), csms in rows.items():
            self._to_csms[(cid, local)] = csms
            if csms is not None:
                self._to_local[(cid, csms)] = local
            self._lowest = min(self._lowest, local)

    def new_local(self, charger_id: str) -> int:
        """A fresh local id (negative), unmapped."""
        self._lowest -= 1
        self._to_csms[(charger_id, self._lowest)] = None
        return self._lowest

    @staticmethod
    def is_local(transaction_id: object) -> bool:
        return isinstance(transaction_id, int) and not isinstance(transaction_id, bool) and transaction_id < 0

    def map(self, charger_id: str, local: int, csms: int) -> None:
        self._to_csms[(charger_id, local)] = csms
        self._to_local[(charger_id, csms)] = local

    def known(self, charger_id: str, local: int) -> bool:
        return (charger_id, local) in self._to_csms

    def csms_id(self, charger_id: str, local: int) -> int | None:
        """The CSMS's id of a local one (``None``: not answered yet, or not ours)."""
        return self._to_csms.get((charger_id, local))

    def local_id(self, charger_id: str, csms: int) -> int | None:
        """The local id the charger knows for a CSMS id (``None``: the charger knows the CSMS's)."""
        return self._to_local.get((charger_id, csms))

    def forget(self, charger_id: str, local: int) -> None:
        csms = self._to_csms.pop((charger_id, local), None)
        if csms is not None:
            self._to_local.pop((charger_id, csms), None)

    def __len__(self) -> int:
        return len(self._to_csms)
