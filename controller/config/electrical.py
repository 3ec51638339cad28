"""The site file's electrical rules: services, transformers and how each charger is connected.

A bus is the set of lines a node's chargers and child circuits hang from: the site's service at
the grid, or below a transformer its secondary (``split-phase`` below a split-phase transformer,
``wye`` below a ``delta-wye`` or ``wye-wye`` one). What may be connected depends on the bus:

- ``wye``: lines L1, L2, L3 and neutral — 1-phase chargers line to neutral (``L1``) or line to
  line (``L1-L2``), 3-phase and DC chargers.
- ``delta``: L1, L2, L3 and no neutral — 1-phase chargers line to line only.
- ``split-phase``: L1, L2 and neutral — 1-phase chargers on ``L1``, ``L2`` or ``L1-L2``; no
  3-phase or DC charger, no three-phase transformer.

A pair of lines has one spelling: ``L1-L2``, ``L2-L3``, ``L3-L1`` (the order the line-to-line
voltages V12, V23, V31 are named in). ``L2-L1`` is the same connection; it is refused with the
spelling to use, so that one connection reads the same in every file, log and tree.

The bus of a node is found with :func:`controller.model.phasor.node_service` on a model of the
file's circuits (:func:`electrical_site`), the rule the planner uses.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.config.schema import ChargerSection, CircuitSection, SiteFile
from controller.config.yaml_source import Path
from controller.model import phasor
from controller.model import site as m

Report = Callable[[Path, str], None]

LINES_3 = ("L1", "L2", "L3")
PAIRS = ("L1-L2", "L2-L3", "L3-L1")
ROTATIONS_3P = ("L1-L2-L3", "L2-L3-L1", "L3-L1-L2")
REVERSED_PAIRS = {"L2-L1": "L1-L2", "L3-L2": "L2-L3", "L1-L3": "L3-L1"}
EV_1P_MAX_V = 264.0
"""Highest voltage a single-phase EV input is built for (240 V + 10 %: SAE J1772 Level 2, and
IEC 61851's 230 V + 10 % fits below it)."""
LN_MAX_V = 400.0
"""Highest line-to-neutral voltage of a low-voltage wye or split-phase service (400/690 V)."""


def circuit_model(c: CircuitSection) -> m.Circuit:
    tr = c.transformer
    transformer = None
    if tr is not None:
        transformer = m.Transformer(
            tr.connection, tr.ratio, tr.primary or "L1-L2", tr.vector_group or "Dyn1",
            True if tr.primary_neutral is None else tr.primary_neutral,
        )
    return m.Circuit(c.id, c.limit_a, c.parent, c.margin_a, c.meter, transformer, c.limit_sum)


def charger_model(c: ChargerSection) -> m.Charger:
    return m.Charger(
        id=c.id,
        circuit=c.circuit,
        kind=c.kind,
        phases=c.phases,
        phase_rotation=c.phase_rotation or "L1-L2-L3",
        min_a=c.min_a,
        max_a=c.max_a,
        max_kw=c.max_kw,
        efficiency=c.efficiency,
        power_factor=c.power_factor,
        connectors=c.connectors,
        allow_min_below_6a=c.allow_min_below_6a,
        ocpp_quirks=tuple(c.ocpp_quirks),
        reaction_s=c.reaction_s,
    )


def tree_is_sound(sf: SiteFile) -> bool:
    """Unique circuit ids, every parent known, no cycle (the rules in checks report what is not)."""
    circuits = {c.id: c for c in sf.circuits}
    if len(circuits) != len(sf.circuits) or "grid" in circuits:
        return False
    for c in sf.circuits:
        seen = {c.id}
        node = c.parent
        while node != "grid":
            if node in seen or node not in circuits:
                return False
            seen.add(node)
            node = circuits[node].parent
    return True


def electrical_site(sf: SiteFile, *, with_chargers: bool = False) -> m.Site | None:
    """The file's site, grid and circuits (and, if asked, chargers) as a model, for the phasor
    rules; ``None`` when the tree (or a charger, if asked) is not sound enough to build one."""
    if not tree_is_sound(sf):
        return None
    chargers: tuple[m.Charger, ...] = ()
    if with_chargers:
        known = {"grid", *(c.id for c in sf.circuits)}
        if any(not _charger_is_sound(ch, known) for ch in sf.chargers):
            return None
        chargers = tuple(charger_model(ch) for ch in sf.chargers)
    return m.Site(
        site=m.SiteInfo(sf.site.name, sf.site.timezone, sf.site.voltage_v, sf.site.service),
        grid=m.Grid(sf.grid.limit_a, sf.grid.margin_a, sf.grid.limit_kw, sf.grid.meter, sf.grid.limit_sum),
        circuits=tuple(circuit_model(c) for c in sf.circuits),
        chargers=chargers,
    )


def _charger_is_sound(ch: ChargerSection, known: set[str]) -> bool:
    if ch.circuit not in known or ch.phases not in (1, 3):
        return False
    rot = ch.phase_rotation
    if ch.kind == "dc":
        return ch.phases == 3 and ch.max_kw is not None
    if ch.phases == 3:
        return rot is None or rot in ROTATIONS_3P
    return rot in LINES_3 or rot in PAIRS


def bus_origin(site: m.Site, node_id: str) -> str:
    """Why a node's bus is what it is, for messages: the transformer above it, or the service."""
    at = node_id
    while at != m.GRID_ID:
        circ = site.circuit(at)
        if circ.transformer is not None:
            if at == node_id:
                return f"{node_id!r} is fed by its {circ.transformer.connection} transformer"
            return f"{node_id!r} is below the {circ.transformer.connection} transformer of {at!r}"
        at = circ.parent
    where = "the grid connection" if node_id == m.GRID_ID else f"{node_id!r}"
    return f"{where} is on the site's {site.site.service} service"


def one_phase_options(service: m.Service | None) -> str:
    if service == "split-phase":
        return "L1 or L2 (line to neutral) or L1-L2 (line to line)"
    if service == "delta":
        return "L1-L2, L2-L3 or L3-L1 (line to line; a delta bus has no neutral)"
    return "L1, L2 or L3 (line to neutral) or L1-L2, L2-L3 or L3-L1 (line to line)"


def check_electrical(sf: SiteFile, error: Report, warn: Report) -> None:
    """Every rule that depends on the service, the transformers and the charger connections."""
    _check_voltage(sf, error, warn)
    site = electrical_site(sf)
    if site is not None:
        _check_transformers(sf, site, error, warn)
    _check_connections(sf, site, error, warn)


def _check_voltage(sf: SiteFile, error: Report, warn: Report) -> None:
    service, v = sf.site.service, sf.site.voltage_v
    path: Path = ("site", "voltage_v")
    if service in ("wye", "split-phase") and v > LN_MAX_V:
        example = "a 480Y/277 V service is 277, 208Y/120 V is 120" if service == "wye" else "120/240 V is 120"
        error(
            path,
            f"{v:g} V: on a {service} service voltage_v is line-to-neutral (at most {LN_MAX_V:g} V): {example}"
            " (a service without neutral is `service: delta` with its line-to-line voltage)",
        )
    elif service == "split-phase" and v > 150:
        warn(
            path,
            f"on a split-phase service voltage_v is line-to-neutral (120/240 V: 120); {v:g} V puts "
            f"{2 * v:g} V between the lines",
        )
    elif service == "delta" and v < 190:
        warn(
            path,
            f"on a delta service voltage_v is line-to-line (240, 480); {v:g} V is unusually low "
            "(a line-to-neutral voltage belongs to a wye or split-phase service)",
        )


def _check_transformers(sf: SiteFile, site: m.Site, error: Report, warn: Report) -> None:
    for i, c in enumerate(sf.circuits):
        tr = c.transformer
        if tr is None:
            continue
        at: Path = ("circuits", i, "transformer")
        parent_service = phasor.node_service(site, c.parent)
        if tr.primary_neutral is not None and tr.connection != "wye-wye":
            error(
                (*at, "primary_neutral"),
                f"`primary_neutral` is for a wye-wye transformer only, not {tr.connection}",
            )
        if tr.vector_group is not None and tr.connection != "delta-wye":
            error(
                (*at, "vector_group"),
                f"`vector_group` is for a delta-wye transformer only (Dyn1 or Dyn11), not {tr.connection}",
            )
        if tr.connection != "split-phase":
            if tr.primary is not None:
                error(
                    (*at, "primary"),
                    f"`primary` is for a split-phase transformer only (a {tr.connection} transformer takes "
                    "all three lines of its parent)",
                )
            if parent_service == "split-phase":
                error(
                    (*at, "connection"),
                    f"a three-phase {tr.connection} transformer needs a three-phase parent; "
                    f"{bus_origin(site, c.parent)} (lines L1, L2 only)",
                )
                continue
            if tr.connection == "wye-wye" and parent_service == "delta" and tr.primary_neutral is not False:
                # without a primary neutral the secondary's zero-sequence current cannot flow on the
                # primary: each primary line carries (I − I0) / ratio, not I / ratio, so a limit on it
                # would be planned too low on the lines the unbalanced load is not on
                error(
                    (*at, "connection"),
                    f"a wye-wye transformer's primary star point needs a neutral and {bus_origin(site, c.parent)}, "
                    "which has none: say `primary_neutral: false` (a floating star) or use delta-wye",
                )
                continue
        elif tr.primary is not None and not _primary_ok(
            tr.primary, parent_service, c.parent, site, (*at, "primary"), error
        ):
            continue
        if tr.ratio < 1:
            warn(
                (*at, "ratio"),
                f"ratio {tr.ratio:g} steps the voltage up; ratio is primary : secondary line-to-line voltage "
                "(480 V → 208 V: 2.31)",
            )
        secondary_v = phasor.node_ln_voltage_v(site, c.id)
        if not 90 <= secondary_v <= LN_MAX_V:
            warn(
                (*at, "ratio"),
                f"gives a secondary of {secondary_v:.0f} V line-to-neutral; ratio is primary : secondary "
                "line-to-line voltage (480 V → 208Y/120 V: 2.31, 480 V → 120/240 V: 2)",
            )


def _primary_ok(
    primary: str, parent_service: m.Service, parent: str, site: m.Site, path: Path, error: Report
) -> bool:
    if parent_service == "split-phase" and "L3" in primary.split("-"):
        error(path, f"{bus_origin(site, parent)}: its only pair of lines is L1-L2, there is no L3")
        return False
    if primary in REVERSED_PAIRS:
        error(path, f"write {REVERSED_PAIRS[primary]}: {primary} is the same pair (one spelling: {', '.join(PAIRS)})")
        return False
    if primary not in PAIRS:
        error(path, f"{primary!r} is not a pair of lines; use {', '.join(PAIRS)}")
        return False
    return True


def _check_connections(sf: SiteFile, site: m.Site | None, error: Report, warn: Report) -> None:
    known = {"grid", *(c.id for c in sf.circuits)}
    for i, ch in enumerate(sf.chargers):
        bus: m.Service | None = None
        if site is not None and ch.circuit in known:
            bus = phasor.node_service(site, ch.circuit)
        if ch.phases == 1 and ch.kind == "ac":
            _check_one_phase(sf, site, i, ch, bus, error, warn)
        elif ch.phases == 3 and bus == "split-phase" and site is not None:
            what = "a DC charger is fed by 3 phases and" if ch.kind == "dc" else "a 3-phase charger"
            error(
                ("chargers", i, "circuit"),
                f"{what} cannot be on a split-phase bus (lines L1, L2 and neutral): {bus_origin(site, ch.circuit)}",
            )


def _check_one_phase(
    sf: SiteFile,
    site: m.Site | None,
    i: int,
    ch: ChargerSection,
    bus: m.Service | None,
    error: Report,
    warn: Report,
) -> None:
    path: Path = ("chargers", i, "phase_rotation")
    rot = ch.phase_rotation
    origin = ""
    if site is not None and bus is not None and (bus != "wye" or site.site.service != "wye"):
        origin = f"; {bus_origin(site, ch.circuit)}"  # where the bus is not the usual wye one, say why
    if rot is None:
        error(path, f"a 1-phase charger needs its grid line(s): {one_phase_options(bus)}{origin}")
        return
    lines = rot.split("-")
    if bus == "split-phase" and "L3" in lines and all(x in LINES_3 for x in lines):
        error(path, f"{rot!r}: a split-phase bus has lines L1 and L2 only; use {one_phase_options(bus)}{origin}")
        return
    if rot in REVERSED_PAIRS:
        error(path, f"write {REVERSED_PAIRS[rot]}: {rot} is the same pair of lines (one spelling: {', '.join(PAIRS)})")
        return
    if rot not in LINES_3 and rot not in PAIRS:
        hint = "; a 3-phase charger is `phases: 3`" if rot in ROTATIONS_3P else ""
        error(
            path,
            f"{rot!r} is not a line or a pair of lines for a 1-phase charger; use {one_phase_options(bus)}{hint}",
        )
        return
    if bus == "delta" and rot in LINES_3:
        error(path, f"{rot!r} is line to neutral and a delta bus has no neutral; use L1-L2, L2-L3 or L3-L1{origin}")
        return
    if site is None or bus is None:
        return
    volts = phasor.draw(site, charger_model(ch)).volts_v
    if volts > EV_1P_MAX_V:
        how = "line-to-line" if rot in PAIRS else "line-to-neutral"
        hint = (
            " (a 230/400 V charger sits between a line and neutral: L1, L2 or L3)"
            if rot in PAIRS and sf.site.service == "wye" and bus == "wye"
            else ""
        )
        warn(
            path,
            f"{ch.id} would get {volts:.0f} V {how}: single-phase EV chargers are built for up to 240 V{hint}",
        )
