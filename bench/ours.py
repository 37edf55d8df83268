"""Our stack: `SegmindClient` + `JobRunner` on one aiohttp session, in the event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp

from bot.jobs import JobRequest, JobRunner
from bot.runtime import freeze_startup_objects
from bot.segmind.budget import RequestBudget
from bot.segmind.client import SegmindClient

from .target import JobFn, Target

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
