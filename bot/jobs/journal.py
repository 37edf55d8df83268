"""The runner's journal, written to the job store: the two steps that cost money, each
recorded before the next one acts. When the store cannot write, a submit Segmind accepted
is not given up: the handle stays in memory and the record is retried in the background.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ..segmind.models import JobHandle
from ..store import InvalidTransition, JobRecord, JobState, JobStore, StoreError

log = logging.getLogger(__name__)

RECORD_RETRY_FIRST = 0.5  # seconds before a failed submit record is tried again; doubles
RECORD_RETRY_MAX = 10.0

Spawn = Callable[..., asyncio.Task[Any] | None]  # the bot's: None once shutting down


class StoreJournal:
    def __init__(self, store: JobStore, spawn: Spawn, record: JobRecord) -> None:
        self._store = store
        self._spawn = spawn
        self._id = record.id
        self._message_id = record.original_message_id
        self._submit: tuple[JobHandle, float] | None = None  # awaiting its record
        self._retry: asyncio.Task[None] | None = None
        self.failure: Exception | None = None  # why the submit is not on record

    async def submitting(self) -> None:
        # The message id is written here rather than right after the defer: one write
        # fewer per job. Until then a restart finds the message as "@original".
        await self._store.mark_submit_started(self._id, self._message_id)

    async def submitted(self, handle: JobHandle) -> None:
        """Segmind has the job: record it; if the store cannot, poll on regardless (the
        handle is in memory) while the record is retried in the background."""
        self._submit = (handle, time.time())
        if await self._record():
            return
        log.warning(
            "Job %s: Segmind accepted it (request %s) but the store could not record that "
            "(%s); polling it from memory while the record is retried",
            self._id,
            handle.request_id,
            self.failure,
        )
        retry: Coroutine[Any, Any, None] = self._keep_trying()
        self._retry = self._spawn(retry, name=f"record-submit-{self._id}")

    async def settle(self) -> bool:
        """Before the result is recorded: whether the submit is on record. A record still
        being retried gets one last try here, and its retries stop."""
        retry, self._retry = self._retry, None
        if retry is not None:
            retry.cancel()
            await asyncio.gather(retry, return_exceptions=True)
        try:
            return await self._record()
        except InvalidTransition as exc:
            self.failure = exc
            return False

    def abandon(self) -> None:
        """The job ended: its submit needs no record any more."""
        if self._retry is not None:
            self._retry.cancel()

    async def _keep_trying(self) -> None:
        delay = RECORD_RETRY_FIRST
        while True:
            await asyncio.sleep(delay)
            try:
                if await self._record():
                    log.info("Job %s: its submit is on record after all", self._id)
                    return
            except InvalidTransition:
                return  # the job moved on (failed, cancelled): no record is needed
            delay = min(delay * 2, RECORD_RETRY_MAX)

    async def _record(self) -> bool:
        """Try to record the submit; True once it is on record (by this try or another).
        InvalidTransition: the job is in a state other than SUBMITTED."""
        if self._submit is None:
            return True
        handle, at = self._submit
        try:
            await self._store.mark_submitted(self._id, handle.request_id, handle.poll_url, at)
        except InvalidTransition as exc:
            if exc.state is not JobState.SUBMITTED:
                raise
            # An earlier try committed after all (a cancelled write may still commit).
        except StoreError as exc:
            self.failure = exc
            return False
        self._submit = None
        self.failure = None
        return True
