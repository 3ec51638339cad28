"""The CSMS's smart-charging wishes as caps: the profile book (issue 17, local-controller mode).

A SetChargingProfile from the operator's CSMS is never forwarded to the charger. :class:`CapBook`
validates it, answers it upstream (:class:`Answer`), stores it, and turns what it limits over time
into one more upper bound per session (:meth:`CapBook.cap_steps`, for ``SessionState.cap``); the
charger keeps holding only depotctl's fail-safe and control profiles. ClearChargingProfile and
GetCompositeSchedule act on and answer from this stored view.

This module is the API the proxy (``controller/upstream/`` link, queue, relay) codes against. Pure:
the clock is injected, nothing here does I/O; only the daemon's event loop calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Version = Literal["1.6", "2.0.1"]


@dataclass(frozen=True)
class Answer:
    """What goes back upstream for one request from the CSMS.

    ``status``: the response's status (``Accepted`` / ``Rejected`` / ``Unknown`` …);
    ``payload``: the full response payload (camelCase, valid against the OCPP response schema);
    ``reason``: why, for the log (empty when accepted; a 2.0.1 answer also carries it in
    ``statusInfo``)."""

    status: str
    payload: dict[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class ChargerRating:
    """What the book may know of a charger (optional: :class:`CapBook` ``ratings``).

    ``volts_per_phase``: the voltage one phase's current is drawn at (W per A of one phase; a
    line-to-line charger's line-to-line voltage). ``max_a`` / ``max_kw``: its own maximum, reported
    by GetCompositeSchedule where no cap applies. ``connectors``: how many it has (``None``: not
    checked)."""

    kind: Literal["ac", "dc"] = "ac"
    phases: int = 3
    volts_per_phase: float = 230.0
    max_a: float | None = None
    max_kw: float | None = None
    connectors: int | None = None


class CapBook:
    """The CSMS's charging profiles per charger, and the caps they make (module docstring)."""

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

    def set_profile(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A SetChargingProfile request payload from the CSMS (camelCase as on the wire)."""
        raise NotImplementedError

    def clear(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A ClearChargingProfile request payload."""
        raise NotImplementedError

    def composite(self, charger_id: str, version: Version, payload: dict[str, Any]) -> Answer:
        """A GetCompositeSchedule request payload, answered from the stored view."""
        raise NotImplementedError

    def remote_start_profile(
        self, charger_id: str, version: Version, connector_id: int | None, profile: dict[str, Any]
    ) -> None:
        """The chargingProfile a RemoteStartTransaction / RequestStartTransaction carried: a
        TxProfile for the transaction about to start there."""
        raise NotImplementedError

    def transaction_started(self, charger_id: str, connector_id: int, transaction_id: str) -> None:
        """A transaction started (the charger's id for it; 1.6 ints as str)."""
        raise NotImplementedError

    def transaction_ended(self, charger_id: str, connector_id: int, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles end with it."""
        raise NotImplementedError

    def transaction_alias(self, charger_id: str, transaction_id: str, upstream_id: str) -> None:
        """The CSMS knows the charger's transaction ``transaction_id`` as ``upstream_id`` (1.6,
        a start answered locally while the CSMS was away): a TxProfile naming either id is its."""
        raise NotImplementedError

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
        """The cap over ``[start, end)`` in the session's unit, as ``SessionState.cap`` wants it."""
        raise NotImplementedError

    def snapshot(self) -> list[dict[str, Any]]:
        """What to persist (raw accepted requests + ids), JSON-serialisable."""
        raise NotImplementedError

    def restore(self, rows: list[dict[str, Any]]) -> None:
        """Replace what is held by a :meth:`snapshot`'s rows."""
        raise NotImplementedError
