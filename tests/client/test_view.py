"""The terminal status page: renders every case at 120 columns, and says what matters."""

from __future__ import annotations

import io

import pytest
from rich.console import Console, RenderableType
from rich.panel import Panel

from controller.api.models import NodeInfo, StatusResponse
from controller.client.view import render_status
from controller.client.view_format import duration
from tests.api.samples import FAILSAFE_REASON, empty_status, full_status, sparse_status


def text_of(renderable: RenderableType, width: int = 120) -> str:
    console = Console(record=True, width=width, file=io.StringIO(), color_system="truecolor", force_terminal=True)
    console.print(renderable)
    return console.export_text()


def lines_fit(text: str, width: int = 120) -> bool:
    return all(len(line) <= width for line in text.splitlines())


def test_full_status() -> None:
    text = text_of(render_status(full_status()))
    assert lines_fit(text)
    assert "FAIL-SAFE" in text and FAILSAFE_REASON in text
    assert "good cycles 1/3" in text and "since 14:29:23 (42 s ago)" in text
    assert "Bus Depot Nord" in text and "Europe/Berlin" in text and "up 2 d 3 h" in text
    assert "power 215.4 kW of 250 kW" in text and "-15.2 A" in text and "104%" in text
    for charger in ("CP-01", "DC-150", "CP-09"):
        assert charger in text
    assert "31.8 31.5 0.0" in text and "90.5 kW" in text and "offline" in text
    assert "BUS-101" in text and "62.4/180.0" in text and "48%" in text
    assert "✓" in text and "✗" in text
    assert "Wed 06:30" in text  # tomorrow's departure, site time
    assert "STALE" in text and "timeout reading 10.0.0.20:502" in text
    assert "highs · 39 ms · 3 sessions" in text and "cannot get 250.0 kWh" in text
    assert "cycle p50 4.2 ms p99 31.9 ms" in text and "2 sheds" in text
    assert "12 dropped" in text


def test_normal_banner() -> None:
    text = text_of(render_status(full_status(failsafe=False)))
    assert "NORMAL" in text and "FAIL-SAFE" not in text
    assert f"last fail-safe: {FAILSAFE_REASON}" in text


def test_nulls_everywhere() -> None:
    text = text_of(render_status(sparse_status()))
    assert lines_fit(text)
    assert "FAIL-SAFE" in text and "starting" in text
    assert "unknown time zone 'Not/AZone'" in text
    assert "no grid reading" in text and "no reading, no plan" in text
    assert "CP-X" in text and "offline" in text
    assert "no plan yet" in text and "store  off" in text


def test_nothing_configured() -> None:
    text = text_of(render_status(empty_status()))
    assert "no circuits reported" in text and "no chargers reported" in text and "no meters" in text


def test_circuit_tree_puts_parents_before_children_and_marks_planned_loads() -> None:
    status = full_status()
    shuffled = status.model_copy(update={"nodes": list(reversed(status.nodes))})
    text = text_of(render_status(shuffled))
    lines = text.splitlines()

    def row(node_id: str) -> int:
        return next(i for i, line in enumerate(lines) if f" {node_id} " in line and "L1" in line)

    assert row("grid") < row("feeder-a") < row("hall-2")
    assert "planned" in lines[row("feeder-a")] and "▒" in lines[row("feeder-a")]
    assert "planned" not in lines[row("hall-2")]
    assert "headroom -15.2 A" in lines[row("grid")]


def test_a_parent_cycle_or_unknown_parent_still_renders() -> None:
    def node(node_id: str, parent: str | None) -> NodeInfo:
        return NodeInfo(id=node_id, parent=parent, limit_a=63, margin_a=0, measured_a=None, planned_a=None,
                        headroom_a=None)

    status = sparse_status().model_copy(
        update={"nodes": [node("a", "b"), node("b", "a"), node("orphan", "missing")]}
    )
    text = text_of(render_status(status))
    for node_id in ("a", "b", "orphan"):
        assert any(f" {node_id} " in line for line in text.splitlines())


def test_extra_goes_last_and_rendering_is_pure() -> None:
    status: StatusResponse = full_status()
    page = text_of(render_status(status, extra=Panel("demo: scenario bus-depot, t+01:20")))
    assert page.rstrip().splitlines()[-2].find("demo: scenario bus-depot") >= 0
    assert text_of(render_status(status)) == text_of(render_status(status))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.42, "0.4 s"), (42, "42 s"), (300, "5 min"), (3 * 3600 + 300, "3 h 5 min"), (7200, "2 h"),
     (2 * 86400 + 4 * 3600, "2 d 4 h"), (86400, "1 d")],
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_bill() -> None:
    text = text_of(render_status(full_status()))
    assert lines_fit(text)
    assert "0.2412 EUR/kWh (prices file)" in text
    assert "1834.5 kWh imported · 402.77 EUR" in text
    assert "231.6 kW this month (since 2024-03-01 00:00, 15-min average)" in text
    assert "demand charge 3242.40 EUR at 14 EUR/kW" in text and "readings cover 90%" in text
    assert "REFUSED 14:25:05: /var/lib/depotctl/prices.csv:7: price 'O.31' is not a number" in text
    assert "/var/lib/depotctl/prices.csv:9: no price" in text and "the prices read before stay in force" in text
    assert "41.3 kW · meter pv-roof" in text
    assert "imported" not in text_of(render_status(sparse_status()))  # an older daemon: no bill shown
