"""Edits a job's message as it moves, at most once per interval, never blocking the job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import discord

log = logging.getLogger(__name__)

Edit = Callable[[str], Awaitable[object]]


class ProgressMessage:
    """The job calls `show(text)` (cheap, synchronous); an editor task sends the newest
    text no more often than `interval`. `stop()` waits for an edit in flight, so the
    final answer can never be overwritten by a late progress edit."""

    def __init__(self, edit: Edit, *, interval: float, job_ref: str) -> None:
        self._edit = edit
        self._interval = interval
        self._job_ref = job_ref
        self._latest: str | None = None
        self._sent: str | None = None
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.edits = 0

    def start(self, initial: str | None = None) -> None:
        self._sent = initial
        self._task = asyncio.create_task(self._run(), name=f"progress-{self._job_ref}")

    def show(self, text: str) -> None:
        self._latest = text
        self._changed.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            await self._changed.wait()
            self._changed.clear()
            if self._stopping.is_set():
                return
            text = self._latest
            if text is not None and text != self._sent:
                try:
                    await self._edit(text)
                    self._sent = text
                    self.edits += 1
                except discord.HTTPException as exc:
                    log.warning(
                        "Job %s: progress edit failed (HTTP %s, code %s)",
                        self._job_ref,
                        exc.status,
                        exc.code,
                    )
                except Exception:
                    # Progress is a courtesy: nothing here may take the job down.
                    log.exception("Job %s: progress edit failed", self._job_ref)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._interval)

    async def stop(self, grace: float = 10.0) -> None:
        self._stopping.set()
        self._changed.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        except asyncio.CancelledError:
            task.cancel()
            raise
