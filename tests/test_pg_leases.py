"""Several bot processes on one PostgreSQL database: each open job is driven by the one
process holding its lease; a process that dies stops renewing, and another claims its
jobs (its own shards' at once, others' a lease later); a process that lost a job cannot
move it any more. Real PostgreSQL (tests/store_backends.py)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.store import JobRecord, JobState, LeaseLost
from tests.store_backends import pg_database, pg_server  # noqa: F401 (fixtures)
from tests.test_store import make_job

LEASE = 0.6  # seconds: real time passes in these tests

Open = Callable[..., Any]


@pytest.fixture
async def open_store(pg_database: str) -> AsyncIterator[Open]:  # noqa: F811
    store_class = importlib.import_module("bot.store.pg").PostgresJobStore
    opened: list[Any] = []

    async def opener(**options: Any) -> Any:
        store = store_class(pg_database, lease_seconds=options.pop("lease", LEASE), **options)
        await store.open()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()


async def die(store: Any) -> None:
    """kill -9: no renewing, nothing handed back."""
    store._renewer.cancel()
    pool, store._pool = store._pool, None
    pool.terminate()


async def claimed_within(store: Any, seconds: float) -> list[JobRecord]:
    """What `store` claims once something is claimable: the lease running out is the
    event, and only the database can tell (so it is asked every 50 ms)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        claimed: list[JobRecord] = await store.claim_unfinished()
        if claimed:
            return claimed
        await asyncio.sleep(0.05)
    return []


async def test_a_job_is_driven_by_the_process_that_accepted_it(open_store: Open) -> None:
    first, second = await open_store(), await open_store()  # both open: no refusal
    await first.add(make_job("1"))
    assert await second.claim_unfinished() == []
    with pytest.raises(LeaseLost, match="another bot process drives it"):
        await second.mark_submit_started("1")
    record = await first.mark_submit_started("1")
    assert record.submit_started_at is not None
    assert (await second.get("1")) == record  # reads are anyone's


async def test_leases_are_renewed_while_the_process_runs(open_store: Open) -> None:
    first, second = await open_store(), await open_store()
    await first.add(make_job("1"))
    assert await claimed_within(second, 3 * LEASE) == []  # past several lease lengths
    await first.mark_submit_started("1")


async def test_a_dead_process_s_jobs_are_resumed_by_another(open_store: Open) -> None:
    first, second = await open_store(), await open_store()
    await first.add(make_job("1", created_at=100.0))
    await first.add(make_job("2", created_at=50.0))
    await first.mark_submit_started("1")
    await die(first)
    claimed = await claimed_within(second, 5 * LEASE)
    assert [record.id for record in claimed] == ["2", "1"]  # oldest first
    assert claimed[1].submit_started_at is not None  # as the dead one left it
    await second.mark_failed("1", "submit_unknown", "maybe sent")  # it may move them now
    assert await second.claim_unfinished() == []  # claimed once


async def test_a_stopped_process_hands_its_jobs_back_at_once(open_store: Open) -> None:
    first, second = await open_store(lease=60.0), await open_store(lease=60.0)
    await first.add(make_job("1"))
    await first.close()
    assert [record.id for record in await second.claim_unfinished()] == ["1"]


async def test_own_shards_jobs_first_other_servers_a_lease_later(open_store: Open) -> None:
    """guild 8 is on shard (8 >> 22) % 2 = 0. The process for shard 1 waits a lease
    longer, so a restarted shard-0 process takes its own job back first."""
    dead = await open_store(shards=(2, (0,)))
    other_shard = await open_store(shards=(2, (1,)), lease=2 * LEASE)
    await dead.add(make_job("1"))
    await die(dead)
    assert await claimed_within(other_shard, 2 * LEASE) == []  # not yet: not its shard
    restarted = await open_store(shards=(2, (0,)))
    assert [record.id for record in await claimed_within(restarted, 3 * LEASE)] == ["1"]


async def test_no_job_is_claimed_twice(open_store: Open) -> None:
    dead = await open_store()
    for n in range(30):
        await dead.add(make_job(str(n), created_at=float(n)))
    await die(dead)
    claimers = [await open_store() for _ in range(3)]
    await asyncio.sleep(LEASE * 1.5)  # the dead one's leases run out (real time)
    results = await asyncio.gather(*(c.claim_unfinished() for c in claimers))
    ids = [record.id for claimed in results for record in claimed]
    assert sorted(ids, key=int) == [str(n) for n in range(30)]  # each once, none lost


async def test_a_process_that_lost_its_job_cannot_move_it(open_store: Open) -> None:
    """Cut off long enough for its lease to end (not killed): another claimed the job,
    so the first's next step is refused, and it must not submit or deliver again."""
    first, second = await open_store(), await open_store()
    await first.add(make_job("1"))
    first._renewer.cancel()  # stalled: no renewals
    [claimed] = await claimed_within(second, 5 * LEASE)
    assert claimed.state is JobState.ACCEPTED
    with pytest.raises(LeaseLost):
        await first.mark_submit_started("1")
    await second.mark_submit_started("1")


async def test_a_click_waits_for_the_process_holding_the_job(open_store: Open) -> None:
    first, second = await open_store(), await open_store()
    await first.add(make_job("1"))
    await second.signal_job("1", "cancel", "9")  # Discord sent the click to `second`
    assert await second.take_signals() == []  # not its job
    assert await first.take_signals() == [("1", "cancel", "9")]
    assert await first.take_signals() == []  # taken once
    await second.signal_job("1", "owner", "allowed")
    await die(first)
    [claimed] = await claimed_within(second, 5 * LEASE)  # whoever claims it gets it
    assert claimed.id == "1"
    assert await second.take_signals() == [("1", "owner", "allowed")]
