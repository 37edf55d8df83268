"""The result cache's store half (hit, miss, expiry, LRU eviction by size, forget) and the
core's `ResultCache` over a real SQLite store."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.audio import MIB, AudioFile
from bot.jobs.cache import ResultCache, cache_key
from bot.policy import Policy
from bot.store import CachedResult, InvalidTransition, JobState
from bot.store.models import Store
from tests import test_policy
from tests.store_backends import MakeStore
from tests.test_store import Clock, make_job

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
async def store(make_store: MakeStore, clock: Clock) -> AsyncIterator[Store]:
    async with make_store(clock=clock) as opened:
        yield opened


def entry(key: str, size: int = 100, **changes: object) -> CachedResult:
    made = CachedResult(
        key=key,
        sample_sha256="clip-" + key,
        language="en",
        source_job="job-" + key,
        voice_owner_id=9,
        voice_id=None,
        guild_id=8,
        audio=b"A" * size,
        content_type="audio/mpeg",
        extension="mp3",
        size=size,
        created_at=NOW,
        last_used_at=NOW,
    )
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


async def test_hit_and_miss(store: Store, clock: Clock) -> None:
    await store.cache_put(entry("a"), 10 * MIB)
    assert await store.cache_lookup("b", 0) is None
    clock.now = NOW + 5
    hit = await store.cache_lookup("a", 0)
    assert hit is not None
    assert (hit.audio, hit.source_job, hit.last_used_at) == (b"A" * 100, "job-a", NOW + 5)
    assert await store.cache_usage() == (1, 100)


async def test_an_entry_past_the_retention_never_answers_and_is_purged(
    store: Store, clock: Clock
) -> None:
    await store.cache_put(entry("old"), 10 * MIB)
    clock.now = NOW + 2 * DAY
    await store.cache_put(entry("new", created_at=clock.now, last_used_at=clock.now), 10 * MIB)
    assert await store.cache_lookup("old", clock.now - DAY) is None
    assert await store.cache_expire(DAY) == 1
    assert await store.cache_usage() == (1, 100)
    assert await store.cache_lookup("new", clock.now - DAY) is not None


async def test_least_recently_used_go_first_past_the_size_bound(store: Store, clock: Clock) -> None:
    for i, key in enumerate("abc"):
        clock.now = NOW + i
        await store.cache_put(entry(key, created_at=clock.now, last_used_at=clock.now), 1000)
    clock.now = NOW + 10
    assert await store.cache_lookup("a", 0) is not None  # used now: the newest use
    evicted = await store.cache_put(entry("d", 300, last_used_at=clock.now), 450)
    assert evicted == 2  # b then c: the least recently used
    assert await store.cache_lookup("b", 0) is None
    assert await store.cache_lookup("c", 0) is None
    assert await store.cache_lookup("a", 0) is not None
    assert await store.cache_usage() == (2, 400)


async def test_puts_at_once_stay_within_the_bound(store: Store, clock: Clock) -> None:
    """Each put evicts in its own transaction: racing puts never leave the cache over."""
    await asyncio.gather(*(store.cache_put(entry(f"k{i}", 100), 450) for i in range(10)))
    entries, size = await store.cache_usage()
    assert (entries, size) == (4, 400)


async def test_a_fresh_take_replaces_the_entry(store: Store) -> None:
    await store.cache_put(entry("a"), MIB)
    await store.cache_put(entry("a", 50, source_job="again"), MIB)
    hit = await store.cache_lookup("a", 0)
    assert hit is not None
    assert hit.source_job == "again"
    assert await store.cache_usage() == (1, 50)


async def test_forget_by_clip_saved_voice_and_owner(store: Store) -> None:
    await store.cache_put(entry("a"), MIB)
    await store.cache_put(entry("b", voice_id=3), MIB)
    await store.cache_put(entry("c", voice_owner_id=77), MIB)
    await store.cache_put(entry("d"), MIB)
    assert await store.cache_forget() == 0
    assert await store.cache_forget(sample_sha256="clip-a") == 1
    assert await store.cache_forget(voice_id=3) == 1
    assert await store.cache_forget(voice_owner_id=77) == 1
    assert [await store.cache_lookup(k, 0) is not None for k in "abcd"] == [
        False,
        False,
        False,
        True,
    ]


async def test_a_cached_answer_is_delivering_with_its_audio(store: Store) -> None:
    job = await store.add(make_job("1"))
    audio = AudioFile(b"ID3cached", "audio/mpeg", "mp3")
    record = await store.mark_cached(job.id, "0", audio, "f" * 64)
    assert record.state is JobState.DELIVERING
    assert (record.cached_from, record.sample_sha256, record.attempts) == ("0", "f" * 64, 1)
    assert record == await store.get(job.id)
    assert await store.read_audio(record) == audio
    # Never for a job whose submit has started: it may be paid for already.
    other = await store.add(make_job("2"))
    await store.mark_submit_started(other.id)
    with pytest.raises(InvalidTransition):
        await store.mark_cached(other.id, "0", audio, "f" * 64)


def test_the_key_ignores_spacing_only() -> None:
    key = cache_key("s" * 64, "en", "Hello  world ")
    assert key == cache_key("s" * 64, "en", " Hello world")
    assert key != cache_key("s" * 64, "en", "Hello world!")
    assert key != cache_key("s" * 64, "hi", "Hello world")
    assert key != cache_key("t" * 64, "en", "Hello world")


async def test_answer_then_remember_then_answer(store: Store) -> None:
    async with aiohttp.ClientSession() as session:  # unused: the clip's hash is known
        cache = ResultCache(store, session, days=7, max_mb=1, max_sample_bytes=MIB)
        first = await store.add(dataclasses.replace(make_job("1"), sample_sha256="c" * 64))
        record, audio = await cache.answer(first)
        assert audio is None
        assert record == first
        made = AudioFile(b"ID3fresh", "audio/mpeg", "mp3", "https://x/result.mp3")
        await cache.remember(record, made)
        second = await store.add(dataclasses.replace(make_job("2"), sample_sha256="c" * 64))
        record, audio = await cache.answer(second)
        assert audio is not None
        assert audio.data == made.data
        assert (record.state, record.cached_from) == (JobState.DELIVERING, "1")
        # Again always makes a fresh take.
        again = dataclasses.replace(make_job("3"), sample_sha256="c" * 64, origin="again")
        assert (await cache.answer(await store.add(again)))[1] is None
        # Off: nothing answers, nothing is kept, and the purge empties it.
        cache.days = 0
        assert (await cache.answer(await store.add(dataclasses.replace(second, id="4"))))[1] is None
        assert await cache.expire() == 1


async def test_a_cached_answer_counts_for_fair_use_like_any_request(
    store: Store,
) -> None:
    """Counted when asked for (before the cache is looked up), and not refunded when it
    ends delivered without a submit; a job that ends undelivered without one still is."""
    policy = Policy(test_policy.settings(user_daily_chars=10, global_daily_jobs=2), store)
    await policy.load([])
    job = dataclasses.replace(make_job("1"), text="12345")
    assert policy.reserve(test_policy.ask(chars=5), job.id) is None
    policy.job_ended(dataclasses.replace(job, state=JobState.DELIVERED, cached_from="0"))
    assert policy.reserve(test_policy.ask(chars=5), "2") is None
    policy.job_ended(dataclasses.replace(job, id="2", state=JobState.EXPLAINED))  # refunded
    assert policy.reserve(test_policy.ask(chars=5), "3") is None
    refusal = policy.reserve(test_policy.ask(chars=5), "4")
    assert refusal is not None
    assert refusal.code == "user_daily_chars"
