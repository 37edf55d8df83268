"""One Segmind budget for every bot process on one PostgreSQL database: the shared rule
(`grant_wait`), and several `RequestBudget`s, each on its own store as separate processes
would have, hammering the one `segmind_budget` row."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest

from bot.segmind import budget as budget_module
from bot.segmind.budget import (
    GrantRule,
    Priority,
    RequestBudget,
    SharedGrants,
    grant_wait,
    next_at_after,
    shared_grants_of,
)
from bot.store import SqliteJobStore
from bot.store.pg import PostgresJobStore
from tests.test_budget import max_in_window

RULE = GrantRule(per_minute=3, hold=1.0, interval=1 / 3, burst=2)

# Every grant the row records, as the database's clock saw it (the row keeps only the
# grants still in the window).
_GRANT_LOG = (
    "CREATE TABLE grant_log (t DOUBLE PRECISION NOT NULL)",
    """CREATE FUNCTION log_grant() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.grants IS DISTINCT FROM OLD.grants THEN
            INSERT INTO grant_log VALUES (NEW.grants[array_upper(NEW.grants, 1)]);
        END IF;
        RETURN NEW;
    END $$""",
    "CREATE TRIGGER log_grant AFTER UPDATE ON segmind_budget "
    "FOR EACH ROW EXECUTE FUNCTION log_grant()",
)


# -- the rule, written once --------------------------------------------------------------


def test_a_grant_fits_now_when_nothing_holds_it() -> None:
    assert grant_wait(RULE, 10.0, 0.0, 0.0, []) <= 0
    assert grant_wait(GrantRule(0, 1.0, 0.0, 1), 10.0, 99.0, 0.0, [9.9] * 50) <= 0  # unlimited


def test_a_pause_holds_even_an_unlimited_budget() -> None:
    assert grant_wait(RULE, 10.0, 0.0, 12.5, []) == pytest.approx(2.5)
    assert grant_wait(GrantRule(0, 1.0, 0.0, 1), 10.0, 0.0, 10.5, []) == pytest.approx(0.5)


def test_the_pace_allows_a_burst_then_one_interval_apart() -> None:
    # burst 2: next_at may run one interval ahead of now before anyone waits.
    assert grant_wait(RULE, 10.0, 10.0 + 1 / 3, 0.0, [10.0]) <= 1e-9
    assert grant_wait(RULE, 10.0, 10.0 + 2 / 3, 0.0, [10.0, 10.0]) == pytest.approx(1 / 3)
    assert next_at_after(RULE, 10.0, 5.0) == pytest.approx(10.0 + 1 / 3)  # idle: from now
    assert next_at_after(RULE, 10.0, 11.0) == pytest.approx(11.0 + 1 / 3)  # behind: queued


def test_a_full_window_waits_for_its_oldest_grant_to_leave() -> None:
    # Unsorted (two processes' clocks), and one grant already out of the hold.
    grants = [9.8, 9.2, 8.5, 9.5]
    assert grant_wait(RULE, 10.0, 0.0, 0.0, grants) == pytest.approx(9.2 + 1.0 - 10.0)
    # Over the limit (a process with a laxer rule): wait until only per_minute - 1 remain.
    assert grant_wait(RULE, 10.0, 0.0, 0.0, [9.1, 9.2, 9.3, 9.4]) == pytest.approx(0.2)
    assert grant_wait(RULE, 10.0, 0.0, 0.0, [9.1, 9.2]) <= 0


def test_the_local_budget_applies_the_same_rule() -> None:
    budget = RequestBudget(6, window=1.0, margin=0.0, burst=2)
    assert budget.rule == GrantRule(6, 1.0 + budget_module.MIN_SLACK, budget.interval, 2)


def test_only_a_store_that_offers_one_has_a_shared_budget(tmp_path: Path) -> None:
    assert shared_grants_of(SqliteJobStore(tmp_path)) is None
    assert shared_grants_of(PostgresJobStore("postgresql:///nowhere")) is not None


# -- several processes on one database ---------------------------------------------------


class Watched:
    """A `SharedGrants` that tells the test when a pause has reached the database."""

    def __init__(self, inner: SharedGrants) -> None:
        self.inner = inner
        self.paused = asyncio.Event()

    async def take(self, rule: GrantRule) -> float:
        return await self.inner.take(rule)

    async def pause(self, seconds: float) -> None:
        await self.inner.pause(seconds)
        self.paused.set()


@pytest.fixture
async def stores(pg_database: str) -> AsyncIterator[list[PostgresJobStore]]:
    """Three stores on one database, as three bot processes would have."""
    opened = [PostgresJobStore(pg_database) for _ in range(3)]
    for store in opened:
        await store.open()
    connection = await asyncpg.connect(pg_database)
    try:
        for statement in _GRANT_LOG:
            await connection.execute(statement)
    finally:
        await connection.close()
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def logged_grants(url: str) -> list[float]:
    connection = await asyncpg.connect(url)
    try:
        return [float(r[0]) for r in await connection.fetch("SELECT t FROM grant_log ORDER BY t")]
    finally:
        await connection.close()


def budgets_on(
    stores: list[PostgresJobStore], per_minute: int, window: float
) -> list[RequestBudget]:
    return [
        RequestBudget(per_minute, window=window, margin=0.0, shared=store.shared_budget())
        for store in stores
    ]


async def test_processes_together_never_exceed_the_window(
    stores: list[PostgresJobStore], pg_database: str
) -> None:
    budgets = budgets_on(stores, 6, 1.0)
    hold = budgets[0].rule.hold
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    done: list[float] = []

    async def one(budget: RequestBudget, priority: Priority) -> None:
        await budget.acquire(priority)
        done.append(loop.time())

    calls = [
        one(b, Priority.SUBMIT if i % 3 == 0 else Priority.POLL) for b in budgets for i in range(6)
    ]
    await asyncio.wait_for(asyncio.gather(*calls), 8)
    for budget in budgets:
        budget.close()
    grants = await logged_grants(pg_database)
    assert len(grants) == len(done) == 18
    assert sum(b.granted_total for b in budgets) == 18  # nobody took a grant it did not use
    assert max_in_window(grants, hold) <= 6
    # A rate, not a crawl: one grant every interval, give or take the round trips.
    assert max(done) - t0 < 17 * budgets[0].interval + 0.75


async def test_submits_first_then_the_poll_most_likely_done_with_the_rank_asked_at_grant_time(
    stores: list[PostgresJobStore],
) -> None:
    first, other = budgets_on(stores[:2], 2, 0.3)
    await other.acquire()  # the other process holds the shared budget for an interval
    ranks = {"young": -1.0, "due": 0.5, "overdue": 2.0}
    order: list[str] = []

    def rank_of(name: str) -> Callable[[], float]:
        return lambda: ranks[name]

    async def take(name: str) -> None:
        if name == "submit":
            await first.acquire(Priority.SUBMIT)
            ranks["young"] = 5.0  # its job turned out done: asked when the next grant comes
        else:
            await first.acquire(Priority.POLL, rank_of(name))
        order.append(name)

    # The polls queue first; all four are queued before the dispatcher first looks.
    tasks = [asyncio.create_task(take(n)) for n in ("young", "due", "overdue", "submit")]
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == ["submit", "young", "overdue", "due"]
    first.close()
    other.close()


async def test_a_pause_seen_by_one_process_holds_the_others(
    stores: list[PostgresJobStore],
) -> None:
    watched = Watched(stores[0].shared_budget())
    pausing = RequestBudget(60, window=1.0, shared=watched)
    other = RequestBudget(60, window=1.0, shared=stores[1].shared_budget())
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    pausing.pause_for(0.4)  # Segmind said 429 to this one
    await asyncio.wait_for(watched.paused.wait(), 2)
    assert other.has_room()  # it has not asked yet: nothing to know
    await asyncio.wait_for(other.acquire(), 2)
    assert loop.time() - t0 >= 0.4 - 0.02  # the database's clock, not the loop's
    assert other.paused_for == 0  # only grants are shared: its downloads are not held
    pausing.close()
    other.close()


async def test_close_leaves_no_task(stores: list[PostgresJobStore]) -> None:
    before = asyncio.all_tasks()
    budget = RequestBudget(1, window=10.0, shared=stores[0].shared_budget())
    await budget.acquire()
    queued = asyncio.create_task(budget.acquire())  # waits a whole window: the dispatcher
    await asyncio.sleep(0)
    assert budget.waiting == 1
    budget.pause_for(5.0)  # and a pause on its way to the database
    mine = asyncio.all_tasks() - before - {queued}
    assert len(mine) == 2
    budget.close()
    finished, pending = await asyncio.wait(mine, timeout=2)
    assert not pending
    assert all(t.cancelled() or t.exception() is None for t in finished)
    assert asyncio.all_tasks() - before == {queued}
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert budget.waiting == 0


async def test_a_database_error_is_one_warning_then_the_waiters_just_wait(
    stores: list[PostgresJobStore],
    pg_database: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(budget_module, "SHARED_BACKOFF", (0.01, 0.05))
    unopened = PostgresJobStore(pg_database).shared_budget()  # StoreUnavailable, as if down
    healthy = stores[0].shared_budget()
    failures = 3
    pause_failed = asyncio.Event()

    class Flaky:
        async def take(self, rule: GrantRule) -> float:
            nonlocal failures
            if failures:
                failures -= 1
                return await unopened.take(rule)
            return await healthy.take(rule)

        async def pause(self, seconds: float) -> None:
            try:
                await unopened.pause(seconds)
            finally:
                pause_failed.set()  # the budget logs before the test runs again

    budget = RequestBudget(6, window=1.0, shared=Flaky())
    with caplog.at_level(logging.INFO, logger="bot.segmind.budget"):
        await asyncio.wait_for(budget.acquire(), 3)
        budget.pause_for(0.01)  # fails too: logged, never raised here
        await asyncio.wait_for(pause_failed.wait(), 2)
    budget.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one for the outage (three failed takes), one for the pause
    assert all("StoreUnavailable" in w for w in warnings)
    assert "answers again" in caplog.text
    assert pg_database not in caplog.text
    assert budget.granted_total == 1
