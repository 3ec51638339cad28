"""``depotctl meter probe FILE [--meter ID]``: read each configured meter once, for commissioning.

Prints every value with its unit and the register it came from; on failure names what failed
(connection refused, timeout, exception code, implausible value) and exits 1. A bad file or
argument exits 2, as everywhere in depotctl. Only the sections the probe uses are checked
(:data:`PROBE_SECTIONS`): meters are commissioned before the chargers and the OCPP server are.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from typing import Any, TextIO

from controller.config import LoadedSite, load_site
from controller.config.reading import read_or_report
from controller.meter.errors import MeterError
from controller.meter.hub import ModbusHub
from controller.meter.plausibility import site_bounds
from controller.meter.reader import MeterReader, PollResult
from controller.meter.registers import FUNCTION_CODES, FieldSpec, RegisterMap
from controller.model.site import Meter, Site

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

UNITS = {"_a": "A", "_v": "V", "_w": "W", "_kwh": "kWh"}

PROBE_SECTIONS = ("site", "grid", "meters", "circuits")
"""What the probe uses: the meters, and the site, grid and circuits that give each its plausibility
bounds. Only these are checked, so meters can be probed before the chargers and the OCPP server
(`ocpp:` with its passwords) are set up."""

# The probe prints its own report; the reader's once-loud log lines would only repeat it.
_quiet = logging.getLogger("controller.meter.probe.reader")
_quiet.propagate = False
_quiet.addHandler(logging.NullHandler())


def register(subparsers: Any) -> None:
    meter = subparsers.add_parser("meter", help="work with the site's Modbus meters")
    actions = meter.add_subparsers(dest="meter_command", metavar="ACTION")
    actions.required = True
    probe = actions.add_parser("probe", help="read each configured meter once and print the values")
    probe.add_argument("file", metavar="FILE", help="site file (YAML)")
    probe.add_argument("--meter", metavar="ID", help="probe only this meter")
    probe.set_defaults(func=run_probe)


def unit_of(name: str) -> str:
    for suffix, unit in UNITS.items():
        if name.endswith(suffix):
            return unit
    return ""


def describe_register(f: FieldSpec) -> str:
    fc = FUNCTION_CODES[f.function]
    text = f"{f.function} (FC{fc:02d}) {f.address} (0x{f.address:04X}) {f.type}"
    if f.count > 1:
        text += f" {f.word_order}-endian words"
    if f.scale != 1.0:
        text += f" ×{f.scale:g}"
    if f.scale_factor_address is not None:
        text += f" ×10^sf@{f.scale_factor_address}"
    return text


def format_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}"


def report(meter: Meter, result: PollResult, elapsed_s: float, out: TextIO) -> bool:
    """Print one meter's probe; True when the reading was accepted."""
    link = meter.modbus
    where = f"serial:{link.serial}" if link.serial else f"{link.framer}://{link.host}:{link.port}"
    preset = meter.preset or "custom registers"
    print(f"{meter.id}: {preset} at {where} unit {link.unit}", file=out)
    register_map: RegisterMap | None = result.register_map
    if result.values is not None and register_map is not None:
        if register_map.name.startswith("sunspec"):
            print(f"  {register_map.name}", file=out)
        for f in register_map.fields:
            value = format_value(result.values.get(f.name))
            print(f"  {f.name:<13} {value:>14} {unit_of(f.name):<3}  {describe_register(f)}", file=out)
    if result.reading is not None:
        print(f"  OK in {elapsed_s * 1000:.0f} ms", file=out)
        return True
    error = result.error
    kind = error.kind if isinstance(error, MeterError) else "error"
    print(f"  FAILED ({kind}): {error}", file=out)
    return False


async def probe_site(site: Site, meter_ids: list[str], out: TextIO) -> int:
    hubs: dict[str, ModbusHub] = {}
    ok = True
    try:
        for meter_id in meter_ids:
            meter = next(m for m in site.meters if m.id == meter_id)
            key = meter.modbus.connection_key
            if key not in hubs:  # no back-off: each meter gets its own connect attempt
                hubs[key] = ModbusHub(meter.modbus, backoff_initial_s=0.0, backoff_max_s=0.0)
            reader = MeterReader(meter, hubs[key], site_bounds(site, meter.id), logger=_quiet)
            started = time.monotonic()
            result = await reader.poll()
            ok = report(meter, result, time.monotonic() - started, out) and ok
    finally:
        for hub in hubs.values():
            await hub.close()
    return EXIT_OK if ok else EXIT_FAILED


def load_for_probe(path: str) -> LoadedSite:
    """The site file as far as the probe uses it (:data:`PROBE_SECTIONS`)."""
    return load_site(path, only=PROBE_SECTIONS)


def run_probe(args: argparse.Namespace) -> int:
    loaded = read_or_report(load_for_probe, args.file, "nothing probed")
    if loaded is None:
        return EXIT_USAGE
    site = loaded.site
    ids = [m.id for m in site.meters]
    if args.meter is not None:
        if args.meter not in ids:
            known = ", ".join(ids) or "none"
            print(f"depotctl: no meter {args.meter!r} in {args.file} (meters: {known})", file=sys.stderr)
            return EXIT_USAGE
        ids = [args.meter]
    if not ids:
        print(f"depotctl: {args.file} configures no meters", file=sys.stderr)
        return EXIT_USAGE
    return asyncio.run(probe_site(site, ids, sys.stdout))
