"""The README promises two Quick-start commands and a reference that matches the schema."""

from __future__ import annotations

import re
from pathlib import Path

from controller.config import reference

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_quick_start_has_exactly_make_demo_and_make_test() -> None:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(?:sh|bash)?\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    commands = [line.strip() for line in blocks[0].splitlines() if line.strip()]
    assert commands == ["make demo", "make test"]


def test_makefile_has_the_targets_the_readme_names() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "bench"):
        assert re.search(rf"^{target}:", makefile, flags=re.M), target


def test_site_file_reference_matches_the_schema() -> None:
    """Regenerate with: python -m controller.config.reference (and paste between the markers)."""
    start = README.index(reference.BEGIN)
    end = README.index(reference.END) + len(reference.END)
    assert README[start:end] == reference.render()


def test_every_example_site_is_linked() -> None:
    for path in sorted((ROOT / "config").glob("*.yaml")):
        assert f"(config/{path.name})" in README, path.name
