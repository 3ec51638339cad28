"""What ``depotctl demo`` shows: the demo panel under the status page, the one-line status for
logs, and the end-of-run report.

Everything here is a pure function of plain data (a :class:`DemoFrame` snapshot, a
:class:`~controller.api.models.StatusResponse`, a :class:`~hil.rig.RigSummary`), so
:mod:`hil.demo.run` builds the data in the event loop and rich renders it in its own thread.
Currents in A per phase (L1, L2, L3), times in seconds since the rig started.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text

from controller.api.models import StatusResponse
from controller.client.view_format import load_style
from controller.daemon.stats import percentile
from hil.rig import RigDay, RigEvent, RigSummary

Phase3 = tuple[float, float, float]
NONE = "—"


@dataclass(frozen=True)
class NodeTruth:
    """One circuit node as the rig really sees it (not as the daemon measures it)."""

    node: str
    load_a: Phase3
    """Load now on L1..L3 [A]."""
    limit_a: float
    """Rated limit [A] (what the breaker trips at; no margin)."""
    max_utilisation: float
    """Highest phase load / rated limit so far."""
    exceeded_s: Phase3
    """Seconds above the rating so far on L1..L3 [s]."""


@dataclass(frozen=True)
class DemoFrame:
    """One refresh of the demo panel."""

    elapsed_s: float
    duration_s: float
    """The demo's length [s]; 0 = until Ctrl-C."""
    day_s: float
    """Length of the rig's compressed day [s]."""
    nodes: tuple[NodeTruth, ...]
    upcoming: tuple[tuple[float, str], ...]
    recent: tuple[RigEvent, ...]
    api_url: str
    metrics_url: str
    notes: tuple[str, ...] = ()
    """Recent warnings from the daemon and the rig (log records)."""


# ---------------------------------------------------------------- the day's agenda


def agenda(day: RigDay) -> list[tuple[float, str]]:
    """Every scheduled event of the day, in time order: arrivals, departures, noted base steps."""
    out: list[tuple[float, str]] = []
    for v in day.visits:
        who = f"{v.label} (needs {v.need_kwh:.2f} kWh)"
        out.append((v.arrive_s, f"arrives  {who}"))
        out.append((v.depart_s, f"departs  {v.label}"))
    out += [(s.t_s, f"base     {s.note}") for s in day.base if s.note]
    return sorted(out, key=lambda e: e[0])


def upcoming(events: Sequence[tuple[float, str]], t_s: float, n: int = 4) -> tuple[tuple[float, str], ...]:
    """The next ``n`` events of ``events`` (sorted by time) after ``t_s``."""
    return tuple(e for e in events if e[0] > t_s)[:n]


# ---------------------------------------------------------------- the live panel


def clock_text(frame: DemoFrame) -> Text:
    """``elapsed 42 s / 180 s · day 23 %`` with a progress bar of the rig's day."""
    text = Text("elapsed ", style="dim")
    text.append(f"{frame.elapsed_s:5.0f} s", style="bold")
    text.append(f" / {frame.duration_s:.0f} s" if frame.duration_s > 0 else " (until Ctrl-C)", style="dim")
    share = min(1.0, frame.elapsed_s / frame.day_s) if frame.day_s > 0 else 1.0
    text.append("  day ", style="dim")
    filled = round(share * 30)
    text.append("━" * filled, style="cyan")
    text.append("━" * (30 - filled), style="dim")
    text.append(f" {share:4.0%}")
    if share >= 1.0:
        text.append("  the day is over: Ctrl-C ends the demo", style="yellow")
    return text


def truth_table(nodes: Sequence[NodeTruth]) -> Table:
    """Per node: load now per phase against the rating, the worst utilisation, time above rating."""
    table = Table(title="Rig ground truth", title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                  title_style="bold")
    table.add_column("node", no_wrap=True)
    table.add_column("now L1/L2/L3 A", no_wrap=True)
    table.add_column("rating", justify="right", no_wrap=True)
    table.add_column("max", justify="right", no_wrap=True)
    table.add_column("s above rating", justify="right", no_wrap=True)
    for n in nodes:
        load = Text()
        for i, a in enumerate(n.load_a):
            load.append(("/" if i else "") + f"{a:.1f}", style=load_style(a / n.limit_a))
        over = Text("/".join(f"{s:.1f}" for s in n.exceeded_s), style="bold red" if max(n.exceeded_s) > 0 else "")
        table.add_row(
            n.node, load, f"{n.limit_a:g} A", Text(f"{n.max_utilisation:.0%}", style=load_style(n.max_utilisation)),
            over,
        )
    return table


def _cell(text: str, style: str = "") -> Text:
    """One line, cut with "…" (a no_wrap column would crop without it)."""
    return Text(text, style=style, overflow="ellipsis", no_wrap=True)


def events_table(frame: DemoFrame) -> Table:
    """Coming up (the day's schedule) and just happened (what the rig reported)."""
    table = Table(box=None, padding=(0, 1), show_header=False, show_edge=False)
    table.add_column(justify="right", style="dim", no_wrap=True, min_width=6)
    table.add_column(overflow="ellipsis")
    table.add_row(Text("next", style="bold"), "")
    for t, what in frame.upcoming or ((math.nan, "nothing more scheduled"),):
        table.add_row("" if math.isnan(t) else f"{t:.0f} s", _cell(what, "cyan"))
    table.add_row(Text("recent", style="bold"), "")
    for ev in frame.recent:
        style = "bold red" if ev.kind == "exceed" and "above" in ev.text else ""
        style = style or ("yellow" if ev.kind == "base" else "")
        table.add_row(f"{ev.t_s:.0f} s", _cell(f"{ev.kind:<7} {ev.text}", style))
    return table


def demo_panel(frame: DemoFrame) -> Panel:
    """The panel under the status page: demo clock, rig truth, events, recent warnings, URLs."""
    body = Table.grid(padding=(0, 2), expand=True)
    body.add_column()
    body.add_column(ratio=1)
    body.add_row(truth_table(frame.nodes), events_table(frame))
    parts: list[RenderableType] = [clock_text(frame), body]
    for note in frame.notes:
        parts.append(Text(note, style="yellow", overflow="ellipsis", no_wrap=True))
    parts.append(Text(f"curl {frame.api_url}  ·  curl {frame.metrics_url}  ·  Ctrl-C ends the demo", style="dim",
                      overflow="ellipsis", no_wrap=True))
    return Panel(Group(*parts), title="[bold]demo[/] · the simulated depot (hil rig)", title_align="left",
                 border_style="cyan")


class FitHeight:
    """``page`` cut to the screen's height: its top and its end (as tall as ``tail``, which the page
    ends with), the middle replaced by one line saying how much is hidden — the whole status page
    with the demo panel is taller than most terminals."""

    def __init__(self, page: RenderableType, tail: RenderableType) -> None:
        self.page, self.tail = page, tail

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        height = options.height or console.height
        free = options.update(height=None)
        lines = console.render_lines(self.page, free, pad=False)
        if len(lines) > height >= 3:
            bottom = min(len(console.render_lines(self.tail, free, pad=False)), height // 2)
            top = height - bottom - 1
            hidden = len(lines) - top - bottom
            marker = Segment(f"  ⋮ {hidden} lines hidden: a taller terminal shows the whole page", Style(dim=True))
            lines = [*lines[:top], [marker], *lines[len(lines) - bottom:]]
        for line in lines:
            yield from line
            yield Segment.line()


# ---------------------------------------------------------------- one line for logs


def _state(status: StatusResponse) -> str:
    fs = status.failsafe
    return f"FAIL-SAFE ({fs.reason})" if fs.active else "NORMAL"


def status_line(status: StatusResponse, elapsed_s: float, duration_s: float) -> str:
    """One compact line: ``t  40/180 s  NORMAL  grid 112.3/98.1/87.0 A of 156  sessions 7  plan 43 ms  sheds 1``."""
    grid = status.grid
    usable = grid.limit_a - grid.margin_a
    load = "/".join(f"{a:.1f}" for a in grid.current_a) if grid.current_a is not None else NONE
    sessions = sum(len(ch.sessions) for ch in status.chargers)
    plan = f"{status.plan.total_ms:.0f} ms" if status.plan is not None else NONE
    total = f"/{duration_s:.0f}" if duration_s > 0 else ""
    return (
        f"t {elapsed_s:5.0f}{total} s  {_state(status)}  grid {load} A of {usable:g}  "
        f"sessions {sessions}  plan {plan}  sheds {status.loop.sheds}"
    )


# ---------------------------------------------------------------- the report at the end


@dataclass(frozen=True)
class DaemonReport:
    """What the demo noted about the daemon over the run."""

    plans: int
    """Plans made (the daemon's counter)."""
    plan_ms: tuple[float, ...]
    """Duration of every plan the demo saw [ms]."""
    sheds: int
    failsafe_episodes: int
    """Entries into fail-safe after the start-up one was left."""
    normal_after_s: float | None
    """When the start-up fail-safe was left [s since the rig started]; None if never."""
    status: StatusResponse | None
    """The last status (fast-loop and shed timing)."""


def _ms(value: float | None) -> str:
    return NONE if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def daemon_lines(r: DaemonReport) -> list[str]:
    """The daemon's side of the report: plans, sheds, loop timing, fail-safe."""
    out = [
        f"plans {r.plans} (plan time p50 {_ms(percentile(r.plan_ms, 50))}, p99 {_ms(percentile(r.plan_ms, 99))}"
        f" over {len(r.plan_ms)} seen)",
    ]
    loop = r.status.loop if r.status is not None else None
    shed = f"overload sheds {r.sheds}"
    if loop is not None and loop.shed_ms_p50 is not None:
        shed += f" (reading → shed sent p50 {_ms(loop.shed_ms_p50)}, p99 {_ms(loop.shed_ms_p99)})"
    out.append(shed)
    if loop is not None:
        out.append(f"fast loop {loop.cycles} cycles, p50 {_ms(loop.cycle_ms_p50)}, p99 {_ms(loop.cycle_ms_p99)}")
    start = f"left the start-up fail-safe after {r.normal_after_s:.1f} s" if r.normal_after_s is not None else (
        "never left the start-up fail-safe"
    )
    out.append(f"fail-safe episodes {r.failsafe_episodes} ({start})")
    return out


def summary_lines(rig: RigSummary, daemon: DaemonReport) -> list[str]:
    """The whole report: the rig's ground truth, then the daemon's numbers."""
    return ["Ground truth (rig):", *(f"  {line}" for line in rig.lines()), "Controller:",
            *(f"  {line}" for line in daemon_lines(daemon))]
