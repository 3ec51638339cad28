"""What the controller learns about a vehicle from its meter values (pure).

A vehicle that draws clearly less than its charger allows is limiting itself (its on-board
charger, a tapering battery near full, a cold battery). Planning it at the charger's limit would
reserve capacity nobody uses, so the planner is told the vehicle's observed maximum instead, with
a little room to grow; once it draws up to that, the room is given back next cycle.
"""

from __future__ import annotations

VEHICLE_LIMITED_GAP_A = 1.0  # drawing this far below its limit means the vehicle limits itself
GROWTH_ROOM_A = 1.0  # planned above what it draws, so a vehicle that speeds up is noticed


def observed_max_a(limit_a: float, drawn_a: float, min_a: float) -> float | None:
    """The per-phase current the vehicle takes at most right now, or None if it follows the limit.

    ``limit_a``: the per-phase limit it was given; ``drawn_a``: its measured current on its
    busiest phase; ``min_a``: the charger's minimum (a vehicle drawing nothing is paused or done,
    not limited, and is left to the planner's other rules).
    """
    if drawn_a <= 0.0 or limit_a < min_a:
        return None
    if drawn_a < limit_a - VEHICLE_LIMITED_GAP_A:
        return max(min_a, drawn_a + GROWTH_ROOM_A)
    return None


def learned_max_a(prev_a: float | None, limit_a: float, drawn_a: float, min_a: float) -> float | None:
    """The vehicle's own maximum [A per phase] after this reading, given what was learnt so far.

    Sticky: a cap stays while the vehicle leaves its growth room unused, and is given back as soon
    as it draws into that room (it wants more) — a cap that came and went every cycle would make
    the vehicle's limit swing between its cap and the charger's maximum.
    """
    if prev_a is not None:
        return prev_a if drawn_a < prev_a - GROWTH_ROOM_A / 2 else None
    return observed_max_a(limit_a, drawn_a, min_a)
