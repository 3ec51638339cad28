"""Each file in invalid/ is a broken site file whose `# expect:` lines are the exact messages.

An electrician must be pointed at the line, column and dotted path of every mistake; the file
must be refused with exit status 2 and nothing else printed on stdout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.cli import main

INVALID = Path(__file__).parent / "invalid"
FILES = sorted(INVALID.glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.removeprefix("# expect: ") for line in lines if line.startswith("# expect: ")]


def test_there_are_at_least_twenty_invalid_files() -> None:
    assert len(FILES) >= 20
    assert all(expectations(f) for f in FILES), "every invalid file states what it expects"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_invalid_file_is_refused_with_its_exact_message(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == "", "a refused file prints no tree"
    printed = err.splitlines()
    for expected in expectations(path):
        assert f"{path}:{expected}" in printed, f"missing:\n  {path}:{expected}\ngot:\n" + err
    errors = [line for line in printed if ": warning: " not in line and not line.endswith("nothing started")]
    assert len(errors) == len(expectations(path)), "no unexpected errors:\n" + err
    assert printed[-1].endswith("nothing started")
