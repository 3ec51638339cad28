"""The status's per-session energy rate: W per A from the site's phasor model (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controller.config.loader import load_site_text
from controller.daemon.status import _kwh_per_unit_h
from controller.model.snapshot import Limit, SessionPlan

T0 = datetime(2026, 12, 9, 13, 0, tzinfo=UTC)
SITE = load_site_text(
    """site: {name: US, timezone: UTC, service: wye, voltage_v: 120}
grid: {limit_a: 400}
ocpp: {security_profile: 0}
chargers:
  - {id: L2, phases: 1, phase_rotation: L1-L2, max_a: 48}
  - {id: AC3, phases: 3, max_a: 32}
  - {id: DC, kind: dc, max_kw: 60}
"""
).site


def _plan(charger_id: str, kind: str = "ac") -> SessionPlan:
    return SessionPlan(f"{charger_id}:1", charger_id, kind, Limit(16.0, "x"), (), 0.0, 0.0, T0, (0, 1), (0.0, 0.0, 0.0))  # type: ignore[arg-type]


def test_kwh_per_unit_follows_the_draw() -> None:
    assert _kwh_per_unit_h(SITE, _plan("L2"), None) == pytest.approx(120 * 3**0.5 / 1000)  # 208 V, not 2 × 120
    assert _kwh_per_unit_h(SITE, _plan("AC3"), 1) == pytest.approx(0.120)
    assert _kwh_per_unit_h(SITE, _plan("AC3"), 3) == pytest.approx(0.360)
    assert _kwh_per_unit_h(SITE, _plan("DC", "dc"), None) == 1.0
