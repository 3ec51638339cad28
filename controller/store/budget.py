"""What a charger may draw after a restart, from what it had accepted, while it has not reconnected.

docs/safety.md for a charger this run has not seen yet: every figure is the worst case in
planner units (A per phase for AC, kW for DC), per connector, summed over the charger's
connectors. Pure functions: no clock, no I/O.

Why a live profile never counts below the fail-safe: the charger may not be applying it even
before it expires — a TxProfile ends with its transaction and the next transaction on that
connector starts on the TxDefault/fail-safe; a schedule not yet started on a charger clock behind
ours leaves the fail-safe in force; some firmwares fall back at the end of a schedule. So a
connector paused at 0 A counts at the fail-safe limit. A charger whose fail-safe was never
confirmed may draw its maximum wherever nothing else is in force.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from controller.store.records import AcceptedProfile
from controller.store.restore import Restored


def is_live(profile: AcceptedProfile, now: datetime, margin_s: float) -> bool:
    """The charger may still hold ``profile``: permanent, or ``now`` before its expiry plus the margin."""
    return profile.valid_until is None or now < profile.valid_until + timedelta(seconds=margin_s)


def restored_connector_budget(
    profile: AcceptedProfile | None,
    failsafe_limit: float,
    now: datetime,
    margin_s: float,
    *,
    unsized_limit: float | None = None,
) -> float:
    """Worst case one connector may draw under ``profile`` (planner units).

    While ``profile`` may be in force (``now < valid_until + margin_s``, or no expiry): the
    highest limit of its whole schedule, never below ``failsafe_limit`` (see the module note).
    Otherwise, or without a profile: ``failsafe_limit``. A live profile whose limits are unknown in
    planner units (a W row from before schema 3) counts at ``unsized_limit`` (the charger's
    maximum); without one given, that is a :class:`ValueError`.
    """
    if profile is None or not is_live(profile, now, margin_s):
        return failsafe_limit
    schedule = profile.planner_schedule
    if schedule is None:
        if unsized_limit is None:
            raise ValueError(f"{profile.charger_id} connector {profile.connector}: profile limits in W, not sized")
        return max(failsafe_limit, unsized_limit)
    return max(failsafe_limit, *schedule)


def _as_tuple(v: AcceptedProfile | Sequence[AcceptedProfile]) -> tuple[AcceptedProfile, ...]:
    return (v,) if isinstance(v, AcceptedProfile) else tuple(v)


def restored_charger_budget(
    profiles_by_connector: Mapping[int, AcceptedProfile | Sequence[AcceptedProfile]],
    connectors: int,
    failsafe_limit: float,
    max_limit: float,
    failsafe_confirmed: bool,
    now: datetime,
    margin_s: float,
) -> float:
    """Worst case the whole charger may draw (planner units): the sum over connectors 1..``connectors``.

    ``profiles_by_connector``: connector → its profile, or every profile that may be in force there
    (:meth:`Restored.charger_profiles`); connector 0's apply to every connector. Each connector
    counts at the highest of its own and connector 0's live profiles, never below its floor: the
    fail-safe limit, or ``max_limit`` when the fail-safe was never confirmed.
    """
    floor = failsafe_limit if failsafe_confirmed else max_limit
    shared = _as_tuple(profiles_by_connector.get(0, ()))
    total = 0.0
    for connector in range(1, connectors + 1):
        candidates = _as_tuple(profiles_by_connector.get(connector, ())) + shared
        total += max(
            (restored_connector_budget(p, floor, now, margin_s, unsized_limit=max_limit) for p in candidates),
            default=floor,
        )
    return total


def restored_failsafe_limit(failsafe: AcceptedProfile | None, now: datetime, margin_s: float) -> float | None:
    """The limit of a restored fail-safe profile (planner units), or None when it cannot be relied on.

    None: no fail-safe stored, its limit is not known in planner units, or its schedule started less
    than ``margin_s`` before ``now`` (a charger clock behind ours may not apply it yet).
    """
    if failsafe is None:
        return None
    schedule = failsafe.planner_schedule
    if schedule is None:
        return None
    if failsafe.start is not None and now < failsafe.start + timedelta(seconds=margin_s):
        return None
    return max(schedule)


def restored_budget(
    restored: Restored,
    charger_id: str,
    *,
    connectors: int,
    failsafe_limit: float,
    max_limit: float,
    now: datetime,
    margin_s: float,
) -> float:
    """:func:`restored_charger_budget` for one charger, from what :func:`restore` read.

    ``failsafe_limit`` is the configured one: the charger may hold it (a re-install accepted just
    before the crash, not yet written) or the stored one, so the higher of the two counts. The
    fail-safe is confirmed when a usable one was stored (:func:`restored_failsafe_limit`).
    """
    stored = restored_failsafe_limit(restored.failsafes.get(charger_id), now, margin_s)
    confirmed = stored is not None
    limit = failsafe_limit if stored is None else max(failsafe_limit, stored)
    return restored_charger_budget(
        restored.charger_profiles(charger_id), connectors, limit, max_limit, confirmed, now, margin_s
    )
