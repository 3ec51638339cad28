"""Read YAML keeping where every node came from, so errors can name FILE:LINE:COL.

Every plain scalar stays a string (``null``/``~``/empty become ``None``); the schema decides
what it means. That keeps electricians' habits safe: ``at: 05:30`` is not the YAML 1.1
sexagesimal number 330, ``id_tags: [0012]`` keeps its leading zeros, ``parity: N`` is not a
boolean. Duplicate keys are errors instead of silently keeping the last one. Anchors, aliases and
merge keys (``<<: *ac22``) work, which helps with long charger lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, strings, None) plus the position of every node by path."""

    data: Any
    value_marks: dict[Path, Mark] = field(default_factory=dict)
    key_marks: dict[Path, Mark] = field(default_factory=dict)
    last_lines: dict[Path, int] = field(default_factory=dict)
    """The last line holding any of the node's text (1-based; trailing comments not counted)."""

    def mark_for(self, path: Path, *, prefer_key: bool = False) -> Mark:
        """Best position for ``path``: the node itself, else its nearest existing ancestor."""
        probe = tuple(path)
        while True:
            if prefer_key and probe in self.key_marks:
                return self.key_marks[probe]
            if probe in self.value_marks:
                return self.value_marks[probe]
            if not probe:
                return Mark(1, 1)
            probe = probe[:-1]


class YamlSyntaxError(Exception):
    def __init__(self, mark: Mark, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message
        self.path = path


class _Loader(yaml.SafeLoader):
    """A SafeLoader that resolves only null and merge keys; everything else stays text."""


_Loader.yaml_implicit_resolvers = {}
_Loader.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])
_Loader.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])

_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _mark(m: yaml.Mark | None) -> Mark:
    if m is None:
        return Mark(1, 1)
    return Mark(m.line + 1, m.column + 1)


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document. Raises :class:`YamlSyntaxError` with a position."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = YamlDocument(data=None)
        doc.data = _build(loader, node, (), doc) if node is not None else None
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = _mark(exc.problem_mark or exc.context_mark)
        problem = exc.problem or "invalid YAML"
        if exc.context:
            problem = f"{exc.context}: {problem}"
        raise YamlSyntaxError(mark, f"YAML syntax: {problem}") from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(Mark(1, 1), f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()


def _build(loader: _Loader, node: yaml.Node, path: Path, doc: YamlDocument) -> Any:
    doc.value_marks[path] = _mark(node.start_mark)
    value = _build_value(loader, node, path, doc)
    doc.last_lines[path] = _last_line(node, path, value, doc)
    return value


def _last_line(node: yaml.Node, path: Path, value: Any, doc: YamlDocument) -> int:
    """A block collection ends where the next token starts (after any comments), so its last line
    is its children's; a scalar or a flow collection ends at its own end mark (a block scalar's
    includes the line break: column 0 of the next line)."""
    start = doc.value_marks[path].line
    if isinstance(node, yaml.CollectionNode) and not node.flow_style:
        children = value.keys() if isinstance(value, dict) else range(len(value))
        return max([start, *(doc.last_lines[(*path, child)] for child in children)])
    end = _mark(node.end_mark)
    if end.col == 1 and end.line > start:
        return end.line - 1
    return end.line


def _build_value(loader: _Loader, node: yaml.Node, path: Path, doc: YamlDocument) -> Any:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, Mark] = {}
        for key_node, _ in node.value:  # explicit keys only: a merged key may be overridden
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                key = str(key_node.value)
                if key in seen:
                    raise YamlSyntaxError(
                        _mark(key_node.start_mark),
                        f"duplicate key {key!r} (first given at line {seen[key].line})",
                        (*path, key),
                    )
                seen[key] = _mark(key_node.start_mark)
        loader.flatten_mapping(node)  # resolves merge keys in place; later entries win
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlSyntaxError(_mark(key_node.start_mark), "YAML: a key must be a plain name")
            key = str(key_node.value)
            child = (*path, key)
            doc.key_marks[child] = _mark(key_node.start_mark)
            out[key] = _build(loader, value_node, child, doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, (*path, i), doc) for i, item in enumerate(node.value)]
    assert isinstance(node, yaml.ScalarNode)
    if node.tag == _NULL_TAG:
        return None
    return str(node.value)


def dotted(path: Path) -> str:
    """``("chargers", 3, "min_a")`` → ``chargers[3].min_a``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(top level)"
