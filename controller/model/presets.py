"""The meter presets depotctl ships: one list, read by the site file's schema and checks
(:mod:`controller.config`) and by the meter package that loads them (register maps as data in
``controller/meter/presets/NAME.yaml``; a test keeps the files and this list equal)."""

PRESET_NAMES: tuple[str, ...] = (
    "eastron-sdm630",
    "carlo-gavazzi-em24",
    "carlo-gavazzi-em340",
    "janitza-umg96rm",
    "schneider-iem3000",
    "abb-b23",
    "siemens-pac2200",
    "sunspec",
)
