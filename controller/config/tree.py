"""The circuit tree as an electrician reads it: limits, what each limit applies to, connected
capacity, oversubscription, and how each charger is connected."""

from __future__ import annotations

from dataclasses import dataclass

from controller.config.summary import summary_lines
from controller.model import phasor
from controller.model.site import GRID_ID, PHASES, Charger, Circuit, Site

Lines = tuple[float, float, float]


@dataclass(frozen=True)
class NodeCapacity:
    node_id: str
    limit_a: float
    usable_a: float  # limit − margin
    connected_a: Lines
    """Each line's current with every charger below at its maximum [A], summed as the node's
    ``limit_sum`` says (a transformer node: on its primary)."""

    @property
    def oversubscription(self) -> float:
        return max(self.connected_a) / self.limit_a


def charger_max_line_a(site: Site, ch: Charger) -> float:
    """Highest current the charger draws on each of its lines [A] (AC: ``max_a`` per connector;
    DC: ``max_kw`` at the bus voltage, efficiency and power factor)."""
    if ch.kind == "ac":
        return (ch.max_a or 0.0) * ch.connectors
    volts = phasor.draw(site, ch).volts_v
    return ch.connectors * (ch.max_kw or 0.0) * 1000.0 / (ch.efficiency * ch.power_factor * volts)


def connected_line_currents_a(site: Site) -> dict[str, Lines]:
    """Per node: each line's current with every charger at its maximum, summed per ``limit_sum``."""
    loads = [(ch, None, charger_max_line_a(site, ch)) for ch in site.chargers]
    by_phasor = phasor.node_line_currents_a(site, loads)
    by_magnitude = phasor.arithmetic_line_currents_a(site, loads)
    return {
        node: by_phasor[node] if site.node_limit_sum(node) == "phasor" else by_magnitude[node]
        for node in site.node_ids()
    }


def node_capacity(site: Site, node_id: str, connected: dict[str, Lines] | None = None) -> NodeCapacity:
    lines = (connected or connected_line_currents_a(site))[node_id]
    limit = site.node_limit_a(node_id)
    return NodeCapacity(node_id, limit, limit - site.node_margin_a(node_id), lines)


def service_text(site: Site) -> str:
    """``wye 230 V line-to-neutral``: the site's service and what its ``voltage_v`` is."""
    how = "line-to-line" if site.site.service == "delta" else "line-to-neutral"
    return f"{site.site.service} {site.site.voltage_v:g} V {how}"


def connection_text(site: Site, ch: Charger) -> str:
    """How a charger is connected and at what voltage, e.g. ``AC 1-phase L1-L2 (208 V line-to-line)``."""
    d = phasor.draw(site, ch)
    ln_v = phasor.node_ln_voltage_v(site, ch.circuit)
    lines = "-".join(PHASES[p] for p in d.lines)
    if d.line_to_line:
        volts = f"{d.volts_v:.0f} V line-to-line"
    elif len(d.lines) == 1:
        volts = f"{d.volts_v:.0f} V line-to-neutral"
    elif phasor.node_service(site, ch.circuit) == "delta":
        volts = f"{ln_v * phasor.SQRT3:.0f} V delta"
    else:
        volts = f"{len(d.lines)} × {ln_v:.0f} V line-to-neutral"
    if ch.kind == "ac":
        return f"AC {ch.phases}-phase {lines} ({volts})  {ch.min_a:g}–{ch.max_a:g} A"
    return f"DC {ch.max_kw:g} kW on {lines} ({volts}; η {ch.efficiency:g}, pf {ch.power_factor:g})"


def render_tree(site: Site) -> str:
    """Plain-text tree: per node its limit and, on the line below, what the limit applies to and how
    it is summed; per charger its connection. Aligned columns. Below it the counts, then a line each
    for the tariff, the PV meter and the upstream CSMS where the site has them."""
    rows: list[tuple[str, str]] = []
    connected = connected_line_currents_a(site)
    chargers_at: dict[str, list[Charger]] = {}
    for ch in site.chargers:
        chargers_at.setdefault(ch.circuit, []).append(ch)

    def node_rows(prefix: str, below: str, node_id: str, meter: str | None) -> None:
        cap = node_capacity(site, node_id, connected)
        lines = "/".join(f"{a:.0f}" for a in cap.connected_a)
        meter_txt = f"  meter {meter}" if meter else "  (unmetered)" if node_id != GRID_ID else ""
        rows.append(
            (
                prefix + node_id,
                f"limit {cap.limit_a:>5g} A/line  usable {cap.usable_a:>5g} A  chargers {lines:>14} A  "
                f"{cap.oversubscription:4.2f}× oversubscribed{meter_txt}",
            )
        )
        has_kids = bool(site.children(node_id) or chargers_at.get(node_id))
        rows.append((below + ("│" if has_kids else ""), phasor.describe_node_limit(site, node_id)))

    def charger_row(prefix: str, ch: Charger) -> None:
        detail = connection_text(site, ch)
        if ch.connectors > 1:
            detail += f"  ×{ch.connectors} connectors"
        rows.append((prefix + ch.id, detail))

    def walk(node_id: str, indent: str) -> None:
        kids: list[Circuit | Charger] = [*site.children(node_id), *chargers_at.get(node_id, ())]
        for i, item in enumerate(kids):
            last = i == len(kids) - 1
            branch = indent + ("└── " if last else "├── ")
            below = indent + ("    " if last else "│   ")
            if isinstance(item, Circuit):
                node_rows(branch, below, item.id, item.meter)
                walk(item.id, below)
            else:
                charger_row(branch, item)

    node_rows("", "", GRID_ID, site.grid.meter)
    walk(GRID_ID, "")
    width = max(len(name) for name, _ in rows)
    head = f"{site.site.name} ({site.site.timezone}, {service_text(site)})"
    if site.grid.limit_kw is not None:
        head += f", contract {site.grid.limit_kw:g} kW"
    out = [head]
    out += [f"{name.ljust(width)}  {detail}" for name, detail in rows]
    counts = (
        (len(site.chargers), "charger"),
        (len(site.circuits), "circuit"),
        (len(site.meters), "meter"),
        (len(site.vehicles), "vehicle"),
        (len(site.schedules), "departure"),
    )
    out.append(", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in counts))
    out += summary_lines(site)
    return "\n".join(out)
