"""The vehicle at the end of the cable in a simulation: what it draws under a limit, and its energy.

The battery behaviour is the EV model (:mod:`controller.simulate.ev`, the rig's too): full rate up
to 80 % state of charge, then tapering (AC: linearly down to the 6 A minimum, DC: down to 10 % of
its power) until full.
The reaction delay of a few seconds is below the simulator's step and left out here.

Power per A comes from the charger's connection (:func:`controller.model.phasor.draw`): a 208 V
line-to-line charger delivers 208 W per A of its line current, a three-phase one behind a
480→208Y/120 transformer 3 × 120 W per A per phase, a DC charger its bus's three voltages to
neutral × efficiency × power factor per A of grid current.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.model.phasor import draw, node_ln_voltage_v
from controller.model.site import Charger, Site, dc_phase_current_a
from controller.model.snapshot import PhaseCurrents
from controller.simulate.ev import EvParams, dc_max_kw, ev_max_a
from controller.simulate.scenario import ScenarioSession

TAPER_FROM_SOC = 0.8  # above this state of charge the accepted current falls (the EV model's default) …
TAPER_FLOOR = 0.1  # … to this share at 100 % (DC; an AC vehicle keeps its 6 A minimum)


def dc_a_per_kw(site: Site, charger: Charger) -> float:
    """A DC charger's grid current per line [A] per kW delivered: its bus's voltage to neutral on
    each wired line, its efficiency and power factor."""
    lines = len(draw(site, charger).lines)
    ln_v = node_ln_voltage_v(site, charger.circuit)
    return dc_phase_current_a(1.0, ln_v, charger.efficiency, charger.power_factor) * (3.0 / lines)


@dataclass(frozen=True)
class SimVehicle:
    kind: str
    grid_phases: tuple[int, ...]  # the grid lines it draws on (a line-to-line charger: both)
    max_a: float  # AC: per-phase cap of charger and vehicle; DC: unused
    max_kw: float  # DC: power cap of charger and vehicle; AC: unused
    min_a: float
    volts_v: float  # AC: W per A of line current (line-to-neutral × phases, or line-to-line)
    a_per_kw: float  # DC: per-phase grid current per kW delivered
    battery_kwh: float
    start_kwh: float  # energy in the battery on arrival
    target_kwh: float  # energy it wants (stops there)
    phases_used: int = 3  # AC: the phases its EV draws on (1 on a single-phase or line-to-line charger)
    efficiency: float = 1.0  # DC: battery power / grid real power (AC: the meter is the charger's, 1)

    @classmethod
    def for_session(cls, site: Site, s: ScenarioSession) -> SimVehicle:
        ch = site.charger(s.charger_id)
        used = min(s.ev_phases, max(1, ch.phases))
        if ch.kind == "ac":
            d = draw(site, ch, used)
            caps = [c for c in (ch.max_a, s.ev_max_a) if c is not None]
            max_a, max_kw, a_per_kw = min(caps), 0.0, 0.0
        else:
            d = draw(site, ch)
            kws = [k for k in (ch.max_kw, s.ev_max_kw) if k is not None]
            max_a, max_kw = 0.0, min(kws)
            a_per_kw = dc_a_per_kw(site, ch)
        return cls(
            kind=ch.kind,
            grid_phases=d.lines,
            max_a=max_a,
            max_kw=max_kw,
            min_a=ch.min_a if ch.kind == "ac" else 0.0,
            volts_v=d.volts_v,
            a_per_kw=a_per_kw,
            battery_kwh=s.battery_kwh,
            start_kwh=s.battery_kwh - s.energy_kwh,
            target_kwh=s.energy_kwh,
            phases_used=used,
            efficiency=ch.efficiency if ch.kind == "dc" else 1.0,
        )

    def soc_pct(self, delivered_kwh: float) -> float:
        return 100.0 * (self.start_kwh + delivered_kwh) / self.battery_kwh

    def draw_a(self, limit: float, delivered_kwh: float) -> PhaseCurrents:
        """Grid current per line under ``limit`` (A per phase for AC, kW for DC): the same current
        on every line it draws on (a line-to-line charger's one current on both its lines)."""
        if delivered_kwh >= self.target_kwh - 1e-9:
            return (0.0, 0.0, 0.0)  # the vehicle has what it wanted and stops
        soc = self.soc_pct(delivered_kwh)
        if self.kind == "ac":
            ev = EvParams(
                max_a=self.max_a,
                phases=self.phases_used,
                battery_kwh=self.battery_kwh,
                voltage_v=self.volts_v / max(1, self.phases_used),
                min_a=self.min_a,
                taper_from_soc_pct=100.0 * TAPER_FROM_SOC,
            )
            amps = 0.0 if limit < self.min_a else min(limit, ev_max_a(ev, soc))
        else:
            amps = min(limit, dc_max_kw(self.max_kw, soc, 100.0 * TAPER_FROM_SOC, TAPER_FLOOR)) * self.a_per_kw
        out = [0.0, 0.0, 0.0]
        for p in self.grid_phases:
            out[p] = amps
        return (out[0], out[1], out[2])

    def grid_kw(self, draw_a: PhaseCurrents) -> float:
        """Real power it takes from the grid at this draw [kW] (DC: the battery's / efficiency)."""
        if self.kind == "ac":
            return sum(draw_a) * (self.volts_v / len(self.grid_phases)) / 1000.0
        return max(draw_a) / self.a_per_kw / self.efficiency if self.a_per_kw else 0.0

    def energy_kwh(self, draw_a: PhaseCurrents, dt_s: float) -> float:
        """Energy into the battery over ``dt_s`` at this draw [kWh]."""
        if self.kind == "ac":
            return sum(draw_a) * (self.volts_v / len(self.grid_phases)) * dt_s / 3.6e6
        return max(draw_a) / self.a_per_kw * dt_s / 3600.0 if self.a_per_kw else 0.0
