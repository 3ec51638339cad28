"""The result of commissioning one charger: its checks, what was measured, and the site-file lines.

A :class:`Check` is ``passed`` (True), failed (False) or skipped (None: ``--no-ev``, or a check
that needs something an earlier one did not establish); ``measured`` is the figure the check is
about (seconds, amps, phases, units …, None where there is none) and ``detail`` one or more
sentences naming what was sent, what came back and what the meter values showed.

:class:`Report` is what the API returns, SQLite keeps (with history) and the HTML site report
shows. ``to_json``/``from_json`` round-trip exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

CHECK_NAMES: tuple[str, ...] = (
    "connects",
    "clock",
    "failsafe_profile",
    "current_profile",
    "power_profile",
    "phases_in_use",
    "follows_limit",
    "min_current",
    "resume_after_zero",
    "ignores_limit",
    "profile_expiry",
)
"""Every check, in the order a run makes them."""
EV_CHECKS: frozenset[str] = frozenset(
    {"phases_in_use", "follows_limit", "min_current", "resume_after_zero", "ignores_limit", "profile_expiry"}
)
"""The checks that need an EV plugged in and charging (skipped with ``--no-ev``)."""

CheckStatus = Literal["passed", "failed", "skipped"]
RunState = Literal["running", "finished", "aborted"]


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool | None
    """True passed, False failed, None skipped."""
    measured: float | int | str | list[str] | None = None
    detail: str = ""

    @property
    def status(self) -> CheckStatus:
        return "skipped" if self.passed is None else "passed" if self.passed else "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "status": self.status,
            "measured": self.measured,
            "detail": self.detail,
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Check:
        return Check(str(obj["name"]), obj.get("passed"), obj.get("measured"), str(obj.get("detail", "")))


@dataclass(frozen=True)
class Report:
    """One commissioning run of one charger (``state`` running while it goes on: ``checks`` so far)."""

    charger: str
    started: datetime
    finished: datetime | None = None
    state: RunState = "running"
    checks: tuple[Check, ...] = ()
    quirks: tuple[str, ...] = ()
    """Site-file quirks the charger needs (``ocpp_quirks``), sorted."""
    reaction_s: float | None = None
    """The EV's measured reaction to a new limit [s] (median of the steps), None when not measured."""
    clock_offset_s: float | None = None
    """The charger's clock minus ours [s], None when it sent no timestamp."""
    phases_in_use: int | None = None
    units: tuple[str, ...] = ()
    """Rate units the charger accepted in a profile ("A", "W")."""
    no_ev: bool = False
    ocpp_version: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None
    controller_version: str = ""
    error: str | None = None
    """Why a run was aborted (the charger disconnected, the daemon stopped …)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Finished with no failed check (skipped checks do not fail a run)."""
        return self.state == "finished" and all(c.passed is not False for c in self.checks)

    @property
    def ocpp_quirks_line(self) -> str:
        """The exact line to add under the charger in the site file, empty when none."""
        return f"ocpp_quirks: [{', '.join(self.quirks)}]" if self.quirks else ""

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "charger": self.charger,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished is not None else None,
            "state": self.state,
            "passed": self.passed,
            "checks": [c.to_json() for c in self.checks],
            "quirks": list(self.quirks),
            "ocpp_quirks_line": self.ocpp_quirks_line,
            "reaction_s": self.reaction_s,
            "clock_offset_s": self.clock_offset_s,
            "phases_in_use": self.phases_in_use,
            "units": list(self.units),
            "no_ev": self.no_ev,
            "ocpp_version": self.ocpp_version,
            "vendor": self.vendor,
            "model": self.model,
            "firmware": self.firmware,
            "controller_version": self.controller_version,
            "error": self.error,
            "extra": self.extra,
        }

    @staticmethod
    def from_json(obj: dict[str, Any]) -> Report:
        finished = obj.get("finished")
        return Report(
            charger=str(obj["charger"]),
            started=datetime.fromisoformat(obj["started"]),
            finished=datetime.fromisoformat(finished) if finished else None,
            state=obj.get("state", "finished"),
            checks=tuple(Check.from_json(c) for c in obj.get("checks", [])),
            quirks=tuple(obj.get("quirks", [])),
            reaction_s=obj.get("reaction_s"),
            clock_offset_s=obj.get("clock_offset_s"),
            phases_in_use=obj.get("phases_in_use"),
            units=tuple(obj.get("units", [])),
            no_ev=bool(obj.get("no_ev", False)),
            ocpp_version=obj.get("ocpp_version"),
            vendor=obj.get("vendor"),
            model=obj.get("model"),
            firmware=obj.get("firmware"),
            controller_version=str(obj.get("controller_version", "")),
            error=obj.get("error"),
            extra=dict(obj.get("extra", {})),
        )
