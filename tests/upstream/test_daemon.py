"""The daemon in local-controller mode, closed loop (rig → depotctl → the rig's CSMS): the CSMS's
cap below the plan is what the charger holds, a plan below the cap wins; the links and the queue
in the status and in ``/metrics``. CP07 speaks 1.6, CP08 2.0.1."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.daemon.rigged import steady, wait_async, wait_for
from tests.upstream.daemon_rig import Up, upstream_rigged


def _metric(text: str, name: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[s.labels.get("charger", "")] = s.value
    return out


def _holds(up: Up, cid: str) -> float:
    value = up.r.rig.sim(cid).composite_a()
    return 99.0 if value is None else value


async def test_csms_caps_bound_the_plan_and_the_links_show_in_status_and_metrics(tmp_path: Path) -> None:
    async with upstream_rigged(tmp_path) as up:
        r, csms = up.r, up.csms
        await steady(r)
        for cid in ("CP07", "CP08"):
            await csms.wait_connected(cid, booted=1)
            assert csms.transactions(cid), f"{cid}: no transaction at the CSMS"

        status = await r.status()
        assert status["upstream"]["connected"] == 2 and status["upstream"]["queue_messages"] == 0
        assert {link["charger_id"]: link["state"] for link in status["upstream"]["links"]} == {
            "CP07": "up", "CP08": "up"}
        text = await r.metrics()
        assert _metric(text, "depot_upstream_connected") == {"CP07": 1.0, "CP08": 1.0}
        assert _metric(text, "depot_upstream_queue_messages") == {"": 0.0}

        # a CSMS cap below the plan (32 A): what the 1.6 charger holds, and what its EV draws
        assert (await csms.set_cap("CP07", 10.0))["status"] == "Accepted"
        await wait_for(lambda: _holds(up, "CP07") <= 10.0 + 1e-6, 10.0, "CP07 at the CSMS's 10 A")
        await wait_for(lambda: max(r.rig.sim("CP07").draw_a()) <= 10.5, 6.0, "CP07's EV at 10 A")

        # a cap above what the plan can give: the plan's limit wins on the 2.0.1 charger
        assert (await csms.set_cap("CP08", 25.0, purpose="ChargingStationMaxProfile"))["status"] == "Accepted"
        r.rig.set_base("feeder-b", (72.0, 72.0, 72.0))  # room for ~14 A more on feeder-b

        async def plan_below_cap() -> bool:
            chargers = {c["id"]: c for c in (await r.status())["chargers"]}
            limit = chargers["CP08"]["limit"]
            return limit is not None and limit < 20.0 and abs(_holds(up, "CP08") - limit) < 0.2

        await wait_async(plan_below_cap, 15.0, "CP08 held at the plan's limit, below the 25 A cap")
        assert _holds(up, "CP07") <= 10.0 + 1e-6
        # the CSMS's own view of the caps it set
        composite = await csms.get_composite_schedule("CP07", 1, 300, "A")
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 10.0
        up.assert_clean()
