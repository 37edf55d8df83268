"""Drives one stored job to its end — delivered once, or explained once — from whatever
state it is in: fresh from /speak, or found unfinished after a restart or a crash.

Every state change is written to the store before the next step acts on it (the store
refuses a second submit), so a `kill -9` at any moment leaves a state to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import discord

from bot.jobs import JobRequest, Progress
from bot.segmind.errors import SegmindError
from bot.segmind.models import JobHandle
from bot.store import SUBMIT_UNKNOWN, JobRecord, JobState, NextStep
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


class StoreJournal:
    """The runner's journal, written to the job store."""

    def __init__(self, pipeline: JobPipeline, record: JobRecord) -> None:
        self._store = pipeline.bot.store
        self._id = record.id
        self._message_id = record.original_message_id

    async def submitting(self) -> None:
        # The message id is written here rather than right after the defer: one write
        # fewer per job. Until then a restart finds the message as "@original".
        await self._store.mark_submit_started(self._id, self._message_id)

    async def submitted(self, handle: JobHandle) -> None:
        await self._store.mark_submitted(self._id, handle.request_id, handle.poll_url)


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
        if record.state in (JobState.COMPLETED, JobState.DELIVERING):
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
        try:
            try:
                result = await self.bot.jobs.run(
                    JobRequest(record.sample_url, record.text, record.language),
                    on_progress,
                    journal=StoreJournal(self, record) if resume is None else None,
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
            return await store.mark_completed(
                record.id,
                audio.data,
                audio.content_type,
                audio.extension,
                audio.source_url,
                delivering=True,
                seen=(seen.lower, seen.upper),
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
        return await store.mark_delivered(record.id, sent.channel, sent.message_id)

    async def _explain(self, record: JobRecord, answer: Answer) -> JobRecord:
        message = record.failure_message or "❌ The job failed."
        try:
            await answer.send(message, None, "", "")
        except (Undeliverable, discord.HTTPException) as exc:
            log.error("Job %s: could not tell the user it failed (%s)", record.id, exc)
        return await self.bot.store.mark_explained(record.id)

    async def _fail_unexpectedly(self, record: JobRecord, answer: Answer, ref: str) -> JobRecord:
        text = f"Something went wrong on the bot's side (ref `{ref}`). Please try again."
        with contextlib.suppress(Exception):
            record = await self.bot.store.mark_failed(record.id, "bug", text)
            record = await self._explain(record, answer)
        return record
