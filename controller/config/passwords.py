"""The passwords file: a YAML mapping ``charger id → password`` (``ocpp.passwords_file``,
``ocpp.upstream.passwords_file``). Secrets live there, never in the site file.

Only the format is here; how a charger's password is matched (hex forms, constant time) is the
OCPP server's business (:mod:`controller.chargers.auth`), and which password depotctl presents
upstream is the proxy's.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml


class PasswordsError(ValueError):
    """The passwords file cannot be used (message names the file and the problem)."""


def parse_password_file(text: str, filename: str = "<passwords>") -> dict[str, str]:
    """YAML text → charger id → password."""
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:  # its line, never its text: that may hold a password
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise PasswordsError(f"{filename}{line}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError:
        raise PasswordsError(f"{filename}: not valid YAML") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise PasswordsError(f"{filename}: must be a mapping of charger id → password")
    out: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, (str, int)) or isinstance(value, bool):
            raise PasswordsError(f"{filename}: entry {key!r}: the password must be a string")
        out[key] = str(value)
    return out


def read_password_file(path: str | Path) -> dict[str, str]:
    """Read and parse a passwords file. Raises :class:`PasswordsError` naming the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise PasswordsError(f"{p}: cannot read: {reason}") from None
    return parse_password_file(text, str(p))
