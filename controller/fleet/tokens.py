"""The API's bearer tokens: the tokens file, authentication and what each caller may do.

The tokens file (``api.tokens_file``) is a YAML list; tokens are kept only as SHA-256 hashes::

    - name: noc-dashboard
      role: viewer
      token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    - name: acme-dispatch
      role: fleet
      tenant: acme            # or `vehicles: [bus-12, bus-14]`, or neither (all vehicles)
      token_sha256: …

Roles: ``viewer`` reads everything; ``fleet`` reads and writes departures and schedules of the
vehicles in its scope (its ``vehicles:`` list, or the vehicles whose ``tenant:`` in the site file
is its ``tenant``; neither: every vehicle); ``admin`` may do everything. ``vehicles`` and
``tenant`` are only for ``fleet``, and not both. Names are unique. ``depotctl token add`` appends
an entry and prints the new token once (:func:`add_token`).

Errors name the file, line and entry (``tokens.yaml:7:3: [1].role: …``) through
:class:`~controller.config.problems.ConfigError`, like the site file's.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import yaml

from controller.config.problems import ConfigError
from controller.config.problems import Problem as ConfigProblem
from controller.config.yaml_source import Path as YamlPath
from controller.config.yaml_source import YamlDocument, YamlSyntaxError, parse_yaml
from controller.fleet.book import vehicles_visible
from controller.model import Site, Vehicle

Role = Literal["viewer", "fleet", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "fleet", "admin")
FIELDS: tuple[str, ...] = ("name", "role", "token_sha256", "vehicles", "tenant")
FILE_MODE = 0o600
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
_NEW_FILE_HEADER = (
    "# depotctl API tokens: SHA-256 hashes only. Add one with\n"
    "#   depotctl token add NAME --role viewer|fleet|admin [--tenant T | --vehicles A,B] --file THIS_FILE\n"
)


def new_token() -> str:
    """A new random bearer token (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """The SHA-256 of the token's UTF-8 bytes as 64 lowercase hex digits (what the file keeps)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's ``name``, ``role`` and, for ``fleet``, its scope
    (``vehicles`` ids or ``tenant``; both None: every vehicle)."""

    name: str
    role: Role
    vehicles: frozenset[str] | None = None
    tenant: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def can_write(self) -> bool:
        """Whether the role may change departures and schedules at all (of vehicles in scope)."""
        return self.role in ("fleet", "admin")

    def in_scope(self, vehicle: Vehicle) -> bool:
        """Whether ``vehicle`` is within the token's ``vehicles`` / ``tenant`` limits."""
        return (self.vehicles is None or vehicle.id in self.vehicles) and (
            self.tenant is None or vehicle.tenant == self.tenant
        )

    def can_read(self, vehicle: Vehicle) -> bool:
        """Viewers and admins read every vehicle; a fleet token those in its scope."""
        return self.role != "fleet" or self.in_scope(vehicle)

    def can_write_vehicle(self, vehicle: Vehicle) -> bool:
        """Admins write every vehicle's departures; a fleet token those in its scope; viewers none."""
        return self.is_admin or (self.role == "fleet" and self.in_scope(vehicle))

    def visible_vehicles(self, site: Site) -> list[Vehicle]:
        """The site's vehicles this caller may read, in file order."""
        if self.role != "fleet":
            return list(site.vehicles)
        return vehicles_visible(site, vehicles=self.vehicles, tenant=self.tenant)


@dataclass(frozen=True)
class TokenEntry:
    """One entry of the tokens file (``line``: where it starts, 1-based)."""

    principal: Principal
    token_sha256: str
    line: int


@dataclass(frozen=True)
class TokenFile:
    """The tokens file as loaded (``path``: where from, for messages)."""

    path: str
    entries: tuple[TokenEntry, ...] = ()

    def authenticate(self, token: str) -> Principal | None:
        """The principal whose hash matches ``token``, or None. Compares the SHA-256 hex digests
        in constant time against every entry, so timing does not tell which entry came close."""
        if not token:
            return None
        digest = token_sha256(token)
        found: Principal | None = None
        for entry in self.entries:
            if hmac.compare_digest(entry.token_sha256, digest):
                found = entry.principal
        return found

    def names(self) -> list[str]:
        return [e.principal.name for e in self.entries]

    def unknown_scope(self, site: Site) -> list[str]:
        """Warnings for ``vehicles`` / ``tenant`` that the site does not have (likely typos)."""
        ids = {v.id for v in site.vehicles}
        tenants = {v.tenant for v in site.vehicles if v.tenant is not None}
        out: list[str] = []
        for e in self.entries:
            p = e.principal
            for v in sorted((p.vehicles or frozenset()) - ids):
                out.append(f"{self.path}:{e.line}: token {p.name!r}: vehicle {v!r} is not in the site file")
            if p.tenant is not None and p.tenant not in tenants:
                out.append(f"{self.path}:{e.line}: token {p.name!r}: no vehicle of the site has tenant {p.tenant!r}")
        return out


# --- reading ---------------------------------------------------------------------------------------


def load_tokens(path: str | Path) -> TokenFile:
    """Read and check the tokens file. Raises :class:`ConfigError` listing every problem with its
    line, or :class:`OSError` when the file cannot be read."""
    filename = str(path)
    return parse_tokens(Path(path).read_text(encoding="utf-8"), filename)


def parse_tokens(text: str, filename: str = "<tokens>") -> TokenFile:
    """The tokens file's text → :class:`TokenFile` (see :func:`load_tokens`)."""
    try:
        doc = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError(filename, [ConfigProblem(exc.path, exc.message, exc.mark.line, exc.mark.col)]) from None
    checker = _Checker(doc)
    entries = checker.entries()
    if checker.problems:
        raise ConfigError(filename, checker.problems)
    return TokenFile(filename, tuple(entries))


class _Checker:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[ConfigProblem] = []

    def error(self, path: YamlPath, message: str, *, at_key: bool = False) -> None:
        mark = self.doc.mark_for(path, prefer_key=at_key)
        self.problems.append(ConfigProblem(path, message, mark.line, mark.col))

    def entries(self) -> list[TokenEntry]:
        data = self.doc.data
        if data is None:
            return []
        if not isinstance(data, list):
            self.error((), "the tokens file must be a list of entries (- name: …, role: …, token_sha256: …)")
            return []
        out: list[TokenEntry] = []
        names: dict[str, int] = {}
        hashes: dict[str, int] = {}
        for i, item in enumerate(data):
            entry = self.entry(i, item)
            if entry is None:
                continue
            name, digest = entry.principal.name, entry.token_sha256
            if name in names:
                self.error((i, "name"), f"name {name!r} is already used by the entry at line {names[name]}")
            if digest in hashes:
                self.error((i, "token_sha256"), f"the same token as the entry at line {hashes[digest]}")
            names.setdefault(name, entry.line)
            hashes.setdefault(digest, entry.line)
            out.append(entry)
        return out

    def entry(self, i: int, item: Any) -> TokenEntry | None:
        if not isinstance(item, dict):
            self.error((i,), "each entry must be a mapping with name, role and token_sha256")
            return None
        before = len(self.problems)
        for key in item:
            if key not in FIELDS:
                self.error((i, key), f"unknown field {key!r} (fields: {', '.join(FIELDS)})", at_key=True)
        name = self.text(i, item, "name", required=True)
        role = self.text(i, item, "role", required=True)
        if role is not None and role not in ROLES:
            self.error((i, "role"), f"unknown role {role!r} (roles: {', '.join(ROLES)})")
        digest = self.text(i, item, "token_sha256", required=True)
        if digest is not None and not _SHA256_HEX.match(digest):
            self.error(
                (i, "token_sha256"),
                "must be the token's SHA-256 as 64 hex digits (depotctl token add writes it), never the token itself",
            )
        tenant = self.text(i, item, "tenant", required=False)
        vehicles = self.vehicles(i, item.get("vehicles"))
        for key, value in (("tenant", tenant), ("vehicles", vehicles)):
            if value is not None and role in ROLES and role != "fleet":
                self.error((i, key), f"{key} limits a fleet token; {_a(role)} token sees every vehicle", at_key=True)
        if tenant is not None and vehicles is not None and role == "fleet":
            self.error((i, "vehicles"), "give tenant or vehicles, not both", at_key=True)
        if len(self.problems) > before or name is None or role is None or digest is None:
            return None
        principal = Principal(name, cast(Role, role), vehicles, tenant)
        return TokenEntry(principal, digest.lower(), self.doc.mark_for((i,)).line)

    def text(self, i: int, item: dict[str, Any], key: str, *, required: bool) -> str | None:
        value = item.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required or key in item:
                self.error((i, key) if key in item else (i,), f"{key} is required" if required else f"{key} is empty")
            return None
        if not isinstance(value, str):
            self.error((i, key), f"{key} must be text")
            return None
        return value.strip()

    def vehicles(self, i: int, value: Any) -> frozenset[str] | None:
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.error((i, "vehicles"), "must be a non-empty list of vehicle ids, e.g. [bus-12, bus-14]")
            return None
        ids = [v.strip() if isinstance(v, str) else "" for v in value]
        for j, v in enumerate(ids):
            if not v:
                self.error((i, "vehicles", j), "must be a vehicle id")
        return frozenset(ids)


# --- adding ----------------------------------------------------------------------------------------


def check_new_token(name: str, role: str, *, tenant: str | None, vehicles: Sequence[str] | None) -> None:
    """Raise :class:`ValueError` with the reason when these cannot make a token entry."""
    if not name.strip() or name != name.strip() or not name.isprintable():
        raise ValueError(f"the name must be printable text without surrounding spaces, got {name!r}")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (roles: {', '.join(ROLES)})")
    if role != "fleet" and (tenant is not None or vehicles is not None):
        raise ValueError(f"a tenant or vehicles limit is only for role fleet; {_a(role)} token sees every vehicle")
    if tenant is not None and vehicles is not None:
        raise ValueError("give a tenant or vehicles, not both")
    if tenant is not None and not tenant.strip():
        raise ValueError("the tenant is empty")
    if vehicles is not None and (not vehicles or any(not v.strip() for v in vehicles)):
        raise ValueError("the vehicles list must name at least one vehicle and no empty ones")


def add_token(
    path: str | Path, name: str, role: str, *, tenant: str | None = None, vehicles: Sequence[str] | None = None
) -> str:
    """Append a token entry to the tokens file and return the new token (shown only this once).

    Creates the file with mode 0600 when it is missing; an existing file keeps its mode, owner
    and comments (the entry is appended). Refuses (:class:`ValueError`) bad arguments and a name
    already in the file, and (:class:`ConfigError`) a file that does not load; nothing is written
    then. Holds an exclusive lock on the file while reading and writing.
    """
    check_new_token(name, role, tenant=tenant, vehicles=vehicles)
    filename = str(path)
    try:
        fd = os.open(filename, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        created = True
    except FileExistsError:
        fd = os.open(filename, os.O_RDWR)
        created = False
    try:
        with os.fdopen(fd, "r+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            if created:
                os.fchmod(f.fileno(), FILE_MODE)  # whatever the umask
            old = f.read()
            existing = parse_tokens(old, filename)
            if name in existing.names():
                raise ValueError(f"{filename}: a token named {name!r} already exists; pick another name")
            token = new_token()
            tenant = None if tenant is None else tenant.strip()
            ids = None if vehicles is None else frozenset(v.strip() for v in vehicles)
            entry = TokenEntry(Principal(name, cast(Role, role), ids, tenant), token_sha256(token), 0)
            head = _NEW_FILE_HEADER if not old.strip() else ""
            sep = "\n" if old and not old.endswith("\n") else ""
            new = old + sep + head + _dump([entry])
            if _count(new, filename) != len(existing.entries) + 1:  # e.g. a file written as `[]`: rewrite it
                new = _dump([*existing.entries, entry])
                f.seek(0)
                f.truncate()
            else:
                f.seek(0, os.SEEK_END)
                new = new[len(old) :]
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        if created:
            Path(filename).unlink(missing_ok=True)
        raise
    return token


def _a(role: str) -> str:
    return f"an {role}" if role[:1] in "aeiou" else f"a {role}"


def _dump(entries: Sequence[TokenEntry]) -> str:
    rows: list[dict[str, Any]] = []
    for e in entries:
        p = e.principal
        row: dict[str, Any] = {"name": p.name, "role": p.role}
        if p.tenant is not None:
            row["tenant"] = p.tenant
        if p.vehicles is not None:
            row["vehicles"] = sorted(p.vehicles)
        row["token_sha256"] = e.token_sha256
        rows.append(row)
    return yaml.safe_dump(rows, sort_keys=False, allow_unicode=True, default_flow_style=False)


def _count(text: str, filename: str) -> int:
    try:
        return len(parse_tokens(text, filename).entries)
    except ConfigError:
        return -1
