"""YAML site file → validated :class:`controller.model.Site`, or every problem with its line."""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from controller.config import convert
from controller.config.checks import check
from controller.config.placement import SECTION_ORDER, insertion_line, is_missing_section
from controller.config.problems import ConfigError, Problem
from controller.config.schema import SiteFile, section_model
from controller.config.shorthand import file_path
from controller.config.yaml_source import Mark, Path, YamlDocument, YamlSyntaxError, parse_yaml
from controller.model.site import Site

_SECRET_WORDS = ("password", "passwd", "secret", "token", "auth_key", "authorization_key", "api_key")


@dataclass(frozen=True)
class LoadedSite:
    site: Site
    warnings: tuple[Problem, ...]
    filename: str
    doc: YamlDocument | None = None  # positions, for callers validating extra sections


def load_site(path: str | FsPath, *, only: Collection[str] | None = None) -> LoadedSite:
    """Read and validate a site file. Raises :class:`ConfigError` (every problem) or ``OSError``.

    ``only``: check just these top-level sections, for a command that uses no more (``meter
    probe``: the site, grid, meters and circuits); the others are skipped unread, and so are the
    services' checks (a site being commissioned need not have its `ocpp:` section yet).
    """
    file = FsPath(path)
    text = file.read_text(encoding="utf-8")
    if only is None:
        return load_site_text(text, str(path))
    unknown = sorted(set(only) - set(SECTION_ORDER))
    if unknown:
        raise ValueError(f"not site-file sections: {', '.join(unknown)}")
    skipped = tuple(section for section in SECTION_ORDER if section not in only and section != "version")
    return load_site_text(text, str(path), extra_sections=skipped, offline=True)


def parse_document(text: str, filename: str) -> YamlDocument:
    """Parse YAML into a position-keeping document whose top level is a mapping."""
    try:
        doc = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError(filename, [Problem(exc.path, exc.message, exc.mark.line, exc.mark.col)]) from None
    if not isinstance(doc.data, dict):
        raise ConfigError(filename, [Problem((), "the site file must be a mapping with `site:`, `grid:` …", 1, 1)])
    return doc


def load_site_text(
    text: str, filename: str = "<site>", *, extra_sections: tuple[str, ...] = (), offline: bool = False
) -> LoadedSite:
    """Validate a site file given as text.

    ``extra_sections``: top-level keys another reader owns (e.g. ``scenario``), skipped here.
    ``offline``: the file drives a simulation, not a live site (or a command that starts none of
    the services), so the services' own checks (passwords, TLS files, listen addresses) are skipped.
    """
    doc = parse_document(text, filename)
    return load_site_document(doc, filename, extra_sections=extra_sections, offline=offline)


def load_site_document(
    doc: YamlDocument, filename: str, *, extra_sections: tuple[str, ...] = (), offline: bool = False
) -> LoadedSite:
    problems: list[Problem] = []
    data = {
        k: v
        for k, v in doc.data.items()
        if not str(k).startswith("x-") and k not in extra_sections  # x-: anchor holders
    }
    sf = validate_model(SiteFile, data, doc, (), filename)

    def report(severity: str) -> Any:
        def add(path: Path, message: str) -> None:
            path = file_path(doc.data, path)  # a short form's problem, at the text the file has
            mark = _mark_for(doc, path)
            problems.append(Problem(path, message, mark.line, mark.col, "error" if severity == "error" else "warning"))

        return add

    check(sf, report("error"), report("warning"), offline=offline)
    if any(p.severity == "error" for p in problems):
        raise ConfigError(filename, _sorted(problems))
    return LoadedSite(convert.to_site(sf), tuple(_sorted(problems)), filename, doc)


def _mark_for(doc: YamlDocument, path: Path) -> Mark:
    """Where a problem about ``path`` points: the node, or for a whole top-level section the file
    lacks, the line where it would go (controller.config.placement) — not line 1."""
    if is_missing_section(doc, path):
        return Mark(insertion_line(doc, str(path[0])), 1)
    return doc.mark_for(path)


M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, doc: YamlDocument, prefix: Path, filename: str) -> M:
    """pydantic validation whose errors carry the file position of ``prefix + loc``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_from_pydantic(doc, err, prefix, model) for err in exc.errors()]
        raise ConfigError(filename, _sorted(problems)) from None


def _sorted(problems: list[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line, p.col, p.severity))


def _from_pydantic(doc: YamlDocument, err: Any, prefix: Path, root: type[BaseModel]) -> Problem:
    loc: Path = file_path(doc.data, (*prefix, *err["loc"]))
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        mark = doc.mark_for(loc, prefer_key=True)
        return Problem(loc, _unknown_key_message(key, tuple(err["loc"])[:-1], root), mark.line, mark.col)
    if kind == "missing":
        mark = _mark_for(doc, loc) if len(loc) == 1 else doc.mark_for(loc[:-1])
        return Problem(loc, "required key is missing", mark.line, mark.col)
    mark = doc.mark_for(loc)
    message = str(err["msg"])
    if "input" in err and not isinstance(err["input"], (dict, list)):
        message += f" (got {err['input']!r})"
    return Problem(loc, message, mark.line, mark.col)


def _unknown_key_message(key: str, parent: Path, root: type[BaseModel]) -> str:
    lowered = key.lower()
    if any(word in lowered for word in _SECRET_WORDS):
        return (
            f"secrets do not belong in the site file ({key!r}); put charger passwords in "
            "ocpp.passwords_file and API tokens in api.tokens_file"
        )
    if parent == ("grid",) and key == "transformer":
        return (
            "the grid connection has no transformer: describe the supply after the utility's transformer"
            " with site.service and site.voltage_v, or put a transformer of your own on a circuit below grid"
        )
    allowed = _allowed_keys(parent, root)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}"


def _allowed_keys(parent: Path, root: type[BaseModel]) -> list[str]:
    """Field names of the section at ``parent`` (list indices and dict keys skipped)."""
    model: type[BaseModel] | None = root
    for part in parent:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            continue  # a dict key such as a register name
        model = section_model(field.annotation)
    return list(model.model_fields) if model is not None else []
