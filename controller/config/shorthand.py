"""Short forms a site file may use for a section, and how their paths map to the long form.

``tariff: [{at, price_per_kwh}, …]`` (the file format before the demand charge and dated prices)
is read as ``tariff: {energy: [...]}``. The schema expands the short form before validating it;
every problem found in the long form is reported at the path the file itself has (``tariff[2].at``,
not ``tariff.energy[2].at``), so its FILE:LINE:COL points at the text the electrician wrote.
"""

from __future__ import annotations

from typing import Any

from controller.config.yaml_source import Path

LIST_SHORTHANDS: dict[Path, str] = {("tariff",): "energy"}
"""A section given as a list stands for a mapping with the list under this key."""


def expand_tariff(value: Any) -> Any:
    """``tariff: [...]`` → ``{"energy": [...]}``; anything else as given (the schema judges it)."""
    return {LIST_SHORTHANDS[("tariff",)]: value} if isinstance(value, list) else value


def file_path(data: Any, path: Path) -> Path:
    """The path of a long-form location in the file as written (``data``: its top-level mapping)."""
    for section, key in LIST_SHORTHANDS.items():
        n = len(section)
        if path[:n] == section and path[n : n + 1] == (key,) and isinstance(_at(data, section), list):
            return (*section, *path[n + 1 :])
    return path


def _at(data: Any, path: Path) -> Any:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str):
            data = data.get(part)
        else:
            return None
    return data
