"""Cross-field rules of the site file: ids, references, the circuit tree, phases, min/max.

Each rule reports the exact path of the offending value, so the message can carry its line.
Rules that would make a running controller unsafe are errors; doubtful but legal set-ups
(a child breaker rated above its parent, fail-safe limits that could overload a feeder) are
warnings.
"""

from __future__ import annotations

from collections.abc import Callable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from controller.config.electrical import PAIRS, ROTATIONS_3P, check_electrical, electrical_site
from controller.config.listen import is_fixed_address
from controller.config.placement import preceding_section
from controller.config.pv import check_pv
from controller.config.schema import KNOWN_QUIRKS, REGISTER_VALUES, SLOT_MINUTES, SiteFile
from controller.config.tariff import check_prices_file, check_tariff
from controller.config.times import is_hhmm as is_hhmm  # re-exported: scenario files read times as sites do
from controller.config.times import parse_local_datetime as parse_local_datetime
from controller.config.upstream import check_upstream
from controller.config.yaml_source import Path
from controller.model import phasor
from controller.model.presets import PRESET_NAMES
from controller.model.site import Charger, Site

DEFAULT_REACTION_S = 5.0
"""The reaction allowance of a charger without ``reaction_s`` [s] (IEC 61851-1's 5 s; the daemon's
``controller.daemon.sessions.REACTION_S``): a commissioning measurement only ever lengthens it."""

Report = Callable[[Path, str], None]


def check(sf: SiteFile, error: Report, warn: Report, *, offline: bool = False) -> None:
    """Run every rule; ``error``/``warn`` receive (path, message). ``offline`` skips the services."""
    _check_site(sf, error)
    ids = _check_ids(sf, error)
    _check_meters(sf, error, warn)
    _check_tree(sf, ids, error, warn)
    _check_chargers(sf, error, warn)
    check_electrical(sf, error, warn)
    _check_vehicles_and_schedules(sf, error)
    check_tariff(sf, error)
    check_pv(sf, error)
    if not offline:
        _check_services(sf, error, warn)
        check_prices_file(sf, error, warn)
        check_upstream(sf, error, warn)
    _check_failsafe_capacity(sf, warn)


def _check_site(sf: SiteFile, error: Report) -> None:
    try:
        ZoneInfo(sf.site.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        error(("site", "timezone"), f"unknown time zone {sf.site.timezone!r} (use an IANA name like Europe/Amsterdam)")
    if sf.grid.margin_a >= sf.grid.limit_a:
        error(("grid", "margin_a"), f"margin {sf.grid.margin_a:g} A leaves nothing of limit {sf.grid.limit_a:g} A")
    if sf.control.slot_min not in SLOT_MINUTES:
        allowed = ", ".join(map(str, SLOT_MINUTES))
        error(("control", "slot_min"), f"must be one of {allowed} minutes, got {sf.control.slot_min}")


def _check_ids(sf: SiteFile, error: Report) -> set[str]:
    """Ids of circuits, chargers and meters share one namespace (they appear in the same logs)."""
    seen: dict[str, str] = {}
    named: list[tuple[str, list[str]]] = [
        ("meters", [m.id for m in sf.meters]),
        ("circuits", [c.id for c in sf.circuits]),
        ("chargers", [c.id for c in sf.chargers]),
    ]
    for section, item_ids in named:
        for i, item_id in enumerate(item_ids):
            if item_id == "grid":
                error((section, i, "id"), "'grid' is reserved for the grid connection")
            elif item_id in seen:
                error((section, i, "id"), f"duplicate id {item_id!r} (already used by {seen[item_id]})")
            else:
                seen[item_id] = f"{section}[{i}]"
    vehicle_ids: dict[str, int] = {}
    tags: dict[str, str] = {}
    for i, v in enumerate(sf.vehicles):
        if v.id in vehicle_ids:
            error(("vehicles", i, "id"), f"duplicate vehicle id {v.id!r} (already vehicles[{vehicle_ids[v.id]}])")
        vehicle_ids.setdefault(v.id, i)
        for j, tag in enumerate(v.id_tags):
            if tag in tags and tags[tag] != v.id:
                error(("vehicles", i, "id_tags", j), f"id tag {tag!r} already belongs to vehicle {tags[tag]!r}")
            tags.setdefault(tag, v.id)
    return set(seen)


def _check_meters(sf: SiteFile, error: Report, warn: Report) -> None:
    used = {sf.grid.meter} | {c.meter for c in sf.circuits} | {sf.pv.meter if sf.pv is not None else None}
    for i, m in enumerate(sf.meters):
        if (m.preset is None) == (m.registers is None):
            error(("meters", i), "give exactly one of `preset` or `registers`")
        if m.preset is not None and m.preset not in PRESET_NAMES:
            error(("meters", i, "preset"), f"unknown preset {m.preset!r}; known: {', '.join(PRESET_NAMES)}")
        for name in m.registers or {}:
            if name not in REGISTER_VALUES:
                error(("meters", i, "registers", name), f"unknown value {name!r}; known: {', '.join(REGISTER_VALUES)}")
        if m.registers is not None and not any(k.startswith("current_") for k in m.registers):
            error(("meters", i, "registers"), "a custom map needs at least the phase currents (current_l1_a …)")
        if m.signed_currents and m.registers is not None:
            for name, reg in m.registers.items():
                if name.startswith("current_") and reg.type.startswith("uint"):
                    warn(
                        ("meters", i, "registers", name, "type"),
                        f"{reg.type} cannot hold a negative current although `signed_currents` is true "
                        f"(use int{reg.type.removeprefix('uint')} if the meter signs it)",
                    )
        mb = m.modbus
        if (mb.host is None) == (mb.serial is None):
            error(("meters", i, "modbus"), "give exactly one of `host` (TCP) or `serial` (RTU)")
        if mb.serial is not None and mb.framer != "tcp":
            error(("meters", i, "modbus", "framer"), "`framer` applies to `host` connections only")
        if m.stale_after_s < m.poll_s:
            error(("meters", i, "stale_after_s"), f"must be at least poll_s ({m.poll_s:g} s)")
        if m.id not in used:
            warn(("meters", i, "id"), f"meter {m.id!r} is not attached to the grid, any circuit or `pv`")
    meter_ids = {m.id for m in sf.meters}
    if sf.grid.meter is None:
        warn(("grid",), "no grid meter: the controller cannot see the base load and will stay in fail-safe")
    elif sf.grid.meter not in meter_ids:
        error(("grid", "meter"), f"unknown meter {sf.grid.meter!r}")
    for i, c in enumerate(sf.circuits):
        if c.meter is not None and c.meter not in meter_ids:
            error(("circuits", i, "meter"), f"unknown meter {c.meter!r}")


def _check_tree(sf: SiteFile, ids: set[str], error: Report, warn: Report) -> None:
    circuits = {c.id: c for c in sf.circuits}
    limits = {"grid": sf.grid.limit_a, **{c.id: c.limit_a for c in sf.circuits}}
    for i, c in enumerate(sf.circuits):
        if c.parent == c.id:
            error(("circuits", i, "parent"), f"circuit {c.id!r} cannot be its own parent")
            continue
        if c.parent != "grid" and c.parent not in circuits:
            hint = " (that id is not a circuit)" if c.parent in ids else ""
            error(("circuits", i, "parent"), f"unknown circuit {c.parent!r}{hint}")
            continue
        # follow parents; a cycle never reaches the grid
        seen = [c.id]
        node = c.parent
        while node != "grid" and node in circuits and node not in seen:
            seen.append(node)
            node = circuits[node].parent
        if node in seen:
            loop = " → ".join([*seen[seen.index(node) :], node])
            error(("circuits", i, "parent"), f"circuit tree has a cycle: {loop}")
            continue
        parent_tr = circuits[c.parent].transformer if c.parent in circuits else None
        if parent_tr is not None:
            # the parent's limit is on its transformer's primary; below it, currents are ratio × larger
            on_secondary = limits[c.parent] * parent_tr.ratio
            if c.limit_a > on_secondary:
                warn(
                    ("circuits", i, "limit_a"),
                    f"{c.limit_a:g} A is above what its parent {c.parent!r} allows on its secondary "
                    f"({limits[c.parent]:g} A × ratio {parent_tr.ratio:g} = {on_secondary:g} A); "
                    "the parent still limits",
                )
        elif c.parent in limits and c.limit_a > limits[c.parent]:
            warn(
                ("circuits", i, "limit_a"),
                f"{c.limit_a:g} A is above its parent {c.parent!r} ({limits[c.parent]:g} A); the parent still limits",
            )
        margin = sf.grid.margin_a if c.margin_a is None else c.margin_a
        if margin >= c.limit_a:
            error(("circuits", i, "margin_a"), f"margin {margin:g} A leaves nothing of limit {c.limit_a:g} A")
    for i, ch in enumerate(sf.chargers):
        if ch.circuit != "grid" and ch.circuit not in circuits:
            error(("chargers", i, "circuit"), f"unknown circuit {ch.circuit!r}")


def _check_chargers(sf: SiteFile, error: Report, warn: Report) -> None:
    for i, ch in enumerate(sf.chargers):
        rot = ch.phase_rotation
        if ch.phases not in (1, 3):
            error(("chargers", i, "phases"), f"must be 1 or 3, got {ch.phases}")
            continue
        if ch.phases == 3 and rot is not None and rot not in ROTATIONS_3P:
            hint = " (a charger between two lines is `phases: 1`)" if rot in PAIRS else ""
            error(
                ("chargers", i, "phase_rotation"),
                f"{rot!r} is not a 3-phase rotation; use one of {', '.join(ROTATIONS_3P)}{hint}",
            )
        # a 1-phase charger's line(s) depend on its bus: controller.config.electrical
        if ch.kind == "ac":
            if ch.max_a is None:
                error(("chargers", i), "an AC charger needs `max_a`")
            elif ch.min_a > ch.max_a:
                error(("chargers", i, "min_a"), f"min_a {ch.min_a:g} A is above max_a {ch.max_a:g} A")
            if ch.min_a < 6 and not ch.allow_min_below_6a:
                error(
                    ("chargers", i, "min_a"),
                    f"{ch.min_a:g} A is below the IEC 61851 minimum of 6 A "
                    "(set allow_min_below_6a: true if the charger supports it)",
                )
        else:
            if ch.max_kw is None:
                error(("chargers", i), "a DC charger needs `max_kw`")
            if ch.phases != 3:
                error(("chargers", i, "phases"), "DC chargers are fed by 3 phases")
        for j, quirk in enumerate(ch.ocpp_quirks):
            if quirk not in KNOWN_QUIRKS:
                error(("chargers", i, "ocpp_quirks", j), f"unknown quirk {quirk!r}; known: {', '.join(KNOWN_QUIRKS)}")
        if ch.reaction_s is not None and ch.reaction_s < DEFAULT_REACTION_S:
            warn(
                ("chargers", i, "reaction_s"),
                f"{ch.reaction_s:g} s is below the {DEFAULT_REACTION_S:g} s default: it shortens this charger's "
                "allowances — the wait before the chargers sharing its lines are raised after it was lowered, "
                "the overload shed's and the 'ignores its limit' judgement's — for every EV it will charge, "
                "not only the one measured (a commissioning measurement never shortens them, only this line does)",
            )
        if ch.kind == "ac" and 0 < sf.failsafe.charger_a < ch.min_a:
            warn(
                ("failsafe", "charger_a"),
                f"{sf.failsafe.charger_a:g} A is below {ch.id}'s min_a; it will pause in fail-safe",
            )


def _check_vehicles_and_schedules(sf: SiteFile, error: Report) -> None:
    vehicles = {v.id: v for v in sf.vehicles}
    for i, s in enumerate(sf.schedules):
        v = vehicles.get(s.vehicle)
        if v is None:
            error(("schedules", i, "vehicle"), f"unknown vehicle {s.vehicle!r}")
        at = s.departs.at
        if s.departs.days is not None:
            if not is_hhmm(at):
                error(("schedules", i, "departs", "at"), f"a recurring departure needs HH:MM, got {at!r}")
            if not s.departs.days:
                error(("schedules", i, "departs", "days"), "give at least one day")
        elif parse_local_datetime(at) is None:
            if is_hhmm(at):
                error(
                    ("schedules", i, "departs"),
                    "a time of day needs `days`; a one-off needs a date, e.g. 2026-03-03T05:30",
                )
            else:
                error(
                    ("schedules", i, "departs", "at"),
                    f"expected an ISO local date-time like 2026-03-03T05:30, got {at!r}",
                )
        if (s.energy_kwh is None) == (s.target_soc_pct is None):
            error(("schedules", i), "give exactly one of `energy_kwh` or `target_soc_pct`")
        if v is not None and s.target_soc_pct is not None and v.battery_kwh is None:
            error(("schedules", i, "target_soc_pct"), f"vehicle {v.id!r} has no battery_kwh to turn a SoC into energy")
        if v is not None and s.energy_kwh is not None and v.battery_kwh is not None and s.energy_kwh > v.battery_kwh:
            error(
                ("schedules", i, "energy_kwh"),
                f"{s.energy_kwh:g} kWh is more than {v.id}'s battery ({v.battery_kwh:g} kWh)",
            )


def missing_ocpp_message(after: str | None) -> str:
    """The problem for a site file without an `ocpp:` section (``after``: the section it would follow).

    Security profile 1 stays the default for a running controller, so the file cannot start one; it
    says where the section goes and shows the two lines an electrician can paste."""
    where = f"after `{after}:`" if after is not None else "at the top of the file"
    return (
        f"no `ocpp:` section (it goes here, {where}): security profile 1, the default, needs a"
        " passwords_file — add `ocpp: {security_profile: 0}` for a lab without passwords, or"
        " `ocpp: {passwords_file: ocpp-passwords.yaml}` (a YAML file of `charger id: password` lines)"
        " for a depot; profile 2 (TLS) also needs tls_cert_file and tls_key_file"
    )


def _check_services(sf: SiteFile, error: Report, warn: Report) -> None:
    if "ocpp" not in sf.model_fields_set:
        error(("ocpp",), missing_ocpp_message(preceding_section("ocpp", sf.model_fields_set)))
    for section, listen in (("ocpp", sf.ocpp.listen), ("api", sf.api.listen), ("metrics", sf.metrics.listen)):
        if not is_fixed_address(listen, f"{section}.listen"):
            error((section, "listen"), f"expected HOST:PORT, got {listen!r}")
    if not sf.ocpp.path.startswith("/"):
        error(("ocpp", "path"), f"must start with '/', got {sf.ocpp.path!r}")
    if "ocpp" in sf.model_fields_set and sf.ocpp.security_profile >= 1 and sf.ocpp.passwords_file is None:
        error(("ocpp", "passwords_file"), f"security profile {sf.ocpp.security_profile} needs a passwords_file")
    if sf.ocpp.security_profile == 2:
        for key in ("tls_cert_file", "tls_key_file"):
            if getattr(sf.ocpp, key) is None:
                error(("ocpp", key), "security profile 2 (TLS) needs it")
    if sf.ocpp.security_profile == 0:
        warn(("ocpp", "security_profile"), "profile 0: chargers connect without a password (lab use only)")


def _check_failsafe_capacity(sf: SiteFile, warn: Report) -> None:
    """Warn when every charger at its fail-safe limit alone would exceed a node's limit (each
    node's line currents summed as its ``limit_sum`` says; a transformer node's on its primary)."""
    site = electrical_site(sf, with_chargers=True)
    if site is None:
        return
    loads = [(ch, None, _failsafe_line_a(sf, site, ch)) for ch in site.chargers]
    by_phasor = phasor.node_line_currents_a(site, loads)
    by_magnitude = phasor.arithmetic_line_currents_a(site, loads)
    for node in site.node_ids():
        lines_a = by_phasor[node] if site.node_limit_sum(node) == "phasor" else by_magnitude[node]
        limit = site.node_limit_a(node) - site.node_margin_a(node)
        worst = max(lines_a)
        if worst > limit + 1e-9:
            path: Path = ("failsafe", "charger_a")
            warn(
                path,
                f"all chargers at their fail-safe limits would draw {worst:.1f} A on {node!r}, "
                f"above its usable {limit:g} A",
            )


def _failsafe_line_a(sf: SiteFile, site: Site, ch: Charger) -> float:
    """A charger's line current at its fail-safe limit [A per line]."""
    if ch.kind == "ac":
        return sf.failsafe.charger_a * ch.connectors
    volts = phasor.draw(site, ch).volts_v
    return ch.connectors * sf.failsafe.dc_kw * 1000.0 / (ch.efficiency * ch.power_factor * volts)
