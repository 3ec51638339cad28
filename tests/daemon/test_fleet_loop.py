"""Fleet changes through the API close the loop: departure → re-plan → new limit at the charger;
and a restart keeps what was set."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hil.rig import BaseStep, RigDay, Visit
from tests.api.test_roles import TOKENS, call, fleet_site, write_tokens
from tests.daemon.clocks import DST_SPRING, MONDAY_0030, TZ, Clock, pinned_clock, tomorrow_at
from tests.daemon.rigged import (
    FAST,
    Rigged,
    _merged,
    deep_merge,
    ev3,
    rigged,
    start_process,
    stop_process,
    wait_async,
    wait_for,
)

ADMIN = TOKENS["admin"]
PLAN_EVERY_S = FAST["control"]["plan_every_s"]
VAN_MAX_A = 16.0  # the EV's own maximum (the charger allows 32 A)


def van_day(duration_s: float = 300.0, ev_reaction_s: float = 3.0) -> RigDay:
    """VAN-01 (battery 75 kWh in the site file; the EV reports SoC 30 %) on CP01, alone."""
    return RigDay(
        duration_s,
        base=(BaseStep(0.0, "grid", (20.0, 20.0, 20.0)),),
        visits=(Visit("CP01", 0.5, duration_s, ev3(VAN_MAX_A, ev_reaction_s), need_kwh=20.0, id_tag="04A2B3C4",
                      vehicle_id="VAN-01"),),
    )


class _Bearer(urllib.request.BaseHandler):
    """Adds the token to every request urllib sends (rigged's own status polls included)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def http_request(self, request: urllib.request.Request) -> urllib.request.Request:
        request.add_unredirected_header("Authorization", f"Bearer {self.token}")
        return request


@contextlib.contextmanager
def bearer_everywhere(token: str) -> Iterator[None]:
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({}), _Bearer(token)))
    try:
        yield
    finally:
        urllib.request.install_opener(None)  # back to the default opener


async def _api(r: Rigged, method: str, path: str, body: Any = None) -> Any:
    answer = await asyncio.to_thread(call, r.api_url, method, path, token=ADMIN, json_body=body)
    assert answer.status == 200, (method, path, answer.status, answer.body[:300])
    return answer.json()


def _limit(r: Rigged) -> float:
    value = r.rig.sim("CP01").composite_a()
    return -1.0 if value is None else value


@pytest.mark.parametrize("start", [MONDAY_0030, DST_SPRING], ids=["monday-0030", "dst-spring-0130"])
async def test_a_departure_change_moves_the_limit_within_one_plan_cycle(tmp_path: Path, start: datetime) -> None:
    """At Monday 00:30 (VAN-01's weekday departure at 06:30 still ahead today) and on the spring DST
    day (an hour from now is two on the wall clock): a one-off in two hours, then in one.

    The second change comes right after the first one's decrease, while its EV is still reacting
    to it: the raise waits for CP01's reaction time (1 s here), then a plan is asked for at once —
    within one plan cycle of the change, not at the cycle after (the CI once saw that 5 s late)."""
    tokens = {"api": {"tokens_file": str(write_tokens(tmp_path / "tokens.yaml"))}}
    chargers = [{**ch, "reaction_s": 1.0} if ch["id"] == "CP01" else ch for ch in _merged({})["chargers"]]
    overrides = deep_merge(json.loads(json.dumps(FAST)), {**tokens, "chargers": chargers})
    clock: Clock = pinned_clock(start)
    with bearer_everywhere(ADMIN):
        async with rigged(tmp_path, van_day(ev_reaction_s=0.5), overrides=overrides, clock=clock) as r:

            async def normal() -> bool:
                return not (await r.status())["failsafe"]["active"]

            await wait_async(normal, 20, "normal control")
            # a plan has raised it (so the decrease below is one the dispatcher lets settle)
            await wait_for(lambda: _limit(r) >= VAN_MAX_A - 0.5, PLAN_EVERY_S + 2.0, "the first plan's limit")

            # its target state of charge is below what it has: nothing to deliver, the limit drops
            soon = (clock() + timedelta(hours=2)).astimezone(TZ).isoformat(timespec="minutes")
            await _api(r, "PUT", "/api/v1/vehicles/VAN-01/departure", {"at": soon, "target_soc_pct": 20})

            async def met() -> bool:
                return bool(_limit(r) < 7.0 and await _source(r) == "departure met")

            await wait_async(met, PLAN_EVERY_S + 3.0, "the limit down once the need is met", step_s=0.1)
            ready = await _api(r, "GET", "/api/v1/vehicles/VAN-01")
            assert (ready["charger_id"], ready["need_kwh"], ready["will_be_ready"]) == ("CP01", 0.0, True)

            # now it must leave in an hour with 95 %: far more than it can get, so the most it can take
            sooner = (clock() + timedelta(hours=1)).astimezone(TZ)
            t0 = time.monotonic()
            body = {"at": sooner.isoformat(timespec="minutes"), "target_soc_pct": 95}
            await _api(r, "PUT", "/api/v1/vehicles/VAN-01/departure", body)
            await wait_for(lambda: _limit(r) >= VAN_MAX_A - 0.5, PLAN_EVERY_S + 2.0, "the limit up to the EV's max")
            took = time.monotonic() - t0
            assert took < PLAN_EVERY_S, f"the new limit took {took:.1f} s (a plan cycle is {PLAN_EVERY_S} s)"

            async def at_risk() -> bool:
                v = await _api(r, "GET", "/api/v1/vehicles/VAN-01")
                return bool(v["charger_id"] == "CP01" and v["will_be_ready"] is False)

            await wait_async(at_risk, PLAN_EVERY_S + 2.0, "VAN-01 shown at risk")
            vehicle = await _api(r, "GET", "/api/v1/vehicles/VAN-01")
            assert vehicle["departure"]["source"] == "one-off"
            assert datetime.fromisoformat(vehicle["departure"]["at"]) == sooner.replace(second=0, microsecond=0)
            assert vehicle["expected_kwh"] < vehicle["need_kwh"]


async def _source(r: Rigged) -> str | None:
    chargers = {c["id"]: c for c in (await r.status())["chargers"]}
    source: str | None = chargers["CP01"]["limit_source"]
    return source


def _wait_up(url: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if call(url, "GET", "/openapi.json", timeout_s=2).status == 200:
                return
        assert time.monotonic() < deadline, f"no API on {url} within {timeout_s:g} s"
        time.sleep(0.1)


def test_a_restart_keeps_the_departure(tmp_path: Path) -> None:
    """``depotctl run`` as a process: set a departure and a schedule, SIGTERM, start again on the same
    storage, and both are back (no rig needed: the meters are stale, the API answers anyway). The
    process runs on the machine's clock: "tomorrow" is the day after the daemon's own ``now``."""
    site = fleet_site(tmp_path)
    url = _api_url(site)
    log = tmp_path / "daemon.log"
    proc = start_process(site, log)
    try:
        _wait_up(url)
        at = tomorrow_at(5, 45, _daemon_now(url))
        answer = call(url, "PUT", "/api/v1/vehicles/BUS-01/departure", token=TOKENS["fleet-bus"],
                      json_body={"at": at, "energy_kwh": 150, "priority": 1})
        assert answer.status == 200, answer.body
        assert stop_process(proc) == 0, log.read_text()[-2000:]
        time.sleep(0.2)
        proc = start_process(site, log)
        _wait_up(url)
        vehicle = call(url, "GET", "/api/v1/vehicles/BUS-01", token=TOKENS["viewer"]).json()
        assert [(o["at"][:16], o["energy_kwh"], o["priority"]) for o in vehicle["one_offs"]] == [(at, 150, 1)]
    finally:
        stop_process(proc)


def _daemon_now(url: str) -> datetime:
    """The daemon's own clock, from its status."""
    status = call(url, "GET", "/api/v1/status", token=TOKENS["viewer"])
    assert status.status == 200, status.body
    return datetime.fromisoformat(status.json()["now"])


def _api_url(site: Path) -> str:
    data: dict[str, Any] = yaml.safe_load(site.read_text())
    return f"http://{data['api']['listen']}"
