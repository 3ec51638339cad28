"""Simulated OCPP charge points (1.6J and 2.0.1) with real charging-profile semantics."""

from hil.chargers.composite import ProfileStore, SimProfile
from hil.chargers.sim import SimCharger, SimOptions, reconnect_storm

__all__ = ["ProfileStore", "SimCharger", "SimOptions", "SimProfile", "reconnect_storm"]
