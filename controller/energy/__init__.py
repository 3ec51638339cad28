"""What the depot's energy costs, and what it produces: pure, clock-free parts the daemon feeds.

- :mod:`.prices` — the dated prices file (``tariff.prices_file``): parse a CSV, keep the last good
  one, re-read it when it changes.
- :mod:`.price` — the price per kWh at an instant (dated prices win over the daily
  ``tariff.energy`` steps), and the dated steps covering a horizon.
- :mod:`.intervals` — how readings become covered time: each reading stands for the time since
  the one before (at most a gap), split at boundaries (windows, days, slots).
- :mod:`.demand` — the demand charge's billing-period peak: clock-aligned ``window_min`` averages
  of grid import, the period's highest (site-local month).
- :mod:`.cost` — import energy × price, per site-local day and in total.
- :mod:`.pv` — PV output per 15-minute slot and its day-ahead forecast.

Imports :mod:`controller.model` only. Times are timezone-aware datetimes passed in by the caller
(the daemon's injected clock); nothing here reads a clock.
"""
