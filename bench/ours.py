"""Our stack: `SegmindClient` + `JobRunner` on one aiohttp session, in the event loop."""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from bot.jobs import JobRequest, JobRunner
from bot.runtime import freeze_startup_objects
from bot.segmind.budget import RequestBudget
from bot.segmind.client import SegmindClient
from bot.segmind.models import JobHandle
from bot.store import JobRecord, SqliteJobStore
from bot.store.models import Store

from .target import Implementation, JobFn, Target

JOB_TIMEOUT = 300.0


@asynccontextmanager
async def ours(target: Target, jobs: int, interval: float) -> AsyncIterator[JobFn]:
    """The bot's own wiring, budget off (`RequestBudget(0)`) and a slot for every job, so
    all `jobs` are in flight at once."""
    async with aiohttp.ClientSession() as session:
        client = SegmindClient(
            session,
            api_key=target.api_key,
            workflow_url=target.workflow_url,
            budget=RequestBudget(0),
        )
        runner = JobRunner(client, poll_interval=interval, timeout=JOB_TIMEOUT, max_concurrent=jobs)

        freeze_startup_objects()  # as `python -m bot` does once it is set up

        async def job(index: int) -> bytes:
            result = await runner.run(JobRequest(target.sample_url, f"text {index}", "en"))
            return result.audio.data

        yield job


def bench_job(job_id: str, index: int, sample_url: str) -> JobRecord:
    """A job as /speak records it, with placeholder Discord fields."""
    now = time.time()
    return JobRecord(
        id=job_id,
        created_at=now,
        sample_url=sample_url,
        text=f"text {index}",
        language="en",
        application_id=1,
        interaction_token="bench-token",
        token_expires_at=now + 900,
        channel_id=1,
        guild_id=1,
        user_id=1,
    )


@asynccontextmanager
async def ours_with_store(target: Target, jobs: int, interval: float) -> AsyncIterator[JobFn]:
    """As `ours`, with each job journalled in the job store the way the bot does it: five
    committed writes (accepted, submit started with the message id, submitted, completed
    with its audio and delivering, delivered) in a fresh SQLite database on this disk."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as data_dir:
        async with _journalled(SqliteJobStore(Path(data_dir)), target, jobs, interval) as job:
            yield job


def ours_with_pg(database_url: str) -> Implementation:
    """As `ours_with_store`, on the PostgreSQL store in the fresh database the section
    made for this run. A factory, not a field of `Target`: budget.py subclasses Target."""

    @asynccontextmanager
    async def impl(target: Target, jobs: int, interval: float) -> AsyncIterator[JobFn]:
        from bot.store.pg import PostgresJobStore  # only here: asyncpg stays out of the rest

        async with _journalled(PostgresJobStore(database_url), target, jobs, interval) as job:
            yield job

    return impl


@asynccontextmanager
async def _journalled(
    store: Store, target: Target, jobs: int, interval: float
) -> AsyncIterator[JobFn]:
    """Our stack writing each job to `store` (unopened; opened and closed here)."""
    async with aiohttp.ClientSession() as session, store:
        client = SegmindClient(
            session,
            api_key=target.api_key,
            workflow_url=target.workflow_url,
            budget=RequestBudget(0),
        )
        runner = JobRunner(client, poll_interval=interval, timeout=JOB_TIMEOUT, max_concurrent=jobs)
        freeze_startup_objects()

        async def job(index: int) -> bytes:
            job_id = f"bench-{index}"
            await store.add(bench_job(job_id, index, target.sample_url))
            result = await runner.run(
                JobRequest(target.sample_url, f"text {index}", "en"),
                journal=_Journal(store, job_id),
            )
            audio = result.audio
            await store.mark_completed(
                job_id,
                audio.data,
                audio.content_type,
                audio.extension,
                audio.source_url,
                delivering=True,  # as the bot: delivered right away by the same task
            )
            await store.mark_delivered(job_id, "interaction", 1)
            return audio.data

        job.store_writes = lambda: store.writes  # type: ignore[attr-defined]
        yield job


class _Journal:
    def __init__(self, store: Store, job_id: str) -> None:
        self._store = store
        self._id = job_id

    async def submitting(self) -> None:
        await self._store.mark_submit_started(self._id, 1)  # with the message id, as the bot

    async def submitted(self, handle: JobHandle) -> None:
        await self._store.mark_submitted(self._id, handle.request_id, handle.poll_url)
