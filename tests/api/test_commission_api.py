"""The commissioning API over HTTP on loopback, against the real daemon and the hil rig.

Reports from earlier runs are in the database before the daemon starts (what they found is put to
use at once); then every endpoint is called by every role, with bad input, and one run (no EV:
the rig has none plugged in) goes from start to report; the fail-safe ends a run and refuses new
ones; a stop in the middle of a run leaves it aborted in the database.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from controller.commission.report import Check, Report
from controller.commission.runner import CommissionOptions
from controller.daemon.core import DaemonOptions
from controller.store.commission import CommissionStore
from hil.rig import BaseStep, RigDay
from tests.api.test_roles import TOKENS, Answer, call
from tests.daemon.clocks import PINNED_AT
from tests.daemon.rigged import DEMO, FAST, Rigged, rigged, wait_async, wait_for
from tests.daemon.test_commission import with_tokens

OPTIONS = CommissionOptions(clock_samples=3, clock_wait_s=4.0, probe_s=3.0)
"""The clock check waits for three timestamps (2 s at least): a run lasts long enough to be seen running."""
BASE = "/api/v1/chargers"
T0 = PINNED_AT - timedelta(days=60)


def _site_overrides() -> dict[str, Any]:
    """FAST timings; CP05's site-file line says its EVs react in 2.5 s."""
    over = copy.deepcopy(FAST)
    chargers = yaml.safe_load(DEMO.read_text())["chargers"]
    for ch in chargers:
        if ch["id"] == "CP05":
            ch["reaction_s"] = 2.5
    over["chargers"] = chargers
    return over


def _seed(path: Path) -> None:
    """Earlier runs: CP02 twice (a firmware update since, and now it holds its last limit and its
    EVs follow in 7.2 s), CP05 once (its EVs measured at 7 s), CP03 one the controller never saw end."""
    store = CommissionStore(path)
    ok = (Check("connects", True, "1.6"), Check("follows_limit", True, 1.5), Check("profile_expiry", True, 1.0))
    store.save(Report("CP02", T0, T0 + timedelta(minutes=4), "finished", ok, reaction_s=1.5, firmware="1.0"))
    held = (
        Check("connects", True, "1.6"),
        Check("follows_limit", True, 7.2),
        Check("profile_expiry", False, 16.0, "still 16 A after its end"),
    )
    store.save(
        Report(
            "CP02",
            T0 + timedelta(days=30),
            T0 + timedelta(days=30, minutes=4),
            "finished",
            held,
            quirks=("holds_last_limit",),
            reaction_s=7.2,
            firmware="1.1",
        )
    )
    store.save(Report("CP05", T0, T0 + timedelta(minutes=4), "finished", ok, reaction_s=7.0))
    store.save(Report("CP03", T0 + timedelta(days=40), checks=ok[:1]))


async def http(r: Rigged, method: str, path: str, token: str | None, **kw: Any) -> Answer:
    return await asyncio.to_thread(call, r.api_url, method, path, token=token, **kw)


async def test_commissioning_over_the_api(tmp_path: Path) -> None:
    _seed(tmp_path / "depot.db")
    day = RigDay(120.0, base=(BaseStep(0.0, "grid", (10.0, 10.0, 10.0)), BaseStep(0.0, "feeder-b", (5.0, 5.0, 5.0))))
    options = DaemonOptions(handle_signals=False, plan_in_worker=False, commission=OPTIONS)
    async with rigged(tmp_path, day, overrides=_site_overrides(), options=options) as r:
        d = r.daemon
        assert d is not None
        await with_tokens(r, tmp_path)
        admin, viewer = TOKENS["admin"], TOKENS["viewer"]

        # what the earlier runs found is in use from the start
        assert "holds_last_limit" in d.cs.control.target("CP02").quirks
        assert d.commission.reaction_s("CP02") == 7.2  # measured (its follows_limit passed)
        assert d.commission.reaction_s("CP05") == 2.5  # the site file's line wins
        assert d.commission.reaction_s("CP04") == 5.0  # neither: the default
        assert d.dispatch.reaction("CP02") == 7.2

        # reading: the latest, what changed, the history, the site
        cp02 = await http(r, "GET", f"{BASE}/CP02/commission", viewer)
        assert cp02.status == 200 and cp02.json()["state"] == "finished" and not cp02.json()["passed"]
        assert cp02.json()["ocpp_quirks_line"] == "ocpp_quirks: [holds_last_limit]"
        assert cp02.json()["changes"] == [
            "firmware: 1.0 → 1.1",
            "profile_expiry: passed before, failed now (still 16 A after its end)",
            "new quirk holds_last_limit (add it to the site file: ocpp_quirks: [holds_last_limit])",
            "EV reaction: 1.5 s → 7.2 s",
        ]
        history = (await http(r, "GET", f"{BASE}/CP02/commission/history?limit=5", viewer)).json()
        assert [h["firmware"] for h in history] == ["1.1", "1.0"]
        assert [
            h["firmware"] for h in (await http(r, "GET", f"{BASE}/CP02/commission/history?limit=1", viewer)).json()
        ] == ["1.1"]
        cp03 = (await http(r, "GET", f"{BASE}/CP03/commission", viewer)).json()
        assert (cp03["state"], cp03["error"]) == ("aborted", "the controller stopped during the run")
        site = (await http(r, "GET", "/api/v1/commission", viewer)).json()
        assert [rep["charger"] for rep in site] == ["CP02", "CP03", "CP05"]
        never = await http(r, "GET", f"{BASE}/CP06/commission", viewer)
        assert never.status == 404 and never.json() == {"detail": "charger CP06 was never commissioned"}
        for path in (f"{BASE}/NOPE/commission", f"{BASE}/NOPE/commission/history"):
            unknown = await http(r, "GET", path, viewer)
            assert unknown.status == 404 and unknown.json() == {"detail": "unknown charger 'NOPE'"}
        assert (await http(r, "GET", f"{BASE}/CP02/commission/history?limit=0", viewer)).status == 422

        # who may: any token reads, only admin starts one
        for token, code in ((None, 401), ("not-a-token", 401), (viewer, 403), (TOKENS["fleet-acme"], 403)):
            assert (await http(r, "POST", f"{BASE}/CP04/commission", token)).status == code
            assert (await http(r, "GET", "/api/v1/commission", token)).status == (200 if code == 403 else 401)
        refused = await http(r, "POST", f"{BASE}/CP04/commission", TOKENS["fleet-acme"])
        assert "needs role admin" in refused.json()["detail"]

        # bad input
        odd = await http(r, "POST", f"{BASE}/CP04/commission", admin, json_body={"no_ev": True, "speed": "fast"})
        assert odd.status == 422 and odd.json()["detail"][0]["field"] == "speed"
        two = await http(r, "POST", f"{BASE}/CP04/commission", admin, json_body={"connector": 2})
        assert two.status == 422 and two.json()["detail"] == [
            {"field": "connector", "reason": "charger CP04 has 1 connector(s)"}
        ]
        nope = await http(r, "POST", f"{BASE}/NOPE/commission", admin)
        assert nope.status == 404 and nope.json() == {"detail": "unknown charger 'NOPE'"}

        # a charger that is not connected
        await wait_for(lambda: not d.failsafe.state.active, 20, "normal control")
        await r.rig.disconnect_chargers()
        await r.rig.sim("CP04").connect(r.ocpp_url)
        await wait_for(lambda: d.cs.session("CP04") is not None and d.cs.session("CP06") is None, 10, "CP04 only")
        offline = await http(r, "POST", f"{BASE}/CP06/commission", admin)
        assert offline.status == 409 and offline.json() == {"detail": "charger CP06 is not connected"}

        # a run, start to end
        started = await http(r, "POST", f"{BASE}/CP04/commission", admin, json_body={"no_ev": True})
        assert started.status == 202, started.body
        assert (started.json()["state"], started.json()["checks"], started.json()["no_ev"]) == ("running", [], True)
        busy = await http(r, "POST", f"{BASE}/CP04/commission", admin)
        assert busy.status == 409 and busy.json() == {"detail": "a commissioning of CP04 is already running"}
        status = (await http(r, "GET", "/api/v1/status", viewer)).json()
        commissioned = {c["id"]: c["commissioned"] for c in status["chargers"]}
        assert commissioned == {
            **dict.fromkeys(commissioned, "never"),
            "CP02": "failed",
            "CP03": "failed",
            "CP04": "running",
            "CP05": "passed",
        }

        async def ended() -> bool:
            report = (await http(r, "GET", f"{BASE}/CP04/commission", viewer)).json()
            return bool(report["state"] != "running")

        await wait_async(ended, 20, "CP04's run to end")
        report = (await http(r, "GET", f"{BASE}/CP04/commission", viewer)).json()
        assert report["state"] == "finished" and report["passed"], report
        assert [c["status"] for c in report["checks"]] == ["passed"] * 5 + ["skipped"] * 6
        assert report["started"] == started.json()["started"] and report["changes"] == []
        history = (await http(r, "GET", f"{BASE}/CP04/commission/history", viewer)).json()
        assert [h["state"] for h in history] == ["finished"]

        # the fail-safe ends a run (safety first), and no run starts in it
        assert (await http(r, "POST", f"{BASE}/CP04/commission", admin, json_body={"no_ev": True})).status == 202
        r.rig.sim_meter("grid-meter").misbehave("nan")
        await wait_async(ended, 10, "the fail-safe to end CP04's run")
        report = (await http(r, "GET", f"{BASE}/CP04/commission", viewer)).json()
        assert report["state"] == "aborted" and report["error"].startswith("fail-safe: "), report
        assert not d.commission.holds("CP04")
        refused = await http(r, "POST", f"{BASE}/CP04/commission", admin)
        assert refused.status == 409 and refused.json()["detail"].startswith("the site is in fail-safe (")
        r.rig.sim_meter("grid-meter").heal()
        await wait_for(lambda: not d.failsafe.state.active, 15, "normal control again")

        # a stop in the middle of a run: aborted, and said why
        assert (await http(r, "POST", f"{BASE}/CP04/commission", admin, json_body={"no_ev": True})).status == 202
    stored = CommissionStore(tmp_path / "depot.db").history("CP04")
    assert [h.state for h in stored] == ["aborted", "aborted", "finished"]
    assert stored[0].error == "the controller stopped during the run"
