"""Reading the site's meters over Modbus: register maps as data, pure decoding, one hub per link.

The pieces, from pure to I/O: :mod:`.decode` (words → numbers), :mod:`.registers` (maps and
presets), :mod:`.sunspec` (discovery), :mod:`.reading` (the :class:`MeterReading`),
:mod:`.plausibility` (checks), :mod:`.hub` (one Modbus connection), :mod:`.reader` (one meter's
polling and staleness), :mod:`.meters` (a whole site), :mod:`.probe` (``depotctl meter probe``).
"""

from controller.meter.errors import MeterError
from controller.meter.hub import ModbusHub
from controller.meter.meters import SiteMeters
from controller.meter.reader import MeterReader, MeterStatus
from controller.meter.reading import MeterReading

__all__ = ["MeterError", "MeterReader", "MeterReading", "MeterStatus", "ModbusHub", "SiteMeters"]
