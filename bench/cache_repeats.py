"""The budget benchmark's result-cache rows: a stream of requests of which a share repeats
an earlier one (the same voice, text and language), through the bot's `ResultCache` over
a real SQLite store and our runner (as `budget.ours` builds it) on the Free plan's rate.

Requests arrive one every `ARRIVAL_S` real seconds (a busy server, below what the plan can
deliver); a repeat names an earlier request chosen at random, so one whose original is
still running misses (and costs a submit), as it would in the bot. The same stream runs
with the cache off for comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.audio import MIB, AudioFile
from bot.jobs import ResultCache
from bot.store import JobRecord, SqliteJobStore
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind

from . import budget
from .section import Floor

RPM = 5
JOBS = 40
REPEAT_SHARE = 0.3
ARRIVAL_S = 30.0  # real seconds between requests: 2 a minute, below the ~2.5 the plan delivers
CLIP_SHA = hashlib.sha256(b"one saved voice").hexdigest()


@dataclass
class RepeatRun:
    cache: bool
    jobs: int
    repeats: int = 0  # requests that repeat an earlier one
    delivered: int = 0
    from_cache: int = 0
    submits: int = 0
    requests: int = 0  # submits and status checks
    wall_min: float = 0.0

    def per_job(self, count: int) -> float:
        return count / self.delivered if self.delivered else float("nan")


def stream(jobs: int, share: float, rng: random.Random) -> tuple[str, ...]:
    texts: list[str] = []
    for i in range(jobs):
        texts.append(
            rng.choice(texts) if texts and rng.random() < share else budget.text_for(i, rng)
        )
    return tuple(texts)


def _record(index: int, text: str) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=f"bench-{index}",
        created_at=now,
        sample_url="https://example.invalid/voice.mp3",
        text=text,
        language="en",
        application_id=1,
        interaction_token="-",
        token_expires_at=now + 900,
        channel_id=1,
        guild_id=1,
        user_id=index,
        sample_sha256=CLIP_SHA,  # a saved voice's: no clip fetch
    )


async def measure(cache_on: bool, jobs: int = JOBS, share: float = REPEAT_SHARE) -> RepeatRun:
    texts = stream(jobs, share, random.Random(1307))
    run = RepeatRun(cache_on, jobs, repeats=jobs - len(set(texts)))
    scale = budget.SCALE
    async with (
        FakeSegmind(
            rate_limit=(RPM, 60 / scale),
            duration_for=lambda text: budget.real_duration(text) / scale,
        ) as fake,
        aiohttp.ClientSession() as session,
    ):
        target = budget._Target(fake.workflow_url, fake.sample_url, FAKE_API_KEY, texts)
        with tempfile.TemporaryDirectory() as data:
            async with SqliteJobStore(Path(data)) as store, budget.ours(target, fake, RPM) as job:
                cache = ResultCache(
                    store, session, days=7 if cache_on else 0, max_mb=200, max_sample_bytes=MIB
                )
                fake.requests.clear()
                loop = asyncio.get_running_loop()
                started = loop.time()

                async def one(index: int) -> None:
                    await asyncio.sleep(index * ARRIVAL_S / scale)
                    record = await store.add(_record(index, texts[index]))
                    record, audio = await cache.answer(record)
                    if audio is None:
                        made = AudioFile(await job(index), "audio/mpeg", "mp3")
                        await cache.remember(record, made)
                    else:
                        run.from_cache += 1
                    run.delivered += 1

                tasks = [asyncio.ensure_future(one(i)) for i in range(jobs)]
                await asyncio.wait(tasks, timeout=budget.CAP_MINUTES * 60 / scale)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                run.wall_min = (loop.time() - started) * scale / 60
                run.submits = sum(1 for r in fake.requests if r.kind == "submit")
                run.requests = sum(1 for r in fake.requests if r.kind in ("submit", "poll"))
    return run


HEADERS = [
    "result cache",
    "RPM",
    "requests",
    "repeats",
    "delivered",
    "answered from the cache",
    "Segmind submits / delivered job",
    "Segmind requests / delivered job",
]


def row(r: RepeatRun) -> list[str]:
    share = r.from_cache / r.delivered if r.delivered else 0.0
    return [
        "on (7 days)" if r.cache else "off",
        f"{RPM}",
        f"{r.jobs}",
        f"{r.repeats} ({r.repeats / r.jobs * 100:.0f} %)",
        f"{r.delivered}",
        f"{r.from_cache} ({share * 100:.0f} %)",
        f"{r.per_job(r.submits):.2f}",
        f"{r.per_job(r.requests):.2f}",
    ]


def floors(runs: list[RepeatRun]) -> list[Floor]:
    on = [r for r in runs if r.cache]
    if not on:
        return []
    return [
        Floor(
            "ours, result cache, repeats: Segmind submits per delivered job",
            1.0,
            on[0].per_job(on[0].submits),
            "submits",
            "<",
        )
    ]


NOTES = (
    f"Result cache: {JOBS} requests on RPM {RPM}, one every {ARRIVAL_S:g} real seconds, "
    f"each repeating an earlier request's voice, text and language with probability "
    f"{REPEAT_SHARE:g} (the earlier one drawn at random), through `ResultCache` over a "
    "real SQLite store in front of our runner; a repeat whose original is still running "
    "misses, as in the bot. "
    "Submits are the requests Segmind bills; requests count the status checks too."
)
