"""The status page for a terminal: a :class:`~controller.api.models.StatusResponse` as rich renderables.

:func:`render_status` is a pure function of the status (times are shown in the site's time zone
and relative to ``status.now``, never to the wall clock), so ``depotctl status`` prints it once
and the demo redraws it inside ``rich.live.Live`` with its own ``extra`` panel. Laid out for 120
columns; every unknown value (``None``) shows as ``—``.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from controller.api.models import ChargerInfo, EnergyInfo, NodeInfo, SessionInfo, StatusResponse
from controller.client.view_format import (
    CLOCK_WARN_S,
    NONE,
    LocalClock,
    bar,
    clock_offset,
    commissioned_mark,
    duration,
    num,
    offset_size,
    ready_mark,
    triple,
)

PHASES = ("L1", "L2", "L3")
_GUIDE_W = 4  # columns a rich Tree indents per level


def render_status(status: StatusResponse, *, extra: RenderableType | None = None) -> RenderableType:
    """The whole status page: banner, grid, circuits, chargers, meters, plan/loop/store, then ``extra``."""
    clock = LocalClock(status)
    parts: list[RenderableType] = [
        banner(status, clock),
        grid_table(status),
    ]
    if status.energy is not None:
        parts.append(bill_table(status.energy, clock))
    parts += [
        circuit_tree(status.nodes),
        chargers_table(status.chargers, clock),
        meters_table(status),
        health_table(status, clock),
    ]
    if extra is not None:
        parts.append(extra)
    return Group(*parts)


# ---------------------------------------------------------------- sections


def banner(status: StatusResponse, clock: LocalClock | None = None) -> Panel:
    """State of the site in one glance: fail-safe (red, with reason) or NORMAL (green)."""
    clock = clock or LocalClock(status)
    fs = status.failsafe
    line = Text()
    if fs.active:
        line.append(" FAIL-SAFE ", style="bold white on red")
        line.append(f"  {fs.reason or 'no reason given'}", style="bold red")
        line.append(f" · since {clock.at(fs.since)} ({clock.ago(fs.since)})")
        line.append(f" · good cycles {fs.good_cycles}/{fs.recover_cycles}")
        border = "red"
    else:
        line.append(" NORMAL ", style="bold black on green")
        line.append(f"  since {clock.at(fs.since)} ({clock.ago(fs.since)})")
        if fs.reason:
            line.append(f" · last fail-safe: {fs.reason}", style="dim")
        border = "green"
    info = Text(
        f"{clock.at(status.now)} {clock.zone_name} · up {duration((status.now - status.started_at).total_seconds())}"
        f" · config {status.config_file} loaded {clock.at(status.config_loaded_at)}",
        style="dim",
    )
    return Panel(
        Group(line, info),
        title=f"[bold]{status.site}[/] · depotctl {status.version}",
        title_align="left",
        border_style=border,
        box=box.HEAVY if fs.active else box.ROUNDED,
    )


def grid_table(status: StatusResponse) -> Table:
    """Grid connection: current per phase against the usable limit (limit − margin)."""
    grid = status.grid
    usable = grid.limit_a - grid.margin_a
    power = num(None if grid.power_w is None else grid.power_w / 1000, 1, "kW")
    if grid.limit_kw is not None:
        power += f" of {grid.limit_kw:g} kW"
    title = f"Grid · meter {grid.meter or NONE} · power {power}"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("phase")
    table.add_column("current", justify="right")
    table.add_column(f"usable ({grid.limit_a:g} − {grid.margin_a:g} A)", justify="right")
    table.add_column("load", no_wrap=True)
    table.add_column("headroom", justify="right")
    for i, phase in enumerate(PHASES):
        current = None if grid.current_a is None else grid.current_a[i]
        load = bar(current, usable, 30)
        load.append(f" {current / usable:4.0%}" if current is not None and usable > 0 else "")
        head = None if current is None else usable - current
        table.add_row(
            phase,
            num(current, 1, "A"),
            f"{usable:.1f} A",
            load,
            Text(num(head, 1, "A"), style="bold red" if head is not None and head < 0 else ""),
        )
    if grid.current_a is None:
        table.caption = "no grid reading"
        table.caption_style = "bold red"
    return table


def bill_table(e: EnergyInfo, clock: LocalClock) -> Table:
    """The bill: price now, today's import and cost, the billing period's peak, the prices file, PV."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    cur = e.currency
    price = Text(NONE if e.price_per_kwh is None else f"{e.price_per_kwh:.4f} {cur}/kWh")
    if e.price_source is not None:
        price.append(f" ({e.price_source})", style="dim")
    table.add_row("price", price)
    today = f"{num(e.today_import_kwh, 1, 'kWh')} imported"
    today += f" · {num(e.today_cost, 2, cur)}" if e.today_cost is not None else " · cost unknown"
    table.add_row("today", today)
    peak = Text(f"{num(e.peak_kw, 1, 'kW')} this month (since {clock.at(e.period_start, seconds=False)},"
                f" {e.window_min}-min average)")
    if e.demand_charge is not None and e.demand_price_per_kw is not None:
        peak.append(f" · demand charge {e.demand_charge:.2f} {cur} at {e.demand_price_per_kw:g} {cur}/kW")
    if e.peak_window is not None:
        pw = e.peak_window
        peak.append(f" · highest window {clock.at(pw.start, seconds=False)}", style="dim")
        if pw.partial:
            peak.append(f" (readings cover {pw.coverage:.0%})", style="yellow")
    table.add_row("peak", peak)
    if e.window is not None:
        w = e.window
        now = Text(f"{num(w.average_kw, 1, 'kW')} since {clock.at(w.start, seconds=False)}", style="dim")
        if w.partial:
            now.append(f" (readings cover {w.coverage:.0%})", style="dim")
        table.add_row("window", now)
    if e.prices_file is not None:
        pf = e.prices_file
        line = Text(f"{pf.path} · {pf.prices} prices until {clock.at(pf.covers_until, seconds=False)}")
        if pf.error is not None:
            line.append(f"\nREFUSED {clock.at(pf.error_at)}: ", style="bold red")
            line.append(pf.error, style="red")
            line.append("\n(the prices read before stay in force)", style="dim")
        table.add_row("prices file", line)
    if e.pv_meter is not None:
        table.add_row("PV", f"{num(e.pv_kw, 1, 'kW')} · meter {e.pv_meter}")
    return table


def _tree_order(nodes: Sequence[NodeInfo]) -> list[tuple[NodeInfo, int]]:
    """Depth-first, parents before children, siblings in input order; unknown parents → roots."""
    ids = {n.id for n in nodes}
    children: dict[str | None, list[NodeInfo]] = {}
    for n in nodes:
        children.setdefault(n.parent if n.parent in ids else None, []).append(n)
    order: list[tuple[NodeInfo, int]] = []
    seen: set[str] = set()

    def walk(node: NodeInfo, depth: int) -> None:
        if node.id in seen:
            return
        seen.add(node.id)
        order.append((node, depth))
        for child in children.get(node.id, []):
            walk(child, depth + 1)

    for root in children.get(None, []):
        walk(root, 0)
    for n in nodes:  # in a cycle: shown anyway, as roots
        walk(n, 0)
    return order


def circuit_label(node: NodeInfo, name_width: int) -> Text:
    """One line: id, three line bars against limit − margin, the usable limit and the headroom.

    Each bar is a line's current as the node's limit sees it: the magnitude of the phasor sum of
    the loads behind it (a line-to-line charger 30° off its lines adds less than its amperes), on
    a transformer node its primary; a ``limit_sum: arithmetic`` node's sum of magnitudes."""
    usable = node.limit_a - node.margin_a
    planned = node.measured_a is None and node.planned_a is not None
    load = node.measured_a if node.measured_a is not None else node.planned_a
    text = Text(node.id.ljust(name_width), style="bold")
    for i, phase in enumerate(PHASES):
        value = None if load is None else load[i]
        text.append(f" {phase} ", style="dim")
        text.append_text(bar(value, usable, 8, planned=planned))
        text.append(f" {num(value):>6}")
    text.append(f" / {usable:g} A", style="dim")
    if load is None:
        text.append("  no reading, no plan", style="yellow")
    elif planned:
        text.append("  planned", style="italic cyan")
    if node.headroom_a is not None:
        least = min(node.headroom_a)
        text.append(f"  headroom {least:.1f} A", style="bold red" if least < 0 else "")
    return text


def circuit_tree(nodes: Sequence[NodeInfo]) -> RenderableType:
    """The circuit tree, parents before children, with per-phase load bars (▒ = planned, not measured)."""
    tree = Tree(Text("Circuits", style="bold"), guide_style="dim")
    if not nodes:
        tree.add(Text("no circuits reported", style="dim"))
        return tree
    order = _tree_order(nodes)
    name_w = max(len(n.id) + _GUIDE_W * depth for n, depth in order)
    parents: dict[str, Tree] = {}
    for node, depth in order:
        holder = parents.get(node.parent or "", tree) if depth else tree
        parents[node.id] = holder.add(circuit_label(node, name_w - _GUIDE_W * depth))
    return tree


def _session_cells(session: SessionInfo | None, clock: LocalClock) -> list[RenderableType]:
    if session is None:
        return [Text(NONE, style="dim")] * 6
    energy = Text(f"{session.delivered_kwh:.1f}/{num(session.energy_need_kwh)}")
    if session.expected_kwh is not None:
        energy.append(f"\n→{session.expected_kwh:.1f}", style="dim")
    vehicle = session.vehicle_id or NONE
    if session.connector != 1:
        vehicle = f"#{session.connector} {vehicle}"
    return [
        vehicle,
        energy,
        NONE if session.soc_pct is None else f"{session.soc_pct:.0f}%",
        clock.at(session.departure_at, seconds=False),
        clock.at(session.eta, seconds=False),
        ready_mark(session.will_meet_departure),
    ]


def chargers_table(chargers: Sequence[ChargerInfo], clock: LocalClock) -> Table:
    """One row per session (a charger without a session gets one row of its own).

    ``OCPP``: version (or ``offline``), the last status and whether the charger is under control:
    UNCONTROLLED, the fail-safe profile confirmed (✓/✗), the clock offset (charger minus ours), its
    last commissioning (``comm.`` passed, FAILED, running, never), with notes below the table saying
    why and what to do; ``limit``: the offered limit and why;
    ``draw A``: measured current per phase L1 L2 L3; ``kWh``: delivered/need, → expected by departure.
    """
    table = Table(title="Chargers", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False)
    table.add_column("charger", style="bold")
    table.add_column("circuit")
    table.add_column("OCPP")
    table.add_column("limit")
    table.add_column("draw A", justify="right", no_wrap=True)
    table.add_column("vehicle")
    table.add_column("kWh", justify="right", no_wrap=True)
    table.add_column("SoC", justify="right", no_wrap=True)
    table.add_column("departs", no_wrap=True)
    table.add_column("ETA", no_wrap=True)
    table.add_column("ready", justify="center", no_wrap=True)
    if not chargers:
        table.add_row(Text("no chargers reported", style="dim"))
    for ch in chargers:
        link = Text(ch.ocpp_version or "up", style="green") if ch.connected else Text("offline", style="bold red")
        if ch.status:
            link.append(f"\n{ch.status}", style="dim")
        link.append("\n")
        link.append_text(control_lines(ch))
        limit = Text(NONE if ch.limit is None else f"{ch.limit:.1f} {ch.unit}")
        if ch.limit_source:
            limit.append(f"\n{ch.limit_source}", style="dim")
        sessions: list[SessionInfo | None] = list(ch.sessions) or [None]
        for i, session in enumerate(sessions):
            head: list[RenderableType] = [ch.id, ch.circuit, link, limit, triple(ch.current_a)] if i == 0 else [""] * 5
            table.add_row(*head, *_session_cells(session, clock))
    notes = control_notes(chargers, clock)
    if notes is not None:
        table.caption = notes
        table.caption_justify = "left"
    return table


def control_lines(ch: ChargerInfo) -> Text:
    """Is the charger under control: UNCONTROLLED (nothing when controlled), whether its fail-safe
    profile is confirmed (✓/✗; nothing when not reported), the clock offset (``clock —`` unmeasured),
    its last commissioning (nothing from a daemon that does not report it)."""
    lines: list[Text] = []
    if ch.uncontrolled is not None:
        lines.append(Text("UNCONTROLLED", style="bold red"))
    if ch.failsafe_installed is True:
        lines.append(Text("fail-safe ✓", style="green"))
    elif ch.failsafe_installed is False:
        lines.append(Text("fail-safe ✗", style="bold red"))
    if ch.clock_offset_s is None:
        lines.append(Text("clock —", style="dim"))
    else:
        off = abs(ch.clock_offset_s) > CLOCK_WARN_S
        lines.append(Text(f"clock {clock_offset(ch.clock_offset_s)}", style="bold yellow" if off else "dim"))
    if "commissioned" in ch.model_fields_set:
        lines.append(commissioned_mark(ch.commissioned))
    return Text("\n").join(lines)


def control_notes(chargers: Sequence[ChargerInfo], clock: LocalClock) -> Text | None:
    """One line per charger not fully under control: why it is uncontrolled, a fail-safe profile not
    confirmed, a clock more than a minute off; ``None`` when every charger is fine."""
    lines: list[Text] = []
    for ch in chargers:
        u = ch.uncontrolled
        if u is not None:
            line = Text(f"⚠ {ch.id} UNCONTROLLED", style="bold red")
            line.append(f" since {clock.at(u.since)} ({clock.ago(u.since)}): {u.reason}")
            line.append(" · budgeted at its draw, up to its maximum", style="dim")
            lines.append(line)
        if ch.failsafe_installed is False:
            line = Text(f"⚠ {ch.id} has no confirmed fail-safe profile", style="bold red" if ch.connected else "yellow")
            line.append(" · budgeted at its maximum; unlimited should depotctl stop", style="dim")
            lines.append(line)
        if ch.clock_offset_s is not None and abs(ch.clock_offset_s) > CLOCK_WARN_S:
            side = "ahead of" if ch.clock_offset_s > 0 else "behind"
            line = Text(f"⚠ {ch.id} clock {offset_size(ch.clock_offset_s)} {side} ours", style="yellow")
            line.append(" · covered in its profiles; set its time source (NTP)", style="dim")
            lines.append(line)
        if ch.commissioned == "failed" and "commissioned" in ch.model_fields_set:
            line = Text(f"⚠ {ch.id} failed its last commissioning", style="yellow")
            line.append(f" · `depotctl commission {ch.id}` runs it again and shows what failed", style="dim")
            lines.append(line)
    return Text("\n").join(lines) if lines else None


def meters_table(status: StatusResponse) -> Table:
    """Meters: age of the last good reading, stale or not, the current problem, counters."""
    table = Table(title="Meters", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column("meter", style="bold")
    table.add_column("age", justify="right")
    table.add_column("state")
    table.add_column("accepted", justify="right")
    table.add_column("rejected", justify="right")
    table.add_column("failed", justify="right")
    table.add_column("problem")
    if not status.meters:
        table.add_row(Text("no meters", style="dim"))
    for m in status.meters:
        state = Text("STALE", style="bold red") if m.stale else Text("ok", style="green")
        table.add_row(
            m.id,
            NONE if m.age_s is None else duration(m.age_s),
            state,
            str(m.accepted),
            Text(str(m.rejected), style="yellow" if m.rejected else ""),
            Text(str(m.failed), style="yellow" if m.failed else ""),
            Text(m.problem or "", style="red"),
        )
    return table


def health_table(status: StatusResponse, clock: LocalClock) -> Table:
    """Plan, control loop and history store, one line each (plan warnings below)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    plan = status.plan
    if plan is None:
        table.add_row("plan", Text("no plan yet", style="yellow"))
    else:
        table.add_row(
            "plan",
            f"{plan.solver} · {plan.total_ms:.0f} ms · {plan.sessions} session{'s' if plan.sessions != 1 else ''}"
            f" · at {clock.at(plan.at)} ({clock.ago(plan.at)})",
        )
        if plan.status is not None:
            detail = f"{plan.status} · {plan.iterations or 0} iterations · {'warm' if plan.warm else 'cold'}"
            if plan.planned_in is not None:
                detail += f" · in the {plan.planned_in}" if plan.planned_in != "heuristic" else " · heuristic"
            if plan.plans_last_hour:
                detail += (
                    f" · last hour: {plan.plans_last_hour} plans, p99 {num(plan.total_ms_p99, 0, 'ms')},"
                    f" {plan.fallbacks_last_hour or 0} fell back"
                )
            table.add_row("", detail)
        if plan.fallback_reason:
            table.add_row("", Text(f"fallback: {plan.fallback_reason}", style="yellow"))
        for why, n in (plan.fallback_reasons_last_hour or {}).items():
            table.add_row("", Text(f"{n}× {why}", style="yellow"))
        for warning in plan.warnings:
            table.add_row("", Text(f"⚠ {warning}", style="yellow"))
    lp = status.loop
    loop = f"{lp.cycles} cycles · cycle p50 {num(lp.cycle_ms_p50, 1, 'ms')} p99 {num(lp.cycle_ms_p99, 1, 'ms')}"
    loop += f" · {lp.sheds} shed{'s' if lp.sheds != 1 else ''}"
    if lp.sheds or lp.last_shed_at is not None:
        loop += (
            f" (last {clock.at(lp.last_shed_at)}, p50 {num(lp.shed_ms_p50, 0, 'ms')}"
            f" p99 {num(lp.shed_ms_p99, 0, 'ms')})"
        )
    table.add_row("loop", loop)
    st = status.store
    if st is None:
        table.add_row("store", Text("off", style="dim"))
    else:
        store = Text(f"{st.path} · {st.written} written · {st.queue_depth} queued")
        store.append(f" · {st.dropped} dropped", style="yellow" if st.dropped else "")
        if st.broken:
            store.append(" · BROKEN", style="bold red")
        table.add_row("store", store)
    up = status.upstream
    if up is not None:  # local-controller mode: the links to the operator's CSMS
        line = Text(f"{up.url} · {up.connected}/{up.chargers} links up")
        line.append(f" · {up.queue_messages} queued", style="yellow" if up.queue_messages else "")
        table.add_row("upstream", line)
        for link in up.links:
            if link.connected and not link.queue_messages:
                continue
            since = f" since {clock.at(link.since)}" if link.since is not None else ""
            table.add_row("", Text(f"{link.charger_id} {link.state}{since} · {link.queue_messages} queued",
                                   style="" if link.connected else "yellow"))
    return table
