"""The scenario file: a site file plus a ``scenario:`` section (format is a contract).

```yaml
scenario:
  start: "2026-03-02T00:00"      # site local time
  duration_h: 24
  step_s: 60
  base_load: [{at: "00:00", a: [30, 25, 28]}, {at: "07:00", a: [80, 70, 75]}]
  circuit_base_load: {feeder-b: [{at: "00:00", a: [10, 10, 10]}]}
  sessions:
    - {charger: CP01, arrive: "2026-03-02T17:40", depart: "2026-03-03T05:30", energy_kwh: 120,
       ev_max_a: 32, ev_phases: 3}
    - {charger: DC01, arrive: "2026-03-02T19:00", depart: "2026-03-03T04:00", energy_kwh: 250,
       ev_max_kw: 150, declared_depart: null}   # departure unknown to the controller
    - {charger: CP02, vehicle: van-3, arrive: "2026-03-02T18:00", depart: "2026-03-03T05:10",
       declared_depart: "2026-03-03T06:00", energy_kwh: 40}   # it left 50 min before it said
  history:                       # past sessions of the site's vehicles, before the scenario
    - {vehicle: van-3, declared: "2026-02-27T06:00", actual: "2026-02-27T05:05"}
  pv_kw: [{at: "00:00", kw: 0}, {at: "10:00", kw: 40}, {at: "15:00", kw: 0}]   # on-site PV output
  tariff:                        # optional: replaces the site's tariff's currency / energy / demand
    currency: EUR
    demand: {price_per_kw: 14.0, window_min: 15}
  prices: [{at: "2026-03-02T17:00", price_per_kwh: 0.42}]   # dated prices (a prices_file's rows)
```
Load profiles repeat daily when ``at`` is HH:MM; an ISO date-time instead pins a step to one moment.
A session may depart after the scenario's end (real session data always has some): it is simulated
up to the end, its energy counts, and it is neither met nor missed (:attr:`Scenario.end`).

A vehicle's departure history (declared vs actual, what the daemon keeps in SQLite) is its
``history:`` entries plus its sessions in the scenario that have ended (each with its
``declared_depart`` and real ``depart``); the ``lp`` policy plans against the estimate from it
(:mod:`controller.fleet.departure_estimate`, docs/departures.md), the heuristics against the
declared departure.

PV (``pv_kw``) is produced at the grid connection (the main board): a balanced current in phase with
the lines' voltages that lowers what the grid meter sees and nothing below it — no circuit gets room
from it. The ``lp`` policy is given the daily steps of the profile as a perfect day-ahead forecast
(dated steps are surprises, as for the base load); ``pv_factor`` (``depotctl simulate --pv-factor``)
scales the real output against that forecast (0.3: a cloudy day the forecast did not see).

``scenario.tariff`` stands in for, or overrides, the site's ``tariff:`` in a simulation: each key
given (``currency``, ``energy``, ``demand``) replaces the site's. ``prices`` are dated prices (what a
``prices_file`` holds): each from its ``at`` until the next, the last one until the end of its hour;
where they cover a moment they win over the daily ``energy`` steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from pathlib import Path as FsPath
from typing import Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from controller.config.checks import is_hhmm, parse_local_datetime
from controller.config.loader import load_site_document, parse_document, validate_model
from controller.config.problems import ConfigError, Problem
from controller.config.yaml_source import Path, YamlDocument
from controller.model.site import DemandCharge, Site, TariffStep


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class LoadStepSection(_Section):
    at: str = Field(description="HH:MM (repeats daily) or an ISO local date-time.")
    a: list[float] = Field(min_length=3, max_length=3, description="Non-EV current on L1, L2, L3 [A].")


class KwStepSection(_Section):
    at: str = Field(description="HH:MM (repeats daily) or an ISO local date-time.")
    kw: float = Field(ge=0, description="PV output [kW].")


class PriceStepSection(_Section):
    at: str = Field(description="HH:MM (energy, repeats daily) or an ISO local date-time (prices).")
    price_per_kwh: float


class DemandSection(_Section):
    price_per_kw: float = Field(ge=0)
    window_min: int = 15
    period: Literal["month"] = "month"


class TariffOverrideSection(_Section):
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    energy: list[PriceStepSection] | None = None
    demand: DemandSection | None = None


class SessionSection(_Section):
    charger: str
    connector: int = Field(1, ge=1)
    arrive: str
    depart: str
    energy_kwh: float = Field(gt=0)
    ev_max_a: float | None = Field(None, gt=0)
    ev_phases: int = Field(3, ge=1, le=3)
    ev_max_kw: float | None = Field(None, gt=0)
    battery_kwh: float | None = Field(None, gt=0)
    declared_depart: str | None = None
    vehicle: str | None = None
    priority: int | None = Field(None, ge=1, le=10)


class HistorySection(_Section):
    vehicle: str
    declared: str = Field(description="The departure declared for the session (ISO local date-time).")
    actual: str = Field(description="When the vehicle really left (ISO local date-time).")


class ScenarioSection(_Section):
    start: str
    duration_h: float = Field(24.0, gt=0, le=24 * 14)
    step_s: float = Field(60.0, ge=1, le=3600)
    base_load: list[LoadStepSection] = Field(default_factory=list)
    circuit_base_load: dict[str, list[LoadStepSection]] = Field(default_factory=dict)
    sessions: list[SessionSection] = Field(default_factory=list)
    history: list[HistorySection] = Field(default_factory=list)
    pv_kw: list[KwStepSection] = Field(default_factory=list)
    tariff: TariffOverrideSection | None = None
    prices: list[PriceStepSection] = Field(default_factory=list)


WINDOWS_MIN = (5, 10, 15, 30, 60)
"""The demand charge's averaging windows a scenario may use (each divides an hour)."""


V = TypeVar("V")
PhaseAmps = tuple[float, float, float]


@dataclass(frozen=True)
class _Steps(Generic[V]):
    """Piecewise-constant values. Daily steps repeat; dated steps apply from then on."""

    daily: tuple[tuple[int, V], ...] = ()  # (minute of day, value)
    dated: tuple[tuple[datetime, V], ...] = ()  # (site-local naive time, value)

    def __bool__(self) -> bool:
        return bool(self.daily or self.dated)

    def _value(self, local: datetime, zero: V) -> V:
        value = zero
        if self.daily:
            minute = local.hour * 60 + local.minute + local.second / 60
            value = self.daily[-1][1]  # wraps from the previous day
            for start, v in self.daily:
                if start <= minute:
                    value = v
        for when, v in self.dated:
            if when <= local:
                value = v
        return value

    def change_points(self, start: datetime, end: datetime) -> list[datetime]:
        """Local times in [start, end) where the profile may change."""
        points = [when for when, _ in self.dated if start <= when < end]
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        while day < end:
            for minute, _ in self.daily:
                t = day + timedelta(minutes=minute)
                if start <= t < end:
                    points.append(t)
            day += timedelta(days=1)
        return sorted(points)


@dataclass(frozen=True)
class KwProfile(_Steps[float]):
    """Power [kW] (the PV output) over time."""

    def at(self, local: datetime) -> float:
        """Power [kW] at site-local time ``local`` (naive)."""
        return self._value(local, 0.0)


@dataclass(frozen=True)
class LoadProfile(_Steps[PhaseAmps]):
    """Current per phase [A] over time."""

    def at(self, local: datetime) -> PhaseAmps:
        """Current [A] per phase at site-local time ``local`` (naive)."""
        return self._value(local, (0.0, 0.0, 0.0))


@dataclass(frozen=True)
class ScenarioSession:
    index: int
    charger_id: str
    connector: int
    arrive: datetime  # aware UTC
    depart: datetime
    energy_kwh: float
    ev_max_a: float | None
    ev_phases: int
    ev_max_kw: float | None
    battery_kwh: float
    declared_depart: datetime | None
    vehicle_id: str | None
    priority: int

    @property
    def key(self) -> str:
        return f"s{self.index:03d}-{self.charger_id}"

    def past_end(self, end: datetime) -> bool:
        """Still plugged in when a scenario ending at ``end`` stops: neither met nor missed."""
        return self.depart > end


@dataclass(frozen=True)
class PastSession:
    """A vehicle's session before the scenario (``history:``): declared vs actual departure."""

    vehicle_id: str
    declared: datetime  # aware UTC
    actual: datetime


@dataclass(frozen=True)
class Scenario:
    name: str
    site: Site
    start: datetime  # aware UTC
    duration_s: float
    step_s: float
    base_load: LoadProfile
    circuit_base_load: dict[str, LoadProfile]
    sessions: tuple[ScenarioSession, ...]
    history: tuple[PastSession, ...] = ()
    pv: KwProfile = KwProfile()
    """PV output at the grid connection (the profile; the real output is ``pv_factor`` × it)."""
    prices: tuple[tuple[datetime, float], ...] = ()
    """Dated energy prices: ``(from, price per kWh)`` (aware UTC), each until the next, the last one
    until the end of its hour (:attr:`controller.model.snapshot.Snapshot.prices`)."""
    pv_factor: float = 1.0
    """The real PV output as a share of the profile (the ``lp`` policy's forecast is the profile)."""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.duration_s)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site.site.timezone)

    def local(self, t: datetime) -> datetime:
        return t.astimezone(self.tz).replace(tzinfo=None)

    def pv_kw(self, t: datetime) -> float:
        """The real PV output at ``t`` [kW]."""
        return self.pv_factor * self.pv.at(self.local(t)) if self.pv else 0.0

    @property
    def priced(self) -> bool:
        """Whether the scenario has anything to price (energy steps, dated prices or a demand charge)."""
        return self.site.tariff.active or bool(self.prices)


def load_scenario(path: str | FsPath) -> Scenario:
    """Read a scenario file. Raises :class:`ConfigError` with file:line for every problem."""
    text = FsPath(path).read_text(encoding="utf-8")
    return load_scenario_text(text, str(path), FsPath(path).stem)


def load_scenario_text(text: str, filename: str, name: str = "scenario") -> Scenario:
    doc = parse_document(text, filename)
    problems: list[Problem] = []
    site: Site | None = None
    try:
        site = load_site_document(doc, filename, extra_sections=("scenario",), offline=True).site
    except ConfigError as exc:
        problems += exc.errors
    if "scenario" not in doc.data:
        problems.append(Problem(("scenario",), "a scenario file needs a `scenario:` section", 1, 1))
        raise ConfigError(filename, problems)
    section: ScenarioSection | None = None
    try:
        section = validate_model(ScenarioSection, doc.data["scenario"], doc, ("scenario",), filename)
    except ConfigError as exc:
        problems += exc.errors
    if site is None or section is None:
        raise ConfigError(filename, sorted(problems, key=lambda p: (p.line, p.col)))
    builder = _Builder(doc, site, filename)
    scenario = builder.build(section, name)
    if builder.problems:
        raise ConfigError(filename, sorted(builder.problems, key=lambda p: (p.line, p.col)))
    assert scenario is not None
    return scenario


class _Builder:
    def __init__(self, doc: YamlDocument, site: Site, filename: str) -> None:
        self.doc = doc
        self.site = site
        self.filename = filename
        self.tz = ZoneInfo(site.site.timezone)
        self.problems: list[Problem] = []

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        mark = self.doc.mark_for(path, prefer_key=at_key)
        self.problems.append(Problem(path, message, mark.line, mark.col))

    def when(self, text: str, path: Path) -> datetime | None:
        local = parse_local_datetime(text)
        if local is None:
            self.error(path, f"expected an ISO local date-time like 2026-03-02T17:40, got {text!r}")
            return None
        return local.replace(tzinfo=self.tz).astimezone(ZoneInfo("UTC"))

    def profile(self, steps: list[LoadStepSection], path: Path) -> LoadProfile:
        daily: list[tuple[int, tuple[float, float, float]]] = []
        dated: list[tuple[datetime, tuple[float, float, float]]] = []
        for i, step in enumerate(steps):
            amps = (step.a[0], step.a[1], step.a[2])
            if any(a < 0 for a in amps):
                self.error((*path, i, "a"), "currents must not be negative")
            if is_hhmm(step.at):
                hours, minutes = step.at.split(":")
                daily.append((int(hours) * 60 + int(minutes), amps))
            elif (local := parse_local_datetime(step.at)) is not None:
                dated.append((local, amps))
            else:
                self.error((*path, i, "at"), f"expected HH:MM or an ISO local date-time, got {step.at!r}")
        daily.sort()
        dated.sort()
        return LoadProfile(tuple(daily), tuple(dated))

    def build(self, sec: ScenarioSection, name: str) -> Scenario | None:
        root: Path = ("scenario",)
        start = self.when(sec.start, (*root, "start"))
        if sec.step_s > sec.duration_h * 3600:
            self.error((*root, "step_s"), "step is longer than the whole scenario")
        base = self.profile(sec.base_load, (*root, "base_load"))
        circuits = {c.id for c in self.site.circuits}
        per_circuit: dict[str, LoadProfile] = {}
        for cid, steps in sec.circuit_base_load.items():
            if cid not in circuits:
                self.error((*root, "circuit_base_load", cid), f"unknown circuit {cid!r}", at_key=True)
            per_circuit[cid] = self.profile(steps, (*root, "circuit_base_load", cid))
        end = start + timedelta(hours=sec.duration_h) if start is not None else None
        built = [self.session(i, raw, start, end) for i, raw in enumerate(sec.sessions)]
        sessions = [s for s in built if s is not None]
        self.overlaps(sessions)
        history = [h for i, raw in enumerate(sec.history) if (h := self.past(i, raw, start)) is not None]
        pv = self.kw_profile(sec.pv_kw, (*root, "pv_kw"))
        site = self.tariffed(sec.tariff)
        prices = self.dated_prices(sec.prices, (*root, "prices"))
        if start is None:
            return None
        return Scenario(
            name=name,
            site=site,
            start=start,
            duration_s=sec.duration_h * 3600,
            step_s=sec.step_s,
            base_load=base,
            circuit_base_load=per_circuit,
            sessions=tuple(sessions),
            history=tuple(sorted(history, key=lambda h: (h.actual, h.vehicle_id))),
            pv=pv,
            prices=prices,
        )

    def kw_profile(self, steps: list[KwStepSection], path: Path) -> KwProfile:
        daily: dict[int, float] = {}
        dated: dict[datetime, float] = {}
        for i, step in enumerate(steps):
            if is_hhmm(step.at):
                hours, minutes = step.at.split(":")
                key = int(hours) * 60 + int(minutes)
                if key in daily:
                    self.error((*path, i, "at"), f"two steps at {step.at}")
                daily[key] = step.kw
            elif (local := parse_local_datetime(step.at)) is not None:
                if local in dated:
                    self.error((*path, i, "at"), f"two steps at {step.at}")
                dated[local] = step.kw
            else:
                self.error((*path, i, "at"), f"expected HH:MM or an ISO local date-time, got {step.at!r}")
        return KwProfile(tuple(sorted(daily.items())), tuple(sorted(dated.items())))

    def tariffed(self, sec: TariffOverrideSection | None) -> Site:
        """The site with the scenario's tariff keys in place of its own."""
        if sec is None:
            return self.site
        path: Path = ("scenario", "tariff")
        tariff = self.site.tariff
        if sec.currency is not None:
            tariff = replace(tariff, currency=sec.currency)
        if sec.energy is not None:
            steps: list[TariffStep] = []
            for i, step in enumerate(sec.energy):
                if not is_hhmm(step.at):
                    self.error(
                        (*path, "energy", i, "at"), f"energy steps repeat daily: expected HH:MM, got {step.at!r}"
                    )
                    continue
                at = time(int(step.at[:2]), int(step.at[3:]))
                if steps and at <= steps[-1].at:
                    self.error(
                        (*path, "energy", i, "at"),
                        f"energy steps must be in time order ({step.at} after {steps[-1].at:%H:%M})",
                    )
                    continue
                steps.append(TariffStep(at, step.price_per_kwh))
            tariff = replace(tariff, energy=tuple(steps))
        if sec.demand is not None:
            if sec.demand.window_min not in WINDOWS_MIN:
                self.error(
                    (*path, "demand", "window_min"),
                    f"window_min must be one of {', '.join(map(str, WINDOWS_MIN))}, got {sec.demand.window_min}",
                )
            tariff = replace(
                tariff, demand=DemandCharge(sec.demand.price_per_kw, sec.demand.window_min, sec.demand.period)
            )
        return replace(self.site, tariff=tariff)

    def dated_prices(self, steps: list[PriceStepSection], path: Path) -> tuple[tuple[datetime, float], ...]:
        out: list[tuple[datetime, float]] = []
        for i, step in enumerate(steps):
            local = parse_local_datetime(step.at)
            if local is None:
                self.error(
                    (*path, i, "at"), f"dated prices need an ISO local date-time like 2026-03-02T17:00, got {step.at!r}"
                )
                continue
            when = local.replace(tzinfo=self.tz).astimezone(ZoneInfo("UTC"))
            if out and when <= out[-1][0]:
                self.error((*path, i, "at"), "dated prices must be in time order, each at its own time")
                continue
            out.append((when, step.price_per_kwh))
        return tuple(out)

    def past(self, i: int, h: HistorySection, start: datetime | None) -> PastSession | None:
        path: Path = ("scenario", "history", i)
        if all(v.id != h.vehicle for v in self.site.vehicles):
            self.error((*path, "vehicle"), f"unknown vehicle {h.vehicle!r}")
        declared = self.when(h.declared, (*path, "declared"))
        actual = self.when(h.actual, (*path, "actual"))
        if declared is None or actual is None:
            return None
        if start is not None and actual > start:
            self.error((*path, "actual"), f"history is before the scenario: {h.actual} is after its start")
            return None
        return PastSession(h.vehicle, declared, actual)

    def session(
        self, i: int, s: SessionSection, start: datetime | None, end: datetime | None
    ) -> ScenarioSession | None:
        path: Path = ("scenario", "sessions", i)
        try:
            charger = self.site.charger(s.charger)
        except KeyError:
            self.error((*path, "charger"), f"unknown charger {s.charger!r}")
            return None
        if s.connector > charger.connectors:
            self.error((*path, "connector"), f"{s.charger} has {charger.connectors} connector(s)")
        arrive = self.when(s.arrive, (*path, "arrive"))
        depart = self.when(s.depart, (*path, "depart"))
        declared: datetime | None = None
        if "declared_depart" not in s.model_fields_set:
            declared = depart
        elif s.declared_depart is not None:
            declared = self.when(s.declared_depart, (*path, "declared_depart"))
        if arrive is None or depart is None:
            return None
        if depart <= arrive:
            self.error((*path, "depart"), f"departs ({s.depart}) before it arrives ({s.arrive})")
            return None
        if start is not None and arrive < start:
            self.error((*path, "arrive"), f"arrives ({s.arrive}) before the scenario starts")
        if end is not None and arrive >= end:
            self.error((*path, "arrive"), f"arrives ({s.arrive}) at or after the scenario's end")
        # a departure after the end is fine: simulated up to the end, then neither met nor missed
        if charger.kind == "dc" and s.ev_max_kw is None and charger.max_kw is None:
            self.error(path, "a DC session needs ev_max_kw")
        if charger.kind == "ac" and s.ev_phases not in (1, 3):
            self.error((*path, "ev_phases"), f"an AC vehicle draws on 1 or 3 phases, got {s.ev_phases}")
        if charger.kind == "ac" and s.ev_phases > charger.phases:
            self.error((*path, "ev_phases"), f"{s.charger} is wired for {charger.phases} phase(s)")
        priority = s.priority
        if s.vehicle is not None:
            try:
                vehicle = self.site.vehicle(s.vehicle)
                priority = priority or vehicle.priority
            except KeyError:
                self.error((*path, "vehicle"), f"unknown vehicle {s.vehicle!r}")
        battery = s.battery_kwh or max(s.energy_kwh / 0.8, s.energy_kwh + 10.0)
        if s.energy_kwh > battery:
            self.error((*path, "energy_kwh"), f"{s.energy_kwh:g} kWh is more than the battery ({battery:g} kWh)")
        return ScenarioSession(
            index=i,
            charger_id=s.charger,
            connector=s.connector,
            arrive=arrive,
            depart=depart,
            energy_kwh=s.energy_kwh,
            ev_max_a=s.ev_max_a,
            ev_phases=s.ev_phases if charger.kind == "ac" else 3,
            ev_max_kw=s.ev_max_kw,
            battery_kwh=battery,
            declared_depart=declared,
            vehicle_id=s.vehicle,
            priority=priority or 5,
        )

    def overlaps(self, sessions: list[ScenarioSession]) -> None:
        by_connector: dict[tuple[str, int], list[ScenarioSession]] = {}
        for s in sessions:
            by_connector.setdefault((s.charger_id, s.connector), []).append(s)
        for (charger, connector), group in by_connector.items():
            group.sort(key=lambda s: s.arrive)
            for before, after in itertools.pairwise(group):
                if after.arrive < before.depart:
                    self.error(
                        ("scenario", "sessions", after.index, "arrive"),
                        f"{charger} connector {connector} is still taken by sessions[{before.index}] until "
                        f"{before.depart.astimezone(self.tz):%Y-%m-%dT%H:%M}",
                    )
