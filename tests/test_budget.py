"""The shared request budget: never more than N grants per window, submits first, fair."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.segmind.budget import MIN_SLACK, Priority, RequestBudget, default_burst


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


async def run_grants(budget: RequestBudget, count: int) -> list[float]:
    loop = asyncio.get_running_loop()
    grants: list[float] = []

    async def one() -> None:
        await budget.acquire(Priority.POLL)
        grants.append(loop.time())

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), 10)
    return grants


async def test_a_rate_not_a_bucket_grants_are_spread_over_the_window() -> None:
    # The old budget let a whole window's grants out at once, then starved for a window.
    budget = RequestBudget(5, window=0.5, margin=0.0)
    grants = await run_grants(budget, 6)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert budget.burst == 1
    assert min(gaps) >= 0.1 - 0.01  # one grant every window / RPM
    assert grants[-1] - grants[0] < 0.5 + 0.1  # and no wait for the window to empty
    assert max_in_window(grants, 0.5) <= 5


async def test_a_small_burst_then_the_pace_and_never_over_the_window() -> None:
    budget = RequestBudget(12, window=0.6, margin=0.0, burst=3)
    grants = await run_grants(budget, 30)
    assert grants[2] - grants[0] < 0.02  # the burst
    assert grants[3] - grants[2] >= 0.05 - 0.01  # then the pace (0.6 s / 12)
    assert max_in_window(grants, 0.6) <= 12


async def test_polls_go_to_the_job_most_likely_done() -> None:
    budget = RequestBudget(1, window=0.05)
    await budget.acquire()
    order: list[str] = []

    async def poll(name: str, rank: float | None) -> None:
        await budget.acquire(Priority.POLL, rank=None if rank is None else lambda: rank)
        order.append(name)

    ranks = (("young", -1.0), ("overdue", 2.0), ("due", 0.5), ("unknown", 0.0), ("unranked", None))
    tasks = [asyncio.create_task(poll(name, rank)) for name, rank in ranks]
    await asyncio.sleep(0)
    submit = asyncio.create_task(budget.acquire(Priority.SUBMIT))
    await asyncio.wait_for(asyncio.gather(*tasks, submit), 5)
    # No rank counts as 0 (FIFO among equals).
    assert order == ["overdue", "due", "unknown", "unranked", "young"]


async def test_has_room_and_a_pause_holds_downloads_without_a_grant() -> None:
    budget = RequestBudget(2, window=0.2, margin=0.0)
    assert budget.has_room()
    await budget.acquire()
    assert not budget.has_room()  # the next grant is a pace away
    loop = asyncio.get_running_loop()
    budget.pause_for(0.15)
    assert budget.paused_for > 0.1
    granted = budget.granted_total
    t0 = loop.time()
    await asyncio.wait_for(budget.wait_unpaused(), 2)
    assert loop.time() - t0 >= 0.14
    assert budget.granted_total == granted  # waiting out a pause spends nothing
    assert budget.paused_for == 0
    budget.close()


def test_defaults_burst_and_spacing() -> None:
    assert [default_burst(n) for n in (0, 5, 24, 25, 50, 100)] == [1, 1, 1, 2, 3, 5]
    budget = RequestBudget(5)
    assert budget.window == 60.0
    assert budget.burst == 1
    # A grant stays in the window 2 % (at least MIN_SLACK) longer than Segmind's minute.
    assert budget.interval == pytest.approx(61.2 / 5)
    assert RequestBudget(5, window=1.0, margin=0.0).interval == pytest.approx((1.0 + MIN_SLACK) / 5)
    assert RequestBudget(0).interval == 0.0  # unlimited
    assert RequestBudget(100, burst=0).burst == 1


@pytest.mark.parametrize(
    ("per_minute", "window", "margin"),
    [(-1, 60.0, 0.02), (5, 0.0, 0.02), (5, -1.0, 0.02), (5, 60.0, -0.01)],
)
def test_nonsense_settings_are_refused(per_minute: int, window: float, margin: float) -> None:
    with pytest.raises(ValueError, match=r"^per_minute must be >= 0, window > 0, margin >= 0$"):
        RequestBudget(per_minute, window=window, margin=margin)
