"""Drives one stored job to its end — delivered once, or explained once — from whatever
state it is in: fresh from /speak, or found unfinished after a restart or a crash.

Every state change is written to the store before the next step acts on it (the store
refuses a second submit), so a `kill -9` at any moment leaves a state to resume from.

When the store cannot write (it retries a locked database for a while first), what the
member already has, or is about to get, is not given up: a submit Segmind accepted is
polled from memory while its record is retried in the background; audio that could not
be stored is delivered from memory (the log says the restart guarantee is lost for that
job); and a delivery that could not be recorded leaves the delivered message alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

import discord

from bot.jobs import JobRequest, Progress
from bot.segmind.errors import SegmindError
from bot.segmind.models import JobHandle
from bot.store import (
    SUBMIT_UNKNOWN,
    InvalidTransition,
    JobRecord,
    JobState,
    NextStep,
    StoreError,
    StoreUnavailable,
)
from bot.tree import error_reference

from .answer import Answer, Undeliverable
from .progress import ProgressMessage
from .replies import (
    audio_filename,
    failure_text,
    long_job_text,
    progress_text,
    result_text,
    too_large_text,
)

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

RESULT_LIFETIME = 3600.0  # Segmind keeps a job's status and result this long
SUBMIT_UNKNOWN_TEXT = (
    "❌ The bot restarted while sending your request to the voice service, so it can't "
    "tell whether the clip was made. Please run /speak again."
)
EXPIRED_TEXT = (
    "❌ The bot was offline for over an hour and the voice service no longer holds your "
    "result. Please run /speak again."
)
AUDIO_LOST_TEXT = "❌ The bot lost the finished audio (its storage was cleared). Please try again."
CANCELLED_TEXT = "🚫 Cancelled. Nothing was sent to the voice service, so it costs nothing."
CANCELLED_AFTER_SUBMIT_TEXT = (
    "🚫 Cancelled. The voice service had already received the request, so it may still "
    "be billed; the bot stopped waiting for it."
)


RECORD_RETRY_FIRST = 0.5  # seconds before a failed submit record is tried again; doubles
RECORD_RETRY_MAX = 10.0


class StoreJournal:
    """The runner's journal, written to the job store."""

    def __init__(self, pipeline: JobPipeline, record: JobRecord) -> None:
        self._bot = pipeline.bot
        self._store = pipeline.bot.store
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
        self._retry = self._bot.spawn(self._keep_trying(), name=f"record-submit-{self._id}")

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


class JobPipeline:
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        self._producing: dict[str, asyncio.Task[None]] = {}  # jobs a Cancel click can stop
        self._cancelled: dict[str, int] = {}  # job id -> who clicked Cancel

    def cancel(self, job_id: str, by: int) -> bool:
        """Stop a job that is waiting in line or for Segmind. False if it is not (any
        more) at a stage a cancel can stop: finished, delivering, or not started yet."""
        task = self._producing.get(job_id)
        if task is None or task.done() or job_id in self._cancelled:
            return False
        self._cancelled[job_id] = by
        task.cancel()
        return True

    async def drive(self, record: JobRecord, *, upload_limit: int | None = None) -> None:
        answer = Answer(self.bot, record)
        answer.upload_limit = upload_limit
        try:
            record = await self._drive(record, answer)
        except StoreUnavailable as exc:
            # The bot stops for a restart (it logged why, once): nothing to tell anyone.
            log.warning(
                "Job %s paused in state %s (%s); it resumes at the next start",
                record.id,
                record.state.name,
                exc,
            )
        except asyncio.CancelledError:
            by = self._cancelled.pop(record.id, None)
            task = asyncio.current_task()
            if by is None or not self.bot.accepting_jobs or task is None:
                log.info(
                    "Job %s paused in state %s (shutdown); it resumes at the next start",
                    record.id,
                    record.state.name,
                )
                raise
            task.uncancel()
            log.info("Job %s cancelled by user %s", record.id, by)
            record = await self._after_cancel(record, answer)
        except Exception:
            ref = error_reference()
            log.exception("Job %s hit an unexpected error (ref %s)", record.id, ref)
            record = await self._fail_unexpectedly(record, answer, ref)
        # Ended for this run (even if the store failed to say so): its place is free.
        self.bot.policy.job_ended(record)

    async def _drive(self, record: JobRecord, answer: Answer) -> JobRecord:
        store = self.bot.store
        step = record.next_step
        if step is NextStep.GIVE_UP:
            record = await store.mark_failed(record.id, SUBMIT_UNKNOWN, SUBMIT_UNKNOWN_TEXT)
        elif step in (NextStep.SUBMIT, NextStep.POLL):
            record = await self._produce(record, answer)
        # Audio in memory is delivered even if the store could not record it complete.
        if record.state in (JobState.COMPLETED, JobState.DELIVERING) or answer.audio is not None:
            record = await self._deliver(record, answer)
        if record.state is JobState.FAILED:
            record = await self._explain(record, answer)
        return record

    async def _after_cancel(self, record: JobRecord, answer: Answer) -> JobRecord:
        """The member clicked Cancel: tell them whether it can still cost anything."""
        store = self.bot.store
        current = await store.get(record.id) or record  # a shielded submit may have landed
        if current.state in (JobState.ACCEPTED, JobState.SUBMITTED):
            free = current.submit_started_at is None
            current = await store.mark_failed(
                current.id,
                "cancelled" if free else "cancelled_after_submit",
                CANCELLED_TEXT if free else CANCELLED_AFTER_SUBMIT_TEXT,
            )
        return await self._drive(current, answer)

    # -- producing the audio ---------------------------------------------------------

    async def _produce(self, record: JobRecord, answer: Answer) -> JobRecord:
        store = self.bot.store
        resume: JobHandle | None = None
        submitted_ago = 0.0
        if record.state is JobState.SUBMITTED:
            assert record.request_id is not None
            assert record.poll_url is not None
            assert record.submitted_at is not None
            submitted_ago = time.time() - record.submitted_at
            if submitted_ago > RESULT_LIFETIME:
                return await store.mark_failed(record.id, "result_expired", EXPIRED_TEXT)
            resume = JobHandle(record.request_id, record.poll_url)

        progress = ProgressMessage(
            lambda text: answer.edit(text, cancellable=True),
            interval=self.bot.settings.progress_update_seconds,
            job_ref=record.id,
        )
        started = int(record.created_at)
        if answer.alive():
            progress.start()

        def on_progress(update: Progress) -> None:
            progress.show(progress_text(update, started))

        notice = asyncio.create_task(self._notice_before_expiry(answer, progress, record))
        task = asyncio.current_task()
        if task is not None:
            self._producing[record.id] = task
        journal = StoreJournal(self, record) if resume is None else None
        try:
            try:
                result = await self.bot.jobs.run(
                    JobRequest(record.sample_url, record.text, record.language),
                    on_progress,
                    journal=journal,
                    resume=resume,
                    submitted_ago=submitted_ago,
                    owner=record.user_id,
                )
            finally:
                self._producing.pop(record.id, None)
            audio = result.audio
            # Delivered next by this same task, from memory: no write of DELIVERING of its
            # own, and no read of the audio back from the store.
            answer.audio = audio
            seen = result.observation
            problem: Exception | None = None
            if journal is None or await journal.settle():
                try:
                    return await store.mark_completed(
                        record.id,
                        audio.data,
                        audio.content_type,
                        audio.extension,
                        audio.source_url,
                        delivering=True,
                        seen=(seen.lower, seen.upper),
                    )
                except (StoreError, InvalidTransition) as exc:
                    problem = exc
            else:
                problem = journal.failure
            log.log(
                logging.WARNING if isinstance(problem, StoreUnavailable) else logging.ERROR,
                "Job %s (request %s): could not record its result (%s); delivering it from "
                "memory. The restart guarantee is lost for this job: if the bot stops before "
                "the delivery is recorded, the next start may post it again or give it up",
                record.id,
                result.request_id,
                problem,
            )
            # As known in memory; the state is still the one last recorded.
            return dataclasses.replace(
                record,
                request_id=result.request_id,
                audio_content_type=audio.content_type,
                audio_extension=audio.extension,
                audio_url=audio.source_url,
                audio_size=audio.size,
            )
        except SegmindError as exc:
            log.warning(
                "Job %s (request %s) failed: %s: %s",
                record.id,
                exc.request_id or "-",
                type(exc).__name__,
                exc,
            )
            return await store.mark_failed(record.id, type(exc).__name__, failure_text(exc))
        finally:
            if journal is not None:
                journal.abandon()
            notice.cancel()
            await asyncio.gather(notice, return_exceptions=True)
            task = asyncio.current_task()
            shutting_down = task is not None and task.cancelling() > 0
            await progress.stop(grace=0.5 if shutting_down else 10.0)

    async def _notice_before_expiry(
        self, answer: Answer, progress: ProgressMessage, record: JobRecord
    ) -> None:
        """Before the token dies, say where the result will go (progress edits stop)."""
        lifetime = record.token_expires_at - record.created_at
        margin = min(60.0, 0.2 * lifetime)
        wait = record.token_expires_at - margin - time.time()
        if wait <= 0 and not answer.alive(margin=0):
            return
        await asyncio.sleep(max(0.0, wait))
        await progress.stop()
        in_channel = await answer.channel() is not None
        text = long_job_text(int(record.created_at), in_channel, answer.no_channel_because)
        with contextlib.suppress(discord.HTTPException):
            await answer.edit(text, cancellable=True)
            log.info(
                "Job %s: will outlast its interaction token; result goes to the channel", record.id
            )

    # -- delivering ------------------------------------------------------------------

    async def _deliver(self, record: JobRecord, answer: Answer) -> JobRecord:
        store = self.bot.store
        audio = answer.audio  # set when this run made it: nothing was posted yet
        if audio is None:
            found = await answer.posted_before() if record.state is JobState.DELIVERING else None
            if found is not None:
                log.info(
                    "Job %s was delivered before the restart (%s); not posting again",
                    record.id,
                    found.channel,
                )
                return await store.mark_delivered(record.id, found.channel, found.message_id)
            audio = await store.read_audio(record)
            if audio is None:
                log.error("Job %s: spooled audio is missing", record.id)
                return await store.mark_failed(record.id, "audio_lost", AUDIO_LOST_TEXT)
            record = await store.mark_delivering(record.id)
        content = result_text(record.text, record.language, record.user_id)
        link = too_large_text(audio.size, record.audio_url or "")
        try:
            sent = await answer.send(
                content, audio, audio_filename(record.text, audio.extension), link
            )
        except Undeliverable as exc:
            log.error("Job %s (request %s) is undeliverable: %s", record.id, record.request_id, exc)
            await store.mark_failed(record.id, "undeliverable", str(exc))
            return await store.mark_explained(record.id)
        log.info("Job %s (request %s) delivered via %s", record.id, record.request_id, sent.channel)
        try:
            return await store.mark_delivered(
                record.id,
                sent.channel,
                sent.message_id,
                from_memory=record.state is not JobState.DELIVERING,
            )
        except (StoreError, InvalidTransition) as exc:
            # The member has it: nothing may undo that, least of all an error message.
            self._unrecorded(record, f"delivered via {sent.channel}", exc)
            return record

    async def _explain(self, record: JobRecord, answer: Answer) -> JobRecord:
        message = record.failure_message or "❌ The job failed."
        try:
            await answer.send(message, None, "", "")
        except (Undeliverable, discord.HTTPException) as exc:
            log.error("Job %s: could not tell the user it failed (%s)", record.id, exc)
        try:
            return await self.bot.store.mark_explained(record.id)
        except (StoreError, InvalidTransition) as exc:
            self._unrecorded(record, "explained", exc)
            return record

    @staticmethod
    def _unrecorded(record: JobRecord, what: str, exc: Exception) -> None:
        log.log(
            logging.WARNING if isinstance(exc, StoreUnavailable) else logging.ERROR,
            "Job %s was %s, but the store could not record that (%s); a restart before it "
            "is recorded may post it again",
            record.id,
            what,
            exc,
        )

    async def _fail_unexpectedly(self, record: JobRecord, answer: Answer, ref: str) -> JobRecord:
        text = f"Something went wrong on the bot's side (ref `{ref}`). Please try again."
        with contextlib.suppress(Exception):
            record = await self.bot.store.mark_failed(record.id, "bug", text)
            record = await self._explain(record, answer)
        return record
