"""The vehicle at the end of the cable in a simulation: what it draws under a limit, and its energy."""

from __future__ import annotations

from dataclasses import dataclass

from controller.model.site import Site, dc_phase_current_a
from controller.simulate.scenario import ScenarioSession

PhaseCurrents = tuple[float, float, float]
TAPER_FROM_SOC = 0.8  # above this state of charge the accepted current falls linearly …
TAPER_FLOOR = 0.1  # … down to this share of the maximum at 100 %


@dataclass(frozen=True)
class SimVehicle:
    kind: str
    grid_phases: tuple[int, ...]  # the grid phases it draws on
    max_a: float  # AC: per-phase cap of charger and vehicle; DC: unused
    max_kw: float  # DC: power cap of charger and vehicle; AC: unused
    min_a: float
    voltage_v: float
    a_per_kw: float  # DC: per-phase grid current per kW delivered
    battery_kwh: float
    start_kwh: float  # energy in the battery on arrival
    target_kwh: float  # energy it wants (stops there)

    @classmethod
    def for_session(cls, site: Site, s: ScenarioSession) -> SimVehicle:
        ch = site.charger(s.charger_id)
        if ch.kind == "ac":
            phases = ch.grid_phases[: s.ev_phases]
            caps = [c for c in (ch.max_a, s.ev_max_a) if c is not None]
            max_a, max_kw, a_per_kw = min(caps), 0.0, 0.0
        else:
            phases = (0, 1, 2)
            kws = [k for k in (ch.max_kw, s.ev_max_kw) if k is not None]
            max_a, max_kw = 0.0, min(kws)
            a_per_kw = dc_phase_current_a(1.0, site.site.voltage_v, ch.efficiency, ch.power_factor)
        return cls(
            kind=ch.kind,
            grid_phases=phases,
            max_a=max_a,
            max_kw=max_kw,
            min_a=ch.min_a if ch.kind == "ac" else 0.0,
            voltage_v=site.site.voltage_v,
            a_per_kw=a_per_kw,
            battery_kwh=s.battery_kwh,
            start_kwh=s.battery_kwh - s.energy_kwh,
            target_kwh=s.energy_kwh,
        )

    def acceptance(self, delivered_kwh: float) -> float:
        """Share of its maximum the battery accepts now (taper near full; 0 when the target is met)."""
        if delivered_kwh >= self.target_kwh - 1e-9:
            return 0.0
        soc = (self.start_kwh + delivered_kwh) / self.battery_kwh
        if soc <= TAPER_FROM_SOC:
            return 1.0
        return max(TAPER_FLOOR, 1.0 - (1.0 - TAPER_FLOOR) * (soc - TAPER_FROM_SOC) / (1.0 - TAPER_FROM_SOC))

    def draw_a(self, limit: float, delivered_kwh: float) -> PhaseCurrents:
        """Grid current per phase under ``limit`` (A per phase for AC, kW for DC)."""
        share = self.acceptance(delivered_kwh)
        out = [0.0, 0.0, 0.0]
        if share <= 0:
            return (0.0, 0.0, 0.0)
        if self.kind == "ac":
            if limit < self.min_a:
                return (0.0, 0.0, 0.0)
            amps = min(limit, self.max_a * share)
        else:
            amps = min(limit, self.max_kw * share) * self.a_per_kw
        for p in self.grid_phases:
            out[p] = amps
        return (out[0], out[1], out[2])

    def energy_kwh(self, draw_a: PhaseCurrents, dt_s: float) -> float:
        """Energy into the battery over ``dt_s`` at this draw [kWh]."""
        if self.kind == "ac":
            return sum(draw_a) * self.voltage_v * dt_s / 3.6e6
        return max(draw_a) / self.a_per_kw * dt_s / 3600.0 if self.a_per_kw else 0.0
