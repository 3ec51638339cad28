"""The bill: the one owner of what energy costs and what the site produces, for the planner and the operator.

:class:`Bill` holds

* the dated prices file (``tariff.prices_file``, :class:`~controller.energy.prices.PricesFile`):
  read at start, on SIGHUP (:meth:`Bill.reload`) and whenever it changes (its size and modification
  time are looked at every plan cycle, :meth:`Bill.refresh`; read in a thread); a bad file is
  logged with every problem, recorded as a ``prices_file`` event, shown in the status, and the
  prices read before stay in force;
* the billing period's peak (:class:`~controller.energy.demand.PeakTracker`): grid import
  averaged over ``tariff.demand.window_min`` (15 without a demand charge: the peak is shown
  anyway) clock-aligned windows, the site-local month's highest;
* the cost of import (:class:`~controller.energy.cost.CostMeter`): import × the price in force,
  per site-local day and in total;
* the PV history (:class:`~controller.energy.pv.PvHistory`): the PV meter's (``pv.meter``) output
  per 15-minute slot, and the day-ahead forecast from it.

The fast loop tells it each cycle what the grid and PV meters read (:meth:`Bill.metered`, the
:class:`~controller.daemon.ports.EnergyMeter` face); the plan loop asks it for the planner's
inputs (:meth:`Bill.refresh`, then :meth:`Bill.cost_inputs` →
:class:`~controller.daemon.ports.CostInputs`); the status,
``/metrics`` (``depot_energy_price``, ``depot_demand_peak_kw``, ``depot_energy_cost_total``) and
the daily report show it. Everything persists in SQLite (``demand_windows``, ``energy_cost_daily``;
the PV history is the meter's ``meter_readings``): the window in progress and today's figures are
written every :data:`PERSIST_S` and when they close, and :meth:`Bill.open` reads them back after a
restart — the period's peak, the window the daemon stopped in, today's cost and the running total.

The bill is history, not control: a fault in it is logged and never stops a loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

from controller.daemon.ports import CostInputs, Recorder
from controller.energy.arrivals import LOOKBACK_DAYS, Candidates, candidates, charger_max_kw
from controller.energy.cost import CostMeter, EnergyDay
from controller.energy.demand import DemandWindow, PeakTracker, period_start
from controller.energy.price import PriceSource, covering, hour_end, price_at
from controller.energy.prices import PricesFile, PricesRead
from controller.energy.pv import DAY_S, DAYS, SLOT_S, PvHistory
from controller.metrics import DepotMetrics, observe_bill
from controller.model.site import Site
from controller.store import DailyEnergy, DemandWindowRecord
from controller.store.bill import BillHistory, read_bill, read_past_sessions

LOG = logging.getLogger("depotctl.daemon.bill")
PERSIST_S = 10.0
"""The window in progress and today's import and cost are written this often [s] (and when they close)."""
DEFAULT_WINDOW_MIN = 15
SESSIONS_EVERY_S = 3600.0  # the arrival forecast's history is read again after this long
"""The peak's averaging window without a demand charge (``tariff.demand``)."""
PV_NEGATIVE_KW = -0.5
"""A PV meter reading below this [kW] is logged once: production should read positive (``invert``)."""


@dataclass(frozen=True)
class BillPorts:
    site: Callable[[], Site]
    recorder: Recorder
    metrics: DepotMetrics
    base_dir: Path
    """The site file's folder: a relative ``tariff.prices_file`` is read from there."""


@dataclass(frozen=True)
class PricesStatus:
    path: str
    steps: int
    loaded_at: datetime | None
    covers_until: datetime | None  # the end of the last step's hour; None without steps
    error: str | None  # the last refusal while it stands (the previous prices are in force)
    error_at: datetime | None


@dataclass(frozen=True)
class BillStatus:
    """The bill now, for the status (see :class:`~controller.api.models.EnergyInfo`)."""

    currency: str
    price_per_kwh: float | None
    price_source: PriceSource | None
    day: date
    today: EnergyDay | None
    cost_total: float | None  # None: the site has no energy prices
    has_prices: bool
    demand_price_per_kw: float | None
    window_min: int
    period_start: datetime
    peak_kw: float | None
    peak: DemandWindow | None
    window: DemandWindow | None
    prices_file: PricesStatus | None
    pv_meter: str | None
    pv_kw: float | None


def site_tz(site: Site) -> ZoneInfo:
    try:
        return ZoneInfo(site.site.timezone)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def window_min(site: Site) -> int:
    return site.tariff.demand.window_min if site.tariff.demand is not None else DEFAULT_WINDOW_MIN


def volts_per_amp(site: Site) -> float:
    """W per A of line current at the site's nominal voltage to neutral (a reading without power)."""
    return site.site.voltage_v / (math.sqrt(3.0) if site.site.service == "delta" else 1.0)


def has_prices(site: Site) -> bool:
    return bool(site.tariff.energy) or site.tariff.prices_file is not None


class Bill:
    def __init__(self, ports: BillPorts) -> None:
        self.ports = ports
        site = ports.site()
        self.tz = site_tz(site)
        self.peaks = PeakTracker(self.tz, window_min(site))
        self.cost = CostMeter(self.tz)
        self.pv = PvHistory()
        self.prices: PricesFile | None = self._prices_file(site)
        self.currency = site.tariff.currency
        self.pv_meter = site.pv.meter if site.pv is not None else None
        self.pv_kw: float | None = None
        self.db_path: Path | None = None
        self._persisted_at: datetime | None = None
        self._pv_negative_logged = False
        self._fault_logged = False
        self._reading = asyncio.Lock()  # one read of the prices file at a time (each in a thread)
        self.arrivals: Candidates | None = None  # the arrival forecast's history, for its day
        self._sessions_read: tuple[datetime, date, Site] | None = None  # when, for which day and site

    def _prices_file(self, site: Site) -> PricesFile | None:
        name = site.tariff.prices_file
        if name is None:
            return None
        path = Path(name)
        return PricesFile(path if path.is_absolute() else self.ports.base_dir / path, self.tz)

    # --- start ----------------------------------------------------------------------------------
    def open(self, db_path: str | Path, now: datetime) -> None:
        """Restore from the history database (at start, before the history writer has the file: the
        read may migrate it)."""
        self.db_path = Path(db_path)
        self._restore(now, peaks=True, cost=True, pv=True)
        self._publish(now)

    def start(self, now: datetime) -> None:
        """Read the prices file (at start, once the history records: the read is an event)."""
        if self.prices is not None:
            self._note_read(self.prices.reload(now))
        self._publish(now)

    def _history(self, now: datetime) -> BillHistory:
        site = self.ports.site()
        if self.db_path is None:
            return BillHistory()
        return read_bill(
            self.db_path,
            windows_since=period_start(now, self.tz),
            today=now.astimezone(self.tz).date(),
            currency=site.tariff.currency,
            pv_meter=self.pv_meter,
            pv_since=now - timedelta(seconds=(DAYS + 1) * DAY_S),
            slot_s=SLOT_S,
            volts_per_amp=volts_per_amp(site),
        )

    def _restore(self, now: datetime, *, peaks: bool, cost: bool, pv: bool) -> None:
        try:
            h = self._history(now)
        except Exception:  # history, not control: the bill starts from nothing
            LOG.exception("the bill's history in %s not read: the period's peak and today's cost start at 0",
                          self.db_path)
            return
        if peaks:
            self.peaks.restore(now, (DemandWindow(w.start, w.end, w.energy_kwh, w.covered_s) for w in h.windows))
        if cost:
            today = None
            if h.today is not None:
                d = h.today
                today = EnergyDay(d.day, d.import_kwh, d.priced_kwh, d.cost)
            self.cost.restore(today, h.cost_before)
        if pv:
            self.pv.seed(h.pv_means_kw)
        peak = self.peaks.peak(now)
        if peaks and peak is not None:
            LOG.info("billing period's peak so far: %.1f kW (%s)", peak.average_kw or 0.0,
                     peak.start.astimezone(self.tz).isoformat(timespec="minutes"))

    # --- the fast loop --------------------------------------------------------------------------
    def metered(self, now: datetime, grid_power_w: float | None, pv_power_w: float | None) -> None:
        """One fast cycle's readings: the grid meter's and the PV meter's active power [W]."""
        try:
            self._metered(now, grid_power_w, pv_power_w)
        except Exception:
            if not self._fault_logged:
                self._fault_logged = True
                LOG.exception("the bill failed (peak, cost and PV are not kept; control goes on)")

    def _metered(self, now: datetime, grid_power_w: float | None, pv_power_w: float | None) -> None:
        grid_kw = None if grid_power_w is None else grid_power_w / 1000.0
        for w in self.peaks.observe(now, grid_kw):
            self._put_window(w, closed=True)
        for d in self.cost.observe(now, grid_kw, self._price_of):
            self._put_day(d, now)
        pv_kw = None if pv_power_w is None else pv_power_w / 1000.0
        if pv_kw is not None and pv_kw < PV_NEGATIVE_KW and not self._pv_negative_logged:
            self._pv_negative_logged = True
            LOG.warning("PV meter %s reads %.1f kW: production should read positive (is it `invert: true`?);"
                        " taken as 0", self.pv_meter, pv_kw)
        self.pv_kw = None if pv_kw is None else max(0.0, pv_kw)
        self.pv.observe(now, self.pv_kw)
        last = self._persisted_at
        if last is None or now < last or (now - last).total_seconds() >= PERSIST_S:
            self.flush(now)
        self._publish(now)

    def _price_of(self, at: datetime) -> float | None:
        dated = self.prices.steps if self.prices is not None else ()
        got = price_at(dated, self.ports.site().tariff.energy, at, self.tz)
        return None if got is None else got[0]

    # --- the plan loop --------------------------------------------------------------------------
    async def refresh(self, now: datetime) -> None:
        """Read the prices file again if it changed (its size or modification time; in a thread: a
        long file takes a while to parse), and the sessions of the last days for the arrival
        forecast once an hour (:data:`SESSIONS_EVERY_S`; only where the planner prices the demand
        charge). The plan loop calls it before each snapshot."""
        try:
            await self._read_prices(now, force=False)
        except Exception:
            LOG.exception("reading the prices file failed")
        try:
            await self._read_sessions(now)
        except Exception:
            LOG.exception("reading the sessions for the arrival forecast failed: planning without it")

    async def _read_sessions(self, now: datetime) -> None:
        site = self.ports.site()
        if self.db_path is None or site.tariff.demand is None or not site.control.plan_cost:
            self.arrivals = None
            self._sessions_read = None  # read at once when switched on again
            return
        day = now.astimezone(self.tz).date()
        last = self._sessions_read
        if last is not None and abs((now - last[0]).total_seconds()) < SESSIONS_EVERY_S and last[1] == day \
                and last[2] is site:
            return
        self._sessions_read = (now, day, site)
        since = now - timedelta(days=LOOKBACK_DAYS + 1)
        self.arrivals = await asyncio.to_thread(forecast_history, self.db_path, since, day, self.tz, site)

    async def _read_prices(self, now: datetime, *, force: bool) -> None:
        async with self._reading:
            prices = self.prices
            if prices is None:
                return
            read = await asyncio.to_thread(prices.reload if force else prices.poll, now)
            if prices is self.prices:  # not replaced by a reload meanwhile
                self._note_read(read)

    def cost_inputs(self, now: datetime) -> CostInputs:
        """The planner's inputs now (the prices as last read: :meth:`refresh`)."""
        try:
            site = self.ports.site()
            end = now + timedelta(hours=site.control.horizon_h)
            prices = covering(self.prices.steps, now, end, self.tz) if self.prices is not None else ()
            peak = self.peaks.peak_kw(now) if site.tariff.demand is not None else None
            if site.pv is None:
                return CostInputs(prices, peak, arrivals=self.arrivals)
            return CostInputs(prices, peak, self.pv_kw, self.pv.forecast(now, end), self.arrivals)
        except Exception:
            LOG.exception("the planner's cost inputs failed: planning without them")
            return CostInputs()

    # --- reload and stop ------------------------------------------------------------------------
    async def reload(self, now: datetime) -> None:
        """SIGHUP: follow the site file in force (a changed time zone, window, currency, PV meter or
        prices file) and read the prices file again, changed or not."""
        try:
            self._reload(now)
            await self._read_prices(now, force=True)
            self._publish(now)
        except Exception:
            LOG.exception("the bill did not follow the reload")

    def _reload(self, now: datetime) -> None:
        site = self.ports.site()
        tz, window = site_tz(site), window_min(site)
        pv_meter = site.pv.meter if site.pv is not None else None
        new_peaks = tz.key != self.tz.key or window != self.peaks.window_min
        new_cost = new_peaks or site.tariff.currency != self.currency
        new_pv = new_peaks or pv_meter != self.pv_meter
        self.flush(now)
        if new_peaks:
            old_peak, old = self.peaks.peak(now), self.peaks.current
            if old is not None:
                self._put_window(old, closed=True)  # ended early: the windows change
            self.tz = tz
            self.peaks = PeakTracker(tz, window)
            self.peaks.restore(now, [old_peak] if old_peak is not None else [])
        if new_cost:
            self.cost = CostMeter(tz)
            self.currency = site.tariff.currency
        if new_pv:
            self.pv = PvHistory()
            self.pv_meter = pv_meter
            self.pv_kw = None
        if new_peaks or new_cost or new_pv:
            self._restore(now, peaks=new_peaks, cost=new_cost, pv=new_pv)
        prices = self._prices_file(site)
        same_file = prices is not None and self.prices is not None and prices.path == self.prices.path
        if not (same_file and self.prices is not None and self.prices.tz.key == tz.key):
            if same_file and prices is not None and self.prices is not None:  # a new time zone: keep the last
                prices.steps, prices.loaded_at = self.prices.steps, self.prices.loaded_at  # good ones till re-read
            self.prices = prices

    def flush(self, now: datetime) -> None:
        """Write the window in progress and today's figures (every :data:`PERSIST_S`, and at stop)."""
        self._persisted_at = now
        if self.peaks.current is not None:
            self._put_window(self.peaks.current, closed=False)
        if self.cost.today is not None:
            self._put_day(self.cost.today, now)

    # --- output ---------------------------------------------------------------------------------
    def _put_window(self, w: DemandWindow, *, closed: bool) -> None:
        self.ports.recorder.put(DemandWindowRecord(w.start, w.end, w.energy_kwh, w.covered_s, closed))

    def _put_day(self, d: EnergyDay, now: datetime) -> None:
        self.ports.recorder.put(DailyEnergy(d.day, self.currency, d.import_kwh, d.priced_kwh, d.cost, now))

    def _note_read(self, read: PricesRead | None) -> None:
        """Log and record a read of the prices file (None: it did not change, nothing read)."""
        if read is None or self.prices is None:
            return
        path = self.prices.path
        if not read.ok:
            kept = f"the {read.steps} prices read before stay in force" if read.steps else "no dated prices in force"
            LOG.error("prices file %s refused, %s:\n%s", path, kept, read.error)
            first = (read.error or "").splitlines()[0] if read.error else "refused"
            self.ports.recorder.event("prices_file", f"refused ({kept}): {first}")
            return
        until = hour_end(self.prices.steps[-1][0], self.tz) if self.prices.steps else None
        LOG.info("prices file %s: %d prices until %s", path, read.steps,
                 until.astimezone(self.tz).isoformat(timespec="minutes") if until else "—")
        self.ports.recorder.event("prices_file", f"read {read.steps} prices from {path}")

    def _publish(self, now: datetime) -> None:
        site = self.ports.site()
        price = self._price_of(now)
        cost = self.cost.total_cost if has_prices(site) else None
        observe_bill(self.ports.metrics, self.currency, price, self.peaks.peak_kw(now), cost)

    def status(self, now: datetime) -> BillStatus:
        site = self.ports.site()
        got = price_at(self.prices.steps if self.prices is not None else (), site.tariff.energy, now, self.tz)
        prices = None
        if self.prices is not None:
            p = self.prices
            prices = PricesStatus(
                path=str(p.path), steps=len(p.steps), loaded_at=p.loaded_at,
                covers_until=hour_end(p.steps[-1][0], self.tz) if p.steps else None,
                error=p.error, error_at=p.error_at,
            )
        today = self.cost.today
        if today is not None and today.day != now.astimezone(self.tz).date():
            today = None  # no reading yet today
        return BillStatus(
            currency=self.currency,
            price_per_kwh=None if got is None else got[0],
            price_source=None if got is None else got[1],
            day=now.astimezone(self.tz).date(),
            today=today,
            cost_total=self.cost.total_cost if has_prices(site) else None,
            has_prices=has_prices(site),
            demand_price_per_kw=site.tariff.demand.price_per_kw if site.tariff.demand is not None else None,
            window_min=self.peaks.window_min,
            period_start=self.peaks.period_start(now),
            peak_kw=self.peaks.peak_kw(now),
            peak=self.peaks.peak(now),
            window=self.peaks.current,
            prices_file=prices,
            pv_meter=self.pv_meter,
            pv_kw=self.pv_kw if site.pv is not None else None,
        )


def forecast_history(db_path: Path, since: datetime, day: date, tz: ZoneInfo, site: Site) -> Candidates:
    """The finished sessions since ``since``, as the arrival forecast's candidates for the
    site-local ``day`` (in a thread: a depot's fortnight is ~40 000 sessions, ~0.3 s)."""
    return candidates(read_past_sessions(db_path, since), day, tz, partial(charger_max_kw, site))
