"""How an id tag is answered while the CSMS is unreachable (``ocpp.upstream.offline_authorize``).

* ``accept``: every tag is Accepted; ``reject``: every tag is Invalid.
* ``cache``: what the CSMS last said about the tag — its answers to Authorize, StartTransaction,
  StopTransaction (1.6) and TransactionEvent (2.0.1), and its local authorisation list
  (SendLocalList, full or differential, as relayed to the charger). The local list wins over the
  answers, as OCPP has it. An entry past its expiry (1.6 ``expiryDate``: the tag itself expired →
  Expired; 2.0.1 ``cacheExpiryDateTime``: the entry may no longer be used → as unknown) does not
  authorise. A tag the CSMS never answered about: Invalid (1.6) / Unknown (2.0.1).

Tags are keyed per OCPP version (1.6 ``idTag``; 2.0.1 ``type:idToken``): the two versions' infos
differ in shape. The cache is the site's, not one charger's: a tag the CSMS accepted at one charger
is known at the next. Pure: times are passed in; :class:`AuthCache` says what changed so the
caller can persist it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from controller.chargers.clock import from_ocpp
from controller.model.site import OfflineAuthorize

Source = Literal["answer", "list"]


def token_key(version: str, token: Any) -> str | None:
    """The cache key of a 1.6 ``idTag`` (a string) or a 2.0.1 ``idToken`` object; ``None`` if absent."""
    if version == "1.6":
        return token if isinstance(token, str) and token else None
    if isinstance(token, dict) and isinstance(token.get("idToken"), str):
        return f"{token.get('type', '')}:{token['idToken']}"
    return None


@dataclass(frozen=True)
class Change:
    """One entry to persist (``info`` None: to delete); ``clear_list``: drop the whole list first."""

    version: str
    token: str
    source: Source
    info: dict[str, Any] | None
    clear_list: bool = False


def _expired(info: dict[str, Any], key: str, now: datetime) -> bool:
    text = info.get(key)
    if not isinstance(text, str):
        return False
    try:
        return from_ocpp(text) <= now
    except ValueError:
        return False


class AuthCache:
    def __init__(self, policy: OfflineAuthorize) -> None:
        self.policy = policy
        self._entries: dict[tuple[str, str, Source], dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def restore(self, rows: list[tuple[str, str, str, dict[str, Any]]]) -> None:
        for version, token, source, info in rows:
            if source in ("answer", "list"):
                self._entries[(version, token, source)] = info  # type: ignore[index]

    def learn(self, version: str, token: Any, info: Any) -> list[Change]:
        """The CSMS answered about ``token`` with ``info`` (``idTagInfo``/``idTokenInfo``)."""
        key = token_key(version, token)
        if key is None or not isinstance(info, dict) or not isinstance(info.get("status"), str):
            return []
        if self._entries.get((version, key, "answer")) == info:
            return []
        self._entries[(version, key, "answer")] = dict(info)
        return [Change(version, key, "answer", dict(info))]

    def learn_local_list(self, version: str, request: dict[str, Any]) -> list[Change]:
        """A SendLocalList the charger accepted: a ``Full`` one replaces the list, a
        ``Differential`` one updates it (an entry without info is removed)."""
        changes: list[Change] = []
        if request.get("updateType") == "Full":
            for k in [k for k in self._entries if k[0] == version and k[2] == "list"]:
                del self._entries[k]
            changes.append(Change(version, "", "list", None, clear_list=True))
        info_key = "idTagInfo" if version == "1.6" else "idTokenInfo"
        token_field = "idTag" if version == "1.6" else "idToken"
        for entry in request.get("localAuthorizationList") or []:
            if not isinstance(entry, dict):
                continue
            key = token_key(version, entry.get(token_field))
            if key is None:
                continue
            info = entry.get(info_key)
            if isinstance(info, dict) and isinstance(info.get("status"), str):
                self._entries[(version, key, "list")] = dict(info)
                changes.append(Change(version, key, "list", dict(info)))
            else:
                self._entries.pop((version, key, "list"), None)
                changes.append(Change(version, key, "list", None))
        return changes

    def answer(self, version: str, token: Any, now: datetime) -> dict[str, Any]:
        """The ``idTagInfo`` (1.6) / ``idTokenInfo`` (2.0.1) to give while the CSMS is away."""
        unknown = {"status": "Invalid" if version == "1.6" else "Unknown"}
        if self.policy == "accept":
            return {"status": "Accepted"}
        if self.policy == "reject":
            return {"status": "Invalid"}
        key = token_key(version, token)
        if key is None:
            return unknown
        sources: tuple[Source, ...] = ("list", "answer")
        for source in sources:
            info = self._entries.get((version, key, source))
            if info is None:
                continue
            if version == "1.6":
                if _expired(info, "expiryDate", now):
                    return {"status": "Expired"}
                return dict(info)
            if _expired(info, "cacheExpiryDateTime", now):
                continue
            return dict(info)
        return unknown
