"""Charger passwords (security profiles 1 and 2): the passwords file, HTTP Basic parsing, checks.

The passwords file is a YAML mapping ``charger id → password``. A 1.6 ``AuthorizationKey`` is
configured on the charger as hex; some chargers send the hex text, others the raw bytes it
encodes (not valid UTF-8). Both are accepted for a password that is an even-length hex string of
32..80 characters (16..40 bytes). Comparison is constant-time over bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from controller.config.passwords import PasswordsError as PasswordsError  # re-exported: raised by Passwords.load
from controller.config.passwords import parse_password_file

LOG = logging.getLogger("depotctl.chargers.auth")


def parse_passwords(text: str, filename: str = "<passwords>") -> dict[str, tuple[bytes, ...]]:
    """YAML text (the format: :mod:`controller.config.passwords`) → charger id → the byte strings
    accepted as its password."""
    return {key: accepted_forms(value) for key, value in parse_password_file(text, filename).items()}


def accepted_forms(password: str) -> tuple[bytes, ...]:
    forms = [password.encode("utf-8")]
    if 32 <= len(password) <= 80 and len(password) % 2 == 0 and all(c in string.hexdigits for c in password):
        forms.append(bytes.fromhex(password))
    return tuple(forms)


def parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    """``Basic <base64(user:password)>`` → (user, password) as raw bytes, or ``None``."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        raw = base64.b64decode(token.strip().encode("ascii", "strict"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user, password


@dataclass
class Passwords:
    """The loaded passwords file; :meth:`reload` keeps the old table when the new file is bad."""

    path: Path | None
    table: dict[str, tuple[bytes, ...]]

    @classmethod
    def load(cls, path: str | Path) -> Passwords:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PasswordsError(f"{p}: cannot read: {exc.strerror or exc}") from None
        return cls(p, parse_passwords(text, str(p)))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> Passwords:
        return cls(None, {k: accepted_forms(v) for k, v in mapping.items()})

    def reload(self) -> bool:
        """Re-read the file. Returns False (and keeps the current passwords) on any problem."""
        if self.path is None:
            return True
        try:
            self.table = Passwords.load(self.path).table
        except PasswordsError as exc:
            LOG.error("passwords not reloaded, keeping the previous ones: %s", exc)
            return False
        return True

    def check(self, charger_id: str, password: bytes) -> bool:
        forms = self.table.get(charger_id)
        if not forms:
            hmac.compare_digest(password, b"\x00" * len(password))  # same work for unknown ids
            return False
        ok = False
        for form in forms:
            ok |= hmac.compare_digest(password, form)
        return ok
