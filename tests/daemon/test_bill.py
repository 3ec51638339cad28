"""The bill part (:class:`~controller.daemon.bill.Bill`) on a real history database: a restart keeps
the billing period's peak, the window in progress and today's cost; the prices file is read again
when it changes and on reload, a bad one keeps the previous prices; the PV forecast comes from the
PV meter's readings; the daily report shows cost and peak. Times are pinned instants.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from controller.daemon.bill import Bill, BillPorts
from controller.daemon.record import StoreRecorder
from controller.metrics import DepotMetrics
from controller.model.site import DemandCharge, Grid, Pv, Site, SiteInfo, Tariff, TariffStep
from controller.store import MeterSample, Store
from controller.store.report import daily_report
from controller.store.schema import connect, migrate

AMS = ZoneInfo("Europe/Amsterdam")
S = timedelta(seconds=1)
FLAT = (TariffStep(time(0), 0.25),)


def local(mo: int, d: int, h: int, mi: int = 0, s: int = 0) -> datetime:
    return datetime(2026, mo, d, h, mi, s, tzinfo=AMS).astimezone(UTC)


def bill_site(tariff: Tariff, pv: Pv | None = None) -> Site:
    return Site(site=SiteInfo(name="t", timezone="Europe/Amsterdam"), grid=Grid(limit_a=400.0, meter="grid-meter"),
                tariff=tariff, pv=pv)


class Run:
    """A bill on a store, as the daemon holds them; ``now`` is moved by the test."""

    def __init__(self, site: Site, db: Path, now: datetime, base_dir: Path) -> None:
        self.site, self.db, self.now = site, db, now
        self.recorder = StoreRecorder(lambda: self.now)
        self.metrics = DepotMetrics()
        self.bill = Bill(BillPorts(lambda: self.site, self.recorder, self.metrics, base_dir))
        self.bill.open(db, now)  # as the daemon: before the history writer has the file
        self.recorder.open(db, now)
        self.bill.start(now)

    def feed(self, until: datetime, grid_kw: float | None, pv_kw: float | None = None) -> None:
        while self.now < until:
            self.now += S
            self.bill.metered(self.now, None if grid_kw is None else grid_kw * 1000.0,
                              None if pv_kw is None else pv_kw * 1000.0)

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)

    async def stop(self) -> None:
        self.bill.flush(self.now)
        await self.recorder.close()


async def test_a_restart_keeps_the_period_peak_the_window_and_todays_cost(tmp_path: Path) -> None:
    site = bill_site(Tariff(currency="EUR", energy=FLAT, demand=DemandCharge(price_per_kw=14.0)))
    db = tmp_path / "depot.db"
    run = Run(site, db, local(12, 9, 9, 0), tmp_path)
    run.bill.metered(run.now, 72_000.0, None)  # the first reading covers nothing before it
    run.feed(local(12, 9, 9, 15), 72.0)
    run.feed(local(12, 9, 9, 20), 36.0)
    assert run.bill.peaks.peak_kw(run.now) == pytest.approx(72.0)
    assert run.sample("depot_demand_peak_kw") == pytest.approx(72.0)
    kwh = 72.0 * 900 / 3600 + 36.0 * 300 / 3600  # 18 + 3
    assert run.sample("depot_energy_cost_total", currency="EUR") == pytest.approx(kwh * 0.25)
    assert run.bill.cost_inputs(run.now).demand_peak_kw == pytest.approx(72.0)
    await run.stop()

    # the daemon was down for a minute; the new one continues the 09:15 window
    again = Run(site, db, local(12, 9, 9, 21), tmp_path)
    status = again.bill.status(again.now)
    assert status.peak is not None and status.peak.start == local(12, 9, 9, 0)
    assert status.peak_kw == pytest.approx(72.0) and again.sample("depot_demand_peak_kw") == pytest.approx(72.0)
    assert status.window is not None and status.window.covered_s == 300.0
    assert status.today is not None and status.today.import_kwh == pytest.approx(kwh)
    assert again.sample("depot_energy_cost_total", currency="EUR") == pytest.approx(kwh * 0.25)
    again.bill.metered(again.now, 36_000.0, None)
    again.feed(local(12, 9, 9, 30), 36.0)
    closed = again.bill.peaks.peak(again.now)
    assert closed is not None and closed.start == local(12, 9, 9, 0)  # the 09:15 window (36 kW) closed below it
    kwh += 36.0 * 540 / 3600
    assert again.bill.status(again.now).cost_total == pytest.approx(kwh * 0.25)
    await again.stop()

    report = daily_report(db, local(12, 9, 12).astimezone(AMS).date(), AMS)
    (energy,) = report.energy
    assert energy.currency == "EUR" and energy.import_kwh == pytest.approx(kwh)
    assert energy.cost == pytest.approx(kwh * 0.25)
    demand = report.demand
    assert demand is not None and (demand.windows, demand.windows_partial) == (2, 1)  # 09:15: a minute missing
    assert demand.peak_kw == pytest.approx(72.0) and demand.peak_at == local(12, 9, 9, 0)
    csv = report.to_csv()
    assert "energy,2026-12-09," in csv and ",EUR,26.400,26.400,6.6000," in csv
    assert "demand,2026-12-09," in csv and ",72.000,1.0000,2,1" in csv


async def test_the_prices_file_is_read_when_it_changes_and_a_bad_one_keeps_the_old(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text("2026-12-09T09:00,0.40\n2026-12-09T10:00,0.20\n")
    site = bill_site(Tariff(currency="EUR", energy=FLAT, prices_file="prices.csv"))  # relative to the site file
    run = Run(site, tmp_path / "depot.db", local(12, 9, 9, 30), tmp_path)
    inputs = run.bill.cost_inputs(run.now)
    assert inputs.prices == ((local(12, 9, 9), 0.40), (local(12, 9, 10), 0.20))
    assert run.sample("depot_energy_price", currency="EUR") == 0.40
    assert inputs.demand_peak_kw is None and inputs.pv_kw is None and inputs.pv_forecast_kw == ()

    prices.write_text("2026-12-09T09:00,0.40\n2026-12-09T10:00,0,20\n")  # a decimal comma with ','
    run.now += timedelta(seconds=3)
    await run.bill.refresh(run.now)  # the plan loop, before its next snapshot: the file changed
    assert run.bill.cost_inputs(run.now).prices == inputs.prices  # refused: the previous prices stay
    status = run.bill.status(run.now).prices_file
    assert status is not None and status.error == f"{prices}:2: expected 2 columns (start, price per kWh), got 3"
    assert status.steps == 2 and status.error_at == run.now

    prices.write_text("2026-12-09T09:00,0.40\n2026-12-09T10:00,0.10\n2026-12-09T11:00,0.05\n")
    await run.bill.refresh(run.now + timedelta(seconds=1))
    assert run.bill.status(run.now).prices_file.steps == 3  # type: ignore[union-attr]
    await run.bill.reload(run.now)  # SIGHUP: read again, changed or not
    assert [p for _, p in run.bill.cost_inputs(run.now).prices] == [0.40, 0.10, 0.05]
    assert run.bill.status(run.now).prices_file.error is None  # type: ignore[union-attr]
    run.now = local(12, 9, 12, 30)  # after the file's last hour: the daily tariff again
    run.bill.metered(run.now, 10_000.0, None)
    assert run.sample("depot_energy_price", currency="EUR") == 0.25
    assert run.bill.status(run.now).price_source == "tariff"
    await run.stop()
    conn = connect(run.db)
    events = [r[0] for r in conn.execute("SELECT detail FROM events WHERE kind = 'prices_file' ORDER BY id")]
    conn.close()
    assert events[0] == f"read 2 prices from {prices}"
    assert events[1].startswith("refused (the 2 prices read before stay in force): ")
    assert events[2:] == [f"read 3 prices from {prices}"] * 2


async def test_pv_now_and_its_forecast_from_yesterdays_readings(tmp_path: Path) -> None:
    db = tmp_path / "depot.db"
    store = Store(db, meter_interval_s=0.0, batch_interval_s=0.01)
    yesterday = local(6, 9, 12)
    for i in range(0, 3600, 10):  # 12:00–13:00 yesterday: 20 kW, then 8 kW after 12:30
        store.put(MeterSample("pv-meter", yesterday + timedelta(seconds=i), (29.0, 29.0, 29.0),
                              20_000.0 if i < 1800 else 8_000.0))
    assert store.close()
    site = bill_site(Tariff(), Pv(meter="pv-meter"))
    run = Run(site, db, local(6, 10, 11, 50), tmp_path)
    run.feed(local(6, 10, 11, 52), 5.0, 3.5)
    inputs = run.bill.cost_inputs(run.now)
    assert inputs.pv_kw == pytest.approx(3.5)
    assert inputs.pv_forecast_kw[:4] == (
        (run.now, 0.0), (local(6, 10, 12), 20.0), (local(6, 10, 12, 30), 8.0), (local(6, 10, 13), 0.0)
    )
    run.feed(local(6, 10, 11, 53), 5.0, None)  # the PV meter went stale
    assert run.bill.cost_inputs(run.now).pv_kw is None
    assert run.sample("depot_energy_cost_total", currency="EUR") is None  # no energy prices: no cost series
    await run.stop()



async def test_a_reload_with_another_window_and_currency_keeps_the_period_peak(tmp_path: Path) -> None:
    site = bill_site(Tariff(currency="EUR", energy=FLAT, demand=DemandCharge(price_per_kw=14.0)))
    run = Run(site, tmp_path / "depot.db", local(12, 9, 9, 0), tmp_path)
    run.bill.metered(run.now, 50_000.0, None)
    run.feed(local(12, 9, 9, 20), 50.0)
    assert run.sample("depot_energy_cost_total", currency="EUR") is not None
    run.site = bill_site(Tariff(currency="CHF", energy=FLAT, demand=DemandCharge(price_per_kw=20.0, window_min=30)))
    await run.bill.reload(run.now)
    status = run.bill.status(run.now)
    assert status.window_min == 30 and status.currency == "CHF"
    assert status.peak is not None and status.peak.average_kw == pytest.approx(50.0)  # the 15-min peak stays
    assert run.sample("depot_energy_cost_total", currency="EUR") is None
    assert run.sample("depot_energy_cost_total", currency="CHF") == 0.0  # nothing in francs yet
    run.feed(local(12, 9, 9, 31), 80.0)
    assert run.bill.peaks.window_at(run.now)[0] == local(12, 9, 9, 30)
    peak = run.bill.status(run.now).peak  # the 30-min window 09:00–09:30, read from 09:20 on: what it has
    assert peak is not None and peak.start == local(12, 9, 9, 0) and peak.partial
    assert peak.average_kw == pytest.approx(80.0) and peak.covered_s == 599  # the first reading after: nothing
    await run.stop()


async def test_the_arrival_forecast_reads_the_last_weekdays_sessions_hourly(tmp_path: Path) -> None:
    """With a demand charge and ``plan_cost``, the bill reads the finished sessions of the last days
    from the history file (again an hour later, not every cycle) and the plan loop turns them into
    the vehicles expected later today — not a vehicle plugged in now."""
    from controller.daemon.plan_loop import expected_now
    from controller.model import Charger, Circuit, Control, SessionState
    site = replace(
        bill_site(Tariff(currency="EUR", energy=FLAT, demand=DemandCharge(price_per_kw=14.0))),
        circuits=(Circuit(id="yard", limit_a=400.0),),
        chargers=(Charger(id="DC1", circuit="yard", kind="dc", phases=3, phase_rotation="L1-L2-L3", max_kw=150.0,
                          efficiency=1.0),
                  Charger(id="DC2", circuit="yard", kind="dc", phases=3, phase_rotation="L1-L2-L3", max_kw=150.0,
                          efficiency=1.0)),
        control=Control(plan_cost=True, horizon_h=16.0),
    )
    db = tmp_path / "depot.db"
    now = local(12, 9, 18, 0)  # Wednesday 18:00
    conn = connect(db)  # the history of the last days, there before the daemon starts
    migrate(conn)
    for days, (charger, vehicle, kwh) in enumerate([("DC1", "bus-1", 200.0), ("DC2", "bus-2", 100.0)] * 2):
        ago = 1 + days // 2  # Tuesday and Monday
        start = local(12, 9 - ago, 21 if vehicle == "bus-1" else 22)
        conn.execute("INSERT INTO sessions (session_id, charger_id, connector, vehicle_id, started_at, stopped_at,"
                     " energy_kwh) VALUES (?, ?, 1, ?, ?, ?, ?)",
                     (f"s{days}", charger, vehicle, start.timestamp(), (start + timedelta(hours=8)).timestamp(), kwh))
    conn.commit()
    conn.close()
    run = Run(site, db, now, tmp_path)
    await run.bill.refresh(now)
    arrivals = run.bill.cost_inputs(now).arrivals
    assert arrivals is not None and arrivals.day == date(2026, 12, 9) and arrivals.arrive_s.size == 8  # 4 × 2 days
    here = SessionState(session_id="x", charger_id="DC2", vehicle_id="bus-2", energy_need_kwh=50.0)
    expected = expected_now(site, now, (here,), arrivals)
    assert [(e.arrive_at, e.energy_kwh, e.max_kw) for e in expected] == [(local(12, 9, 21), 200.0, 150.0)]
    # read again only after an hour, or on a new site-local day; without plan_cost nothing is read
    conn = connect(db)
    conn.execute("DELETE FROM sessions")
    conn.commit()
    conn.close()
    await run.bill.refresh(now + timedelta(minutes=30))
    assert run.bill.cost_inputs(now).arrivals is arrivals
    await run.bill.refresh(now + timedelta(hours=1))
    emptied = run.bill.cost_inputs(now).arrivals
    assert emptied is not None and emptied.arrive_s.size == 0
    assert expected_now(site, now, (), emptied) == ()
    run.now = local(12, 9, 23, 50)
    await run.bill.refresh(run.now)
    kept = run.bill.cost_inputs(run.now).arrivals
    await run.bill.refresh(local(12, 10, 0, 10))  # 20 minutes later, Thursday
    thursday = run.bill.cost_inputs(run.now).arrivals
    assert thursday is not kept and thursday is not None and thursday.day == date(2026, 12, 10)
    # Wednesday's candidates are not Thursday's forecast
    assert expected_now(site, local(12, 10, 0, 10), (), arrivals) == ()
    off = replace(site, control=Control(plan_cost=False))
    assert expected_now(off, now, (), arrivals) == ()
    run.site = off
    await run.bill.refresh(local(12, 10, 0, 20))
    assert run.bill.cost_inputs(run.now).arrivals is None
    await run.stop()
