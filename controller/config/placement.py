"""Where a top-level section the site file lacks would go, so a problem about it can point there.

A missing section goes after the last section that comes before it in the schema's order
(`site`, `grid`, `meters`, `circuits`, `chargers`, `failsafe`, `ocpp`, …) and that the file has:
on the line after that section's last line. Both the rule's message (which section it follows)
and the problem's position (which line) come from here, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Collection

from controller.config.schema import SiteFile
from controller.config.yaml_source import YamlDocument

SECTION_ORDER: tuple[str, ...] = tuple(SiteFile.model_fields)
"""The site file's top-level sections in the order the reference (and every example) gives them."""


def preceding_section(key: str, present: Collection[str]) -> str | None:
    """The section of ``present`` that a missing ``key`` would follow; None: at the top of the file."""
    before = SECTION_ORDER[: SECTION_ORDER.index(key)]
    found = [section for section in before if section in present]
    return found[-1] if found else None


def insertion_line(doc: YamlDocument, key: str) -> int:
    """The line (1-based) at which the missing section ``key`` would be inserted."""
    present = doc.data.keys() if isinstance(doc.data, dict) else ()
    after = preceding_section(key, present)
    if after is None:
        return 1
    return doc.last_lines[(after,)] + 1


def is_missing_section(doc: YamlDocument, path: tuple[str | int, ...]) -> bool:
    """True when ``path`` names a whole top-level section the file does not have."""
    return len(path) == 1 and path[0] in SECTION_ORDER and not (isinstance(doc.data, dict) and path[0] in doc.data)
