"""The planner in a worker process (controller.planner.worker) and the daemon's use of it
(controller.daemon.plan_loop.Planning): real spawned processes on a small site.

The test-only planners below are module-level functions, passed to the worker's constructor (the
child imports them by name); nothing in the product is patched.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bench.planner import make_snapshot, next_cycle
from controller.daemon.plan_loop import Planning, PlanRecord, worker_timeout_s
from controller.model import Snapshot
from controller.model.snapshot import Plan
from controller.planner.plan import plan
from controller.planner.state import PlannerState
from controller.planner.worker import PlanWorker, WorkerFailed

HANG_S = 120.0


def hanging_plan(snapshot: Snapshot, state: PlannerState) -> tuple[Plan, PlannerState]:
    """A planner that never answers in time (test only)."""
    time.sleep(HANG_S)
    return plan(snapshot, state)


def raising_plan(snapshot: Snapshot, state: PlannerState) -> tuple[Plan, PlannerState]:
    raise ValueError("boom")


def dying_plan(snapshot: Snapshot, state: PlannerState) -> tuple[Plan, PlannerState]:
    os._exit(3)


def sequence(n: int = 12, cycles: int = 4) -> list[Snapshot]:
    """A small site planned every 15 s; a session arrives in the third cycle (the model's shape changes)."""
    first = make_snapshot(n)
    snaps = [replace(first, sessions=first.sessions[:-1])]
    for k in range(1, cycles):
        nxt = next_cycle(snaps[-1], seed=k)
        if k == 2:
            nxt = replace(nxt, sessions=(*nxt.sessions, replace(first.sessions[-1])))
        snaps.append(nxt)
    return snaps


def comparable(p: Plan) -> Plan:
    """A plan without its timings."""
    return replace(p, stats=replace(p.stats, build_ms=0.0, solve_ms=0.0, total_ms=0.0))


@pytest.fixture
def worker() -> Iterator[PlanWorker]:
    w = PlanWorker(start_timeout_s=60.0)
    yield w
    w.stop()


def _gone(pid: int | None) -> bool:
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie until reaped counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_the_worker_plans_what_the_thread_plans(worker: PlanWorker) -> None:
    snaps = sequence()
    state = PlannerState()
    local = []
    for s in snaps:
        p, state = plan(s, state)
        local.append(p)
    remote = [worker.plan(s, 30.0) for s in snaps]
    assert [comparable(a.plan) for a in remote] == [comparable(p) for p in local]
    assert [a.plan.stats.warm for a in remote] == [False, True, False, True]  # warm where the shape held
    assert [a.site_sent for a in remote] == [True, False, False, False]  # one site object: sent once
    assert all(a.wait_ms >= a.planner_ms > 0 for a in remote)


def test_a_reset_starts_cold_and_sends_the_site_again(worker: PlanWorker) -> None:
    snaps = sequence(cycles=2)
    worker.plan(snaps[0], 30.0)
    worker.reset()
    again = worker.plan(snaps[1], 30.0)
    assert again.site_sent and not again.plan.stats.warm


def test_a_killed_worker_is_reported_and_a_new_one_plans(worker: PlanWorker) -> None:
    snaps = sequence(cycles=2)
    worker.plan(snaps[0], 30.0)
    pid = worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(WorkerFailed) as err:
        worker.plan(snaps[1], 30.0)
    assert err.value.kind == "died" and "signal 9" in err.value.detail
    assert time.monotonic() - t0 < 10.0  # noticed at once, not after the timeout
    answer = worker.plan(snaps[1], 30.0)  # starts a fresh process
    assert worker.pid != pid and worker.starts == 2
    assert answer.site_sent and not answer.plan.stats.warm


def test_a_hung_worker_is_bounded_and_killed() -> None:
    w = PlanWorker(hanging_plan, start_timeout_s=60.0)
    try:
        assert w.wait_ready(60.0) is False  # not started yet
        w.start()
        assert w.wait_ready(60.0)
        pid = w.pid
        t0 = time.monotonic()
        with pytest.raises(WorkerFailed) as err:
            w.plan(sequence(cycles=1)[0], 1.0)
        assert err.value.kind == "hung"
        assert time.monotonic() - t0 < 5.0
        assert w.pid is None and _gone(pid)
    finally:
        w.stop()


@pytest.mark.parametrize(("fn", "kind", "text"), [(raising_plan, "raised", "ValueError: boom"),
                                                   (dying_plan, "died", "exit code 3")])
def test_a_raising_or_dying_planner_is_reported(fn: object, kind: str, text: str) -> None:
    w = PlanWorker(fn, start_timeout_s=60.0)  # type: ignore[arg-type]
    try:
        with pytest.raises(WorkerFailed) as err:
            w.plan(sequence(cycles=1)[0], 30.0)
        assert err.value.kind == kind and text in err.value.detail
        assert not w.running
    finally:
        w.stop()


def test_stop_leaves_no_process(worker: PlanWorker) -> None:
    worker.start()
    assert worker.wait_ready(60.0)
    pid = worker.pid
    t0 = time.monotonic()
    worker.stop()
    assert time.monotonic() - t0 < 7.0
    assert _gone(pid) and not worker.running
    worker.stop()  # twice is fine


def test_the_timeout_follows_the_solver_limit_and_the_plan_period() -> None:
    control = make_snapshot(2).site.control
    assert worker_timeout_s(replace(control, solver_time_limit_s=2.0, plan_every_s=15.0)) == 8.0
    assert worker_timeout_s(replace(control, solver_time_limit_s=2.0, plan_every_s=3.0)) == 6.0  # 2 periods
    assert worker_timeout_s(replace(control, solver_time_limit_s=5.0, plan_every_s=1.0)) == 6.0  # one solve + 1 s


# --- the daemon's side: Planning ----------------------------------------------------------------


def where(record: PlanRecord | None) -> str | None:
    return None if record is None else record.where


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_planning_falls_back_on_a_killed_worker_and_restarts_it() -> None:
    snaps = sequence(cycles=3)
    clock = Clock()
    with ThreadPoolExecutor(1) as ex:
        p = Planning(PlanWorker(start_timeout_s=60.0), ex, clock)
        try:
            p.start()
            first = await p.plan(snaps[0])
            assert where(p.last) == "worker" and first.stats.fallback_reason is None
            pid = p.worker.pid if p.worker else None
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            second = await p.plan(snaps[1])  # this cycle: the heuristic, said why
            assert where(p.last) == "heuristic" and second.stats.solver == "heuristic"
            assert second.stats.fallback_reason is not None and "died" in second.stats.fallback_reason
            assert {s.session_id for s in second.sessions} == {s.session_id for s in snaps[1].sessions}
            third = await p.plan(snaps[2])  # restarted at once: back in the worker
            assert where(p.last) == "worker" and third.stats.solver == "highs" and third.stats.fallback_reason is None
            assert p.worker is not None and p.worker.pid not in (None, pid)
            summary = p.summary()
            assert (summary.plans, summary.fallbacks) == (3, 1)
            assert any("died" in why for why in summary.reasons)
            clock.t += 3601.0
            assert p.summary().plans == 0  # the last hour only
        finally:
            p.close()


async def test_planning_bounds_a_hung_worker_and_backs_off() -> None:
    snaps = sequence(cycles=3)
    snap = replace(snaps[0], site=replace(snaps[0].site, control=replace(
        snaps[0].site.control, solver_time_limit_s=0.5, plan_every_s=1.0)))  # timeout 2 x 1 s = 2 s
    clock = Clock()
    with ThreadPoolExecutor(1) as ex:
        p = Planning(PlanWorker(hanging_plan, start_timeout_s=60.0), ex, clock)
        try:
            p.start()
            assert p.worker is not None and await asyncio.to_thread(p.worker.wait_ready, 60.0)
            t0 = time.monotonic()
            got = await p.plan(snap)
            assert time.monotonic() - t0 < 2.0 + 5.0
            assert got.stats.solver == "heuristic" and "hung" in (got.stats.fallback_reason or "")
            # restarted at once; hangs again: now a back-off (1 s x 2), the heuristic meanwhile
            again = await p.plan(replace(snap, now=snap.now + timedelta(seconds=1)))
            assert "hung" in (again.stats.fallback_reason or "") and p.failures == 2
            assert p.retry_at == clock.t + 2.0
            t1 = time.monotonic()
            during = await p.plan(replace(snap, now=snap.now + timedelta(seconds=2)))
            assert time.monotonic() - t1 < 2.0  # no worker asked
            assert "2 in a row" in (during.stats.fallback_reason or "")
            assert p.worker.pid is None  # not restarted before the back-off ends
        finally:
            p.close()


async def test_without_a_worker_the_daemon_thread_plans() -> None:
    snaps = sequence(cycles=2)
    with ThreadPoolExecutor(1) as ex:
        p = Planning(None, ex)
        a = await p.plan(snaps[0])
        b = await p.plan(snaps[1])
        assert p.last is not None and p.last.where == "daemon thread"
        assert a.stats.fallback_reason is None and b.stats.warm
        p.reset()
        c = await p.plan(snaps[1])
        assert not c.stats.warm


MAIN_SCRIPT = '''
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
if __name__ == "__mp_main__":  # the worker child running this script again
    Path({marker!r}).write_text("ran")
from controller.planner.plan import plan
from controller.planner.worker import PlanWorker


def own_plan(snapshot, state):
    return plan(snapshot, state)


if __name__ == "__main__":
    worker = PlanWorker({planner}, start_timeout_s=30.0)
    worker.start()
    print("ready", worker.wait_ready(30.0))
    worker.stop()
    print("main kept", "own_plan" in vars(sys.modules["__main__"]))
'''


@pytest.mark.parametrize("own", [False, True])
def test_the_worker_does_not_run_the_main_script_again_unless_its_planner_lives_there(
    tmp_path: Path, own: bool
) -> None:
    """The daemon's main module (the CLI and all it imports) is not re-run in the worker; a script
    whose own function is the planner still works (the child needs the script then)."""
    import subprocess
    import sys

    marker = tmp_path / "ran"
    script = tmp_path / "main_script.py"
    root = str(Path(__file__).resolve().parents[2])
    script.write_text(MAIN_SCRIPT.format(root=root, marker=str(marker), planner="own_plan" if own else "plan"))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert "ready True" in out.stdout, out.stdout + out.stderr
    assert "main kept True" in out.stdout
    assert marker.exists() == own
