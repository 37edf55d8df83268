import asyncio
import time

from bot.jobs.owner_wait import OwnerAnswer, OwnerVerdict, OwnerWaits


async def test_answer_resolves_waiting_job() -> None:
    waits = OwnerWaits()
    task = asyncio.ensure_future(waits.wait(7, time.time() + 30))
    await asyncio.sleep(0)  # one step: the task registers its future before awaiting
    assert waits.waiting(7)
    assert waits.answer(7, allowed=True, always=True)
    assert await task == OwnerAnswer(OwnerVerdict.ALLOWED, True)
    assert not waits.waiting(7)
    assert not waits.answer(7, allowed=False)


async def test_deny_never_stores_always() -> None:
    waits = OwnerWaits()
    task = asyncio.ensure_future(waits.wait(1, time.time() + 30))
    await asyncio.sleep(0)  # one step: the task registers its future before awaiting
    assert waits.waiting(1)
    waits.answer(1, allowed=False, always=True)
    assert await task == OwnerAnswer(OwnerVerdict.DENIED, False)


async def test_deadline_from_store_passed_or_short() -> None:
    waits = OwnerWaits()
    assert (await waits.wait(2, 100.0, now=200.0)).verdict is OwnerVerdict.TIMED_OUT
    assert (await waits.wait(3, time.time() + 0.01)).verdict is OwnerVerdict.TIMED_OUT
    assert not waits.waiting(3)
