"""The plan loop in ``depotctl run``: plans come from the worker process; a killed worker is
replaced and the cycle still planned (the reason on the status page); SIGTERM leaves no process."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from tests.daemon.rigged import rigged, steady, stop_process, wait_async


def children(pid: int) -> dict[int, str]:
    """Live (not zombie) child processes of ``pid``: pid → command line."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmd
    return out


def planner_pids(pid: int) -> set[int]:
    return {c for c, cmd in children(pid).items() if "child_main" in cmd}


async def test_the_worker_plans_is_replaced_when_killed_and_stops_with_the_daemon(tmp_path: Path) -> None:
    async with rigged(tmp_path, process=True) as r:
        await steady(r)
        assert r.proc is not None
        daemon_pid = r.proc.pid

        async def from_worker() -> bool:
            plan = (await r.status())["plan"] or {}
            return plan.get("planned_in") == "worker" and plan.get("status") == "Optimal"

        await wait_async(from_worker, 20, "a plan from the worker process")
        status = (await r.status())["plan"]
        assert status["fallbacks_last_hour"] == 0 and status["iterations"] >= 0
        assert status["wait_ms_p99"] is not None
        workers = planner_pids(daemon_pid)
        assert len(workers) == 1, children(daemon_pid)
        (first,) = workers
        os.kill(first, signal.SIGKILL)

        async def replaced() -> bool:
            plan = (await r.status())["plan"] or {}
            reasons = plan.get("fallback_reasons_last_hour") or {}
            return (
                plan.get("planned_in") == "worker"
                and any("died" in why for why in reasons)
                and planner_pids(daemon_pid) - {first} != set()
            )

        await wait_async(replaced, 30, "a new worker planning after the heuristic covered the cycle")
        assert (await r.status())["failsafe"]["active"] is False
        left = children(daemon_pid)
        assert set(left) == planner_pids(daemon_pid), left  # the worker, and no other process (no resource tracker)
        code = await asyncio.to_thread(stop_process, r.proc, signal.SIGTERM)
        assert code == 0, r.log()[-2000:]

        async def none_left() -> bool:
            return all(children_state(c) in ("gone", "Z") for c in left)

        await wait_async(none_left, 5, f"no process left of {left}")


def children_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "gone"
    return stat[stat.rindex(")") + 2 :].split()[0]
