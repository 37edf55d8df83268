"""The job transitions that are the same on every backend: each one `Change` of the state
machine (`transitions.py`) with its values, applied by the backend's `_transition` (the
SQLite writer's batch, or PostgreSQL's `UPDATE … RETURNING`). What differs per backend
(adding a job, where the audio goes, the ends that drop it) stays in the backend."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..audio import AudioFile
from .models import DELIVERY_CHANNELS, JobRecord, StoreError
from .result_cache import CACHED, SAMPLE_SHA256
from .transitions import (
    DELIVERING,
    FAILED,
    OWNER_ALLOWED,
    RESUBMIT,
    SET_MESSAGE_ID,
    SUBMIT_STARTED,
    SUBMIT_STARTED_WITH_MESSAGE,
    SUBMITTED,
    Change,
    Transitions,
)

log = logging.getLogger(__name__)


class JobChanges:
    """Mixed into both stores, which provide `_transition`, `_clock`, `_machine` (the
    ending transitions, which depend on `keep_text`), `keep_replay` and `_released`."""

    _clock: Callable[[], float]
    _machine: Transitions

    if TYPE_CHECKING:

        async def _transition(
            self, job_id: str, change: Change, values: tuple[object, ...]
        ) -> JobRecord: ...
        async def keep_replay(self, job_id: str) -> None: ...

    async def _released(self, record: JobRecord) -> None:
        """The job has ended: a backend that keeps audio outside the row drops it here."""

    async def mark_submit_started(
        self, job_id: str, original_message_id: int | None = None
    ) -> JobRecord:
        """Call right before sending the submit. Succeeds once per job: the caller that
        gets the record back is the only one allowed to send it. The interaction's message
        id can ride along (one write fewer per job than `set_original_message_id`)."""
        if original_message_id is None:
            return await self._transition(job_id, SUBMIT_STARTED, (self._clock(),))
        return await self._transition(
            job_id, SUBMIT_STARTED_WITH_MESSAGE, (self._clock(), original_message_id)
        )

    async def mark_submitted(
        self, job_id: str, request_id: str, poll_url: str, at: float | None = None
    ) -> JobRecord:
        return await self._transition(
            job_id, SUBMITTED, (request_id, poll_url, self._clock() if at is None else at)
        )

    async def mark_resubmit(self, job_id: str, sample_url: str) -> JobRecord:
        """A SUBMITTED job whose saved voice's sample Segmind could not fetch goes back to
        ACCEPTED with `sample_url`, to be submitted once more; refused the second time."""
        host = urlsplit(sample_url).hostname or ""
        return await self._transition(job_id, RESUBMIT, (sample_url, host, None, None, None, None))

    async def mark_delivering(self, job_id: str) -> JobRecord:
        """Call before each delivery attempt; counts it. After a crash, DELIVERING means
        an attempt may have reached Discord."""
        return await self._transition(job_id, DELIVERING, ())

    async def mark_delivered(
        self,
        job_id: str,
        channel: str,
        message_id: int | None,
        *,
        from_memory: bool = False,
        hashes: tuple[str | None, str | None] = (None, None),
    ) -> JobRecord:
        """The result reached the member. `from_memory`: it was delivered although the
        store could not record it complete (a failed write): the job ends from whatever
        open state it has, so a restart neither posts it again nor explains it away.
        `hashes`: (result_sha256, result_audio_sha256) of the file as delivered."""
        if channel not in DELIVERY_CHANNELS:
            raise ValueError(f"delivery channel must be one of {DELIVERY_CHANNELS}")
        machine = self._machine
        change = machine.delivered_from_memory if from_memory else machine.delivered
        try:  # before the wipe: the result's buttons replay it
            await self.keep_replay(job_id)
        except StoreError as exc:  # the buttons then say it is gone; the delivery counts
            log.warning("Job %s: could not keep what its buttons replay: %s", job_id, exc)
        record = await self._transition(
            job_id, change, (self._clock(), channel, message_id, *hashes, *machine.wipe)
        )
        await self._released(record)
        return record

    async def mark_explained(self, job_id: str) -> JobRecord:
        record = await self._transition(job_id, self._machine.explained, self._machine.wipe)
        await self._released(record)
        return record

    async def mark_failed(self, job_id: str, cause: str, message: str) -> JobRecord:
        """Record why the job failed and what the user will be told (once)."""
        return await self._transition(job_id, FAILED, (cause, message))

    async def mark_owner_allowed(self, job_id: str, message_id: int | None) -> JobRecord:
        """The voice owner allowed the job: it no longer waits, and may be submitted."""
        return await self._transition(job_id, OWNER_ALLOWED, (None, message_id))

    async def set_original_message_id(self, job_id: str, message_id: int) -> JobRecord:
        return await self._transition(job_id, SET_MESSAGE_ID, (message_id,))

    async def mark_cached(
        self,
        job_id: str,
        source_job: str,
        audio: AudioFile,
        sample_sha256: str,
        original_message_id: int | None = None,
    ) -> JobRecord:
        """The job is answered with `source_job`'s stored result: DELIVERING, with the
        audio in its row (so a crash before the delivery resumes like any other job)."""
        return await self._transition(
            job_id,
            CACHED,
            (
                audio.data,
                None,
                audio.content_type,
                audio.extension,
                audio.source_url,
                audio.size,
                source_job,
                sample_sha256,
                original_message_id,
            ),
        )

    async def set_sample_sha256(
        self, job_id: str, sample_sha256: str, original_message_id: int | None = None
    ) -> JobRecord:
        """Record the hash of a one-off clip's bytes, fetched for the cache's key."""
        return await self._transition(job_id, SAMPLE_SHA256, (sample_sha256, original_message_id))
