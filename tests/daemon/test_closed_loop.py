"""The daemon against the hil rig, closed loop over real Modbus TCP and OCPP websockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from controller.metrics import CONTRACT_NAMES
from tests.daemon.rigged import Rigged, rigged, steady, wait_async, wait_for

FEEDER_B_LIMIT_A = 100.0
FAILSAFE_A = 6.0


def _feeder_b_max(r: Rigged) -> float:
    return max(r.rig.loads()["feeder-b"])


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
    return out


def _present(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> bool:
    return any(k == name or k.startswith(name + "_") for k in samples) or any(
        k == name + "_total" or k == name + "_bucket" for k in samples
    )


async def test_base_load_step_is_shed_within_reaction_plus_2_s_and_metrics_scrape(tmp_path: Path) -> None:
    async with rigged(tmp_path) as r:
        await steady(r)
        await asyncio.sleep(4)  # a plan with a departure at risk or not, meter values in

        # /metrics during the loop: every contract name, sane values
        samples = _samples(await r.metrics())
        missing = [n for n in CONTRACT_NAMES if not _present(samples, n)]
        assert not missing, f"not exported: {missing}"
        assert [v for _, v in samples["depot_failsafe_active"]] == [0.0]
        assert all(0.0 < v < 160.0 for _, v in samples["depot_grid_current_amperes"])
        assert {lab["charger"]: v for lab, v in samples["depot_charger_connected"]} == {
            f"CP0{i}": 1.0 for i in range(1, 10)
        } | {"DC01": 1.0}
        assert sum(v for lab, v in samples["depot_meter_reads_total"] if lab["result"] == "ok") > 5
        assert any(v > 0 for _, v in samples["depot_plan_duration_seconds_count"])
        assert {lab["vehicle"] for lab, _ in samples["depot_departure_at_risk"]} == {"VAN-01"}
        limits = {lab["charger"]: v for lab, v in samples["depot_charger_limit_amperes"]}
        assert limits["CP07"] > FAILSAFE_A and limits["CP08"] > FAILSAFE_A

        # a base-load step on the sub-metered feeder: 60 A more than the EVs leave room for
        assert _feeder_b_max(r) < FEEDER_B_LIMIT_A
        r.rig.set_base("feeder-b", (70.0, 70.0, 70.0))
        assert _feeder_b_max(r) > FEEDER_B_LIMIT_A
        reaction_s = 3.0
        took = await wait_for(lambda: _feeder_b_max(r) <= FEEDER_B_LIMIT_A, reaction_s + 2.0, "feeder-b under 100 A")
        await asyncio.sleep(3.0)  # stays under (the planner does not undo the shed)
        assert _feeder_b_max(r) <= FEEDER_B_LIMIT_A
        status = await r.status()
        assert status["loop"]["sheds"] >= 1
        assert status["loop"]["shed_ms_p99"] < 200.0

        samples = _samples(await r.metrics())
        daemon = {
            lab["phase"]: v for lab, v in samples["depot_limit_exceeded_seconds_total"] if lab["circuit"] == "feeder-b"
        }
        truth = r.rig.truth.exceeded_s["feeder-b"]
        for i, phase in enumerate(("L1", "L2", "L3")):
            # the daemon counts whole meter polls (1 s) from the readings it got; the rig integrates
            assert abs(daemon.get(phase, 0.0) - truth[i]) <= 1.5, (phase, daemon, truth, took)
        assert truth[0] > 0.5


async def test_grid_meter_loss_goes_failsafe_and_recovers(tmp_path: Path) -> None:
    async with rigged(tmp_path) as r:
        await steady(r)
        server = r.rig.meter_server("grid-meter")
        await server.stop()
        site = r.daemon.site if r.daemon else None
        assert site is not None
        stale_after_s = site.meters[0].stale_after_s
        charging = ["CP07", "CP08"]

        def all_failsafe() -> bool:
            return all((r.rig.sim(c).composite_a() or 99.0) <= FAILSAFE_A + 1e-6 for c in charging)

        took = await wait_for(all_failsafe, stale_after_s + 1.0 + 2.0, "every charger at its fail-safe limit")
        status = await r.status()
        assert status["failsafe"]["active"] and "grid meter stale" in status["failsafe"]["reason"]
        assert took <= stale_after_s + 1.0 + 1.0

        await server.start()

        async def normal() -> bool:
            return not (await r.status())["failsafe"]["active"]

        back = await wait_async(normal, 10, "normal after the meter returns")
        assert back >= 2.0  # N = 3 good cycles at 1 s, not the first good reading
        await wait_for(lambda: (r.rig.sim("CP07").composite_a() or 0.0) > FAILSAFE_A + 1.0, 10, "control resumed")
