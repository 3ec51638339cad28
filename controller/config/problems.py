"""Errors and warnings about a site file, each pinned to a path and a line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controller.config.yaml_source import Path, dotted


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    line: int
    col: int
    severity: Literal["error", "warning"] = "error"

    def format(self, filename: str) -> str:
        """``FILE:LINE:COL: dotted.path: message`` (warnings say so before the message)."""
        tag = "warning: " if self.severity == "warning" else ""
        return f"{filename}:{self.line}:{self.col}: {dotted(self.path)}: {tag}{self.message}"


class ConfigError(Exception):
    """The site file is not usable. ``problems`` holds every error found (and any warnings)."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems
        errors = [p for p in problems if p.severity == "error"]
        super().__init__("\n".join(p.format(filename) for p in errors))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
