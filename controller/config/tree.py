"""The circuit tree as an electrician reads it: limits, connected capacity, oversubscription."""

from __future__ import annotations

from dataclasses import dataclass

from controller.model.site import GRID_ID, Charger, Circuit, Site, dc_phase_current_a


@dataclass(frozen=True)
class NodeCapacity:
    node_id: str
    limit_a: float
    usable_a: float  # limit − margin
    connected_a: tuple[float, float, float]  # sum of charger maxima per grid phase

    @property
    def oversubscription(self) -> float:
        return max(self.connected_a) / self.limit_a


def charger_max_phase_a(site: Site, ch: Charger) -> tuple[float, float, float]:
    """Highest current the charger can draw on each grid phase [A]."""
    out = [0.0, 0.0, 0.0]
    if ch.kind == "ac":
        per_phase = (ch.max_a or 0.0) * ch.connectors
        phases = ch.grid_phases
    else:
        per_phase = ch.connectors * dc_phase_current_a(
            ch.max_kw or 0.0, site.site.voltage_v, ch.efficiency, ch.power_factor
        )
        phases = (0, 1, 2)
    for p in phases:
        out[p] += per_phase
    return (out[0], out[1], out[2])


def node_capacity(site: Site, node_id: str) -> NodeCapacity:
    total = [0.0, 0.0, 0.0]
    for ch in site.chargers_under(node_id):
        for p, a in enumerate(charger_max_phase_a(site, ch)):
            total[p] += a
    limit = site.node_limit_a(node_id)
    return NodeCapacity(node_id, limit, limit - site.node_margin_a(node_id), (total[0], total[1], total[2]))


def render_tree(site: Site) -> str:
    """Plain-text tree, one line per circuit and charger, aligned columns."""
    rows: list[tuple[str, str]] = []

    def node_row(prefix: str, node_id: str, meter: str | None) -> None:
        cap = node_capacity(site, node_id)
        phases = "/".join(f"{a:.0f}" for a in cap.connected_a)
        meter_txt = f"  meter {meter}" if meter else "  (unmetered)" if node_id != GRID_ID else ""
        rows.append(
            (
                prefix + node_id,
                f"limit {cap.limit_a:>5g} A/phase  usable {cap.usable_a:>5g} A  chargers {phases:>14} A  "
                f"{cap.oversubscription:4.2f}× oversubscribed{meter_txt}",
            )
        )

    def charger_row(prefix: str, ch: Charger) -> None:
        if ch.kind == "ac":
            detail = f"AC {ch.phases}-phase {ch.phase_rotation}  {ch.min_a:g}–{ch.max_a:g} A"
        else:
            detail = f"DC {ch.max_kw:g} kW (η {ch.efficiency:g}, pf {ch.power_factor:g})"
        if ch.connectors > 1:
            detail += f"  ×{ch.connectors} connectors"
        rows.append((prefix + ch.id, detail))

    def walk(node_id: str, indent: str) -> None:
        kids: list[Circuit | Charger] = [*site.children(node_id)]
        kids += [ch for ch in site.chargers if ch.circuit == node_id]
        for i, item in enumerate(kids):
            last = i == len(kids) - 1
            branch = indent + ("└── " if last else "├── ")
            below = indent + ("    " if last else "│   ")
            if isinstance(item, Circuit):
                node_row(branch, item.id, item.meter)
                walk(item.id, below)
            else:
                charger_row(branch, item)

    node_row("", GRID_ID, site.grid.meter)
    walk(GRID_ID, "")
    width = max(len(name) for name, _ in rows)
    head = f"{site.site.name} ({site.site.timezone}, {site.site.voltage_v:g} V)"
    if site.grid.limit_kw is not None:
        head += f", contract {site.grid.limit_kw:g} kW"
    lines = [head]
    lines += [f"{name.ljust(width)}  {detail}" for name, detail in rows]
    counts = (
        (len(site.chargers), "charger"),
        (len(site.circuits), "circuit"),
        (len(site.meters), "meter"),
        (len(site.vehicles), "vehicle"),
        (len(site.schedules), "departure"),
    )
    lines.append(", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in counts))
    return "\n".join(lines)
