"""The whole simulated depot: meters + chargers + EVs + the electrical coupling (``Rig``), the
scenario it plays (``RigDay``, ``demo_day``) and a site file re-pointed at it (``rig_site_text``)."""

from hil.rig.config import free_port, rig_site_text
from hil.rig.day import Announce, BaseStep, RigDay, RigSummary, Visit, VisitRecord, demo_day, max_energy_kwh
from hil.rig.plant import GroundTruth, meter_currents, node_loads
from hil.rig.rig import Rig, RigEvent

__all__ = [
    "Announce",
    "BaseStep",
    "GroundTruth",
    "Rig",
    "RigDay",
    "RigEvent",
    "RigSummary",
    "Visit",
    "VisitRecord",
    "demo_day",
    "free_port",
    "max_energy_kwh",
    "meter_currents",
    "node_loads",
    "rig_site_text",
]
