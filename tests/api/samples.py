"""Sample :class:`StatusResponse` objects (one with every optional value unknown, one fully filled),
and helpers to serve an app on a free loopback port and fetch from it."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from controller.api.models import (
    ChargerInfo,
    DemandWindowInfo,
    EnergyInfo,
    FailsafeInfo,
    GridInfo,
    LoopInfo,
    MeterInfo,
    NodeInfo,
    PlanInfo,
    PricesFileInfo,
    SessionInfo,
    StatusResponse,
    StoreInfo,
)
from controller.api.server import ApiServer

CET = timezone(timedelta(hours=1))
NOW = datetime(2024, 3, 12, 14, 30, 5, tzinfo=CET)
FAILSAFE_REASON = "grid meter grid-main stale for 12.0 s"


def sparse_status() -> StatusResponse:
    """Just started: fail-safe, nothing measured, a charger that never connected, no plan, no store."""
    return StatusResponse(
        version="0.1.0",
        site="Empty Depot",
        timezone="Not/AZone",
        now=NOW,
        started_at=NOW - timedelta(seconds=3),
        config_file="/etc/depotctl/site.yaml",
        config_loaded_at=NOW - timedelta(seconds=3),
        failsafe=FailsafeInfo(
            active=True, reason="starting", since=NOW - timedelta(seconds=3), good_cycles=0, recover_cycles=3
        ),
        grid=GridInfo(meter=None, current_a=None, power_w=None, limit_a=100.0, margin_a=0.0, limit_kw=None),
        nodes=[
            NodeInfo(id="grid", parent=None, limit_a=100.0, margin_a=0.0, measured_a=None, planned_a=None,
                     headroom_a=None),
        ],
        meters=[MeterInfo(id="grid-main", age_s=None, stale=True, problem=None, accepted=0, rejected=0, failed=0)],
        chargers=[
            ChargerInfo(id="CP-X", circuit="grid", kind="ac", connected=False, ocpp_version=None, status=None,
                        limit=None, unit="A", limit_source=None, current_a=None, energy_wh=None, sessions=[]),
        ],
        plan=None,
        loop=LoopInfo(cycles=0, cycle_ms_p50=None, cycle_ms_p99=None, sheds=0, last_shed_at=None,
                      shed_ms_p50=None, shed_ms_p99=None),
        store=None,
    )


def empty_status() -> StatusResponse:
    """No circuits, meters or chargers at all."""
    return sparse_status().model_copy(update={"nodes": [], "meters": [], "chargers": []})


def full_status(*, failsafe: bool = True) -> StatusResponse:
    """A bus depot in the afternoon: two feeders, an AC charger with two sessions, a DC charger, a
    charger offline; fail-safe active (meter stale) unless ``failsafe=False``."""
    bus1 = SessionInfo(
        session_id="tx-1001", connector=1, vehicle_id="BUS-101", started_at=NOW - timedelta(hours=2),
        departure_at=NOW + timedelta(hours=3, minutes=30), energy_need_kwh=180.0, delivered_kwh=62.4,
        expected_kwh=180.0, will_meet_departure=True, soc_pct=48.0, eta=NOW + timedelta(hours=2, minutes=50),
    )
    bus2 = SessionInfo(
        session_id="tx-1002", connector=2, vehicle_id=None, started_at=NOW - timedelta(minutes=20),
        departure_at=NOW + timedelta(days=1, hours=-8), energy_need_kwh=250.0, delivered_kwh=5.1,
        expected_kwh=201.5, will_meet_departure=False, soc_pct=None, eta=None,
    )
    van = SessionInfo(
        session_id="7f3c", connector=1, vehicle_id="VAN-7", started_at=NOW - timedelta(minutes=45),
        departure_at=None, energy_need_kwh=None, delivered_kwh=14.2, expected_kwh=None,
        will_meet_departure=None, soc_pct=81.5, eta=None,
    )
    return StatusResponse(
        version="0.1.0",
        site="Bus Depot Nord",
        timezone="Europe/Berlin",
        now=NOW,
        started_at=NOW - timedelta(days=2, hours=3),
        config_file="/etc/depotctl/bus-depot.yaml",
        config_loaded_at=NOW - timedelta(hours=5),
        failsafe=FailsafeInfo(
            active=failsafe, reason=FAILSAFE_REASON, since=NOW - timedelta(seconds=42), good_cycles=1,
            recover_cycles=3,
        ),
        grid=GridInfo(meter="grid-main", current_a=[312.5, 298.0, 405.2], power_w=215_400.0, limit_a=400.0,
                      margin_a=10.0, limit_kw=250.0),
        nodes=[
            NodeInfo(id="grid", parent=None, limit_a=400.0, margin_a=10.0, measured_a=[312.5, 298.0, 405.2],
                     planned_a=[300.0, 290.0, 380.0], headroom_a=[77.5, 92.0, -15.2]),
            NodeInfo(id="feeder-a", parent="grid", limit_a=250.0, margin_a=5.0, measured_a=None,
                     planned_a=[120.0, 118.0, 64.0], headroom_a=[125.0, 127.0, 181.0]),
            NodeInfo(id="hall-2", parent="feeder-a", limit_a=63.0, margin_a=3.0, measured_a=[40.2, 41.0, 0.0],
                     planned_a=None, headroom_a=[19.8, 19.0, 60.0]),
            NodeInfo(id="feeder-b", parent="grid", limit_a=160.0, margin_a=0.0, measured_a=None, planned_a=None,
                     headroom_a=None),
        ],
        meters=[
            MeterInfo(id="grid-main", age_s=12.04, stale=True, problem="timeout reading 10.0.0.20:502 unit 1",
                      accepted=18_234, rejected=3, failed=17),
            MeterInfo(id="hall-2-sub", age_s=0.8, stale=False, problem=None, accepted=18_250, rejected=0, failed=0),
        ],
        chargers=[
            ChargerInfo(id="CP-01", circuit="hall-2", kind="ac", connected=True, ocpp_version="1.6",
                        status="Charging", limit=32.0, unit="A", limit_source="plan", current_a=[31.8, 31.5, 0.0],
                        energy_wh=1_234_567.0, sessions=[bus1, bus2]),
            ChargerInfo(id="DC-150", circuit="feeder-a", kind="dc", connected=True, ocpp_version="2.0.1",
                        status="Charging", limit=90.5, unit="kW", limit_source="circuit feeder-a L2",
                        current_a=[130.0, 129.0, 131.0], energy_wh=None, sessions=[van]),
            ChargerInfo(id="CP-09", circuit="feeder-b", kind="ac", connected=False, ocpp_version="1.6",
                        status="Unavailable", limit=6.0, unit="A", limit_source="failsafe", current_a=None,
                        energy_wh=None, sessions=[]),
        ],
        plan=PlanInfo(at=NOW - timedelta(seconds=4), solver="highs", total_ms=38.7, sessions=3,
                      warnings=["BUS-? (CP-01 #2) cannot get 250.0 kWh by Wed 06:30: 201.5 kWh expected"]),
        loop=LoopInfo(cycles=186_402, cycle_ms_p50=4.2, cycle_ms_p99=31.9, sheds=2,
                      last_shed_at=NOW - timedelta(hours=1, minutes=3), shed_ms_p50=180.0, shed_ms_p99=420.0),
        store=StoreInfo(path="/var/lib/depotctl/depot.db", written=1_043_221, dropped=12, queue_depth=4,
                        broken=False),
        energy=energy_info(),
    )


PRICES_REFUSED = (
    "/var/lib/depotctl/prices.csv:7: price 'O.31' is not a number\n/var/lib/depotctl/prices.csv:9: no price"
)


def energy_info() -> EnergyInfo:
    """The bill of the afternoon: a day-ahead price, a peak with a partial window, a refused prices file."""
    month = datetime(2024, 3, 1, tzinfo=CET)
    return EnergyInfo(
        currency="EUR", price_per_kwh=0.2412, price_source="prices file", day=NOW.date(),
        today_import_kwh=1834.5, today_cost=402.77, cost_total=9120.5, demand_price_per_kw=14.0, window_min=15,
        period_start=month, peak_kw=231.6,
        peak_window=DemandWindowInfo(start=month + timedelta(days=4, hours=7, minutes=45),
                                     end=month + timedelta(days=4, hours=8), average_kw=231.6, coverage=0.9,
                                     partial=True),
        window=DemandWindowInfo(start=NOW.replace(minute=30, second=0), end=NOW.replace(minute=45, second=0),
                                average_kw=188.2, coverage=1.0, partial=False),
        demand_charge=231.6 * 14.0,
        prices_file=PricesFileInfo(
            path="/var/lib/depotctl/prices.csv", prices=96, loaded_at=NOW - timedelta(hours=2),
            covers_until=NOW + timedelta(hours=9, minutes=30), error=PRICES_REFUSED,
            error_at=NOW - timedelta(minutes=5),
        ),
        pv_meter="pv-roof", pv_kw=41.3,
    )


@asynccontextmanager
async def serving(app: Any, listen: str = "127.0.0.1:0") -> AsyncIterator[ApiServer]:
    """``app`` served by a started :class:`ApiServer` (a free port by default), stopped afterwards."""
    server = ApiServer(app, listen)
    await asyncio.wait_for(server.start(), timeout=5)
    try:
        yield server
    finally:
        await asyncio.wait_for(server.stop(timeout_s=2), timeout=5)


def http_get(url: str, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Blocking GET without proxies: (status, headers, body), HTTP errors included. Run it with
    ``asyncio.to_thread`` when the server lives in the caller's loop."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout_s) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


async def aget(url: str, timeout_s: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """:func:`http_get` from a thread, bounded."""
    return await asyncio.wait_for(asyncio.to_thread(http_get, url, timeout_s), timeout=timeout_s + 1)
