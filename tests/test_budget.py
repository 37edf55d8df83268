"""The shared request budget: never more than N grants per window, submits first, fair."""

from __future__ import annotations

import asyncio

import pytest

from bot.segmind.budget import Priority, RequestBudget


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window - 1e-6:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_budget_holds_over_window() -> None:
    budget = RequestBudget(5, window=0.25)
    loop = asyncio.get_running_loop()
    grants: list[float] = []

    async def one() -> None:
        await budget.acquire(Priority.POLL)
        grants.append(loop.time())

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(17))), 5)
    assert len(grants) == 17
    assert max_in_window(grants, 0.25) <= 5
    # It does not wait needlessly either: 17 grants at 5 per 0.25 s take ~3 windows.
    assert grants[-1] - grants[0] < 0.25 * 4 + 0.2


async def test_submits_jump_the_poll_queue() -> None:
    budget = RequestBudget(1, window=0.05)
    order: list[str] = []
    await budget.acquire()  # uses the only slot of this window

    async def take(name: str, priority: Priority) -> None:
        await budget.acquire(priority)
        order.append(name)

    polls = [asyncio.create_task(take(f"poll{i}", Priority.POLL)) for i in range(3)]
    await asyncio.sleep(0)  # let the polls queue first
    submit = asyncio.create_task(take("submit", Priority.SUBMIT))
    await asyncio.wait_for(asyncio.gather(*polls, submit), 5)
    assert order[0] == "submit"
    assert order[1:] == ["poll0", "poll1", "poll2"]  # FIFO among polls


async def test_cancelled_waiter_leaves_queue() -> None:
    budget = RequestBudget(1, window=10)
    await budget.acquire()
    waiter = asyncio.create_task(budget.acquire())
    await asyncio.sleep(0)
    assert budget.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert budget.waiting == 0
    budget.close()


async def test_unlimited_and_pause() -> None:
    budget = RequestBudget(0)
    for _ in range(1000):
        await budget.acquire()
    assert budget.granted_total == 1000
    loop = asyncio.get_running_loop()
    budget.pause_for(0.1)
    t0 = loop.time()
    await asyncio.wait_for(budget.acquire(), 2)
    assert loop.time() - t0 >= 0.09
