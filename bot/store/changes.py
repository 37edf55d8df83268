"""The job transitions that are the same on every backend: each one `Change` of the state
machine (`transitions.py`) with its values, applied by the backend's `_transition` (the
SQLite writer's batch, or PostgreSQL's `UPDATE … RETURNING`). What differs per backend
(adding a job, where the audio goes, the ends that drop it) stays in the backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..audio import AudioFile
from .models import JobRecord
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
)


class JobChanges:
    """Mixed into both stores, which provide `_transition` and `_clock`."""

    _clock: Callable[[], float]

    if TYPE_CHECKING:

        async def _transition(
            self, job_id: str, change: Change, values: tuple[object, ...]
        ) -> JobRecord: ...

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
