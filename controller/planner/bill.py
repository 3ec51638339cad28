"""What the depot pays for a plan, per slot: the inputs of the planner's cost stage.

Built from the Site, the Snapshot and the slot grid (pure: no I/O, no clock). Read this with the
Snapshot's docstrings; the planner reads the fields so:

* **Energy price** per slot: :mod:`controller.planner.prices` (``Snapshot.prices`` where they
  cover, else ``site.tariff.energy``), per kWh *imported* at the grid connection.
* **Non-EV import** at the grid node, kW: the grid's base load ``base_load_a["grid"]`` (the
  effective one the limits use: a parent carries at least its metered children) summed over the
  three lines × the grid's line-to-neutral voltage, held over the horizon, corrected for PV:
* **PV**: the base load is what the grid meter shows minus the EVs, so the PV output *now* is
  already in it (the PV sits behind the grid meter). The planner therefore counts, for slot ``t``,
  ``base_kw + pv_now − pv[t]``: ``pv_now`` = ``Snapshot.pv_kw`` added back, ``pv[t]`` the
  ``Snapshot.pv_forecast_kw`` (mean over the slot for the energy, least value for the peak; the last
  forecast step holds; before the first: 0). The current slot counts exactly ``pv_kw`` (never
  more: the forecast is not used there). ``pv_kw`` ``None`` (no fresh reading): no PV is counted in
  any slot — how much PV the measured base load holds is then unknown.
* **Base-load forecast**: ``base_load_forecast_a["grid"]`` is a forecast of the non-EV load
  without PV (the limits allow for a cloud): where it covers a slot, it less the slot's PV forecast
  is that slot's net import — within the next hour the larger of that and the measured import
  above, after that the forecast (its mean less the mean PV for the energy, its largest value less
  the least PV for the peak), as the limits take it.
* **Demand charge** (``site.tariff.demand``, price > 0): ``Snapshot.demand_peak_kw`` (``None``: 0) is
  the billing period's peak so far; a slot's grid import up to it costs nothing more, above it
  ``price_per_kw`` per kW of new peak. Slots from the next billing period on (site-local month
  start) have their own peak, from 0. A slot's import is constant within it, so its kW is the
  average of every ``window_min`` window inside it; with slots shorter than the window (``slot_min``
  < ``window_min``) the slot's kW is at least the window's average (the peak is over-estimated, on
  the safe side); with longer slots (``slot_min`` > ``window_min``) every window inside a slot has
  the slot's average, so the peak is exact for the plan — only the plan cannot shape load within a
  slot. The current slot begins now: what the current window drew before now is not counted here
  (the billing peak so far, from the daemon, is).
* **Expected arrivals** (``Snapshot.expected_arrivals``, the depot's history): the vehicles still to
  come are planned beside the present ones in the cost stage, as flexible loads that count only
  for the demand charge and the energy price: per group, its energy anywhere in the first
  :data:`EXPECTED_SPREAD_SHARE` of its stay (the share of the stay the cost stage plans a present
  vehicle's energy in), at most its ``max_kw``, never in the current slot (``expected_kw``,
  ``expected_kwh``). So the plan keeps their room — the vehicles present are not flattened into
  the hours the later ones must use — without taking them as a flat load that cannot move:
  (until 2026-12-07 they were: the present vehicles were then pushed into the hours before the
  arrivals, at the evening's price, and the night's peak was the early one — feeder-limited
  planned 125 kW where the perfect-knowledge bound needs 90).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import numpy as np
import numpy.typing as npt

from controller.model import phasor
from controller.model.site import GRID_ID, Site
from controller.model.snapshot import Snapshot
from controller.planner.prices import daily_steps, dated_steps, site_tz, slot_prices
from controller.planner.slots import SlotGrid
from controller.planner.steps import Steps

FloatArray = npt.NDArray[np.float64]
FORECAST_TRUSTED_AFTER_S = 3600.0  # as the limits: before this the measured base load counts if higher
PRICE_EPS = 1e-9  # prices closer than this (relative) are the same price (slot means round)
DEMAND_REF_H = 24.0  # without an energy price: one kW of peak weighs as much as this many kWh
EXPECTED_SPREAD_SHARE = 0.75  # an expected arrival's energy over this share of its stay (cost.COST_MARGIN_SHARE)
MAX_EXPECTED_KW = 1e6  # kW: an expected load above this (1 GW) is not a depot's; the forecast is left out


@dataclass(frozen=True)
class Bill:
    """Per slot (``T`` = slots): the price and loads the cost stage prices a plan with."""

    price_per_kwh: FloatArray | None  # (T,) mean price per kWh imported; None: no energy price
    net_kw: FloatArray  # (T,) non-EV grid import, mean over the slot (< 0: PV surplus)
    net_peak_kw: FloatArray  # (T,) the same for the demand charge: least PV, most base load
    pv_kw: FloatArray  # (T,) PV counted per slot (mean)
    demand_price_per_kw: float  # 0: no demand charge
    peak_floor_kw: float  # the billing period's peak so far: load up to it costs nothing more
    period_split: int  # first slot of the next billing period (T: none in the horizon)
    money_unit: float  # the LP's unit of money (> 0): the largest |price|, else demand price / 24 h
    expected_kw: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))
    """(K, T) the expected arrivals' groups: the most kW each may draw in each slot (0 outside the
    first EXPECTED_SPREAD_SHARE of its stay, and in the current slot); only with a demand charge."""
    expected_kwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    """(K,) each group's energy, at most what its kW can take in its slots."""

    @property
    def priced(self) -> bool:
        """Whether the plan's cost can depend on when energy is drawn (else the cost stage is
        skipped: delivered energy is fixed by the stages before it)."""
        if self.demand_price_per_kw > 0.0:
            return True
        p = self.price_per_kwh
        if p is None or not len(p):
            return False
        return bool(np.ptp(p) > PRICE_EPS * self.money_unit or (self.pv_kw > 1e-9).any())


def build_bill(site: Site, snap: Snapshot, grid: SlotGrid, base_grid_a: tuple[float, float, float],
               warnings: list[str]) -> Bill | None:
    """The Bill, or ``None`` when nothing is priced (no energy price, no demand charge)."""
    starts, ends = grid.starts_s, grid.ends_s
    t = grid.count
    if t == 0:
        return None
    tz = site_tz(site.site.timezone)
    tariff = site.tariff
    daily = daily_steps(tariff.energy, tz, float(starts[0]), float(ends[-1]))
    dated = dated_steps(tuple(snap.prices), tz, warnings) if snap.prices else None
    price = slot_prices(starts, ends, daily, dated)
    demand = tariff.demand
    demand_price = 0.0
    if demand is not None:
        demand_price = _finite_nonneg(demand.price_per_kw) or 0.0
    if price is None and demand_price <= 0.0:
        return None
    top = float(np.max(np.abs(price))) if price is not None and len(price) else 0.0
    money = top if top > 0.0 else demand_price / DEMAND_REF_H
    if money <= 0.0:
        return None

    volts = phasor.node_ln_voltage_v(site, GRID_ID)
    base_now = sum(base_grid_a) * volts / 1000.0

    # the measured base holds the PV output now: held over the horizon, the PV now is added back
    # and the forecast PV of each slot taken off (the current slot: exactly the measured PV)
    pv_now = _finite_nonneg(snap.pv_kw)
    pv_mean = np.zeros(t)
    pv_least = np.zeros(t)
    if pv_now is not None:
        pv = _pv_steps(snap, warnings)
        if pv is not None:
            pv_mean = np.nan_to_num(pv.mean(starts, ends), nan=0.0)
            pv_least = np.nan_to_num(pv.minimum(starts, ends), nan=0.0)
        pv_mean[0] = pv_least[0] = pv_now  # what the measured base load holds: never the forecast
    else:
        pv_now = 0.0
    net = base_now + pv_now - pv_mean
    net_peak = base_now + pv_now - pv_least

    # a base-load forecast is a forecast of the non-EV load without PV (what the limits must
    # allow for: a cloud takes the PV away; Snapshot.base_load_forecast_a): where it covers a slot,
    # that less the slot's PV is its net import — within the next hour the larger of it and the
    # measured reading above, as the limits take it
    fc = _forecast_kw(snap, volts)
    if fc is not None:
        mean, top_kw = fc.mean(starts, ends) - pv_mean, fc.maximum(starts, ends) - pv_least
        trusted = snap.now.timestamp() + FORECAST_TRUSTED_AFTER_S
        early = (np.arange(t) == 0) | (starts < trusted)
        has = np.isfinite(mean)
        net = np.where(has, np.where(early, np.maximum(net, mean), mean), net)
        net_peak = np.where(has, np.where(early, np.maximum(net_peak, top_kw), top_kw), net_peak)

    expected_kw, expected_kwh = np.zeros((0, t)), np.zeros(0)
    if demand_price > 0.0 and snap.expected_arrivals:
        expected_kw, expected_kwh = _expected_groups(snap, starts, ends, warnings)

    floor = _finite_nonneg(snap.demand_peak_kw) or 0.0
    split = t
    if demand_price > 0.0:
        boundary = _next_month_s(snap.now, tz)
        after = np.nonzero(starts >= boundary)[0]
        split = int(after[0]) if len(after) else t
    return Bill(
        price_per_kwh=price, net_kw=net, net_peak_kw=net_peak, pv_kw=pv_mean,
        demand_price_per_kw=demand_price, peak_floor_kw=floor, period_split=split, money_unit=money,
        expected_kw=expected_kw, expected_kwh=expected_kwh,
    )


def _expected_groups(
    snap: Snapshot, starts: FloatArray, ends: FloatArray, warnings: list[str]
) -> tuple[FloatArray, FloatArray]:
    """The expected arrivals as flexible loads: per group the kW it may draw in each slot (its
    ``max_kw`` over the part of the slot inside the first :data:`EXPECTED_SPREAD_SHARE` of its
    stay; never the current slot) and its energy (the share of that part inside the horizon, at
    most what its kW allow). Unusable entries (a time without a zone, a value not finite or not
    positive, a departure not after the arrival) are left out with a warning; loads too large for
    a depot drop the forecast."""
    t = len(starts)
    caps: list[FloatArray] = []
    kwhs: list[float] = []
    now_s = snap.now.timestamp()
    hours = (ends - starts) / 3600.0
    length = np.maximum(ends - starts, 1e-9)
    bad = 0
    for e in snap.expected_arrivals:
        try:
            if e.arrive_at.utcoffset() is None or e.depart_at.utcoffset() is None:
                raise ValueError("no time zone")
            a, d = e.arrive_at.timestamp(), e.depart_at.timestamp()
            kwh, top = float(e.energy_kwh), float(e.max_kw)
        except (TypeError, ValueError, AttributeError, OverflowError):
            bad += 1
            continue
        if not (math.isfinite(kwh) and math.isfinite(top)) or kwh <= 0.0 or top <= 0.0 or d <= a:
            bad += 1
            continue
        if top > MAX_EXPECTED_KW:
            warnings.append("expected arrivals: not a usable load (too large), left out")
            return np.zeros((0, t)), np.zeros(0)
        if d <= now_s:
            continue
        a = max(a, now_s)
        b = a + EXPECTED_SPREAD_SHARE * (d - a)
        overlap = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0.0, None)
        cap = top * overlap / length
        if t:
            cap[0] = 0.0  # the current slot is the present vehicles': an arrival is planned when it comes
        room = float((cap * hours).sum())
        if room <= 1e-9:
            continue
        # the part of its window inside the horizon gets that share of its energy (beyond it, the
        # plan does not look: as a flat load would have it)
        inside = max(0.0, min(b, float(ends[-1])) - a) / max(b - a, 1e-9)
        caps.append(cap)
        kwhs.append(min(kwh * inside, room))
    if bad:
        warnings.append(f"expected arrivals: {bad} unusable entr{'y' if bad == 1 else 'ies'} left out")
    if not caps:
        return np.zeros((0, t)), np.zeros(0)
    return np.vstack(caps), np.asarray(kwhs, dtype=np.float64)


def _finite_nonneg(v: object) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f >= 0.0 else None


def _forecast_kw(snap: Snapshot, volts: float) -> Steps | None:
    steps = snap.base_load_forecast_a.get(GRID_ID)
    if not steps:
        return None
    try:
        times = [at.timestamp() for at, _ in steps]
        kw = [sum(max(0.0, float(a)) if math.isfinite(float(a)) else 0.0 for a in v) * volts / 1000.0
              for _, v in steps]
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None  # the limits' reading warns about an unreadable forecast
    return Steps.from_points(times, kw, math.inf)


def _pv_steps(snap: Snapshot, warnings: list[str]) -> Steps | None:
    times: list[float] = []
    kw: list[float] = []
    bad = 0
    for entry in snap.pv_forecast_kw:
        try:
            at, value = entry
            v = float(value)
            if at.tzinfo is None or at.utcoffset() is None or not math.isfinite(v):
                raise ValueError
            times.append(at.timestamp())
            kw.append(max(0.0, v))
        except (TypeError, ValueError, AttributeError, OverflowError):
            bad += 1
    if bad:
        warnings.append(f"PV forecast: {bad} unusable entr{'y' if bad == 1 else 'ies'} left out")
    return Steps.from_points(times, kw, math.inf)


def _next_month_s(now: datetime, tz: tzinfo) -> float:
    """Start of the next site-local month (the demand charge's billing period)."""
    local = now.astimezone(tz)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=local.tzinfo).timestamp()
