"""Right after a raise: a session counts at its new limit until a newer reading comes. On a
transformer primary that must not read the part not drawn yet as a base load (pure)."""

from __future__ import annotations

import cmath
import math

from controller.rules import line_loads as ll
from controller.rules.loads import base_loads
from tests.rules.test_line_loads import LL_DRAW, US


def _scaled(amps: float, chargers: str = "AC") -> dict[str, tuple[float, float, float]]:
    return {c: tuple(v / 16.0 * amps for v in LL_DRAW[c]) for c in chargers}  # type: ignore[misc]


def test_a_raise_not_drawn_yet_is_no_base_load_on_a_transformer_primary() -> None:
    """Two 208 V chargers (L1-L2, L3-L1) draw 10 A each; their limits just went to 30 A and the meter has not
    moved yet. Counting them at 30 A alone reads 20 A of EV current that is not there as a base load
    of about that size in the opposite direction (held a minute, the next plan cuts everyone to its
    minimum); the least bound between the reported and the new draw is the base that is there."""
    units = ll.line_units(US, "xf")
    base = [cmath.rect(3.0, math.radians(10.0)) * u for u in units]
    drawn = _scaled(10.0)
    ev_now = ll.ev_at_nodes(US, drawn)["xf"].phasor
    line = [base[k] + ev_now[k] for k in range(3)]
    meter = tuple(abs(v) for v in line)
    meters = {"xf-meter": meter, "grid-meter": meter}
    # the meter reports power per line: the bound is exact (the component in phase with the voltage)
    power = {"xf": tuple((line[k] * units[k].conjugate()).real for k in range(3))}
    raised = _scaled(30.0)
    phantom = base_loads(US, meters, raised, power)["xf"]  # type: ignore[arg-type]
    fixed = base_loads(US, meters, raised, power, charger_low_a=drawn)["xf"]  # type: ignore[arg-type]
    settled = base_loads(US, meters, drawn, power)["xf"]  # type: ignore[arg-type]
    assert max(phantom) > 6.0  # the mechanism: far above the 3 A that is there
    for k in range(3):
        assert fixed[k] <= settled[k] + 1e-9  # never above what the reported draw gives
        assert fixed[k] <= 3.0 + 1.5
    # once the vehicles draw their 30 A and say so, the base is the same 3 A (bounded from above)
    ev_after = ll.ev_at_nodes(US, raised)["xf"].phasor
    line_after = [base[k] + ev_after[k] for k in range(3)]
    meter_after = tuple(abs(v) for v in line_after)
    power_after = {"xf": tuple((line_after[k] * units[k].conjugate()).real for k in range(3))}
    meters_after = {"xf-meter": meter_after, "grid-meter": meter_after}
    after = base_loads(US, meters_after, raised, power_after, charger_low_a=raised)["xf"]  # type: ignore[arg-type]
    assert all(after[k] >= 3.0 - 1e-6 for k in range(3))
