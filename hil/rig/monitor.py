"""The safety invariant of issue 12, checked at every step of a rig run.

Two checks per step, on what the rig knows to be true and what the controller believes:

* **(a) overload** — per node and line, the measured load (the rig's truth,
  :meth:`hil.rig.Rig.loads`: each line's current as the magnitude of the phasor sum of the loads
  behind it — line-to-line chargers 30° off their lines, a transformer node on its primary, see
  :mod:`hil.rig.plant`: the rig's *phasor monitor*) against the node's *rated* limit
  (``site.node_limit_a``: the margin is the controller's reserve, the breaker trips at the rating).
  An excursion counts as a violation once it has lasted longer than ``reaction_allowance_s`` (EV
  reaction time + meter poll + 2 s).
* **(b) over budget** — per charger and grid phase, the charger-side limit (what the charger lets
  its EVs draw now by its own profiles, its own clock and its EVs' phases,
  :meth:`hil.chargers.sim.SimCharger.allowed_a`, summed over its connectors and mapped to grid
  phases through its phase rotation) against what the controller budgets for it (connected:
  ``Control.budget``; out of contact: ``ChargerBudgets.offline_a``, the daemon's ``budgets``), with ``tolerance_a``
  for the 0.1 A rounding of profiles. An excursion counts once it has lasted longer than
  ``grace_s`` (a change just sent: the OCPP call timeout). Chargers the controller marks
  uncontrolled are budgeted at what they draw: only (a) holds for them; while no controller runs
  (between a crash and the restart) there is no budget to compare with.

:class:`SafetyMonitor` is the pure part: feed it one :class:`Sample` per step (:meth:`observe`),
read :attr:`SafetyMonitor.violations`. :func:`sample_world` builds a sample from a rig and a
daemon (read-only: nothing is sent, nothing awaited), :func:`watch` samples at a fixed period.
:func:`allowed_loads_a` is what every node would carry if every EV drew what its charger allows
(the limits the controller gave, as phasor sums: the check that the limits themselves respect
each node's phasor limit).
Times are seconds on a monotonic scale chosen by the caller. Units: A per phase throughout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from controller.daemon.sessions import budget_grid_a
from controller.model.site import PHASES, Site
from hil.rig.plant import ZERO, Phase3, add, charger_grid_currents, node_loads

if TYPE_CHECKING:
    from controller.daemon.core import Daemon
    from hil.rig.rig import Rig

Kind = Literal["overload", "over_budget"]
TOLERANCE_A = 0.1
"""Profiles carry limits rounded to 0.1 A: a charger-side limit this far above its budget is rounding."""


@dataclass(frozen=True)
class ChargerSample:
    """One charger at one step: its charger-side limit and the controller's budget, on grid L1..L3 [A]."""

    charger_id: str
    allowed_a: Phase3
    budget_a: Phase3 | None
    """``None``: not compared (uncontrolled, or no controller running)."""
    basis: str
    """Where the budget comes from (``connected: …``, ``out of contact``, ``uncontrolled: …``)."""
    draw_a: Phase3 = ZERO
    """What its EVs draw now (the rig's truth), on grid L1..L3 [A]: context for an overload."""
    nodes: tuple[str, ...] = ()
    """The nodes it loads (its circuit up to the grid): which overloads it takes part in."""


@dataclass(frozen=True)
class Sample:
    """The world at one step: time [s], loads per node [A per grid phase], rated limits [A], chargers."""

    t_s: float
    loads_a: Mapping[str, Phase3]
    limits_a: Mapping[str, float]
    chargers: tuple[ChargerSample, ...] = ()
    believed_a: Mapping[str, Phase3] = field(default_factory=dict)
    """The controller's own view of each node's load, where it has one (context for an overload)."""


@dataclass(frozen=True)
class Violation:
    """An excursion that outlasted its allowance. ``until_s`` is ``None`` while it goes on."""

    kind: Kind
    where: str
    """Node id (overload) or charger id (over budget)."""
    phase: str
    since_s: float
    detected_s: float
    value_a: float
    """The largest value seen during the excursion [A] (so far)."""
    limit_a: float
    """What it was judged against when the value peaked [A] (rated limit, or budget + tolerance)."""
    text: str
    until_s: float | None = None

    @property
    def lasted_s(self) -> float:
        end = self.until_s if self.until_s is not None else self.detected_s
        return end - self.since_s

    def __str__(self) -> str:
        end = "ongoing" if self.until_s is None else f"until {self.until_s:.1f} s"
        return (
            f"{self.kind} {self.where} {self.phase}: {self.value_a:.1f} A > {self.limit_a:.1f} A "
            f"from {self.since_s:.1f} s ({end}, {self.lasted_s:.1f} s) — {self.text}"
        )


@dataclass
class _Excursion:
    since_s: float
    peak_a: float
    limit_a: float
    text: str
    reported: int | None = None
    """Index of its violation in :attr:`SafetyMonitor.violations` once reported."""


class SafetyMonitor:
    """The invariant as a state machine over samples (pure: no I/O, no clock of its own)."""

    def __init__(self, *, reaction_allowance_s: float, grace_s: float, tolerance_a: float = TOLERANCE_A) -> None:
        """``reaction_allowance_s``: how long a node may stay above its rating [s];
        ``grace_s``: how long a charger-side limit may stay above its budget [s] (a change in
        flight); ``tolerance_a``: rounding allowed on a budget [A]."""
        self.reaction_allowance_s = reaction_allowance_s
        self.grace_s = grace_s
        self.tolerance_a = tolerance_a
        self.samples = 0
        self.budget_checks = 0
        """Charger samples compared with a budget (uncontrolled and controller-less ones left out)."""
        self.violations: list[Violation] = []
        self.longest_s: dict[Kind, float] = {"overload": 0.0, "over_budget": 0.0}
        """Longest excursion of each kind so far, violation or not [s]."""
        self.peak_utilisation = 0.0
        """Highest load / rated limit seen at any node."""
        self._open: dict[tuple[Kind, str, int], _Excursion] = {}
        self._last_t: float | None = None

    def observe(self, sample: Sample) -> list[Violation]:
        """Take one step; returns the violations detected at it (also kept in :attr:`violations`)."""
        if self._last_t is not None and sample.t_s < self._last_t:
            raise ValueError(f"samples out of order: {sample.t_s} s after {self._last_t} s")
        self._last_t = sample.t_s
        self.samples += 1
        t = sample.t_s
        over: dict[tuple[Kind, str, int], tuple[float, float, str]] = {}
        for node, load in sample.loads_a.items():
            limit = sample.limits_a.get(node)
            if limit is None:
                continue
            self.peak_utilisation = max(self.peak_utilisation, max(load) / limit if limit > 0 else 0.0)
            for p in range(3):
                if load[p] > limit:
                    over[("overload", node, p)] = (load[p], limit, _overload_text(sample, node, load, limit))
        for ch in sample.chargers:
            if ch.budget_a is None:
                continue
            self.budget_checks += 1
            for p in range(3):
                allowed, budget = ch.allowed_a[p], ch.budget_a[p]
                if allowed > budget + self.tolerance_a:
                    text = (
                        f"charger allows {_fmt(ch.allowed_a)} A, controller budgets {_fmt(ch.budget_a)} A ({ch.basis})"
                    )
                    over[("over_budget", ch.charger_id, p)] = (allowed, budget + self.tolerance_a, text)
        found: list[Violation] = []
        for key in [k for k in self._open if k not in over]:
            self._close(key, t)
        for key, (value, limit, text) in over.items():
            exc = self._open.get(key)
            if exc is None:
                exc = self._open[key] = _Excursion(t, value, limit, text)
            elif value - limit > exc.peak_a - exc.limit_a:
                exc.peak_a, exc.limit_a, exc.text = value, limit, text
            kind, where, p = key
            lasted = t - exc.since_s
            self.longest_s[kind] = max(self.longest_s[kind], lasted)
            allowance = self.reaction_allowance_s if kind == "overload" else self.grace_s
            if exc.reported is None and lasted > allowance:
                v = Violation(kind, where, PHASES[p], exc.since_s, t, exc.peak_a, exc.limit_a, exc.text)
                exc.reported = len(self.violations)
                self.violations.append(v)
                found.append(v)
            elif exc.reported is not None:
                self.violations[exc.reported] = replace(
                    self.violations[exc.reported], value_a=exc.peak_a, limit_a=exc.limit_a, text=exc.text
                )
        return found

    def _close(self, key: tuple[Kind, str, int], t_s: float) -> None:
        exc = self._open.pop(key)
        if exc.reported is not None:
            self.violations[exc.reported] = replace(self.violations[exc.reported], until_s=t_s)

    def summary(self) -> str:
        """One line: samples, checks, longest excursions, peak utilisation, violations."""
        return (
            f"{self.samples} samples, {self.budget_checks} budget checks, longest overload "
            f"{self.longest_s['overload']:.1f} s (allowed {self.reaction_allowance_s:g} s), longest over-budget "
            f"{self.longest_s['over_budget']:.1f} s (allowed {self.grace_s:g} s), peak utilisation "
            f"{self.peak_utilisation:.0%}, {len(self.violations)} violation(s)"
        )


def _fmt(a: Phase3) -> str:
    return "/".join(f"{x:.1f}" for x in a)


def _overload_text(sample: Sample, node: str, load: Phase3, limit: float) -> str:
    believed = sample.believed_a.get(node)
    seen = f"the controller sees {_fmt(believed)} A" if believed is not None else "the controller has no view"
    parts = [
        f"{ch.charger_id} draws {_fmt(ch.draw_a)} (allows {_fmt(ch.allowed_a)}, budget "
        f"{_fmt(ch.budget_a) if ch.budget_a is not None else '-'}: {ch.basis})"
        for ch in sample.chargers
        if node in ch.nodes and max(ch.draw_a) > 0.0
    ]
    return f"load {_fmt(load)} A against a {limit:g} A rating, {seen}; " + ("; ".join(parts) or "no charger drawing")


# --- sampling the rig and the daemon ---------------------------------------------------------------


def charger_side_a(rig: Rig, charger_id: str, site: Site) -> Phase3:
    """What the simulated charger lets its EVs draw now, over every connector, on grid L1..L3 [A]."""
    sim = rig.sim(charger_id)
    total = ZERO
    for connector in sim.connectors:
        total = add(total, sim.allowed_a(connector))
    return charger_grid_currents(site.charger(charger_id), total)


def allowed_loads_a(rig: Rig, site: Site) -> dict[str, Phase3]:
    """Node → each line's current magnitude [A] if every EV drew what its charger allows now
    (:meth:`~hil.chargers.sim.SimCharger.allowed_a`, its own profiles, clock and phases) on top of
    the rig's own base loads: phasor sums, as :meth:`hil.rig.Rig.loads`."""
    allowed: dict[str, Phase3] = {}
    for ch in site.chargers:
        sim = rig.sim(ch.id)
        total = ZERO
        for connector in sim.connectors:
            total = add(total, sim.allowed_a(connector))
        allowed[ch.id] = total
    return node_loads(site, rig.own_base(), allowed)


def controller_budget_a(daemon: Daemon, charger_id: str, now: datetime) -> tuple[Phase3 | None, str]:
    """What the daemon budgets for the charger now on grid L1..L3 [A], and on what basis;
    ``None`` for a charger it marks uncontrolled (budgeted at what it draws)."""
    site = daemon.site
    u = daemon.dispatch.uncontrolled.get(charger_id)
    if u is not None:
        return None, f"uncontrolled: {u.reason}"
    ch = site.charger(charger_id)
    st = daemon.cs.states.get(charger_id)
    if st is not None and st.connected:
        b = daemon.cs.control.budget(charger_id, now)
        return budget_grid_a(site, ch, b.value, b.unit), f"connected: {b.value:g} {b.unit}, {b.source}"
    return daemon.budgets.offline_a(ch, now), "out of contact"


def sample_world(rig: Rig, daemon: Daemon | None, site: Site, t_s: float) -> Sample:
    """One step of the world: the rig's loads and chargers, ``site``'s rated limits (the site file
    in force), the daemon's budgets (``None``: no controller running, budgets not compared).
    Synchronous and read-only, so rig and daemon are seen at the same instant."""
    loads = rig.loads()
    draws = rig.charger_draws()
    limits = {node: site.node_limit_a(node) for node in site.node_ids()}
    now = daemon.clock() if daemon is not None else None
    chargers = []
    for ch in site.chargers:
        allowed = charger_side_a(rig, ch.id, site)
        draw = charger_grid_currents(ch, draws.get(ch.id, ZERO))
        nodes = site.ancestors(ch.circuit)
        if daemon is None or now is None:
            chargers.append(ChargerSample(ch.id, allowed, None, "no controller running", draw, nodes))
            continue
        budget, basis = controller_budget_a(daemon, ch.id, now)
        chargers.append(ChargerSample(ch.id, allowed, budget, basis, draw, nodes))
    believed = dict(daemon.fast.observation.loads_a) if daemon is not None else {}
    return Sample(t_s, loads, limits, tuple(chargers), believed)


async def watch(
    monitor: SafetyMonitor,
    sample: Callable[[], Sample],
    *,
    every_s: float = 0.2,
    on_violation: Callable[[Violation], None] | None = None,
) -> None:
    """Feed ``monitor`` one ``sample()`` every ``every_s`` [s] until cancelled. A sampler that
    raises is a bug in the test world: it propagates (the task ends with it)."""
    while True:
        for v in monitor.observe(sample()):
            if on_violation is not None:
                on_violation(v)
        await asyncio.sleep(every_s)
