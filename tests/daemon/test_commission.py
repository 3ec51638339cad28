"""Commissioning inside the running daemon, end to end: the real daemon against the hil rig, a loaded
site (other EVs charging, base load on the feeders), runs started over the HTTP API.

One rig, two runs at once: CP08 (an EV plugged in) is commissioned while CP07 and CP09 charge on
the same metered feeder; CP01 is commissioned too and loses its link mid-run. The rig's safety
monitor samples the world all the while, against each node's *usable* limit (limit − margin).

Feeder-b's demand (40 A of its own, 32 + 32 + 16 A of EVs on L3) is more than its 96 A usable:
the plan makes room for CP08 at its maximum by lowering the others, and leaves the run's lines
the headroom's 1 A reserve, so the rig's flickering base load does not have the shed act (the
shed acting on CP08 would end its run: safety first, tests/daemon/test_reaction.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from controller.daemon.core import Daemon, DaemonOptions
from controller.daemon.sessions import REACTION_S
from hil.ev import EvParams
from hil.rig import BaseStep, RigDay, Visit
from hil.rig.monitor import SafetyMonitor, Sample, sample_world, watch
from tests.api.test_roles import TOKENS, Answer, call, write_tokens
from tests.commission.timings import EV_REACTION_S, RIG_OPTIONS
from tests.daemon.rigged import FAST, Rigged, ev3, rigged, steady, wait_async, wait_for

OPTIONS = RIG_OPTIONS
ALLOWANCE_S = EV_REACTION_S + 1.0 + 2.0  # EV reaction + meter poll + 2 s, as the other rig tests allow
RUN_TIMEOUT_S = 25.0


def loaded_day(duration_s: float = 120.0) -> RigDay:
    """Feeder-b (100 A, metered) carries 40 A of its own and three EVs: CP07 and CP08 (3-phase,
    32 A) and CP09 (1-phase on L3, 16 A); VAN-01 charges on CP01 (board-a1, 16 A); the grid 20 A
    of its own."""
    ev = EvParams(max_a=32.0, phases=3, battery_kwh=200.0, reaction_s=EV_REACTION_S)
    return RigDay(
        duration_s,
        base=(BaseStep(0.0, "grid", (20.0, 20.0, 20.0)), BaseStep(0.0, "feeder-b", (40.0, 40.0, 40.0))),
        visits=(
            Visit("CP07", 0.2, duration_s, ev, need_kwh=50.0, id_tag="T-CP07"),
            Visit("CP08", 0.2, duration_s, ev, need_kwh=50.0, id_tag="T-CP08"),
            Visit("CP09", 0.2, duration_s, replace(ev, max_a=16.0, phases=1), need_kwh=20.0, id_tag="T-CP09"),
            Visit(
                "CP01", 0.2, duration_s, ev3(16.0, EV_REACTION_S), need_kwh=20.0, id_tag="04A2B3C4", vehicle_id="VAN-01"
            ),
        ),
    )


async def with_tokens(r: Rigged, tmp: Path) -> None:
    """Give the running daemon an API tokens file (:data:`TOKENS`), as an operator does: the site
    file gets ``api.tokens_file``, then a reload."""
    assert r.daemon is not None
    data = yaml.safe_load(r.site_path.read_text())
    data["api"]["tokens_file"] = str(write_tokens(tmp / "tokens.yaml"))
    r.site_path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert await r.daemon.reload()


async def http(r: Rigged, method: str, path: str, token: str | None = TOKENS["admin"], **kw: Any) -> Answer:
    return await asyncio.to_thread(call, r.api_url, method, path, token=token, **kw)


def settled(d: Daemon) -> bool:
    """Every node under its usable limit, and no overload shed for the last 3 s."""
    site = d.site
    loads = d.fast.observation.loads_a
    under = all(
        node in loads and max(loads[node]) <= site.node_limit_a(node) - site.node_margin_a(node)
        for node in site.node_ids()
    )
    shed_at = d.fast.stats.last_shed_at
    return under and (shed_at is None or (d.clock() - shed_at).total_seconds() > 3.0)


def usable_sample(r: Rigged, d: Daemon, t0: float) -> Sample:
    """The world now, judged against each node's usable limit (limit − margin), not its rating."""
    loop = asyncio.get_running_loop()
    site = d.site
    sample = sample_world(r.rig, d, site, loop.time() - t0)
    usable = {node: site.node_limit_a(node) - site.node_margin_a(node) for node in site.node_ids()}
    return replace(sample, limits_a=usable)


async def test_commissioning_on_a_loaded_site_stays_within_every_limit(tmp_path: Path) -> None:
    options = DaemonOptions(handle_signals=False, plan_in_worker=False, commission=OPTIONS)
    async with rigged(tmp_path, loaded_day(), overrides=FAST, options=options) as r:
        d = r.daemon
        assert d is not None
        await steady(r, ("CP07", "CP08", "CP09"), above_a=3.0)
        await with_tokens(r, tmp_path)
        await wait_for(lambda: settled(d), 20, "the site under its limits, no shed for 3 s")
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        monitor = SafetyMonitor(reaction_allowance_s=ALLOWANCE_S, grace_s=d.site.ocpp.call_timeout_s)
        watcher = asyncio.create_task(watch(monitor, lambda: usable_sample(r, d, t0), every_s=0.2))
        try:
            viewer = await http(r, "POST", "/api/v1/chargers/CP08/commission", TOKENS["viewer"])
            assert viewer.status == 403 and "admin" in viewer.json()["detail"]
            plans_before = d.plans.plans
            started = await http(r, "POST", "/api/v1/chargers/CP08/commission")
            assert started.status == 202, started.body
            assert started.json()["state"] == "running" and started.json()["checks"] == []
            again = await http(r, "POST", "/api/v1/chargers/CP08/commission", json_body={"no_ev": False})
            assert again.status == 409
            assert again.json() == {"detail": "a commissioning of CP08 is already running"}
            assert (await http(r, "POST", "/api/v1/chargers/CP01/commission")).status == 202

            # while it runs: held — out of the plan, budgeted at its maximum for the planner
            assert d.commission.holds("CP08") and d.commission.commissioned("CP08") == "running"
            await wait_for(
                lambda: d.fast.observation.budgets_a.get("CP08") == (33.0, 33.0, 33.0),
                5,
                "CP08 budgeted at 32 A + the 1 A reserve on its lines",
            )
            await wait_for(lambda: d.plans.plans > plans_before + 1, 10, "a plan after the start")
            assert d.plans.outcome is not None
            assert "CP08" not in {s.charger_id for s in d.plans.outcome.plan.sessions}
            status = (await http(r, "GET", "/api/v1/status", TOKENS["viewer"])).json()
            assert {c["id"]: c["commissioned"] for c in status["chargers"]}["CP08"] == "running"

            # CP01 loses its link in the middle of its run
            async def cp01_checks() -> bool:
                answer = await http(r, "GET", "/api/v1/chargers/CP01/commission", TOKENS["viewer"])
                return len(answer.json()["checks"]) >= 3

            await wait_async(cp01_checks, 10, "CP01's first checks")
            await r.rig.sim("CP01").drop_link()

            async def finished(cid: str) -> bool:
                answer = await http(r, "GET", f"/api/v1/chargers/{cid}/commission", TOKENS["viewer"])
                return bool(answer.json()["state"] != "running")

            await wait_async(lambda: finished("CP01"), 5, "CP01's run to end")
            await wait_async(lambda: finished("CP08"), RUN_TIMEOUT_S, "CP08's run to end")
        finally:
            watcher.cancel()
        cp08 = (await http(r, "GET", "/api/v1/chargers/CP08/commission", TOKENS["viewer"])).json()
        cp01 = (await http(r, "GET", "/api/v1/chargers/CP01/commission", TOKENS["viewer"])).json()

        assert not monitor.violations, "\n".join(str(v) for v in monitor.violations) + "\n" + monitor.summary()
        assert monitor.samples > 20 and monitor.budget_checks > 0
        failed = [c for c in cp08["checks"] if c["status"] == "failed"]
        assert cp08["state"] == "finished" and cp08["passed"], (failed, cp08.get("incomplete"))
        assert [c["name"] for c in cp08["checks"] if c["status"] == "skipped"] == []
        assert cp08["reaction_s"] is not None and cp08["changes"] == []
        assert cp01["state"] == "aborted" and not cp01["passed"]
        assert cp01["error"] == "charger CP01 disconnected during the run"

        # back under control at once; what was measured is used from now on
        assert not d.commission.holds("CP08")  # its EV's 0.3 s only ever lengthens the 5 s allowance
        assert d.commission.reaction_s("CP08") == max(REACTION_S, cp08["reaction_s"])
        assert d.commission.reaction_s("CP07") == 5.0  # never commissioned: the default
        await wait_for(lambda: any(k.startswith("CP08:") for k in d.dispatch.sent), 10, "a plan limit for CP08")
        status = (await http(r, "GET", "/api/v1/status", TOKENS["viewer"])).json()
        commissioned = {c["id"]: c["commissioned"] for c in status["chargers"]}
        assert (commissioned["CP08"], commissioned["CP01"], commissioned["CP07"]) == ("passed", "failed", "never")
        site = (await http(r, "GET", "/api/v1/commission", TOKENS["viewer"])).json()
        assert [rep["charger"] for rep in site] == ["CP01", "CP08"]
