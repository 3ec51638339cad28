"""Validate OCPP messages against the JSON schemas shipped in the ``ocpp`` package, formats included.

The package validates without a format checker, so ``date-time`` strings are checked here: RFC 3339
with an explicit zone.
"""

from __future__ import annotations

import decimal
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import ocpp
from jsonschema import Draft4Validator, FormatChecker

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_CHECKER = FormatChecker(formats=())


@_CHECKER.checks("date-time")
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    from datetime import datetime

    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@cache
def _validator(version: str, name: str) -> Draft4Validator:
    folder = Path(ocpp.__file__).parent / ("v16" if version == "1.6" else "v201") / "schemas"
    text = (folder / f"{name}.json").read_text(encoding="utf-8-sig")
    return Draft4Validator(json.loads(text, parse_float=decimal.Decimal), format_checker=_CHECKER)


def schema_name(version: str, action: str, kind: str) -> str:
    if version == "1.6":
        return action if kind == "request" else f"{action}Response"
    return f"{action}Request" if kind == "request" else f"{action}Response"


def validate(version: str, action: str, kind: str, payload: Any) -> None:
    """Raise ``jsonschema.ValidationError`` when ``payload`` does not match (formats included)."""
    data = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    _validator(version, schema_name(version, action, kind)).validate(data)


class WireLog:
    """Records every frame seen on a connection and validates each one against its schema."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.pending: dict[str, str] = {}
        self.frames: list[tuple[str, Any]] = []
        self.errors: list[str] = []

    def record(self, direction: str, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            return  # deliberately malformed frames from tests
        if not isinstance(msg, list) or len(msg) < 3:
            return
        self.frames.append((direction, msg))
        try:
            if msg[0] == 2 and len(msg) == 4 and isinstance(msg[2], str):
                self.pending[f"{direction}:{msg[1]}"] = msg[2]
                validate(self.version, msg[2], "request", msg[3])
            elif msg[0] == 3:
                other = "in" if direction == "out" else "out"
                action = self.pending.pop(f"{other}:{msg[1]}", None)
                if action is not None:
                    validate(self.version, action, "response", msg[2])
        except Exception as exc:
            self.errors.append(f"{direction} {msg!r}: {exc}")
