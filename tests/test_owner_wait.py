"""The registry of jobs waiting for their voice owner's answer."""

import asyncio
import time

from bot.jobs.owner_wait import OwnerAnswer, OwnerVerdict, OwnerWaits


async def test_answer_resolves_waiting_job() -> None:
    waits = OwnerWaits()
    task = asyncio.ensure_future(waits.wait("7", time.time() + 30))
    await asyncio.sleep(0)  # one step: the task registers its future before awaiting
    assert waits.waiting("7")
    assert waits.answer("7", OwnerVerdict.ALLOWED, always=True)
    assert await task == OwnerAnswer(OwnerVerdict.ALLOWED, True)
    assert not waits.waiting("7")


async def test_an_answer_before_the_wait_is_kept_for_it() -> None:
    """A click after a restart, before recovery has resumed the job."""
    waits = OwnerWaits()
    assert waits.answer("5", OwnerVerdict.ALLOWED)
    assert not waits.answer("5", OwnerVerdict.DENIED)  # the first answer stands
    answer = await waits.wait("5", time.time() + 30)
    assert answer.verdict is OwnerVerdict.ALLOWED
    assert not waits.waiting("5")


async def test_deny_never_stores_always() -> None:
    waits = OwnerWaits()
    task = asyncio.ensure_future(waits.wait("1", time.time() + 30))
    await asyncio.sleep(0)
    assert waits.answer("1", OwnerVerdict.DENIED, always=True)
    assert await task == OwnerAnswer(OwnerVerdict.DENIED, False)


async def test_deadline_from_store_passed_or_short() -> None:
    waits = OwnerWaits()
    assert (await waits.wait("2", 100.0, now=200.0)).verdict is OwnerVerdict.TIMED_OUT
    assert (await waits.wait("3", time.time() + 0.01)).verdict is OwnerVerdict.TIMED_OUT
    assert not waits.waiting("3")
