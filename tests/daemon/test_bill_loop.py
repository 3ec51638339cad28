"""The bill in the running daemon, closed loop against the rig (real Modbus TCP meters, real OCPP
chargers, the real SQLite file): a tariff with a prices file and a demand charge, and a PV meter.

The daemon's clock (shared with the rig) starts seconds before a quarter hour, so a demand window
closes during the test: ``/metrics`` and the status show the price, the peak and the cost; a bad
prices file is refused and the previous prices stay; and a restart keeps the period's peak and
today's cost. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.daemon.core import Daemon
from controller.model.site import DemandCharge, Pv, Site, Tariff
from hil.rig import BaseStep, RigDay
from tests.daemon.clocks import TZ, pinned_clock
from tests.daemon.rigged import FAST, Rigged, deep_merge, rigged, wait_async

START = datetime(2026, 12, 9, 13, 59, 50, tzinfo=TZ)
"""Ten seconds before 14:00 (a Wednesday in December, CET): the 13:45 window closes during the test."""
METERS = [
    {"id": "grid-meter", "preset": "eastron-sdm630", "modbus": {"host": "127.0.0.1", "port": 15020, "unit": 1},
     "poll_s": 1, "stale_after_s": 5},
    {"id": "feeder-b-meter", "preset": "carlo-gavazzi-em340", "modbus": {"host": "127.0.0.1", "port": 15020, "unit": 2},
     "poll_s": 1, "stale_after_s": 5},
    {"id": "pv-meter", "preset": "eastron-sdm630", "modbus": {"host": "127.0.0.1", "port": 15020, "unit": 3},
     "poll_s": 1, "stale_after_s": 5},
]
PRICES = "start,price_per_kwh\n2026-12-09T13:00,0.30\n2026-12-09T14:00,0.20\n"


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _grid_kw(r: Rigged) -> float:
    return sum(r.rig.sim_meter("grid-meter").state.power_w) / 1000.0


async def _bill(r: Rigged) -> dict[str, Any]:
    energy: dict[str, Any] = (await r.status())["energy"]
    return energy


async def test_price_peak_cost_and_pv_in_metrics_and_status_and_the_peak_survives_a_restart(tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(PRICES)

    def with_bill(site: Site) -> Site:
        tariff = Tariff("EUR", site.tariff.energy, str(prices), DemandCharge(price_per_kw=14.0, window_min=15))
        return replace(site, tariff=tariff, pv=Pv(meter="pv-meter"))

    day = RigDay(600.0, base=(BaseStep(0.0, "grid", (30.0, 30.0, 30.0)), BaseStep(0.0, "feeder-b", (10.0, 10.0, 10.0))))
    overrides = deep_merge({"meters": METERS}, FAST)
    async with rigged(tmp_path, day, overrides=overrides, clock=pinned_clock(START), site_edit=with_bill) as r:
        r.rig.sim_meter("pv-meter").set_load(base_a=(10.0, 10.0, 10.0), ev_a=(0.0, 0.0, 0.0))
        assert r.daemon is not None

        async def window_closed() -> bool:
            return (await _bill(r))["peak_window"] is not None

        await wait_async(window_closed, 20, "the 13:45 window to close at 14:00 on the daemon's clock")
        bill = await _bill(r)
        peak = bill["peak_window"]
        assert datetime.fromisoformat(peak["start"]) == datetime(2026, 12, 9, 13, 45, tzinfo=TZ)
        assert peak["partial"] and 0.0 < peak["coverage"] < 0.02  # only its last seconds were read
        grid_kw = _grid_kw(r)
        assert 20.0 < grid_kw < 40.0
        assert peak["average_kw"] == pytest.approx(grid_kw, rel=0.05)
        assert bill["peak_kw"] >= peak["average_kw"] and bill["demand_charge"] == pytest.approx(bill["peak_kw"] * 14)
        assert bill["price_per_kwh"] == 0.20 and bill["price_source"] == "prices file"
        assert bill["prices_file"]["prices"] == 2 and bill["prices_file"]["error"] is None
        assert bill["pv_kw"] == pytest.approx(sum(r.rig.sim_meter("pv-meter").state.power_w) / 1000.0, rel=0.05)
        assert bill["today_import_kwh"] > 0 and bill["today_cost"] > 0

        m = _metrics(await r.metrics())
        assert m[("depot_energy_price", (("currency", "EUR"),))] == 0.20
        assert m[("depot_demand_peak_kw", ())] >= peak["average_kw"]
        cost_total = m[("depot_energy_cost_total", (("currency", "EUR"),))]
        assert cost_total > 0

        # the cost follows the meter: import over a few seconds × the price in force
        before, meter_before = bill["today_import_kwh"], r.rig.sim_meter("grid-meter").state.import_kwh
        await asyncio.sleep(4.0)
        after, meter_after = (await _bill(r))["today_import_kwh"], r.rig.sim_meter("grid-meter").state.import_kwh
        assert after - before == pytest.approx(meter_after - meter_before, rel=0.3)

        # a bad prices file: refused with its line, the previous prices stay
        prices.write_text(PRICES + "2026-12-09T15:00,0.1O\n")

        async def refused() -> bool:
            return (await _bill(r))["prices_file"]["error"] is not None

        await wait_async(refused, 10, "the bad prices file to be refused")
        bill = await _bill(r)
        assert bill["prices_file"]["error"] == f"{prices}:4: price '0.1O' is not a number"
        assert bill["prices_file"]["prices"] == 2 and bill["price_per_kwh"] == 0.20

        # a restart: the period's peak and today's cost come back from SQLite
        first = r.daemon
        first.request_stop()
        assert r.task is not None
        await asyncio.wait_for(r.task, 15)
        kept_cost = (first.bill.status(first.clock())).cost_total
        r.daemon = Daemon(first.site, r.site_path, first.options)
        r.task = asyncio.create_task(r.daemon.run())
        await wait_async(lambda: r.status(), 20, "the restarted daemon's API")
        bill = await _bill(r)
        assert bill["peak_window"] == peak
        assert bill["peak_kw"] >= peak["average_kw"]
        assert kept_cost is not None and bill["cost_total"] >= kept_cost
        m = _metrics(await r.metrics())
        assert m[("depot_demand_peak_kw", ())] >= peak["average_kw"]
        assert m[("depot_energy_cost_total", (("currency", "EUR"),))] >= kept_cost
        assert bill["prices_file"]["error"] == f"{prices}:4: price '0.1O' is not a number"  # read at start: refused
        assert bill["price_per_kwh"] == 0.31  # no good read in this run: the daily tariff (07:00–23:00: 0.31)
