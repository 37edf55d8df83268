"""FIFO slots: order, positions, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from bot.slots import FifoSlots


async def test_fifo_order_and_positions() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    positions: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    order: list[str] = []

    async def job(name: str) -> None:
        await slots.acquire(positions[name].append)
        order.append(name)

    tasks = [asyncio.create_task(job(n)) for n in "abc"]
    for _ in range(3):
        await asyncio.sleep(0)
    assert slots.waiting == 3
    for _ in range(3):
        slots.release()
        await asyncio.sleep(0)
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert order == ["a", "b", "c"]
    assert positions == {"a": [1], "b": [2, 1], "c": [3, 2, 1]}
    assert slots.in_use == 1


async def test_cancelled_waiter_moves_others_up() -> None:
    slots = FifoSlots(1)
    await slots.acquire()
    seen: list[int] = []
    first = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    second = asyncio.create_task(slots.acquire(seen.append))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert seen == [2, 1]
    slots.release()
    await asyncio.wait_for(second, 1)
    slots.release()
    assert slots.in_use == 0
