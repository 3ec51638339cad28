"""The frame gate: at most N pieces of work start per event-loop round, FIFO, none lost."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from controller.chargers.rounds import Rounds


async def _burst(rounds: Rounds, n: int, log: list[tuple[int, int]], pass_no: list[int]) -> None:
    async def one(i: int) -> None:
        await rounds.admit()
        log.append((pass_no[0], i))

    await asyncio.gather(*(one(i) for i in range(n)))


async def test_a_burst_starts_in_rounds_of_n_in_arrival_order_and_lets_the_loop_poll_between() -> None:
    rounds = Rounds(per_round=4)
    log: list[tuple[int, int]] = []
    pass_no = [0]
    polled: list[int] = []  # an I/O-like callback (the fast loop's meter answer) arriving meanwhile

    async def counter() -> None:  # counts event-loop passes
        while True:
            await asyncio.sleep(0)
            pass_no[0] += 1

    ticker = asyncio.create_task(counter())
    loop = asyncio.get_running_loop()
    loop.call_later(0, lambda: polled.append(len(log)))  # due with the first round's end
    try:
        await _burst(rounds, 14, log, pass_no)
    finally:
        ticker.cancel()
    assert [i for _, i in log] == list(range(14))  # every one, in the order they came
    by_pass: dict[int, int] = {}
    for p, _ in log:
        by_pass[p] = by_pass.get(p, 0) + 1
    assert max(by_pass.values()) <= 4  # never more than a round's worth in one pass
    assert len(by_pass) == 4  # 4 + 4 + 4 + 2
    assert polled and polled[0] <= 4  # the timer (an answer that came meanwhile) ran after the first round
    assert rounds.deferred == 10 and rounds.waiting == 0


async def test_work_trickling_in_is_never_held() -> None:
    rounds = Rounds(per_round=2)
    for _ in range(10):
        await asyncio.wait_for(rounds.admit(), 1.0)
        await asyncio.sleep(0.001)  # the loop polls: a new round
    assert rounds.deferred == 0


def _starter(rounds: Rounds, started: list[str]) -> Callable[[str], Coroutine[Any, Any, None]]:
    async def one(name: str) -> None:
        await rounds.admit()
        started.append(name)

    return one


async def test_a_cancelled_waiter_gives_its_place_to_the_next() -> None:
    rounds = Rounds(per_round=1)
    await rounds.admit()  # the round is full
    started: list[str] = []
    one = _starter(rounds, started)
    a = asyncio.create_task(one("a"))
    b = asyncio.create_task(one("b"))
    c = asyncio.create_task(one("c"))
    await asyncio.sleep(0)
    assert rounds.waiting == 3
    a.cancel()
    await asyncio.wait_for(asyncio.gather(b, c), 1.0)
    assert started == ["b", "c"]
    assert a.cancelled()


async def test_cancelled_after_its_turn_came_the_next_still_gets_its_own() -> None:
    rounds = Rounds(per_round=1)
    await rounds.admit()
    started: list[str] = []
    one = _starter(rounds, started)
    a = asyncio.create_task(one("a"))
    b = asyncio.create_task(one("b"))
    await asyncio.sleep(0)
    assert rounds.waiting == 2
    rounds._next_round()  # the round ends now: a's turn is granted …
    a.cancel()  # … and a is cancelled before it runs: its turn goes unused, b waits for its round
    await asyncio.wait_for(b, 1.0)
    assert started == ["b"]


async def _random_trial(rng: random.Random) -> None:
    rounds = Rounds(per_round=3)
    pass_no = [0]
    asked: list[int] = []
    started: list[tuple[int, int]] = []

    async def counter() -> None:
        while True:
            await asyncio.sleep(0)
            pass_no[0] += 1

    async def one(i: int) -> None:
        asked.append(i)
        await rounds.admit()
        started.append((pass_no[0], i))

    ticker = asyncio.create_task(counter())
    tasks: list[asyncio.Task[None]] = []
    for i in range(40):
        tasks.append(asyncio.create_task(one(i)))
        if rng.random() < 0.3:
            await asyncio.sleep(0)
        if rng.random() < 0.15:
            rng.choice(tasks).cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 5.0)
    ticker.cancel()
    per_pass: dict[int, int] = {}
    for p, _ in started:
        per_pass[p] = per_pass.get(p, 0) + 1
    assert max(per_pass.values(), default=0) <= 3
    order = [i for _, i in started]
    assert order == sorted(order, key=asked.index)
    assert len(started) + sum(1 for t in tasks if t.cancelled()) == 40


async def test_never_more_than_n_per_pass_and_in_order_with_cancellations_and_late_comers() -> None:
    """Random bursts, some waiters cancelled, others arriving while a round's waiters are woken:
    no pass starts more than N, and the ones that started did so in the order they asked."""
    rng = random.Random(7)
    for _ in range(60):
        await _random_trial(rng)


def test_a_new_event_loop_starts_clean() -> None:
    """A gate left mid-burst by a loop that closed (a test fixture reused) still admits in the next."""
    rounds = Rounds(per_round=1)

    async def burst() -> None:
        await rounds.admit()
        waiter = asyncio.create_task(rounds.admit())
        await asyncio.sleep(0)  # waiting for the next round when the loop goes away
        waiter.cancel()

    asyncio.run(burst())

    async def later() -> int:
        done = 0
        for _ in range(5):
            await asyncio.wait_for(rounds.admit(), 1.0)
            done += 1
        return done

    assert asyncio.run(later()) == 5


def test_at_least_one_per_round() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Rounds(per_round=0)
