"""OCPP-J frame validation against the JSON schemas shipped in the ``ocpp`` package (1.6 and 2.0.1).

One :class:`FrameValidator` per connection (per OCPP version) sees every frame of that
connection, both directions, in order, and returns what is wrong rather than raising:

- a CALL ``[2, id, action, payload]`` is checked against the action's request schema
  (``ocpp/v16/schemas/{Action}.json``, ``ocpp/v201/schemas/{Action}Request.json``);
- a CALLRESULT ``[3, id, payload]`` against the response schema of the CALL it answers — the
  pending CALLs are kept per direction: a CALLRESULT received answers a CALL sent, and the
  other way round; one that answers no pending CALL is a violation;
- a CALLERROR ``[4, id, code, description, details]``: its shape, its error code from the
  version's list (1.6 also takes the errata spellings ``FormatViolation`` and
  ``OccurrenceConstraintViolation``), and that it answers a pending CALL.

Usage::

    v = FrameValidator("1.6")                      # or "2.0.1"
    v.check("out", '[2,"1","Reset",{"type":"Soft"}]')  # → [] (a frame we sent: noted, checked)
    v.check("in", '[3,"1",{"status":"Maybe"}]')    # → [Violation(direction="in", ...)]
    v.violations                                    # every violation so far, in order

    sim = SimCharger(SimOptions("cp-1"), clock, frame_hook=v.feed)   # the charger side

By default only frames received (``"in"``) are judged; frames sent (``"out"``) are only noted so
the answers to them can be matched (``check_sent=True`` judges them too). Numbers are parsed as
``Decimal`` (and the schemas too), so the 1.6 schemas' ``multipleOf: 0.1`` judges ``21.4`` as
written, not as the binary float ``21.399999…``. ``date-time`` strings must be RFC 3339 with an
explicit zone (the ``ocpp`` package itself checks no formats). Compiled validators are cached
per process.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import ocpp
from jsonschema import FormatChecker, validators  # type: ignore[import-untyped]  # no stubs; comes with ocpp

Direction = Literal["in", "out"]
VERSIONS = ("1.6", "2.0.1")

ERROR_CODES: dict[str, frozenset[str]] = {
    "1.6": frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "FormatViolation",  # errata spelling
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "OccurrenceConstraintViolation",  # errata spelling
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
    "2.0.1": frozenset(
        {
            "FormatViolation",
            "GenericError",
            "InternalError",
            "MessageTypeNotSupported",
            "NotImplemented",
            "NotSupported",
            "OccurrenceConstraintViolation",
            "PropertyConstraintViolation",
            "ProtocolError",
            "RpcFrameworkError",
            "SecurityError",
            "TypeConstraintViolation",
        }
    ),
}
"""The CALLERROR codes each version allows."""

MAX_UNIQUE_ID_CHARS = 36
_SCHEMA_DIRS = {"1.6": "v16", "2.0.1": "v201"}
Validator = Any
"""A compiled ``jsonschema`` validator (the package ships no type stubs)."""
_cache: dict[tuple[str, str], Validator | None] = {}
_cache_lock = threading.Lock()
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date-time")  # type: ignore[untyped-decorator]
def _is_date_time(value: object) -> bool:
    """RFC 3339 with an explicit zone (``Z`` or an offset), as OCPP requires; a real date."""
    if not isinstance(value, str):
        return True  # the type keyword judges non-strings
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Violation:
    """One frame that is not valid OCPP-J, and why."""

    direction: Direction
    frame: str
    reason: str

    def __str__(self) -> str:
        return f"{self.direction} {self.reason}: {self.frame[:300]}"


def schema_path(version: str, action: str, kind: Literal["request", "response"]) -> Path:
    """The file of the schema of ``action``'s request or response in the ``ocpp`` package."""
    base = Path(ocpp.__file__).parent / _SCHEMA_DIRS[version] / "schemas"
    if kind == "response":
        return base / f"{action}Response.json"
    return base / (f"{action}Request.json" if version != "1.6" else f"{action}.json")


def validator_for(version: str, action: str, kind: Literal["request", "response"]) -> Validator | None:
    """The compiled validator of an action's request/response schema (cached); ``None`` when the
    version has no such action."""
    if version not in _SCHEMA_DIRS:
        raise ValueError(f"OCPP version {version!r}: expected one of {', '.join(VERSIONS)}")
    if not action.isalnum():  # a name from the wire must not walk the file system
        return None
    key = (f"{version}/{kind}", action)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    path = schema_path(version, action, kind)
    compiled: Validator | None = None
    if path.is_file():
        schema = json.loads(path.read_text(encoding="utf-8-sig"), parse_float=Decimal)
        cls = validators.validator_for(schema)
        compiled = cls(_flattened(schema), format_checker=_FORMATS)
    with _cache_lock:
        _cache[key] = compiled
    return compiled


_NOT_FOR_VALIDATION = frozenset({"description", "javaType", "comment", "$id", "tsEnumNames"})


def _flattened(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with every local ``$ref`` replaced by its definition and the documentation
    keys dropped: the same judgement, ~4× faster (``jsonschema`` resolves a ``$ref`` at every
    use). A recursive definition (none in OCPP 1.6/2.0.1) keeps the schema as it is."""
    definitions = schema.get("definitions", {})

    def inline(node: Any, names: bool, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [inline(x, False, seen) for x in node]
        if not isinstance(node, dict):
            return node
        if names:  # the value of "properties": property name → schema
            return {k: inline(v, False, seen) for k, v in node.items()}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            name = ref.rsplit("/", 1)[1]
            if name in seen or name not in definitions:
                raise _Recursive(name)
            return inline(definitions[name], False, (*seen, name))
        return {
            k: inline(v, k == "properties", seen)
            for k, v in node.items()
            if k != "definitions" and k not in _NOT_FOR_VALIDATION
        }

    try:
        flat = inline(schema, False, ())
    except _Recursive:
        return schema
    assert isinstance(flat, dict)
    return flat


class _Recursive(Exception):
    """A ``$ref`` that cannot be inlined (recursive or dangling)."""


def actions(version: str, kind: Literal["request", "response"] = "request") -> list[str]:
    """Every action the version's schemas describe (for the given side)."""
    base = Path(ocpp.__file__).parent / _SCHEMA_DIRS[version] / "schemas"
    names = sorted(p.stem for p in base.glob("*.json"))
    if kind == "response":
        return [n[: -len("Response")] for n in names if n.endswith("Response")]
    if version == "1.6":
        return [n for n in names if not n.endswith("Response")]
    return [n[: -len("Request")] for n in names if n.endswith("Request")]


def schema_errors(version: str, action: str, kind: Literal["request", "response"], payload: Any) -> list[str]:
    """What is wrong with ``payload`` as ``action``'s request/response (JSON-path and message each);
    numbers in ``payload`` should be ``Decimal`` where the schema has ``multipleOf`` (parse with
    ``json.loads(text, parse_float=Decimal)``)."""
    v = validator_for(version, action, kind)
    if v is None:
        return [f"no {kind} schema for action {action!r} in OCPP {version}"]
    out = []
    for err in sorted(v.iter_errors(payload), key=lambda e: list(e.absolute_path)):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path)
        out.append(f"{where}: {err.message}")
    return out


@dataclass
class FrameValidator:
    """Validates the frames of one OCPP-J connection (see the module docstring)."""

    version: str
    check_sent: bool = False
    violations: list[Violation] = field(default_factory=list)
    frames_checked: int = 0
    _pending: dict[Direction, dict[str, str]] = field(default_factory=lambda: {"in": {}, "out": {}})
    """Direction a CALL travelled → its unique id → its action, until answered."""

    def __post_init__(self) -> None:
        if self.version not in _SCHEMA_DIRS:
            raise ValueError(f"OCPP version {self.version!r}: expected one of {', '.join(VERSIONS)}")

    def reset(self) -> None:
        """A new connection: no CALL is pending any more (the violations are kept)."""
        self._pending = {"in": {}, "out": {}}

    def forget(self, direction: Direction) -> None:
        """Drop the CALLs pending in ``direction`` (they will never be answered: a side that hung)."""
        self._pending[direction] = {}

    def feed(self, direction: str, raw: str | bytes) -> None:
        """:meth:`check` without the result: fits ``SimCharger(frame_hook=...)``."""
        self.check("in" if direction == "in" else "out", raw)

    def pending(self, direction: Direction) -> dict[str, str]:
        """Unique id → action of the CALLs that travelled ``direction`` and are not answered yet."""
        return dict(self._pending[direction])

    def check(self, direction: Direction, raw: str | bytes) -> list[Violation]:
        """Note one frame (``"in"``: received, ``"out"``: sent); the violations found in it (also
        appended to :attr:`violations`). Frames sent are judged only with ``check_sent``."""
        self.frames_checked += 1
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        reasons = self._reasons(direction, raw, text)
        judged = direction == "in" or self.check_sent
        found = [Violation(direction, text, r) for r in reasons] if judged else []
        self.violations.extend(found)
        return found

    def _reasons(self, direction: Direction, raw: str | bytes, text: str) -> list[str]:
        if isinstance(raw, bytes):
            return ["a binary frame (OCPP-J frames are text)"]
        try:
            frame = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            return [f"not JSON ({exc})"]
        if not isinstance(frame, list) or not frame:
            return ["not a JSON array [MessageTypeId, UniqueId, ...]"]
        kind = frame[0]
        if kind not in (2, 3, 4) or isinstance(kind, bool):
            return [f"MessageTypeId {kind!r} is not 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)"]
        expected_len = {2: 4, 3: 3, 4: 5}[kind]
        if len(frame) != expected_len:
            return [f"a {_KIND_NAMES[kind]} has {expected_len} elements, this one {len(frame)}"]
        uid = frame[1]
        if not isinstance(uid, str):
            return [f"UniqueId {uid!r} is not a string"]
        reasons = []
        if len(uid) > MAX_UNIQUE_ID_CHARS:
            reasons.append(f"UniqueId is {len(uid)} characters (at most {MAX_UNIQUE_ID_CHARS})")
        if kind == 2:
            return reasons + self._call(direction, uid, frame[2], frame[3])
        answered = _other(direction)
        action = self._pending[answered].pop(uid, None)
        if kind == 3:
            if action is None:
                return [*reasons, f"CALLRESULT {uid!r} answers no pending CALL"]
            if not isinstance(frame[2], dict):
                return [*reasons, f"CALLRESULT to {action}: the payload is not a JSON object"]
            errors = schema_errors(self.version, action, "response", frame[2])
            return reasons + [f"CALLRESULT to {action}: {e}" for e in errors]
        code, description, details = frame[2], frame[3], frame[4]
        if action is None:
            reasons.append(f"CALLERROR {uid!r} answers no pending CALL")
        if code not in ERROR_CODES[self.version]:
            reasons.append(f"CALLERROR code {code!r} is not an OCPP {self.version} error code")
        if not isinstance(description, str):
            reasons.append("CALLERROR description is not a string")
        elif len(description) > 255 and self.version != "1.6":
            reasons.append("CALLERROR description is longer than 255 characters")
        if not isinstance(details, dict):
            reasons.append("CALLERROR details is not a JSON object")
        return reasons

    def _call(self, direction: Direction, uid: str, action: Any, payload: Any) -> list[str]:
        if not isinstance(action, str):
            return [f"CALL action {action!r} is not a string"]
        reasons = []
        pending = self._pending[direction]
        if uid in pending:
            reasons.append(f"CALL {action}: UniqueId {uid!r} reused while {pending[uid]} is unanswered")
        pending[uid] = action  # its answer is matched even when the action is unknown
        if validator_for(self.version, action, "request") is None:
            return [*reasons, f"CALL {action}: no such action in OCPP {self.version}"]
        if not isinstance(payload, dict):
            return [*reasons, f"CALL {action}: the payload is not a JSON object"]
        return reasons + [f"CALL {action}: {e}" for e in schema_errors(self.version, action, "request", payload)]


_KIND_NAMES = {2: "CALL", 3: "CALLRESULT", 4: "CALLERROR"}


def _other(direction: Direction) -> Direction:
    return "out" if direction == "in" else "in"
