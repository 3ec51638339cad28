"""docs/safety.md names the test behind every mitigation: each named test file and test function
must exist (a renamed or deleted test fails here instead of leaving the safety case hollow)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "safety.md"
REF = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`|`::(\w+)`")
"""A test file (optionally ``::function``), or ``::function`` in the file named last on the line."""


def _functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_named_in_the_safety_case_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing: list[str] = []
    named = 0
    for line in text.splitlines():
        current: Path | None = None
        for m in REF.finditer(line):
            if m.group(1):
                current = ROOT / m.group(1)
                if not current.exists():
                    missing.append(m.group(1))
                    current = None
                    continue
                name = m.group(2)
            else:
                name = m.group(3)
            if name is None:
                continue
            named += 1
            if current is None or name not in _functions(current):
                missing.append(f"{current}::{name}")
    assert named >= 25
    assert not missing, missing
