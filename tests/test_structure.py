"""The import structure of ``controller/`` (issue 14), read with ``ast`` — nothing is imported.

Every ``import`` and ``from … import`` counts: at module level, under ``if TYPE_CHECKING:`` and
inside functions alike (an import circle hidden from the interpreter is still a circle in the
design). A module's imports are edges to the ``controller`` modules they name: ``from a.b import c``
is an edge to ``a.b.c`` when that is a module, else to ``a.b``; importing a package's submodule
does not count as importing the package's ``__init__`` (Python runs it, but the design does not
depend on it).

* no import circle among the modules of ``controller/``;
* nothing in ``controller/`` imports ``hil`` (the test rig) — the product does not ship its rig;
* the layering: ``controller/model/`` imports nothing else of the product, ``controller/rules/``
  (the pure per-cycle rules) only the model;
* the daemon's layering: nothing under ``controller/api/`` imports ``controller.daemon``, and no
  module under ``controller/daemon/`` imports :mod:`controller.daemon.core` (the composition root
  builds the parts; the parts do not reach back into it) — except ``depotctl run``
  (:mod:`controller.daemon.cli`), the command that starts it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "controller"
ABOVE_THE_ROOT = {"controller.daemon.core", "controller.daemon.cli"}
"""The daemon's composition root, and the command that starts it."""


@dataclass(frozen=True)
class Import:
    source: str  # importing module, dotted
    target: str  # imported name, dotted (a module of controller, or any top-level name)
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(package: str = PACKAGE) -> dict[str, Path]:
    """Dotted name → file, for every ``.py`` file under ``package``."""
    return {module_name(p): p for p in sorted((ROOT / package).rglob("*.py"))}


def _resolve_relative(source: str, is_package: bool, level: int, module: str | None) -> str:
    base = source.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(name: str, path: Path) -> Iterator[Import]:
    """Every import statement in the file, wherever it is (module level, TYPE_CHECKING, functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(name, path.name == "__init__.py", node.level, node.module)
                if node.level
                else node.module or ""
            )
            for alias in node.names:
                yield Import(name, f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno)


def edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the controller modules it imports (a name resolved to the longest module it names)."""
    out: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for imp in imports_of(name, path):
            target = imp.target
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name:
                out[name].add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def a_path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One circle through the component's first module, for the failure message."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return [*paths[v], start]
            if w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    return component


# --- the checker checks what it claims --------------------------------------------------------------------


def test_the_checker_sees_type_checking_and_function_level_imports(tmp_path: Path) -> None:
    src = "from __future__ import annotations\nfrom typing import TYPE_CHECKING\n"
    src += "if TYPE_CHECKING:\n    from controller.b import B\n"
    src += "def f() -> None:\n    import controller.c\n    from . import d\n"
    path = tmp_path / "a.py"
    path.write_text(src)
    targets = {i.target for i in imports_of("controller.x.a", path)}
    assert {"controller.b.B", "controller.c", "controller.x.d"} <= targets
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert a_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


# --- the product --------------------------------------------------------------------------------------------


def test_no_import_circle_in_controller() -> None:
    graph = edges(modules())
    found = cycles(graph)
    assert not found, "import circles in controller/:\n" + "\n".join(
        f"{' → '.join(a_path(graph, c))}  (all of: {', '.join(c)})" for c in found
    )


def test_nothing_in_controller_imports_the_rig() -> None:
    found = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for name, path in modules().items()
        for imp in imports_of(name, path)
        if imp.target == "hil" or imp.target.startswith("hil.")
    ]
    assert not found, "controller/ imports the test rig:\n" + "\n".join(found)


def test_the_api_imports_nothing_from_the_daemon() -> None:
    found = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for name, path in modules().items()
        if name.startswith("controller.api")
        for imp in imports_of(name, path)
        if imp.target == "controller.daemon" or imp.target.startswith("controller.daemon.")
    ]
    assert not found, "\n".join(found)


def test_no_part_of_the_daemon_imports_its_composition_root() -> None:
    found = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for name, path in modules().items()
        if name.startswith("controller.daemon.") and name not in ABOVE_THE_ROOT
        for imp in imports_of(name, path)
        if imp.target == "controller.daemon.core" or imp.target.startswith("controller.daemon.core.")
    ]
    assert not found, "\n".join(found)


def _imports_outside(package: str, allowed: tuple[str, ...]) -> list[str]:
    return [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for name, path in modules().items()
        if name == package or name.startswith(package + ".")
        for imp in imports_of(name, path)
        if imp.target.startswith("controller.") and not any(
            imp.target == a or imp.target.startswith(a + ".") for a in allowed
        )
    ]


def test_the_model_imports_nothing_else_of_the_product() -> None:
    found = _imports_outside("controller.model", ("controller.model",))
    assert not found, "\n".join(found)


def test_the_rules_import_only_the_model() -> None:
    found = _imports_outside("controller.rules", ("controller.rules", "controller.model"))
    assert not found, "\n".join(found)
