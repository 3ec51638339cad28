from __future__ import annotations

import pytest

from controller.config import load_site_text
from controller.config.tree import node_capacity, render_tree

SITE = """
site: {name: T, timezone: Europe/Paris}
grid: {limit_a: 100, margin_a: 5}
ocpp: {security_profile: 0}
circuits: [{id: f, limit_a: 50, margin_a: 2}]
chargers:
  - {id: A, circuit: f, phases: 3, phase_rotation: L2-L3-L1, max_a: 32}
  - {id: B, circuit: f, phases: 1, phase_rotation: L3, max_a: 16}
  - {id: C, kind: dc, max_kw: 69, efficiency: 1.0}
"""


def test_capacity_per_phase_follows_rotation_and_dc_conversion() -> None:
    site = load_site_text(SITE).site
    f = node_capacity(site, "f")
    assert f.connected_a == pytest.approx((32.0, 32.0, 48.0))  # phasor sums: floating point
    assert f.usable_a == 48.0
    assert f.oversubscription == pytest.approx(48 / 50)
    grid = node_capacity(site, "grid")
    dc = 69_000 / (3 * 230)  # 100 A per phase
    assert grid.connected_a == pytest.approx((32 + dc, 32 + dc, 48 + dc))
    assert grid.usable_a == 95.0


def test_tree_lists_circuits_and_chargers_in_order() -> None:
    text = render_tree(load_site_text(SITE).site)
    lines = text.splitlines()
    assert lines[0] == "T (Europe/Paris, wye 230 V line-to-neutral)"
    assert lines[1].startswith("grid")
    assert lines[2].startswith("│ ") and lines[2].endswith("line currents, phasor sum; bus: wye 230 V to neutral")
    assert lines[3].startswith("├── f ")
    assert lines[4].startswith("│   │ ")  # what f's limit applies to, under f
    assert lines[5].startswith("│   ├── A ")
    assert lines[5].endswith("AC 3-phase L2-L3-L1 (3 × 230 V line-to-neutral)  6–32 A")
    assert lines[6].startswith("│   └── B ")
    assert lines[6].endswith("AC 1-phase L3 (230 V line-to-neutral)  6–16 A")
    assert lines[7].startswith("└── C ")
    assert lines[7].endswith("DC 69 kW on L1-L2-L3 (3 × 230 V line-to-neutral; η 1, pf 1)")
    assert "1.48× oversubscribed" in lines[1]
    assert lines[-1] == "3 chargers, 1 circuit, 0 meters, 0 vehicles, 0 departures"
