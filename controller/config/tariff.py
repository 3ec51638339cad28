"""``tariff:`` — energy steps, dated prices, the demand charge: rules and conversion both ways.

Either form of the section (the list of energy steps, or the mapping) reaches these functions as
the mapping; problems are reported at long-form paths, which the loader maps back to the form the
file uses (:mod:`controller.config.shorthand`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path as FsPath
from typing import Any

from controller.config.schema import DEMAND_WINDOW_MINUTES, SiteFile, TariffSection
from controller.config.times import hhmm_time, is_hhmm
from controller.config.yaml_source import Path
from controller.model import site as m

Report = Callable[[Path, str], None]

_CURRENCY = re.compile(r"[A-Z]{3}")
DEFAULT_CURRENCY = m.Tariff().currency


def check_tariff(sf: SiteFile, error: Report) -> None:
    """The section's own rules: steps HH:MM in time order, a currency code, a demand window."""
    t = sf.tariff
    if not _CURRENCY.fullmatch(t.currency):
        upper = t.currency.strip().upper()
        hint = f" (did you mean {upper!r}?)" if _CURRENCY.fullmatch(upper) else ""
        error(
            ("tariff", "currency"),
            f"must be a 3-letter ISO 4217 code such as EUR, USD or GBP, got {t.currency!r}{hint}",
        )
    prev: str | None = None
    for i, step in enumerate(t.energy):
        if not is_hhmm(step.at):
            error(("tariff", "energy", i, "at"), f"time must be HH:MM, got {step.at!r}")
            continue
        if prev is not None and step.at <= prev:
            error(("tariff", "energy", i, "at"), f"tariff steps must be in time order ({step.at} after {prev})")
        prev = step.at
    d = t.demand
    if d is not None and d.window_min not in DEMAND_WINDOW_MINUTES:
        allowed = ", ".join(map(str, DEMAND_WINDOW_MINUTES))
        error(
            ("tariff", "demand", "window_min"),
            f"must be one of {allowed} minutes (a demand meter's averaging window, dividing the hour), "
            f"got {d.window_min}",
        )


def check_prices_file(sf: SiteFile, error: Report, warn: Report) -> None:
    """The dated prices file on this machine: missing is a warning (the operator's cron job that
    writes it may not have run yet), a directory an error. Its rows are read by the daemon."""
    name = sf.tariff.prices_file
    if name is None:
        return
    path = FsPath(name)
    if path.is_dir():
        error(("tariff", "prices_file"), f"{name} is a directory, not a prices file")
    elif not path.exists():
        has_steps = bool(sf.tariff.energy)
        until = "the daily `energy` steps price every hour" if has_steps else "energy has no price (no `energy` steps)"
        warn(("tariff", "prices_file"), f"{name} does not exist (yet): until it does, {until}")


def tariff_model(t: TariffSection) -> m.Tariff:
    """Assumes :func:`check_tariff` found no errors."""
    demand = None
    if t.demand is not None:
        demand = m.DemandCharge(t.demand.price_per_kw, t.demand.window_min, t.demand.period)
    return m.Tariff(
        currency=t.currency,
        energy=tuple(m.TariffStep(hhmm_time(s.at), s.price_per_kwh) for s in t.energy),
        prices_file=t.prices_file,
        demand=demand,
    )


def tariff_dict(t: m.Tariff) -> Any:
    """The section as a file says it: the short form (a list of steps) where that says it all."""
    steps = [{"at": s.at.strftime("%H:%M"), "price_per_kwh": s.price_per_kwh} for s in t.energy]
    if t.currency == DEFAULT_CURRENCY and t.prices_file is None and t.demand is None:
        return steps
    out: dict[str, Any] = {"currency": t.currency, "energy": steps}
    if t.prices_file is not None:
        out["prices_file"] = t.prices_file
    if t.demand is not None:
        out["demand"] = {
            "price_per_kw": t.demand.price_per_kw,
            "window_min": t.demand.window_min,
            "period": t.demand.period,
        }
    return out


def tariff_text(t: m.Tariff) -> str | None:
    """One line for ``check-config``: what the depot pays, or ``None`` without a tariff."""
    if not t.active:
        return None
    parts: list[str] = []
    if t.energy:
        prices = [s.price_per_kwh for s in t.energy]
        low, high = min(prices), max(prices)
        span = f"{low:g}" if low == high else f"{low:g} to {high:g}"
        n = len(t.energy)
        parts.append(f"{n} daily step{'s' if n != 1 else ''} {span} {t.currency}/kWh")
    if t.prices_file is not None:
        parts.append(f"dated prices from {t.prices_file}")
    if t.demand is not None:
        d = t.demand
        parts.append(
            f"demand charge {d.price_per_kw:g} {t.currency}/kW of the {d.period}'s highest {d.window_min}-min average"
        )
    return f"tariff: {'; '.join(parts)}"
