"""The simulated depot on loopback: meters, chargers, EVs and the wiring between them.

``Rig(site, day)`` builds one :class:`~hil.meter.SimMeter` per site meter (its preset, or its
custom register map, on its unit id; meters sharing a ``host:port`` share one
:class:`~hil.meter.MeterSimServer`, a gateway) and one :class:`~hil.chargers.SimCharger` per site
charger (the day's OCPP version; AC: the site's ``max_a``, phases, connectors and quirks; DC: see
:mod:`hil.rig.plant`). ``await start()`` opens the meter ports and runs

* the **coupling** every ``tick_s``: every EV is advanced to now, every node's load is its own base
  (the day's, or :meth:`Rig.set_base`) plus its children's plus its chargers' draws through their
  phase rotation, each line the magnitude of a phasor sum (line-to-line chargers, transformer
  primaries: :func:`~hil.rig.plant.node_phasors`), every simulated meter is set to its node's
  line-current magnitudes (the base, and the rest as EV current) with each line's power factor
  (a line-to-line load is 30° off its lines) at its measuring frame's voltage to neutral (a meter
  on a transformer node sits on the primary; an ``invert`` meter sees export), and the ground
  truth accumulates (:class:`~hil.rig.plant.GroundTruth`);
* the **day**: each visit plugs in at its ``arrive_s`` (retried while its charger is offline),
  2.0.1 chargers pass the vehicle's announcement on (NotifyEVChargingNeeds), and it leaves at its
  ``depart_s`` with what it got (a charger offline then ends the session locally).

Times are seconds since ``start()`` by the injected ``clock``. Chargers connect with
:meth:`Rig.connect_chargers` (``keep_connected=True``: each reconnects after a lost link with a
bounded back-off, e.g. while the daemon restarts). Every wait is bounded; :meth:`Rig.stop` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from controller.meter.registers import RegisterMap, static_map_for
from controller.model.site import GRID_ID, PHASES, Site
from hil.chargers.sim import SimCharger, SimOptions
from hil.meter import MeterSimServer, SimMeter
from hil.rig.config import LOOPBACK, default_ocpp_url, endpoint
from hil.rig.day import VERSION_201, RigDay, RigSummary, Visit, VisitRecord, summarise
from hil.rig.plant import (
    ZERO,
    GroundTruth,
    Phase3,
    add,
    magnitudes,
    meter_nodes,
    meter_voltages_v,
    node_loads,
    node_phasors,
    power_factors,
    sim_ev,
    sim_max_a,
    sim_phases,
    sim_voltage_v,
)

LOG = logging.getLogger("hil.rig")
PLUG_RETRY_S = 0.5
"""How often a vehicle whose charger is offline tries to plug in again [s]."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RigEvent:
    """Something that happened in the rig, for logs and the demo's console.

    ``kind``: ``start``/``stop``, ``link`` (a charger connected or lost its link), ``arrive``
    (plugged in, or waiting for an offline charger), ``plug`` (a session could not start yet),
    ``announce`` (2.0.1 NotifyEVChargingNeeds), ``depart`` (with energy and verdict), ``base`` (a
    noted base-load step), ``exceed`` (a node phase went above / came back under its rating).
    """

    t_s: float
    kind: str
    text: str

    def __str__(self) -> str:
        return f"{self.t_s:7.1f} s  {self.kind:<10} {self.text}"


class Rig:
    """The whole simulated depot. Use as ``async with Rig(site, day) as rig: …``."""

    def __init__(
        self,
        site: Site,
        day: RigDay | None = None,
        *,
        meter_host: str = LOOPBACK,
        meter_ports: Mapping[str, int] | None = None,
        ocpp_url: str | None = None,
        tick_s: float = 0.1,
        clock: Clock = utc_now,
        on_event: Callable[[RigEvent], None] | None = None,
        call_timeout_s: float = 5.0,
        noise_a: float = 0.1,
        seed: int = 0,
        sim_options: Mapping[str, Mapping[str, Any]] | None = None,
        meter_threads: bool = False,
    ) -> None:
        """``meter_ports``: site ``host:port`` → the port to serve it on here (0: a free port;
        endpoints left out keep the site's port). ``call_timeout_s`` bounds each OCPP call [s].
        ``noise_a``: every tick, each non-zero own base load flickers by up to ± this [A] (seeded
        by ``seed``), as real loads do — a meter whose registers never move looks frozen.
        ``sim_options``: charger id → :class:`~hil.chargers.sim.SimOptions` fields that charger's
        simulation gets instead of the site's (e.g. ``{"CP07": {"reject_profiles": True}}``,
        ``{"CP08": {"quirks": {"power_only"}, "clock_offset_s": -120}}``): hostile behaviour the
        controller is *not* told about. ``quirks`` replaces the site's ``ocpp_quirks``.
        ``meter_threads``: each meter endpoint answers from a thread of its own, as a real meter
        answers whatever the chargers do (:class:`~hil.meter.server.MeterSimServer`; for a rig
        of hundreds of chargers, whose loop a flood of profile calls holds). Raises
        ``ValueError`` for an unknown charger or field."""
        self.site = site
        self.day = day if day is not None else RigDay(0.0)
        self.day.validate(site)
        self._sim_overrides = _check_sim_options(site, sim_options or {})
        self.tick_s = tick_s
        self.clock = clock
        self.on_event = on_event
        self.call_timeout_s = call_timeout_s
        self.noise_a = noise_a
        self._rng = random.Random(seed)
        self._jitter: dict[str, Phase3] = {}
        self.ocpp_url = ocpp_url or default_ocpp_url(site)
        self._meters: dict[str, SimMeter] = {}
        self._meter_endpoint: dict[str, str] = {}
        self._servers: dict[str, MeterSimServer] = {}
        self._build_meters(meter_host, meter_ports or {}, meter_threads)
        self._meter_nodes = {m: n for m, n in meter_nodes(site).items() if m in self._meters}
        self._sims = {ch.id: SimCharger(self._options(ch.id), clock=clock) for ch in site.chargers}
        self._records = [VisitRecord(v) for v in sorted(self.day.visits, key=lambda v: v.arrive_s)]
        self._overrides: dict[str, tuple[float, Phase3]] = {}
        self.truth = GroundTruth(site)
        self._loads: dict[str, Phase3] = dict.fromkeys(site.node_ids(), ZERO)
        self._t0: datetime | None = None
        self._last_t = 0.0
        self._stopped_at: float | None = None
        self._steps = sorted(self.day.base, key=lambda s: s.t_s)
        self._steps_told = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._keepers: dict[str, asyncio.Task[None]] = {}

    # --- construction -------------------------------------------------------------------------
    def _build_meters(self, host: str, ports: Mapping[str, int], own_threads: bool) -> None:
        groups: dict[str, list[SimMeter]] = {}
        framers: dict[str, Literal["tcp", "rtu"]] = {}
        placed = meter_nodes(self.site)
        for m in self.site.meters:
            if m.modbus.serial is not None:
                LOG.warning("meter %s is on serial line %s: not simulated", m.id, m.modbus.serial)
                continue
            preset: str | RegisterMap | None = m.preset
            if preset is None:
                preset = static_map_for(m)
            if preset is None:
                continue
            sim = SimMeter(m.modbus.unit, preset)
            sim.set_voltage(meter_voltages_v(self.site, placed.get(m.id, GRID_ID)))
            if m.invert:
                sim.state.power_factor = -1.0  # mounted the other way round: it sees export
            key = endpoint(m)
            groups.setdefault(key, []).append(sim)
            framers[key] = m.modbus.framer
            self._meters[m.id] = sim
            self._meter_endpoint[m.id] = key
        unknown = sorted(set(ports) - set(groups))
        if unknown:
            raise ValueError(f"meter_ports: no meter of the site at {', '.join(unknown)} (has: {', '.join(groups)})")
        for key, sims in groups.items():
            port = ports.get(key, int(key.rpartition(":")[2]))
            self._servers[key] = MeterSimServer(
                sims, host=host, port=port, framer=framers[key], own_thread=own_threads
            )

    def _options(self, charger_id: str) -> SimOptions:
        ch = self.site.charger(charger_id)
        options = SimOptions(
            charger_id,
            version=self.day.version(charger_id),
            max_a=sim_max_a(self.site, ch),
            phases=sim_phases(ch),
            voltage_v=sim_voltage_v(self.site, ch),
            connectors=ch.connectors,
            quirks=frozenset(ch.ocpp_quirks),
            tick_s=self.tick_s,
            line_to_line=ch.line_to_line,
        )
        return replace(options, **self._sim_overrides.get(charger_id, {}))

    # --- access for tests and the demo --------------------------------------------------------
    def sim(self, charger_id: str) -> SimCharger:
        return self._sims[charger_id]

    @property
    def sims(self) -> Mapping[str, SimCharger]:
        return self._sims

    def sim_meter(self, meter_id: str) -> SimMeter:
        """The simulated meter (``misbehave(fault)``, ``heal()``, ``state``)."""
        return self._meters[meter_id]

    def meter_server(self, meter_id: str) -> MeterSimServer:
        """The Modbus server (gateway) hosting the meter (``stop()`` = meter gone)."""
        return self._servers[self._meter_endpoint[meter_id]]

    @property
    def meter_ports(self) -> dict[str, int]:
        """Site ``host:port`` → the port it is served on (the real one once started)."""
        return {key: server.port for key, server in self._servers.items()}

    @property
    def visits(self) -> tuple[VisitRecord, ...]:
        """How each visit is going, in order of arrival."""
        return tuple(self._records)

    def t_s(self) -> float:
        """Seconds since :meth:`start` (0 before)."""
        if self._t0 is None:
            return 0.0
        if self._stopped_at is not None:
            return self._stopped_at
        return (self.clock() - self._t0).total_seconds()

    def at(self, t_s: float) -> datetime:
        """The wall-clock time of rig time ``t_s``."""
        start = self._t0 if self._t0 is not None else self.clock()
        return start + timedelta(seconds=t_s)

    async def sleep_until(self, t_s: float) -> None:
        """Return once the rig's time reaches ``t_s`` [s] (polled at ``tick_s``)."""
        while (left := t_s - self.t_s()) > 0:
            await asyncio.sleep(min(self.tick_s, left))

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Open every meter port and start the coupling and the day (its clock starts now).

        Raises ``RuntimeError`` (pymodbus) when a meter port cannot be opened (nothing is left open).
        """
        if self._t0 is not None:
            return
        try:
            for server in self._servers.values():
                await server.start()
        except BaseException:
            for server in self._servers.values():
                await server.stop()
            raise
        self._t0 = self.clock()
        self._last_t = 0.0
        self.tick()
        ports = ", ".join(f"{k} → {p}" for k, p in self.meter_ports.items()) or "none"
        self._emit("start", f"meters on {ports}; {len(self._sims)} chargers for {self.ocpp_url}")
        self._tasks.append(asyncio.create_task(self._couple(), name="rig coupling"))
        for rec in self._records:
            self._tasks.append(asyncio.create_task(self._run_visit(rec), name=f"rig visit {rec.visit.label}"))

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Freeze the truth, cancel the day, close every charger link and meter port (bounded)."""
        if self._t0 is None or self._stopped_at is not None:
            return
        self.tick()
        self._refresh_delivered()
        self._stopped_at = self.t_s()
        tasks = [*self._tasks, *self._keepers.values()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        self._tasks, self._keepers = [], {}
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.close() for s in self._sims.values()), return_exceptions=True), timeout_s
            )
        for server in self._servers.values():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.stop(), timeout_s)
        self._emit("stop", "rig stopped")

    async def __aenter__(self) -> Rig:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- chargers -----------------------------------------------------------------------------
    async def connect_chargers(
        self, url: str | None = None, *, timeout_s: float = 10.0, keep_connected: bool = False, concurrency: int = 16
    ) -> list[str]:
        """Connect every simulated charger to ``url`` (default :attr:`ocpp_url`), at most
        ``concurrency`` at a time; returns the ids still not connected after ``timeout_s`` [s].

        ``keep_connected``: each charger keeps reconnecting (bounded back-off) until :meth:`stop`
        or :meth:`disconnect_chargers`, also after this returns.
        """
        url = url or self.ocpp_url
        slots = asyncio.Semaphore(concurrency)
        loop = asyncio.get_running_loop()
        if keep_connected:
            for cid, sim in self._sims.items():
                if cid not in self._keepers:
                    self._keepers[cid] = asyncio.create_task(
                        sim.keep_connected(
                            url, slots=slots, timeout_s=self.call_timeout_s, on_change=self._link_reporter(cid)
                        ),
                        name=f"rig link {cid}",
                    )
            end = loop.time() + timeout_s
            while self._offline() and loop.time() < end:
                await asyncio.sleep(0.05)
            return self._offline()

        async def one(sim: SimCharger) -> None:
            async with slots:
                try:
                    await asyncio.wait_for(sim.connect(url, timeout_s=min(timeout_s, self.call_timeout_s)), timeout_s)
                    self._emit("link", f"{sim.o.charger_id} connected (OCPP {sim.o.version})")
                except Exception as exc:
                    self._emit("link", f"{sim.o.charger_id} could not connect: {exc!r}")
                    await sim.close()

        await asyncio.gather(*(one(s) for s in self._sims.values() if not s.connected()))
        return self._offline()

    async def disconnect_chargers(self) -> None:
        """Stop reconnecting and close every charger's link (EVs stay plugged in)."""
        keepers, self._keepers = list(self._keepers.values()), {}
        for t in keepers:
            t.cancel()
        if keepers:
            await asyncio.wait(keepers, timeout=5.0)
        await asyncio.gather(*(s.close() for s in self._sims.values()), return_exceptions=True)

    def _offline(self) -> list[str]:
        return [cid for cid, s in self._sims.items() if not (s.connected() and s.booted.is_set())]

    def _link_reporter(self, charger_id: str) -> Callable[[bool], None]:
        def report(up: bool) -> None:
            version = self._sims[charger_id].o.version
            self._emit("link", f"{charger_id} {'connected (OCPP ' + version + ')' if up else 'lost its link'}")

        return report

    # --- base load and truth ------------------------------------------------------------------
    def set_base(self, node: str, currents: Phase3) -> None:
        """Set ``node``'s own non-EV load [A on L1..L3] from now until the day's next step for it."""
        if node not in self.truth.limits:
            raise KeyError(f"unknown node {node!r}")
        self._overrides[node] = (self.t_s(), (float(currents[0]), float(currents[1]), float(currents[2])))
        if self._t0 is not None and self._stopped_at is None:
            self.tick()

    def own_base(self, t_s: float | None = None) -> dict[str, Phase3]:
        """Node → own base load [A] at ``t_s`` (default now): the day's, unless :meth:`set_base` later."""
        t = self.t_s() if t_s is None else t_s
        steps = self.day.steps_at(t)
        out = {n: s.a for n, s in steps.items()}
        for node, (at, a) in self._overrides.items():
            if at <= t and (node not in steps or at >= steps[node].t_s):
                out[node] = a
        return out

    def charger_draws(self) -> dict[str, Phase3]:
        """Charger id → current on its own L1..L3 now [A] (every connector; EVs advanced to now)."""
        out: dict[str, Phase3] = {}
        for cid, sim in self._sims.items():
            if self._stopped_at is None:
                sim.update()
            total = ZERO
            for conn in sim.connectors:
                total = add(total, sim.draw_a(conn))
            out[cid] = total
        return out

    def _flicker(self, base: Mapping[str, Phase3], fresh: bool) -> dict[str, Phase3]:
        """``base`` plus the noise (drawn anew when ``fresh``, else the last tick's), never below 0."""
        out: dict[str, Phase3] = {}
        for node, a in base.items():
            if fresh:
                n = self.noise_a
                self._jitter[node] = (
                    self._rng.uniform(-n, n) if a[0] > 0 else 0.0,
                    self._rng.uniform(-n, n) if a[1] > 0 else 0.0,
                    self._rng.uniform(-n, n) if a[2] > 0 else 0.0,
                )
            j = self._jitter.get(node, ZERO)
            out[node] = (max(0.0, a[0] + j[0]), max(0.0, a[1] + j[1]), max(0.0, a[2] + j[2]))
        return out

    def loads(self) -> dict[str, Phase3]:
        """The truth now: node → magnitude of each line's current [A], the phasor sum of its loads
        (a transformer node: on its primary; base noise as of the last tick)."""
        return node_loads(self.site, self._flicker(self.own_base(), fresh=False), self.charger_draws())

    @property
    def exceeded_s(self) -> dict[str, Phase3]:
        """Node → seconds above the rated ``limit_a`` on L1..L3 (as of the last tick)."""
        return self.truth.exceeded()

    def tick(self) -> None:
        """Bring truth and meters to now: the coupling loop's body (also safe to call directly)."""
        t = self.t_s()
        dt = max(0.0, t - self._last_t)
        self.truth.hold(self._loads, dt)
        for m in self._meters.values():
            m.state.advance(dt)
        self._last_t = t
        base, draws = self._flicker(self.own_base(t), fresh=self.noise_a > 0), self.charger_draws()
        base_ph = node_phasors(self.site, base, {})
        ev_ph = node_phasors(self.site, {}, draws)
        total = {n: (b[0] + ev_ph[n][0], b[1] + ev_ph[n][1], b[2] + ev_ph[n][2]) for n, b in base_ph.items()}
        self._loads = {n: magnitudes(v) for n, v in total.items()}
        for meter_id, node in self._meter_nodes.items():
            base_a, load_a = magnitudes(base_ph[node]), self._loads[node]
            self._meters[meter_id].set_load(
                base_a=base_a,
                ev_a=(load_a[0] - base_a[0], load_a[1] - base_a[1], load_a[2] - base_a[2]),
                phase_pf=power_factors(self.site, node, total[node]),
            )
        for node, phase, over, since in self.truth.observe(self._loads, t):
            limit = self.truth.limits[node]
            where = f"{node} {PHASES[phase]}"
            if over:
                self._emit("exceed", f"{where} above its {limit:g} A rating: {self._loads[node][phase]:.1f} A")
            else:
                self._emit("exceed", f"{where} back under its rating after {t - since:.1f} s")
        self._tell_steps(t)

    def _tell_steps(self, t: float) -> None:
        steps = self._steps
        while self._steps_told < len(steps) and steps[self._steps_told].t_s <= t:
            s = steps[self._steps_told]
            self._steps_told += 1
            if s.note:
                self._emit("base", f"{s.note} ({s.node} own base {_fmt3(s.a)} A)")
            else:
                LOG.debug("base %s own %s A", s.node, _fmt3(s.a))

    async def _couple(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                self.tick()
            except Exception:  # a bug must not freeze the meters silently
                LOG.exception("rig coupling failed")

    # --- the day ------------------------------------------------------------------------------
    async def _run_visit(self, rec: VisitRecord) -> None:
        v = rec.visit
        sim = self._sims[v.charger_id]
        await self.sleep_until(v.arrive_s)
        rec.arrived = True
        if not (sim.connected() and sim.booted.is_set()):
            self._emit("arrive", f"{v.label} arrived; {v.charger_id} is offline, waiting")
        while (left := v.depart_s - self.t_s()) > 0 and not rec.plugged:
            if sim.connected() and sim.booted.is_set():
                await self._plug(rec, sim)
            if not rec.plugged:
                await asyncio.sleep(min(PLUG_RETRY_S, left))
        if rec.plugged and v.announce is not None and sim.o.version == VERSION_201:
            await self._announce(v, sim)
        await self.sleep_until(v.depart_s)
        sim.update()
        self._refresh_delivered(rec)
        rec.departed = True
        try:
            await asyncio.wait_for(sim.unplug(v.connector, timeout_s=self.call_timeout_s), 2 * self.call_timeout_s)
        except Exception as exc:
            LOG.info("%s: unplug not reported (%r); session ends locally", v.label, exc)
            sim.leave(v.connector)
        verdict = "met" if rec.met else "MISSED"
        self._emit("depart", f"{v.label} leaves with {rec.delivered_kwh:.2f} of {v.need_kwh:.2f} kWh ({verdict})")

    async def _plug(self, rec: VisitRecord, sim: SimCharger) -> None:
        v = rec.visit
        ev = sim_ev(self.site, self.site.charger(v.charger_id), v.ev, v.ev_max_kw)
        conn = sim.connectors[v.connector]
        try:
            await asyncio.wait_for(
                sim.plug_in(ev, v.soc_pct, v.id_tag, v.connector, timeout_s=self.call_timeout_s),
                4 * self.call_timeout_s,
            )
        except Exception as exc:
            if conn.tx is None:
                if rec.error is None:
                    self._emit("plug", f"{v.label} cannot start a session yet: {exc!r}")
                rec.error = repr(exc)
                return
        rec.plugged = True
        rec.plugged_at_s = self.t_s()
        self._emit("arrive", f"{v.label} plugged in (tag {v.id_tag}, needs {v.need_kwh:.2f} kWh by {v.depart_s:g} s)")

    async def _announce(self, v: Visit, sim: SimCharger) -> None:
        assert v.announce is not None
        departure = self.at(v.announce.departure_s)
        try:
            ok = await sim.announce_needs(
                v.connector,
                departure=departure,
                energy_kwh=v.announce.energy_kwh,
                dc=self.site.charger(v.charger_id).kind == "dc",
                timeout_s=self.call_timeout_s,
            )
        except Exception as exc:
            ok = False
            LOG.info("%s: NotifyEVChargingNeeds failed: %r", v.label, exc)
        what = f"{v.announce.energy_kwh:.2f} kWh by {v.announce.departure_s:g} s"
        self._emit("announce", f"{v.label} announced {what}" + ("" if ok else " (not accepted)"))

    # --- results ------------------------------------------------------------------------------
    def summary(self) -> RigSummary:
        """Energy delivered vs requested, departures met, peak utilisation, exceedance (so far)."""
        if self._stopped_at is None and self._t0 is not None:
            self.tick()
            self._refresh_delivered()
        t = self.truth
        return summarise(self.t_s(), self._records, t.max_utilisation, t.exceeded(), t.peaks())

    def _refresh_delivered(self, only: VisitRecord | None = None) -> None:
        """Copy the energy of every visit still plugged in from its EV (after the last update)."""
        for rec in [only] if only is not None else self._records:
            if rec.plugged and not rec.departed:
                state = self._sims[rec.visit.charger_id].connectors[rec.visit.connector].ev_state
                if state is not None:
                    rec.delivered_kwh = state.energy_kwh

    def _emit(self, kind: str, text: str) -> None:
        event = RigEvent(self.t_s(), kind, text)
        LOG.info("%s", event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                LOG.exception("rig event listener failed")


_SIM_FIELDS = frozenset(f.name for f in fields(SimOptions)) - {"charger_id"}
_SET_FIELDS = frozenset({"quirks", "unsupported_measurands"})


def _check_sim_options(site: Site, given: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The per-charger :class:`SimOptions` overrides, checked (sets given as any iterable of str)."""
    known = {ch.id for ch in site.chargers}
    problems = [f"sim_options: unknown charger {cid!r}" for cid in given if cid not in known]
    out: dict[str, dict[str, Any]] = {}
    for cid, over in given.items():
        bad = sorted(set(over) - _SIM_FIELDS)
        if bad:
            has = ", ".join(sorted(_SIM_FIELDS))
            problems.append(f"sim_options[{cid!r}]: no such option {', '.join(bad)} (has: {has})")
        out[cid] = {k: (frozenset(v) if k in _SET_FIELDS and not isinstance(v, str) else v) for k, v in over.items()}
        for k in _SET_FIELDS & set(over):
            if isinstance(over[k], str):
                problems.append(f"sim_options[{cid!r}].{k}: a collection of names, not the string {over[k]!r}")
    if problems:
        raise ValueError("; ".join(problems))
    return out


def _fmt3(a: Phase3) -> str:
    return "/".join(f"{x:g}" for x in a)
