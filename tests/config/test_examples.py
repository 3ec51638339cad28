"""The example sites in config/ must pass check-config and print their circuit trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from controller.cli import main
from controller.config import load_site

CONFIG = Path(__file__).resolve().parents[2] / "config"
EXAMPLES = ["demo-site.yaml", "workplace-small.yaml", "bus-depot.yaml", "us-school-bus-depot.yaml"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_passes_check_config_and_prints_its_tree(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = CONFIG / name
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    site = load_site(path).site
    assert out.splitlines()[1].startswith("grid ")
    for node_id in [c.id for c in site.circuits] + [c.id for c in site.chargers]:
        assert f"── {node_id} " in out, f"{node_id} missing from the tree"
    assert out.rstrip().endswith(f"{path}: OK") or f"{path}: OK with" in out


def test_demo_site_shape() -> None:
    site = load_site(CONFIG / "demo-site.yaml").site
    assert 8 <= len(site.chargers) <= 12
    feeders = [c for c in site.circuits if c.parent == "grid"]
    assert len(feeders) == 2
    assert any(c.meter for c in feeders), "one feeder is sub-metered"
    kinds = {(c.kind, c.phases) for c in site.chargers}
    assert {("ac", 1), ("ac", 3), ("dc", 3)} <= kinds


def test_bus_depot_shape() -> None:
    site = load_site(CONFIG / "bus-depot.yaml").site
    assert len(site.chargers) >= 60
    assert len([c for c in site.circuits if c.parent == "grid"]) >= 3
    assert {c.kind for c in site.chargers} == {"ac", "dc"}


def test_installed_console_script_runs() -> None:
    """The `depotctl` entry point itself, as an operator runs it."""
    exe = Path(sys.executable).parent / "depotctl"
    result = subprocess.run(
        [str(exe), "check-config", str(CONFIG / "workplace-small.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "carpark-board" in result.stdout
