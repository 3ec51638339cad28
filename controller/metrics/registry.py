"""Every metric the daemon exports, owned by one :class:`DepotMetrics` and its own registry.

The names in :data:`CONTRACT_NAMES` are a contract with dashboards and alert rules: extend, never
rename. Units are in the names (``_amperes``, ``_watts``, ``_seconds``, ``_wh_total``); phases are
labelled ``L1``/``L2``/``L3`` and the grid connection is the circuit ``grid``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

CONTRACT_NAMES: Final[tuple[str, ...]] = (
    "depot_grid_current_amperes",
    "depot_grid_power_watts",
    "depot_circuit_limit_amperes",
    "depot_circuit_load_amperes",
    "depot_circuit_headroom_amperes",
    "depot_charger_connected",
    "depot_charger_limit_amperes",
    "depot_charger_current_amperes",
    "depot_charger_energy_wh_total",
    "depot_session_unmet_energy_wh",
    "depot_plan_duration_seconds",
    "depot_plan_solver",
    "depot_meter_reads_total",
    "depot_meter_age_seconds",
    "depot_failsafe_active",
    "depot_overload_sheds_total",
    "depot_profile_pushes_total",
    "depot_limit_exceeded_seconds_total",
    "depot_departure_at_risk",
    "depot_charger_uncontrolled",
    "depot_charger_clock_offset_seconds",
    "depot_charger_failsafe_installed",
    "depot_energy_price",
    "depot_demand_peak_kw",
    "depot_energy_cost_total",
)
"""The metric names dashboards and alerts rely on, as they appear in a scrape."""

EXTRA_NAMES: Final[tuple[str, ...]] = (
    "depot_failsafe_reason_info",
    "depot_store_dropped_total",
    "depot_plan_last_timestamp_seconds",
    "depot_plan_sessions",
)
"""Useful extras outside the contract (may still change)."""

PLAN_BUCKETS_S: Final[tuple[float, ...]] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Plan duration buckets [s]: a plan normally takes milliseconds; ``control.solver_time_limit_s`` is 2 s."""


class SettableCounter(Collector):
    """A counter whose value is set from a device's own cumulative register (e.g. a charger's Wh).

    prometheus-client's :class:`Counter` can only be incremented; an energy register is read, not
    counted. A reset of the device's register shows as a counter reset, which ``rate()`` handles.
    """

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...], unit: str = "") -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.unit = unit
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()  # set from the event loop, collected from the server thread

    def set(self, labelvalues: tuple[str, ...], value: float) -> None:
        if len(labelvalues) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {labelvalues}")
        with self._lock:
            self._values[labelvalues] = float(value)

    def remove(self, labelvalues: tuple[str, ...]) -> None:
        with self._lock:
            self._values.pop(labelvalues, None)

    def label_sets(self) -> list[tuple[str, ...]]:
        with self._lock:
            return list(self._values)

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=list(self.labelnames), unit=self.unit)

    def describe(self) -> Iterable[CounterMetricFamily]:
        return [self._family()]

    def collect(self) -> Iterable[CounterMetricFamily]:
        family = self._family()
        with self._lock:
            values = sorted(self._values.items())
        for labelvalues, value in values:
            family.add_metric(list(labelvalues), value)
        return [family]


class DepotMetrics:
    """The daemon's metrics in a registry of their own (never the process-global default).

    Several instances (tests, a reloaded daemon) never collide. Update them through
    :mod:`controller.metrics.update`; serve ``registry`` with :mod:`controller.metrics.server`.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._labelnames: dict[MetricWrapperBase, tuple[str, ...]] = {}
        r = self.registry

        # --- grid connection --------------------------------------------------------------
        self.grid_current = Gauge(
            "depot_grid_current_amperes", "Measured current at the grid connection per phase [A].",
            ["phase"], registry=r)
        self.grid_power = Gauge(
            "depot_grid_power_watts", "Measured active power at the grid connection [W], import positive.",
            registry=r)

        # --- circuits (from the last plan) -------------------------------------------------
        self.circuit_limit = Gauge(
            "depot_circuit_limit_amperes",
            "Usable current limit of a circuit node per line [A]: rated limit minus margin (circuit=grid is the "
            "connection).", ["circuit", "phase"], registry=r)
        self.circuit_load = Gauge(
            "depot_circuit_load_amperes",
            "Planned first-slot load of a circuit node per line [A]: base load plus EV current, the magnitude of "
            "the phasor sum (a transformer node on its primary).",
            ["circuit", "phase"], registry=r)
        self.circuit_headroom = Gauge(
            "depot_circuit_headroom_amperes",
            "Usable limit minus planned load of a circuit node per line [A] (phasor magnitudes); negative means "
            "overloaded.",
            ["circuit", "phase"], registry=r)

        # --- chargers ----------------------------------------------------------------------
        self.charger_connected = Gauge(
            "depot_charger_connected", "1 while the charger's OCPP connection is up, else 0.",
            ["charger"], registry=r)
        self.charger_limit = Gauge(
            "depot_charger_limit_amperes",
            "Limit the plan enforces on the charger now [A per phase]; for DC the planned grid current.",
            ["charger"], registry=r)
        self.charger_current = Gauge(
            "depot_charger_current_amperes", "Current the charger reports drawing per grid phase [A].",
            ["charger", "phase"], registry=r)
        self.charger_energy = SettableCounter(
            "depot_charger_energy_wh", "Energy delivered by the charger as its meter register reports it [Wh].",
            ("charger",))
        r.register(self.charger_energy)
        self.session_unmet = Gauge(
            "depot_session_unmet_energy_wh",
            "Planned shortfall at departure of the session on the charger [Wh]; 0 when the departure will be met.",
            ["charger"], registry=r)

        # --- charger safety (is the charger under our control at all?) ------------------------
        self.charger_uncontrolled = Gauge(
            "depot_charger_uncontrolled",
            "1 while the charger rejects or ignores its limits: budgeted at what it draws (up to its maximum) and "
            "left out of the plan; else 0.", ["charger"], registry=r)
        self.charger_clock_offset = Gauge(
            "depot_charger_clock_offset_seconds",
            "Measured offset of the charger's clock, charger minus depotctl [s]: positive = the charger is ahead. "
            "No series until it was measured.", ["charger"], registry=r)
        self.charger_failsafe_installed = Gauge(
            "depot_charger_failsafe_installed",
            "1 once the charger confirmed its fail-safe profile (what it falls back to without depotctl); 0 while "
            "not, and it is budgeted at its maximum.", ["charger"], registry=r)
        self.safety_seen: dict[str, tuple[bool, float | None, bool]] = {}
        """Per charger, the safety values last set (the fast loop sets them every cycle: only
        changes go to the collectors). Cleared with the series (:func:`observe_site`)."""
        self.charger_seen: dict[str, tuple[bool, tuple[float, ...] | None, float | None]] = {}
        """Per charger, the link state, currents and energy register last set (the same rule:
        a charger's meter values come every ``ocpp.meter_sample_s``, the fast loop runs every
        second). Cleared with the series (:func:`observe_site`)."""

        # --- planner -----------------------------------------------------------------------
        self.plan_duration = Histogram(
            "depot_plan_duration_seconds", "Wall time of one planning cycle, model build and solve [s].",
            buckets=PLAN_BUCKETS_S, registry=r)
        self.plan_solver = Gauge(
            "depot_plan_solver", "1 for the solver that produced the last plan (highs, cbc, heuristic, none), else 0.",
            ["solver"], registry=r)

        # --- meters ------------------------------------------------------------------------
        self.meter_reads = Counter(
            "depot_meter_reads", "Meter read attempts by result (ok, error, timeout, implausible, ...).",
            ["meter", "result"], registry=r)
        self.meter_age = Gauge(
            "depot_meter_age_seconds", "Time since the meter's last good read [s].", ["meter"], registry=r)

        # --- safety ------------------------------------------------------------------------
        self.failsafe_active = Gauge(
            "depot_failsafe_active", "1 while the site runs in fail-safe (every charger at its fail-safe limit).",
            registry=r)
        self.overload_sheds = Counter(
            "depot_overload_sheds", "Overload sheds by the fast loop, by the circuit node that was over its limit.",
            ["circuit"], registry=r)
        self.profile_pushes = Counter(
            "depot_profile_pushes", "Charging profiles sent to chargers, by result (accepted, rejected, error, ...).",
            ["charger", "result"], registry=r)
        self.limit_exceeded = Counter(
            "depot_limit_exceeded_seconds", "Time a circuit node's measured current was above its rated limit [s].",
            ["circuit", "phase"], registry=r)

        # --- fleet -------------------------------------------------------------------------
        self.departure_at_risk = Gauge(
            "depot_departure_at_risk", "1 when the plan says the vehicle will not have its energy at departure.",
            ["vehicle"], registry=r)

        # --- the bill (issue 16) --------------------------------------------------------------
        self.energy_price = Gauge(
            "depot_energy_price",
            "Price of grid energy now, per kWh in the tariff's currency (the prices file where it covers now, else "
            "the site's daily tariff). No series without a price.", ["currency"], registry=r)
        self.demand_peak = Gauge(
            "depot_demand_peak_kw",
            "The billing period's peak so far [kW]: the highest tariff.demand.window_min average of grid import this "
            "(site-local) month, or what the window in progress has already committed if higher; 0 at the period's "
            "start.", registry=r)
        self.energy_cost = SettableCounter(
            "depot_energy_cost",
            "Cost of grid import [currency]: import kWh × the price in force, integrated each second from the grid "
            "meter and kept across restarts (SQLite). Falls only where prices are negative.", ("currency",))
        r.register(self.energy_cost)

        # --- extras, outside the contract ----------------------------------------------------
        self.failsafe_reason = Info(
            "depot_failsafe_reason", "Why the site is in fail-safe (empty reason when it is not).", registry=r)
        self.store_dropped = Counter(
            "depot_store_dropped", "Records the storage queue dropped because it was full.", registry=r)
        self.plan_last_timestamp = Gauge(
            "depot_plan_last_timestamp_seconds", "Unix time of the last plan [s].", registry=r)
        self.plan_sessions = Gauge(
            "depot_plan_sessions", "Sessions in the last plan.", registry=r)

        for metric, labels in (
            (self.grid_current, ("phase",)),
            (self.circuit_limit, ("circuit", "phase")),
            (self.circuit_load, ("circuit", "phase")),
            (self.circuit_headroom, ("circuit", "phase")),
            (self.charger_connected, ("charger",)),
            (self.charger_limit, ("charger",)),
            (self.charger_current, ("charger", "phase")),
            (self.session_unmet, ("charger",)),
            (self.charger_uncontrolled, ("charger",)),
            (self.charger_clock_offset, ("charger",)),
            (self.charger_failsafe_installed, ("charger",)),
            (self.plan_solver, ("solver",)),
            (self.meter_reads, ("meter", "result")),
            (self.meter_age, ("meter",)),
            (self.overload_sheds, ("circuit",)),
            (self.profile_pushes, ("charger", "result")),
            (self.limit_exceeded, ("circuit", "phase")),
            (self.departure_at_risk, ("vehicle",)),
            (self.energy_price, ("currency",)),
        ):
            self._labelnames[metric] = labels

    # --- label bookkeeping ----------------------------------------------------------------
    def labelnames(self, metric: MetricWrapperBase) -> tuple[str, ...]:
        return self._labelnames.get(metric, ())

    def label_sets(self, metric: MetricWrapperBase) -> list[dict[str, str]]:
        """The label sets the metric has children for, read back through its public ``collect()``."""
        names = self.labelnames(metric)
        seen: dict[tuple[str, ...], dict[str, str]] = {}
        for family in metric.collect():
            for sample in family.samples:
                key = tuple(sample.labels.get(n, "") for n in names)
                seen.setdefault(key, {n: sample.labels.get(n, "") for n in names})
        return list(seen.values())

    def remove_where(self, metric: MetricWrapperBase, label: str, keep: Iterable[str]) -> None:
        """Drop every child of ``metric`` whose ``label`` is not in ``keep``."""
        names = self.labelnames(metric)
        if label not in names:
            raise ValueError(f"{label!r} is not a label of this metric")
        allowed = set(keep)
        for labels in self.label_sets(metric):
            if labels[label] not in allowed:
                metric.remove(*(labels[n] for n in names))

    # --- what a scrape shows ----------------------------------------------------------------
    def families(self) -> Iterator[tuple[str, str]]:
        """``(family name, type)`` of every registered metric, from the registry's descriptions."""
        for family in self.registry.collect():
            yield family.name, family.type

    def exported_names(self) -> frozenset[str]:
        """Every series name a scrape can contain, label sets or not (``_total``, ``_bucket``, ...)."""
        return frozenset(exported_series(dict(self.families())))


def exported_series(families: Mapping[str, str]) -> Iterator[str]:
    """Series names for ``{family name: type}`` as the text exposition writes them."""
    for name, kind in families.items():
        if kind == "counter":
            yield from (f"{name}_total", f"{name}_created")
        elif kind == "histogram":
            yield from (f"{name}_bucket", f"{name}_sum", f"{name}_count", f"{name}_created")
        elif kind == "summary":
            yield from (name, f"{name}_sum", f"{name}_count", f"{name}_created")
        elif kind == "info":
            yield f"{name}_info"
        else:
            yield name
