"""Fair use across processes on PostgreSQL: a new job is inserted only if the policy
agrees with the database's counts of every process's jobs, two processes admitting at
the same instant are counted one after the other, and what an admin changes through one
process reaches the others' policies. Real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.policy import Policy, Reason
from bot.store import Admission, AdmissionRefused, Standing
from tests.store_backends import pg_database, pg_server  # noqa: F401 (fixtures)
from tests.test_policy import ask, settings
from tests.test_store import make_job


@pytest.fixture
async def two_stores(pg_database: str) -> AsyncIterator[list[Any]]:  # noqa: F811
    store_class = importlib.import_module("bot.store.pg").PostgresJobStore
    stores = [store_class(pg_database) for _ in range(2)]
    for store in stores:
        await store.open()
    yield stores
    for store in stores:
        await store.close()


def at_most(jobs: int, seen: list[Standing], since: float = 0.0) -> Admission:
    def decide(standing: Standing) -> object | None:
        seen.append(standing)
        return "over" if standing.total_jobs >= jobs else None

    return Admission(guild_id=8, user_id=9, since=since, recent=since, decide=decide)


async def test_two_processes_admitting_at_once_are_counted_in_turn(two_stores: list[Any]) -> None:
    seen: list[Standing] = []
    results = await asyncio.gather(
        *(
            store.add(make_job(str(n)), admit=at_most(1, seen))
            for n, store in enumerate(two_stores)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, AdmissionRefused)]
    assert len(refused) == 1
    assert refused[0].refusal == "over"
    assert sorted(s.total_jobs for s in seen) == [0, 1]  # the second saw the first's job
    assert len(await two_stores[0].unfinished()) == 1  # nothing written for the refused


async def test_the_standing_counts_what_fair_use_counts(two_stores: list[Any]) -> None:
    first, second = two_stores
    await first.add(dataclasses.replace(make_job("1"), text="twelve chars"))
    await first.add(dataclasses.replace(make_job("2", created_at=10.0), user_id=5))
    refunded = await first.add(make_job("3"))  # never sent: it costs nothing
    await first.mark_failed(refunded.id, "cancelled", "")
    await first.mark_explained(refunded.id)
    seen: list[Standing] = []
    await second.add(make_job("4"), admit=at_most(10, seen, since=100.0))
    [standing] = seen
    assert standing == Standing(
        user_jobs=1,
        user_chars=12,
        guild_jobs=1,  # job 2 is from before `since` (created at 10 s)
        guild_chars=12,
        total_jobs=1,
        open_jobs=1,
        last_start=standing.last_start,
    )
    assert standing.last_start is not None


async def test_a_change_made_through_one_process_reaches_the_other(
    two_stores: list[Any],
) -> None:
    here, there = (Policy(settings(), store) for store in two_stores)
    for policy in (here, there):
        await policy.load([])
    assert not await there.refresh()  # nothing changed yet
    await here.update_member(8, 9, blocked_at=1.0, blocked_by=1)
    await here.update_guild(8, 1, require_consent=True)
    assert there.check(ask()) is None  # not yet read
    assert await there.refresh()
    refusal = there.check(ask())
    assert refusal is not None
    assert refusal.reason is Reason.BLOCKED
    assert there.guild(8).require_consent is True
    await here.set_globally_enabled(False)
    assert await there.refresh()
    assert not there.globally_enabled
    assert not await there.refresh()  # read once per change
