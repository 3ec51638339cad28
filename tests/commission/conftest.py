"""The charger tests' loopback central system (every frame schema-checked) for commissioning runs."""

from __future__ import annotations

from tests.chargers.conftest import server_factory, wire

__all__ = ["server_factory", "wire"]
