"""The simulated meter: a pymodbus server presenting any preset's map, driven by the rig."""

from hil.meter.device import Fault, MeterState, SimMeter
from hil.meter.server import MeterSimServer

__all__ = ["Fault", "MeterSimServer", "MeterState", "SimMeter"]
