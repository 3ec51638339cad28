"""The CSMS's smart-charging wishes as caps: the profile book (issue 17, local-controller mode).

A SetChargingProfile from the operator's CSMS is never forwarded to the charger. :class:`CapBook`
checks it (:mod:`.caps_profile`), answers it upstream (:class:`Answer`), stores it, and turns what
the stored profiles limit over time (:mod:`.caps_schedule`) into one more upper bound per session
(:meth:`CapBook.cap_steps`, for ``SessionState.cap``); the charger keeps holding only depotctl's
fail-safe and control profiles. ClearChargingProfile and GetCompositeSchedule act on and answer
from this stored view. Nothing here raises on what the CSMS sends: a bad request is answered
(``Rejected``, or ``Unknown`` where the response has no ``Rejected``) with the reason.

Which profiles a session sees:

* ``ChargePointMaxProfile`` (2.0.1 ``ChargingStationMaxProfile``, connector 0) caps the charger's
  total: the planner plans each session on its own, so the cap is split equally among the
  sessions on that charger (``sharing``, by default the transactions the book knows there): their
  sum stays under it whatever each draws. A Relative one (1.6) counts from when we received it.
* ``TxProfile``: bound to one transaction — the one it names (the charger's id or, 1.6, the id
  the CSMS knows it by, :meth:`CapBook.transaction_alias`), else (1.6) the one running on the
  connector; refused when there is none there (OCPP). It ends with its transaction.
* ``TxDefaultProfile`` on the connector or on connector 0 (each connector, not shared).
* Relative Tx/TxDefault schedules count from the transaction's start as the book saw it
  (:meth:`CapBook.transaction_started`; unknown: from the start of the asked span).

Replacing: a profile with the id of a stored one replaces it. 1.6 (§3.13.2): one with the purpose,
stack level and connector (a TxProfile: transaction) of a stored one replaces that too. 2.0.1
refuses that instead where their validity overlaps (K01.FR.06; TxProfile: same transaction,
K01.FR.39). Profiles past their ``validTo`` or their Absolute schedules' end are dropped.

Pure: the clock is injected, nothing does I/O; only the daemon's event loop calls it.
"""

from __future__ import annotations

import json
import logging
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from controller.chargers.clock import from_ocpp, to_ocpp
from controller.upstream.caps_composite import ChargerRating, composite_payload
from controller.upstream.caps_profile import (
    CsmsProfile,
    Refused,
    Version,
    parse_set_request,
    plain_json,
    schema_problem,
    wrap_profile,
)
from controller.upstream.caps_schedule import Held, Rate, Stack, combined_steps, session_amps, session_kw

LOG = logging.getLogger("depotctl.upstream.caps")
PENDING_START_S = 600.0
"""How long a start's profile waits for its transaction to start [s] (a driver plugging in late)."""
CACHE_AHEAD_S = 3600.0
""":meth:`CapBook.cap_steps` works this far beyond the span asked and answers the next plans from
that until the book changes (the plan asks every ``plan_every_s`` for a span that moved by that)."""
MAX_COMPOSITE_S = 7 * 86400
"""GetCompositeSchedule reports at most this far ahead [s] (its ``duration`` says how far it did)."""
Via = Literal["set", "remote_start"]

__all__ = ["Answer", "CapBook", "ChargerRating", "Version"]


@dataclass(frozen=True)
class Answer:
    """What goes back upstream for one request from the CSMS.

    ``status``: the response's status (``Accepted`` / ``Rejected`` / ``Unknown`` …);
    ``payload``: the full response payload (camelCase, valid against the OCPP response schema);
    ``reason``: why, for the log (empty when accepted; a 2.0.1 refusal also carries it in
    ``statusInfo``)."""

    status: str
    payload: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class _Entry:
    """A stored profile: how it came (``request`` as the CSMS sent it, a start's profile wrapped as
    a SetChargingProfile request) and, for a TxProfile, its transaction (the charger's id)."""

    profile: CsmsProfile
    version: Version
    request: dict[str, Any]
    via: Via = "set"
    transaction_id: str | None = None


@dataclass
class _Transaction:
    connector_id: int
    started_at: datetime


@dataclass
class _Pending:
    """A start's profile waiting for its transaction (``connector_id`` None: any connector)."""

    entry: _Entry
    connector_id: int | None


@dataclass
class _Charger:
    entries: list[_Entry] = field(default_factory=list)
    transactions: dict[str, _Transaction] = field(default_factory=dict)
    aliases: dict[str, set[str]] = field(default_factory=dict)  # charger's tx id → the CSMS's ids
    pending: list[_Pending] = field(default_factory=list)


def _copy(payload: dict[str, Any]) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(json.dumps(payload, default=plain_json)))


def _ended(p: CsmsProfile, now: datetime) -> bool:
    """Never in force again: past ``validTo``, or every (Absolute) schedule has run its duration."""
    if p.valid_to is not None and p.valid_to <= now:
        return True
    if p.kind != "Absolute":
        return False
    return all(
        s.start is not None and s.duration_s is not None and s.start + timedelta(seconds=s.duration_s) <= now
        for s in p.schedules
    )


def _status_info(code: str, message: str) -> dict[str, str]:
    return {"reasonCode": code[:20], "additionalInfo": message[:512]}


class CapBook:
    """The CSMS's charging profiles per charger, and the caps they make (module docstring).

    ``ratings``: charger id → what is known of it (connectors checked, units converted and the
    charger's maximum reported by GetCompositeSchedule; ``None`` or unknown: AC, 3 × 230 V, no
    maximum, connectors not checked). ``max_stack_level``: the highest ``stackLevel`` accepted."""

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        ratings: Callable[[str], ChargerRating | None] | None = None,
        max_stack_level: int = 99,
    ) -> None:
        self.clock = clock
        self.ratings = ratings
        self.max_stack_level = max_stack_level
        self._chargers: dict[str, _Charger] = {}
        self._revision = 0  # bumped by every change a cap may depend on
        self._cached_revision = 0
        self._cache: dict[tuple[object, ...], tuple[datetime, datetime, list[tuple[datetime, float | None]]]] = {}

    # -- what the CSMS sends ------------------------------------------------------------------

    def set_profile(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A SetChargingProfile request payload from the CSMS (camelCase as on the wire):
        ``Accepted`` and stored when well-formed (module docstring), else ``Rejected``."""
        self._revision += 1
        try:
            now = self.clock()
            profile = parse_set_request(version, payload, now, self.max_stack_level)
            self._check_connector(charger_id, profile.connector_id)
            ch = self._charger(charger_id, now)
            tx = self._transaction_for(ch, profile) if profile.purpose == "TxProfile" else None
            self._install(ch, _Entry(profile, version, _copy(payload), "set", tx))
        except Refused as refused:
            LOG.info("%s: SetChargingProfile refused: %s", charger_id, refused.message)
            return self._answer(version, "Rejected", refused)
        except Exception as exc:  # never raise on what the CSMS sends
            LOG.exception("%s: SetChargingProfile not understood", charger_id)
            return self._answer(version, "Rejected", Refused("InvalidMessage", f"not understood: {exc!r}"))
        return Answer("Accepted", {"status": "Accepted"})

    def clear(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A ClearChargingProfile request payload: by id (the other criteria then ignored), else
        every profile matching all criteria given (connector, purpose, stack level; none: all),
        a start's waiting profile included. ``Accepted`` when one was cleared, else ``Unknown``."""
        self._revision += 1
        try:
            problem = schema_problem(version, "ClearChargingProfile" if version == "1.6" else
                                     "ClearChargingProfileRequest", payload)
            if problem is not None:
                raise Refused("InvalidMessage", f"schema: {problem}")
            if version == "1.6":
                profile_id, criteria = payload.get("id"), payload
                connector = criteria.get("connectorId")
            else:
                profile_id, criteria = payload.get("chargingProfileId"), payload.get("chargingProfileCriteria") or {}
                connector = criteria.get("evseId")
            purpose = criteria.get("chargingProfilePurpose")
            if purpose == "ChargingStationMaxProfile":
                purpose = "ChargePointMaxProfile"
            stack = criteria.get("stackLevel")

            def matches(p: CsmsProfile) -> bool:
                if profile_id is not None:
                    return bool(p.profile_id == profile_id)
                return bool(
                    (connector is None or p.connector_id == connector)
                    and (purpose is None or p.purpose == purpose)
                    and (stack is None or p.stack_level == stack)
                )

            ch = self._charger(charger_id, self.clock())
            before = len(ch.entries) + len(ch.pending)
            ch.entries = [e for e in ch.entries if not matches(e.profile)]
            ch.pending = [w for w in ch.pending if not matches(w.entry.profile)]
            cleared = before - len(ch.entries) - len(ch.pending)
        except Refused as refused:
            return self._answer(version, "Unknown", refused)
        except Exception as exc:  # never raise on what the CSMS sends
            LOG.exception("%s: ClearChargingProfile not understood", charger_id)
            return self._answer(version, "Unknown", Refused("InvalidMessage", f"not understood: {exc!r}"))
        if not cleared:
            return self._answer(version, "Unknown", Refused("NoProfile", "no profile matches"))
        return Answer("Accepted", {"status": "Accepted"})

    def composite(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A GetCompositeSchedule request payload, answered from the stored view (the CSMS's own
        profiles combined as OCPP combines them, not depotctl's plan).

        From now (our clock) for ``duration`` (at most :data:`MAX_COMPOSITE_S`), in the unit asked
        (else A for an AC charger, W for DC), floored to 0.1. Connector 0: the ChargePointMax
        profiles (the charger's total); a connector: the lower of those and its TxProfile (of the
        transaction running there) or TxDefaultProfile, Relative ones counted from that
        transaction's start, else from now. **Where no profile limits**, the charger's own maximum
        (``ChargerRating.max_a`` / ``max_kw``) is reported; a charger whose maximum the book does
        not know is answered ``Rejected`` then. A/W conversions use the rating's phases and
        voltage (``numberPhases`` where a period gives it)."""
        try:
            problem = schema_problem(version, "GetCompositeSchedule" if version == "1.6" else
                                     "GetCompositeScheduleRequest", payload)
            if problem is not None:
                raise Refused("InvalidMessage", f"schema: {problem}")
            connector = int(payload["connectorId"] if version == "1.6" else payload["evseId"])
            duration_s = int(payload["duration"])
            if duration_s < 0:
                raise Refused("InvalidValue", f"duration: {duration_s} is negative")
            self._check_connector(charger_id, connector)
            return self._composite(charger_id, version, connector, duration_s, payload.get("chargingRateUnit"))
        except Refused as refused:
            return self._answer(version, "Rejected", refused)
        except Exception as exc:  # never raise on what the CSMS sends
            LOG.exception("%s: GetCompositeSchedule not understood", charger_id)
            return self._answer(version, "Rejected", Refused("InvalidMessage", f"not understood: {exc!r}"))

    def remote_start_profile(
        self, charger_id: str, version: Version, connector_id: int | None, profile: dict[str, Any]
    ) -> None:
        """The chargingProfile a RemoteStartTransaction / RequestStartTransaction carried (the
        proxy strips it before forwarding the start): a TxProfile for the transaction about to
        start on ``connector_id`` (``None``: whichever starts next on the charger). Bound at once
        when a transaction already runs there (2.0.1: a transaction may start at plug-in), else
        at :meth:`transaction_started`; it waits :data:`PENDING_START_S`. A new one replaces one
        waiting for the same connector. One that is not well-formed is logged and dropped."""
        self._revision += 1
        try:
            now = self.clock()
            request = wrap_profile(version, connector_id if connector_id is not None else 1, _copy(profile))
            parsed = parse_set_request(version, request, now, self.max_stack_level, remote_start=True)
            self._check_connector(charger_id, parsed.connector_id)
            ch = self._charger(charger_id, now)
            entry = _Entry(parsed, version, request, "remote_start")
            running = [tid for tid, tx in ch.transactions.items() if tx.connector_id == connector_id]
            if connector_id is not None and running:
                self._install(ch, replace(entry, transaction_id=running[-1]))
                return
            ch.pending = [w for w in ch.pending if w.connector_id != connector_id] + [_Pending(entry, connector_id)]
        except Refused as refused:
            LOG.warning("%s: the start's charging profile is dropped: %s", charger_id, refused.message)
        except Exception:  # never raise on what the CSMS sends
            LOG.exception("%s: the start's charging profile is dropped (not understood)", charger_id)

    # -- what the chargers do -----------------------------------------------------------------

    def transaction_started(self, charger_id: str, connector_id: int, transaction_id: str) -> None:
        """A transaction started on the charger (its id for it; 1.6 ints as str), now: a start's
        profile waiting for this connector (or any) becomes its TxProfile."""
        self._revision += 1
        now = self.clock()
        ch = self._charger(charger_id, now)
        known = ch.transactions.get(transaction_id)
        ch.transactions[transaction_id] = _Transaction(connector_id, known.started_at if known else now)
        waiting = [w for w in ch.pending if w.connector_id == connector_id] or [
            w for w in ch.pending if w.connector_id is None
        ]
        if not waiting:
            return
        chosen = waiting[-1]
        ch.pending.remove(chosen)
        entry = chosen.entry
        bound = replace(
            entry,
            profile=replace(entry.profile, connector_id=connector_id),
            request=wrap_profile(entry.version, connector_id, _unwrap(entry)),
            transaction_id=transaction_id,
        )
        try:
            self._install(ch, bound)
        except Refused as refused:
            LOG.warning("%s: the start's charging profile is dropped: %s", charger_id, refused.message)

    def transaction_ended(self, charger_id: str, connector_id: int, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles end with it (OCPP)."""
        self._revision += 1
        del connector_id
        ch = self._charger(charger_id, self.clock())
        ch.transactions.pop(transaction_id, None)
        ch.aliases.pop(transaction_id, None)
        ch.entries = [e for e in ch.entries if e.transaction_id != transaction_id]

    def transaction_alias(self, charger_id: str, transaction_id: str, upstream_id: str) -> None:
        """The CSMS knows the charger's transaction ``transaction_id`` as ``upstream_id`` (1.6:
        a start answered locally while the CSMS was away): a TxProfile naming either is its."""
        self._revision += 1
        ch = self._charger(charger_id, self.clock())
        ch.aliases.setdefault(transaction_id, set()).add(upstream_id)

    # -- what the planner asks ----------------------------------------------------------------

    def cap_steps(
        self,
        charger_id: str,
        connector_id: int,
        transaction_id: str | None,
        *,
        unit: Literal["A", "kW"],
        phases_used: int,
        voltage_v: float,
        start: datetime,
        end: datetime,
        sharing: int | None = None,
    ) -> tuple[tuple[datetime, float], ...]:
        """The cap over ``[start, end)`` in the session's unit, as ``SessionState.cap`` wants it:
        steps ``(from, limit)``, none before the first (no cap until then), ``inf`` where no profile
        limits after one did; empty when none limits at all.

        ``unit`` A (AC): per used phase, ``phases_used`` the phases the session draws on (the
        caller passes the charger's wired phases when unknown: the lower current, safe both
        ways) at ``voltage_v`` per phase (:func:`~.caps_schedule.session_amps`). ``unit`` kW
        (DC): W / 1000, A × ``voltage_v`` × ``phases_used`` (pass the charger's AC input phases)
        / 1000 (:func:`~.caps_schedule.session_kw`). ``transaction_id`` (the charger's id) picks
        the TxProfiles; ``sharing``: sessions on the charger sharing its ChargePointMax (``None``:
        the transactions the book knows there, at least 1)."""
        now = self.clock()
        ch = self._chargers.get(charger_id)
        if ch is None or end <= start:
            return ()
        self._prune(ch, now)
        tx = ch.transactions.get(transaction_id) if transaction_id is not None else None
        origin = tx.started_at if tx is not None else start
        stack = Stack(
            charger_max=[Held(e.profile, e.profile.received_at) for e in ch.entries
                         if e.profile.purpose == "ChargePointMaxProfile"],
            tx=[Held(e.profile, origin) for e in ch.entries
                if transaction_id is not None and e.transaction_id == transaction_id],
            tx_default=[Held(e.profile, origin) for e in ch.entries
                        if e.profile.purpose == "TxDefaultProfile" and e.profile.connector_id in (0, connector_id)],
        )
        share = max(1, sharing if sharing is not None else len(ch.transactions))

        def convert(rate: Rate) -> float:
            if unit == "kW":
                return session_kw(rate, phases_used, voltage_v)
            return session_amps(rate, phases_used, voltage_v)

        key = (charger_id, connector_id, transaction_id, unit, phases_used, voltage_v, share)
        if self._cached_revision != self._revision:
            self._cache.clear()
            self._cached_revision = self._revision
        hit = self._cache.get(key) if tx is not None else None  # without a start, Relative ones move
        if hit is None or not hit[0] <= start or end > hit[1]:
            window_end = end + timedelta(seconds=CACHE_AHEAD_S)
            steps = combined_steps(stack, start, window_end, lambda r: convert(r) / share, convert)
            if tx is not None:
                self._cache[key] = (start, window_end, steps)
        else:
            steps = hit[2]
        out: list[tuple[datetime, float]] = []
        for at, value in _within(steps, start, end):
            if value is None and not out:
                continue
            limit = float("inf") if value is None else value
            if out and out[-1][1] == limit:
                continue
            out.append((at, limit))
        return tuple(out)

    # -- persistence --------------------------------------------------------------------------

    def snapshot(self) -> list[dict[str, Any]]:
        """What to persist, JSON-serialisable rows: each stored profile (``row: profile``, the
        request as accepted, when, and its transaction), each start's profile still waiting
        (``row: pending``), each transaction known (``row: transaction``, with its aliases)."""
        rows: list[dict[str, Any]] = []
        for charger_id, ch in self._chargers.items():
            for tid, tx in ch.transactions.items():
                rows.append({
                    "row": "transaction", "charger_id": charger_id, "connector_id": tx.connector_id,
                    "transaction_id": tid, "started_at": to_ocpp(tx.started_at),
                    "aliases": sorted(ch.aliases.get(tid, ())),
                })
            for tid, names in ch.aliases.items():
                if tid not in ch.transactions:
                    rows.append({"row": "alias", "charger_id": charger_id, "transaction_id": tid,
                                 "aliases": sorted(names)})
            for e in ch.entries:
                rows.append({
                    "row": "profile", "charger_id": charger_id, "version": e.version, "via": e.via,
                    "request": _copy(e.request), "received_at": to_ocpp(e.profile.received_at),
                    "transaction_id": e.transaction_id,
                })
            for w in ch.pending:
                rows.append({
                    "row": "pending", "charger_id": charger_id, "version": w.entry.version,
                    "connector_id": w.connector_id, "request": _copy(w.entry.request),
                    "received_at": to_ocpp(w.entry.profile.received_at),
                })
        return rows

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Replace what is held by a :meth:`snapshot`'s rows (a row that no longer reads is
        logged and skipped; the rest is kept)."""
        self._revision += 1
        self._chargers = {}
        for row in sorted(rows, key=lambda r: 0 if r.get("row") in ("transaction", "alias") else 1):
            try:
                self._restore_row(row)
            except Exception:  # a bad row must not lose the others
                LOG.exception("caps: a stored row is skipped: %r", row)

    def _restore_row(self, row: dict[str, Any]) -> None:
        ch = self._chargers.setdefault(str(row["charger_id"]), _Charger())
        kind = row["row"]
        if kind in ("transaction", "alias"):
            tid = str(row["transaction_id"])
            if kind == "transaction":
                ch.transactions[tid] = _Transaction(int(row["connector_id"]), from_ocpp(row["started_at"]))
            if row.get("aliases"):
                ch.aliases.setdefault(tid, set()).update(str(a) for a in row["aliases"])
            return
        version = cast(Version, row["version"])
        if version not in ("1.6", "2.0.1"):
            raise ValueError(f"version {version!r}")
        received = from_ocpp(row["received_at"])
        via: Via = "remote_start" if kind == "pending" or row.get("via") == "remote_start" else "set"
        request = cast(dict[str, Any], row["request"])
        profile = parse_set_request(version, request, received, self.max_stack_level, remote_start=via != "set")
        entry = _Entry(profile, version, request, via)
        if kind == "pending":
            connector = row.get("connector_id")
            ch.pending.append(_Pending(entry, None if connector is None else int(connector)))
        elif kind == "profile":
            tx = row.get("transaction_id")
            ch.entries.append(replace(entry, transaction_id=None if tx is None else str(tx)))
        else:
            raise ValueError(f"row kind {kind!r}")

    # -- inside -------------------------------------------------------------------------------

    def _charger(self, charger_id: str, now: datetime) -> _Charger:
        ch = self._chargers.setdefault(charger_id, _Charger())
        self._prune(ch, now)
        return ch

    @staticmethod
    def _prune(ch: _Charger, now: datetime) -> None:
        ch.entries = [e for e in ch.entries if not _ended(e.profile, now)]
        oldest = now - timedelta(seconds=PENDING_START_S)
        ch.pending = [w for w in ch.pending if w.entry.profile.received_at > oldest]

    def _rating(self, charger_id: str) -> ChargerRating:
        rating = self.ratings(charger_id) if self.ratings is not None else None
        return rating if rating is not None else ChargerRating()

    def _check_connector(self, charger_id: str, connector_id: int) -> None:
        count = self._rating(charger_id).connectors
        if connector_id < 0 or (count is not None and connector_id > count):
            raise Refused("UnknownEvse", f"{charger_id} has no connector {connector_id}")

    @staticmethod
    def _transaction_for(ch: _Charger, profile: CsmsProfile) -> str:
        """The charger's id of the transaction a TxProfile is for (module docstring)."""
        if profile.transaction_id is not None:
            named = profile.transaction_id
            for tid, tx in ch.transactions.items():
                if named == tid or named in ch.aliases.get(tid, ()):
                    if tx.connector_id != profile.connector_id:
                        raise Refused("TxNotFound", f"transaction {named} runs on connector {tx.connector_id},"
                                                    f" not {profile.connector_id}")
                    return tid
            raise Refused("TxNotFound", f"no transaction {named} runs on connector {profile.connector_id}")
        running = [tid for tid, tx in ch.transactions.items() if tx.connector_id == profile.connector_id]
        if not running:
            raise Refused("TxNotFound", f"TxProfile: no transaction runs on connector {profile.connector_id}")
        return running[-1]

    @staticmethod
    def _install(ch: _Charger, entry: _Entry) -> None:
        """Store ``entry``, replacing (1.6) or refusing (2.0.1) what it conflicts with."""
        new = entry.profile

        def same_slot(old: _Entry) -> bool:
            p = old.profile
            return (
                p.purpose == new.purpose
                and p.stack_level == new.stack_level
                and p.connector_id == new.connector_id
                and (new.purpose != "TxProfile" or old.transaction_id == entry.transaction_id)
            )

        if entry.version == "2.0.1":
            for old in ch.entries:
                p = old.profile
                overlap = new.purpose == "TxProfile" or p.overlaps(new)
                if p.profile_id != new.profile_id and same_slot(old) and overlap:
                    rule = "K01.FR.39" if new.purpose == "TxProfile" else "K01.FR.06"
                    raise Refused("DuplicateProfile", f"profile {p.profile_id} has this purpose and stack level"
                                                      f" with an overlapping validity ({rule})")
        ch.entries = [
            old for old in ch.entries
            if old.profile.profile_id != new.profile_id and not (entry.version == "1.6" and same_slot(old))
        ]
        ch.pending = [w for w in ch.pending if w.entry.profile.profile_id != new.profile_id]
        ch.entries.append(entry)

    def _composite(
        self, charger_id: str, version: Version, connector: int, duration_s: int, unit_asked: object
    ) -> Answer:
        now = self.clock()
        ch = self._charger(charger_id, now)
        charger_max = [Held(e.profile, e.profile.received_at) for e in ch.entries
                       if e.profile.purpose == "ChargePointMaxProfile"]
        if connector == 0:
            stack = Stack(charger_max=charger_max)
        else:
            running = [(tid, tx) for tid, tx in ch.transactions.items() if tx.connector_id == connector]
            tid = running[-1][0] if running else None
            origin = running[-1][1].started_at if running else now
            stack = Stack(
                charger_max=charger_max,
                tx=[Held(e.profile, origin) for e in ch.entries if tid is not None and e.transaction_id == tid],
                tx_default=[Held(e.profile, origin) for e in ch.entries
                            if e.profile.purpose == "TxDefaultProfile" and e.profile.connector_id in (0, connector)],
            )
        unit: Literal["A", "W"] | None = "A" if unit_asked == "A" else "W" if unit_asked == "W" else None
        payload = composite_payload(
            version, stack, self._rating(charger_id), connector=connector, now=now,
            duration_s=min(duration_s, MAX_COMPOSITE_S), unit=unit,
        )
        return Answer("Accepted", payload)

    @staticmethod
    def _answer(version: Version, status: str, refused: Refused) -> Answer:
        payload: dict[str, Any] = {"status": status}
        if version == "2.0.1":
            payload["statusInfo"] = _status_info(refused.code, refused.message)
        return Answer(status, payload, refused.message)


def _within(
    steps: list[tuple[datetime, float | None]], start: datetime, end: datetime
) -> list[tuple[datetime, float | None]]:
    """``steps`` (the first at or before ``start``) cut to ``[start, end)``, the first at ``start``."""
    first = bisect_right(steps, start, key=lambda s: s[0]) - 1
    return [(start, steps[first][1]), *(s for s in steps[first + 1:] if s[0] < end)]


def _unwrap(entry: _Entry) -> dict[str, Any]:
    key = "csChargingProfiles" if entry.version == "1.6" else "chargingProfile"
    return cast(dict[str, Any], entry.request[key])
