"""The headroom a commissioning run may offer one connector (controller/daemon/headroom.py).

Hand figures on the demo site (every current at its line's angle: the loads add up exactly), and
on the US bus depot (line-to-line chargers behind a delta-wye transformer, DC chargers in kW) the
promise itself: whatever the rest of each line's current is — any phasor — a connector offered
the headroom keeps every node on its path at or under its usable limit.
"""

from __future__ import annotations

import cmath
import math
import random

import pytest

from controller.config.loader import load_site
from controller.daemon.headroom import OwnDraw, headroom
from controller.model.phasor import charger_phasors
from controller.model.site import GRID_ID, Charger, Site
from controller.model.snapshot import PhaseCurrents
from controller.rules.line_loads import amps_per_kw, charger_lines, collinear_lines

DEMO = load_site("config/demo-site.yaml").site
US = load_site("config/us-school-bus-depot.yaml").site
NONE_DRAWN: PhaseCurrents = (0.0, 0.0, 0.0)


def _usable(site: Site, node: str) -> float:
    return site.node_limit_a(node) - site.node_margin_a(node)


def test_the_room_on_the_tightest_node_and_line_less_what_else_draws() -> None:
    """Up to the usable limit less a 1 A reserve (headroom.RESERVE_A)."""
    cp07 = DEMO.charger("CP07")  # 3-phase, 32 A, on feeder-b (100 A − 4 A margin) under the grid (160 − 4)
    loads = {"feeder-b": (80.0, 70.0, 75.0), GRID_ID: (100.0, 100.0, 100.0)}
    # feeder-b L1: 96 − 1 (the reserve) − 80 + the 10 A it draws there itself
    assert headroom(DEMO, cp07, loads, OwnDraw((10.0, 10.0, 10.0), (32.0, 32.0, 32.0))) == pytest.approx(25.0)
    # its draw unknown: nothing added back (the load holds whatever it draws)
    assert headroom(DEMO, cp07, loads, OwnDraw(None, (32.0, 32.0, 32.0))) == pytest.approx(15.0)
    # the grid tighter than the feeder
    tight_grid = {"feeder-b": (50.0, 50.0, 50.0), GRID_ID: (150.0, 140.0, 150.0)}
    assert headroom(DEMO, cp07, tight_grid, OwnDraw((4.0, 4.0, 4.0), NONE_DRAWN)) == pytest.approx(9.0)
    # plenty of room: its own maximum
    roomy = {"feeder-b": (10.0, 10.0, 10.0), GRID_ID: (20.0, 20.0, 20.0)}
    assert headroom(DEMO, cp07, roomy, OwnDraw(NONE_DRAWN, NONE_DRAWN)) == 32.0
    # over the limit already: nothing (never negative)
    over = {"feeder-b": (99.0, 99.0, 99.0), GRID_ID: (100.0, 100.0, 100.0)}
    assert headroom(DEMO, cp07, over, OwnDraw(NONE_DRAWN, NONE_DRAWN)) == 0.0


def test_a_single_phase_charger_looks_at_its_own_line_only() -> None:
    cp09 = DEMO.charger("CP09")  # 1-phase on L3, 16 A
    loads = {"feeder-b": (95.9, 95.9, 90.0), GRID_ID: (155.9, 155.9, 100.0)}
    assert headroom(DEMO, cp09, loads, OwnDraw((0.0, 0.0, 5.0), NONE_DRAWN)) == pytest.approx(10.0)


def test_no_observation_means_no_room() -> None:
    cp07 = DEMO.charger("CP07")
    assert headroom(DEMO, cp07, {}, OwnDraw(NONE_DRAWN, NONE_DRAWN)) == 0.0
    only_grid = {GRID_ID: (10.0, 10.0, 10.0)}  # feeder-b's meter stale
    assert headroom(DEMO, cp07, only_grid, OwnDraw(NONE_DRAWN, NONE_DRAWN)) == 0.0
    nan = {"feeder-b": (math.nan, math.nan, math.nan), GRID_ID: (10.0, 10.0, 10.0)}
    assert headroom(DEMO, cp07, nan, OwnDraw(NONE_DRAWN, NONE_DRAWN)) == 0.0


def test_the_grids_kw_contract_bounds_it_too() -> None:
    cp07 = DEMO.charger("CP07")  # grid limit_kw 105: 102.9 kW usable (2 % margin); 690 W per A
    loads = {"feeder-b": (10.0, 10.0, 10.0), GRID_ID: (20.0, 20.0, 20.0)}
    own = OwnDraw((10.0, 10.0, 10.0), NONE_DRAWN, phases_used=3)
    # 102 900 − 95 000 W, plus its own 10 A on one line at 230 V (the least it draws), at 690 W/A
    expected = (102_900.0 - 95_000.0 + 10.0 * 230.0) / 690.0
    assert headroom(DEMO, cp07, loads, own, grid_power_w=95_000.0) == pytest.approx(expected)
    assert headroom(DEMO, cp07, loads, own, grid_power_w=None) == 32.0  # no reading: the currents alone


def _rest(rng: random.Random, magnitude: float) -> complex:
    return cmath.rect(magnitude, rng.uniform(0.0, 2.0 * math.pi))


@pytest.mark.parametrize("charger_id", ["L2A-01", "L2B-03", "L1B-VAN", "DC-02"])
def test_offered_the_headroom_no_node_goes_over_whatever_the_angles(charger_id: str) -> None:
    ch = US.charger(charger_id)
    rng = random.Random(charger_id)
    checked = 0
    for _ in range(200):
        own_a = rng.uniform(0.0, 20.0)
        drawn = _grid(ch, own_a)
        own_lines = dict(charger_lines(US, ch, drawn))
        rest: dict[str, tuple[complex, complex, complex]] = {}
        loads: dict[str, PhaseCurrents] = {}
        for node, vec in own_lines.items():
            usable = _usable(US, node)
            r = tuple(_rest(rng, rng.uniform(0.0, usable)) for _ in range(3))
            rest[node] = (r[0], r[1], r[2])
            loads[node] = _load(US, node, rest[node], vec)
        measured = rng.random() < 0.7
        own = OwnDraw(drawn if measured else None, _grid(ch, own_a + rng.uniform(0.0, 5.0)))
        h = headroom(US, ch, loads, own)
        top = ch.max_kw if ch.kind == "dc" else ch.max_a
        assert 0.0 <= h <= (top if top is not None else math.inf)
        if h <= 0.0:
            continue
        checked += 1
        offered = dict(charger_lines(US, ch, _grid(ch, h * (amps_per_kw(US, ch) if ch.kind == "dc" else 1.0))))
        for node, vec in offered.items():
            after = _load(US, node, rest[node], vec)  # the rest as it was, the connector at the offer
            for ln in range(3):
                if abs(vec[ln]) > 1e-9:
                    assert after[ln] <= _usable(US, node) + 1e-6, (node, ln, h, loads[node], after)
    assert checked > 50


def _grid(ch: Charger, amps: float) -> PhaseCurrents:
    out = [0.0, 0.0, 0.0]
    for p in ch.grid_phases if ch.kind == "ac" else (0, 1, 2):
        out[p] = amps
    return (out[0], out[1], out[2])


def _load(
    site: Site, node: str, rest: tuple[complex, complex, complex], vec: tuple[complex, complex, complex]
) -> PhaseCurrents:
    """A node's line currents as its limit sums them: the rest plus the connector's phasors."""
    arithmetic = site.node_limit_sum(node) == "arithmetic"
    flags = collinear_lines(site, node)
    out = [abs(rest[ln]) + abs(vec[ln]) if arithmetic or flags[ln] else abs(rest[ln] + vec[ln]) for ln in range(3)]
    return (out[0], out[1], out[2])


def test_every_node_and_line_the_charger_reaches_is_judged() -> None:
    ch = US.charger("L2A-01")
    reached = {node for node, vec in charger_phasors(US, ch).items() if any(abs(v) > 1e-9 for v in vec)}
    assert reached == {"lot-a-panel", "lot-a-xfmr", GRID_ID}
