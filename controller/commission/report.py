"""The result of commissioning one charger: its checks, what was measured, and the site-file lines.

A :class:`Check` is ``passed`` (True), failed (False) or skipped (None: ``--no-ev``, or a check
that needs something an earlier one did not establish); ``measured`` is the figure the check is
about (seconds, amps, phases, units …, None where there is none) and ``detail`` one or more
sentences naming what was sent, what came back and what the meter values showed.

A finished run is *incomplete* (:attr:`Report.incomplete`, one reason per check it could not
make) when it did not test what it was asked to: the EV checks skipped for "no EV charging"
without ``--no-ev``, or a check skipped for lack of headroom (or an EV drawing too little). An
incomplete run has not passed (:attr:`Report.passed` False: ``depotctl commission`` exits 1),
although no check failed; its state stays ``"finished"``.

:class:`Report` is what the API returns, SQLite keeps (with history) and the HTML site report
shows. ``to_json``/``from_json`` round-trip exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from controller.commission.options import IEC_61851_REACTION_S

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

REACTION_MAX_S = 120.0
"""The site file's largest ``reaction_s`` (``ChargerSection.reaction_s``, le=120)."""

CheckStatus = Literal["passed", "failed", "skipped"]
RunState = Literal["running", "finished", "aborted"]


def reaction_line_s(reaction_s: float) -> float:
    """The ``reaction_s`` to write in the site file: the measurement rounded *up* to 0.1 s (an
    allowance must not be shorter than what was measured), within the site file's bounds."""
    return min(REACTION_MAX_S, max(0.1, math.ceil(round(reaction_s * 10, 6)) / 10))


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
    """The EV's measured reaction to a lower limit [s]: the slowest step down of ``follows_limit``;
    None unless that check passed (a step not followed or not answered measures nothing usable)."""
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
    incomplete: tuple[str, ...] = ()
    """Why the run did not test everything it was asked to (one sentence per check not made, for
    want of an EV charging or of headroom); empty when it did (``--no-ev`` skips are asked for)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """A check failed."""
        return any(c.passed is False for c in self.checks)

    @property
    def passed(self) -> bool:
        """Finished, complete, with no failed check (skipped checks fail a run only when they make it
        :attr:`incomplete`)."""
        return self.state == "finished" and not self.failed and not self.incomplete

    @property
    def ocpp_quirks_line(self) -> str:
        """The exact line to add under the charger in the site file, empty when none."""
        return f"ocpp_quirks: [{', '.join(self.quirks)}]" if self.quirks else ""

    @property
    def reaction_s_line(self) -> str:
        """The ``reaction_s: N`` line to add under the charger, empty when none: only for a reaction
        slower than the 5 s the controller allows by default (a shorter one would only shorten the
        allowance the shed and the plan give the charger)."""
        r = self.reaction_s
        if r is None or not math.isfinite(r) or r <= IEC_61851_REACTION_S:
            return ""
        return f"reaction_s: {reaction_line_s(r):g}"

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
            "reaction_s_line": self.reaction_s_line,
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
            "incomplete": list(self.incomplete),
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
            incomplete=tuple(str(x) for x in obj.get("incomplete") or ()),
            extra=dict(obj.get("extra", {})),
        )
