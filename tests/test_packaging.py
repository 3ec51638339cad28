"""What ``pip install .`` puts on a depot PC: the wheel holds ``controller`` and its data, never the rig.

The wheel is built once per run, offline (``pip wheel --no-deps --no-build-isolation``), from a copy
of the files it is built from (``pyproject.toml``, ``README.md``, ``controller/``, and ``hil/`` so
that leaving the rig out is the build's doing), so the work tree gets no ``build/`` of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from controller.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
BUILD_BOUND_S = 180.0
pytestmark = pytest.mark.wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("controller", "hil"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", ".", "-w",
         str(out)],
        cwd=src, capture_output=True, text=True, timeout=BUILD_BOUND_S, env=env,
    )
    assert proc.returncode == 0, f"the wheel did not build (needs setuptools and wheel):\n{proc.stdout}{proc.stderr}"
    (built,) = out.glob("depotctl-*.whl")
    return built


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


def test_the_wheel_holds_the_product_and_not_the_rig(wheel: Path) -> None:
    names = _names(wheel)
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"controller"}, sorted(tops)
    assert not [n for n in names if n.startswith(("hil/", "tests/", "bench/"))]
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "controller").rglob("*.py")}
    assert sources <= names, sorted(sources - names)


def test_the_wheel_holds_the_data_the_product_reads(wheel: Path) -> None:
    names = _names(wheel)
    presets = {p.relative_to(ROOT).as_posix() for p in (ROOT / "controller" / "meter" / "presets").glob("*.yaml")}
    assert len(presets) >= 8 and presets <= names, sorted(presets - names)
    static = {p.relative_to(ROOT).as_posix() for p in (ROOT / "controller" / "api" / "static").iterdir() if p.is_file()}
    assert static and static <= names, sorted(static - names)
    with zipfile.ZipFile(wheel) as zf:
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        assert "depotctl = controller.cli:main" in zf.read(entry_points).decode()


_HELP_FROM_THE_WHEEL = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")]
sys.path.insert(0, sys.argv[1])
from controller.cli import main
import controller
assert controller.__file__.startswith(sys.argv[1]), controller.__file__
try:
    import hil
except ModuleNotFoundError:
    pass
else:
    raise SystemExit(f"hil importable from {hil.__file__}")
main(["--help"])
"""


def test_depotctl_from_the_wheel_offers_no_demo(wheel: Path, tmp_path: Path) -> None:
    """The installed command (the wheel unpacked as pip installs it, no source tree on the path)
    lists its sub-commands without ``demo`` — the rig's command is not there to run."""
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _HELP_FROM_THE_WHEEL, str(site)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "check-config" in proc.stdout and "simulate" in proc.stdout, proc.stdout
    assert "demo" not in proc.stdout, proc.stdout


def test_depotctl_in_a_source_checkout_offers_the_demo() -> None:
    assert "demo" in build_parser().format_help()
