"""What a simulation measured, as the JSON object and the human table the CLI prints."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from controller.model.site import PHASES
from controller.simulate.bill import Bill

MET_TOLERANCE = 0.005
MET_TOLERANCE_KWH = 0.1


@dataclass
class SessionOutcome:
    key: str
    charger: str
    vehicle: str | None
    arrive: datetime
    depart: datetime
    requested_kwh: float
    delivered_kwh: float = 0.0
    past_end: bool = False  # still plugged in when the scenario ended: neither met nor missed

    @property
    def has_need(self) -> bool:
        """Has its request: within 0.5 % (or 0.1 kWh) of it — finer than a 1 % SoC step."""
        return self.delivered_kwh >= self.requested_kwh - max(MET_TOLERANCE_KWH, MET_TOLERANCE * self.requested_kwh)

    @property
    def met(self) -> bool:
        """Departed within the scenario with what it asked for."""
        return not self.past_end and self.has_need

    @property
    def missed(self) -> bool:
        """Departed within the scenario without what it asked for."""
        return not self.past_end and not self.has_need

    @property
    def verdict(self) -> str:
        return "past end" if self.past_end else "yes" if self.has_need else "NO"


@dataclass
class Violations:
    count: int = 0
    worst_a: float = 0.0
    ampere_seconds: float = 0.0
    where: dict[str, float] = field(default_factory=dict)  # "node L2" → ampere-seconds


@dataclass(frozen=True)
class MetBound:
    """The most departures any controller could meet with perfect knowledge (a time-limited MILP).

    ``bound`` is an upper bound on any policy's ``departures_met`` for the scenario: the optimum when
    ``proven``, else the best bound HiGHS proved in its time limit (its MIP dual bound, rounded
    down); ``incumbent`` is the most it found a schedule for (None: none found in time).
    """

    bound: int
    incumbent: int | None
    proven: bool
    departures_total: int  # sessions that depart within the scenario (the binaries)
    status: str  # HiGHS's model status
    solve_s: float

    def describe(self) -> str:
        if self.proven:
            return f"at most {self.bound} of {self.departures_total} departures met (proven)"
        found = "none found" if self.incumbent is None else f"best found {self.incumbent}"
        return (
            f"at most {self.bound} of {self.departures_total} departures met (not proven: HiGHS stopped "
            f"with {self.status!r} after {self.solve_s:.1f} s; {found})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "bound": self.bound,
            "proven": self.proven,
            "incumbent": self.incumbent,
            "departures_total": self.departures_total,
            "status": self.status,
            "solve_s": round(self.solve_s, 3),
        }


COST_BOUND_DEFINITION = (
    "the least cost_total any controller could reach with perfect knowledge while meeting at least as "
    "many departures as the energy optimum meets (departures_met_min) and delivering at least the energy "
    "optimum's total energy (optimal_bound_kwh) less the met tolerance of each session it meets "
    "(energy_kwh_min); same model and relaxations as the energy optimum (no AC minimum current, the outer "
    "polygon of each phasor limit), a MILP on HiGHS"
)


@dataclass(frozen=True)
class CostBound:
    """The offline cost bound (policy ``optimal``): :data:`COST_BOUND_DEFINITION`.

    ``bound`` is a lower bound on that least cost that HiGHS proved (the LP optimum, or a MILP's dual
    bound); ``proven``: HiGHS finished (a MILP: ``incumbent`` within 0.1 % of ``bound``), else it
    stopped at its time limit; ``incumbent`` is the least cost it found a schedule for (None: none
    found), ``peak_kw`` that schedule's peak.
    """

    bound: float
    incumbent: float | None
    proven: bool
    departures_met_min: int
    energy_kwh_min: float
    peak_kw: float | None
    currency: str
    status: str
    solve_s: float

    def describe(self) -> str:
        head = (
            f"cost at least {self.bound:.2f} {self.currency} for {self.departures_met_min} departures met and "
            f"{self.energy_kwh_min:.1f} kWh"
        )
        if self.proven:
            return head + " (proven)"
        found = "none found" if self.incumbent is None else f"best found {self.incumbent:.2f}"
        return f"{head} (not proven: HiGHS stopped with {self.status!r} after {self.solve_s:.1f} s; {found})"

    def to_json(self) -> dict[str, Any]:
        return {
            "bound": round(self.bound, 4),
            "proven": self.proven,
            "incumbent": None if self.incumbent is None else round(self.incumbent, 4),
            "peak_kw": None if self.peak_kw is None else round(self.peak_kw, 3),
            "departures_met_min": self.departures_met_min,
            "energy_kwh_min": round(self.energy_kwh_min, 3),
            "currency": self.currency,
            "status": self.status,
            "solve_s": round(self.solve_s, 3),
            "definition": COST_BOUND_DEFINITION,
        }


@dataclass
class SimResult:
    scenario: str
    policy: str
    sessions: list[SessionOutcome]
    violations: Violations
    peak_a: dict[str, tuple[float, float, float]]
    decision_ms: list[float]
    steps: int
    wall_s: float
    optimal_bound_kwh: float | None = None  # the offline energy optimum (policy optimal only)
    max_met: MetBound | None = None  # the most departures any controller could meet (policy optimal only)
    solvers: dict[str, int] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)  # for plots: time, loads, energies
    bill: Bill | None = None  # cost, peak and PV (every policy)
    priced: bool = False  # the scenario has a tariff (energy steps, dated prices or a demand charge)
    cost_bound: CostBound | None = None  # the least cost with perfect knowledge (policy optimal only)

    @property
    def requested_kwh(self) -> float:
        return sum(s.requested_kwh for s in self.sessions)

    @property
    def delivered_kwh(self) -> float:
        return sum(min(s.delivered_kwh, s.requested_kwh) for s in self.sessions)

    @property
    def delivered_ratio(self) -> float:
        return self.delivered_kwh / self.requested_kwh if self.requested_kwh else 1.0

    @property
    def departures_met(self) -> int:
        return sum(s.met for s in self.sessions)

    @property
    def departures_missed(self) -> int:
        return sum(s.missed for s in self.sessions)

    @property
    def departures_total(self) -> int:
        """Sessions that departed within the scenario (met or missed); past-end ones are not counted."""
        return self.departures_met + self.departures_missed

    @property
    def past_end(self) -> int:
        """Sessions still plugged in at the scenario's end: their energy counts, neither met nor missed."""
        return sum(s.past_end for s in self.sessions)

    def first_missed(self) -> SessionOutcome | None:
        missed = [s for s in self.sessions if s.missed]
        return min(missed, key=lambda s: (s.depart, s.key)) if missed else None

    def planner_ms(self) -> dict[str, float]:
        ms = sorted(self.decision_ms) or [0.0]
        return {
            "p50": round(statistics.median(ms), 3),
            "p95": round(ms[min(len(ms) - 1, int(0.95 * len(ms)))], 3),
            "max": round(ms[-1], 3),
        }

    def to_json(self) -> dict[str, Any]:
        first = self.first_missed()
        out: dict[str, Any] = {
            "scenario": self.scenario,
            "policy": self.policy,
            "sessions": [
                {
                    "charger": s.charger,
                    "vehicle": s.vehicle,
                    "arrive": s.arrive.isoformat(),
                    "depart": s.depart.isoformat(),
                    "requested_kwh": round(s.requested_kwh, 3),
                    "delivered_kwh": round(s.delivered_kwh, 3),
                    "met": None if s.past_end else s.met,  # null: still plugged in at the end
                    "past_end": s.past_end,
                }
                for s in self.sessions
            ],
            "requested_kwh": round(self.requested_kwh, 3),
            "delivered_kwh": round(self.delivered_kwh, 3),
            "delivered_ratio": round(self.delivered_ratio, 5),
            "departures_met": self.departures_met,
            "departures_total": self.departures_total,
            "past_end": self.past_end,
            "first_missed": None
            if first is None
            else {"charger": first.charger, "vehicle": first.vehicle, "depart": first.depart.isoformat()},
            "violations": {
                "count": self.violations.count,
                "worst_a": round(self.violations.worst_a, 3),
                "ampere_seconds": round(self.violations.ampere_seconds, 3),
            },
            "peak_a": {
                node: dict(zip(PHASES, (round(a, 2) for a in amps), strict=True)) for node, amps in self.peak_a.items()
            },
            **(self.bill.to_json() if self.bill is not None else {}),
            "planner_ms": self.planner_ms(),
            "steps": self.steps,
            "wall_s": round(self.wall_s, 3),
        }
        if self.optimal_bound_kwh is not None:
            out["optimal_bound_kwh"] = round(self.optimal_bound_kwh, 3)
        if self.max_met is not None:
            out["max_met"] = self.max_met.to_json()
        if self.cost_bound is not None:
            out["optimal_cost_bound"] = round(self.cost_bound.bound, 4)
            out["cost_bound"] = self.cost_bound.to_json()
        if self.solvers:
            out["solvers"] = dict(self.solvers)
        return out


def table(results: list[SimResult]) -> str:
    """One summary row per (scenario, policy).

    ``met`` is met / departed within the scenario; ``past end`` counts the sessions still plugged in
    when it ended (their energy is in ``delivered kWh``; they are neither met nor missed). ``cost``
    is ``cost_total`` (energy and demand charge; — without a tariff), ``peak kW`` the highest window
    average of grid import.
    """
    head = (
        "scenario",
        "policy",
        "delivered kWh",
        "requested kWh",
        "ratio",
        "met",
        "past end",
        "violations",
        "worst A",
        "A·s over",
        "cost",
        "peak kW",
        "p95 ms",
        "first missed",
    )
    rows = [head]
    for r in results:
        first = r.first_missed()
        missed = "—" if first is None else f"{first.charger} {first.depart.strftime('%m-%d %H:%M')}"
        rows.append(
            (
                r.scenario,
                r.policy,
                f"{r.delivered_kwh:.1f}",
                f"{r.requested_kwh:.1f}",
                f"{100 * r.delivered_ratio:.1f}%",
                f"{r.departures_met}/{r.departures_total}",
                str(r.past_end),
                str(r.violations.count),
                f"{r.violations.worst_a:.1f}",
                f"{r.violations.ampere_seconds:.0f}",
                "—" if r.bill is None or not r.priced else f"{r.bill.cost_total:.2f} {r.bill.currency}",
                "—" if r.bill is None else f"{r.bill.peak_kw:.1f}",
                f"{r.planner_ms()['p95']:.1f}",
                missed,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def session_table(result: SimResult) -> str:
    rows = [("session", "charger", "vehicle", "departs", "requested kWh", "delivered kWh", "met")]
    for s in result.sessions:
        rows.append(
            (
                s.key,
                s.charger,
                s.vehicle or "—",
                s.depart.strftime("%m-%d %H:%M"),
                f"{s.requested_kwh:.1f}",
                f"{s.delivered_kwh:.1f}",
                s.verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
