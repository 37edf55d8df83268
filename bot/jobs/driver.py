"""Drives one stored job to its end — delivered once, or explained once — from whatever
state it is in: fresh from /speak, or found unfinished after a restart or a crash.

The steps, in order: the next step the record names → produce the audio (the runner) →
deliver it → explain a failure. Every state change is written to the store before the
next step acts on it (the store refuses a second submit), so a `kill -9` at any moment
leaves a state to resume from. The member is reached only through a `Delivery`.

When the store cannot write (it retries a locked database for a while first), what the
member already has, or is about to get, is not given up: a submit Segmind accepted is
polled from memory while its record is retried (`StoreJournal`); audio that could not be
stored is delivered from memory (the log says the restart guarantee is lost for that
job); and a delivery that could not be recorded leaves the delivered message alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable

from ..audio import AudioFile
from ..observe.json_logs import current_job
from ..provenance import Provenance
from ..segmind.errors import SegmindError
from ..segmind.models import JobHandle
from ..store import (
    SUBMIT_UNKNOWN,
    InvalidTransition,
    JobRecord,
    JobState,
    JobStore,
    LeaseLost,
    NextStep,
    StoreError,
    StoreUnavailable,
)
from ..transcoder import AudioError, Transcoder
from ..tree import error_reference
from .cache import ResultCache
from .delivery import Delivery, Ending, Undeliverable
from .journal import Spawn, StoreJournal
from .owner_wait import OwnerVerdict, OwnerWaits
from .resample import Resampler
from .runner import JobRequest, JobRunner

log = logging.getLogger(__name__)

_OWNER_ENDINGS = {
    OwnerVerdict.DENIED: Ending.OWNER_DENIED,
    OwnerVerdict.TIMED_OUT: Ending.OWNER_TIMED_OUT,
    OwnerVerdict.UNREACHABLE: Ending.OWNER_UNREACHABLE,
}
RESULT_LIFETIME = 3600.0  # Segmind keeps a job's status and result this long


@dataclasses.dataclass
class _Made:
    """Audio this run produced, not yet delivered; `record` as the store last has it."""

    record: JobRecord
    audio: AudioFile


class JobDriver:
    def __init__(
        self,
        store: JobStore,
        runner: JobRunner,
        spawn: Spawn,
        accepting: Callable[[], bool],
        resampler: Resampler | None = None,
        cache: ResultCache | None = None,
        transcoder: Transcoder | None = None,
    ) -> None:
        self._transcoder = transcoder  # voice messages, and audio over the upload limit
        self._resampler = resampler  # saved voices: a dead storage URL is re-made once
        self._store = store
        self._cache = cache
        self._runner = runner
        self._spawn = spawn
        self._accepting = accepting  # False once shutdown has begun
        self._producing: dict[str, asyncio.Task[None]] = {}  # jobs a Cancel click can stop
        self._cancelled: dict[str, int] = {}  # job id -> who clicked Cancel
        self.provenance = Provenance()  # tags every delivered file; the Bot names itself
        self.owner_waits = OwnerWaits()  # jobs waiting for their voice owner's answer

    def cancel(self, job_id: str, by: int) -> bool:
        """Stop a job that is waiting in line or for Segmind. False if it is not (any
        more) at a stage a cancel can stop: finished, delivering, or not started yet."""
        task = self._producing.get(job_id)
        if task is None or task.done() or job_id in self._cancelled:
            return False
        self._cancelled[job_id] = by
        task.cancel()
        return True

    async def drive(self, record: JobRecord, delivery: Delivery) -> JobRecord:
        """Run the job to its end for this run; return its record as last known."""
        current_job.set(record.id)  # this task's log lines (and its children's) name it
        try:
            return await self._drive(record, delivery)
        except StoreUnavailable as exc:
            # The bot stops for a restart (it logged why, once): nothing to tell anyone.
            log.warning(
                "Job %s paused in state %s (%s); it resumes at the next start",
                record.id,
                record.state.name,
                exc,
            )
        except LeaseLost as exc:
            # Another process claimed it (this one stopped renewing in time): it goes on
            # there; nothing here may submit, post or explain anything more.
            log.warning("Job %s: %s; stopped here", record.id, exc)
        except asyncio.CancelledError:
            by = self._cancelled.pop(record.id, None)
            task = asyncio.current_task()
            if by is None or not self._accepting() or task is None:
                log.info(
                    "Job %s paused in state %s (shutdown); it resumes at the next start",
                    record.id,
                    record.state.name,
                )
                raise
            task.uncancel()
            log.info("Job %s cancelled by user %s", record.id, by)
            return await self._after_cancel(record, delivery)
        except Exception:
            ref = error_reference()
            log.exception("Job %s hit an unexpected error (ref %s)", record.id, ref)
            return await self._fail_unexpectedly(record, delivery, ref)
        return record

    async def _drive(self, record: JobRecord, delivery: Delivery) -> JobRecord:
        step = record.next_step
        made: _Made | JobRecord = record
        if step is NextStep.GIVE_UP:
            text = delivery.ending_text(Ending.SUBMIT_UNKNOWN)
            made = await self._store.mark_failed(record.id, SUBMIT_UNKNOWN, text)
        elif step in (NextStep.SUBMIT, NextStep.POLL):
            if record.owner_pending_until is not None:  # only before its submit
                record = await self._await_owner(record, delivery)
            made = record
            if record.state is not JobState.FAILED:
                made = await self._produce(record, delivery)
            if isinstance(made, JobRecord) and made.state is JobState.ACCEPTED:
                made = await self._produce(made, delivery)  # resubmitted (resample.py)
        if isinstance(made, _Made):  # delivered from memory, recorded complete or not
            record = await self._deliver(made.record, delivery, made.audio)
        else:
            record = made
            if record.state in (JobState.COMPLETED, JobState.DELIVERING):
                record = await self._deliver(record, delivery, None)
        if record.state is JobState.FAILED:
            record = await self._explain(record, delivery)
        return record

    async def _await_owner(self, record: JobRecord, delivery: Delivery) -> JobRecord:
        """Wait (cancellable, as long as the stored deadline allows) for the voice owner's
        answer; the job is then cleared to be submitted, or failed at no cost."""
        assert record.owner_pending_until is not None
        task = asyncio.current_task()
        if task is not None:
            self._producing[record.id] = task  # a Cancel click stops the wait
        try:
            answer = await self.owner_waits.wait(record.id, record.owner_pending_until)
        finally:
            self._producing.pop(record.id, None)
        log.info("Job %s: the voice owner's answer: %s", record.id, answer.verdict.value)
        if answer.verdict is OwnerVerdict.ALLOWED:
            return await self._store.mark_owner_allowed(record.id, record.original_message_id)
        ending = _OWNER_ENDINGS[answer.verdict]
        return await self._store.mark_failed(record.id, ending.value, delivery.ending_text(ending))

    async def _after_cancel(self, record: JobRecord, delivery: Delivery) -> JobRecord:
        """The member clicked Cancel: tell them whether it can still cost anything."""
        current = await self._store.get(record.id) or record  # a shielded submit may have landed
        if current.state in (JobState.ACCEPTED, JobState.SUBMITTED):
            free = current.submit_started_at is None
            ending = Ending.CANCELLED if free else Ending.CANCELLED_AFTER_SUBMIT
            current = await self._store.mark_failed(
                current.id, ending.value, delivery.ending_text(ending)
            )
        return await self._drive(current, delivery)

    # -- producing the audio ---------------------------------------------------------

    async def _produce(self, record: JobRecord, delivery: Delivery) -> _Made | JobRecord:
        store = self._store
        resume: JobHandle | None = None
        submitted_ago = 0.0
        if record.state is JobState.SUBMITTED:
            assert record.request_id is not None
            assert record.poll_url is not None
            assert record.submitted_at is not None
            submitted_ago = time.time() - record.submitted_at
            if submitted_ago > RESULT_LIFETIME:
                text = delivery.ending_text(Ending.RESULT_EXPIRED)
                return await store.mark_failed(record.id, Ending.RESULT_EXPIRED.value, text)
            resume = JobHandle(record.request_id, record.poll_url)
        elif self._cache is not None:  # an identical earlier request: no Segmind request
            record, cached = await self._cache.answer(record)
            if cached is not None:
                return _Made(record, cached)

        watch = asyncio.create_task(delivery.watch_token(), name=f"token-{record.id}")
        task = asyncio.current_task()
        if task is not None:
            self._producing[record.id] = task
        journal = StoreJournal(store, self._spawn, record) if resume is None else None
        try:
            try:
                result = await self._runner.run(
                    JobRequest(record.sample_url, record.text, record.language),
                    delivery.show,
                    journal=journal,
                    resume=resume,
                    submitted_ago=submitted_ago,
                    owner=record.user_id,
                )
            finally:
                self._producing.pop(record.id, None)
            audio = result.audio
            seen = result.observation
            problem: Exception | None = None
            if journal is None or await journal.settle():
                try:
                    # Straight to DELIVERING: this task delivers it next, from memory (no
                    # write of its own, no read of the audio back).
                    completed = await store.mark_completed(
                        record.id,
                        audio.data,
                        audio.content_type,
                        audio.extension,
                        audio.source_url,
                        delivering=True,
                        seen=(seen.lower, seen.upper),
                    )
                    if self._cache is not None:
                        await self._cache.remember(completed, audio)
                    return _Made(completed, audio)
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
            known = dataclasses.replace(
                record,
                request_id=result.request_id,
                audio_content_type=audio.content_type,
                audio_extension=audio.extension,
                audio_url=audio.source_url,
                audio_size=audio.size,
            )
            return _Made(known, audio)
        except SegmindError as exc:
            log.warning(
                "Job %s (request %s) failed: %s: %s",
                record.id,
                exc.request_id or "-",
                type(exc).__name__,
                exc,
            )
            if self._resampler is not None and (journal is None or await journal.settle()):
                again = await self._resampler.resubmission(record, exc)
                if again is not None:
                    return again  # ACCEPTED with a fresh sample URL: _drive submits once more
            return await store.mark_failed(
                record.id, type(exc).__name__, delivery.failure_text(exc)
            )
        finally:
            if journal is not None:
                journal.abandon()
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
            task = asyncio.current_task()
            shutting_down = task is not None and task.cancelling() > 0
            await delivery.close_progress(grace=0.5 if shutting_down else 10.0)

    # -- delivering ------------------------------------------------------------------

    async def _deliver(
        self, record: JobRecord, delivery: Delivery, audio: AudioFile | None
    ) -> JobRecord:
        """Post the result once. `audio`: made by this run, so nothing was posted yet."""
        store = self._store
        if audio is None:
            found = await delivery.posted_before() if record.state is JobState.DELIVERING else None
            if found is not None:
                log.info(
                    "Job %s was delivered before the restart (%s); not posting again",
                    record.id,
                    found.channel,
                )
                kept = await store.read_audio(record)
                if kept is not None and kept.size > delivery.largest_upload():
                    kept = None  # it went out as a link: no file, no hashes
                earlier = await self.provenance.hashes(record, kept)
                return await store.mark_delivered(
                    record.id, found.channel, found.message_id, hashes=earlier
                )
            audio = await store.read_audio(record)
            if audio is None:
                log.error("Job %s: spooled audio is missing", record.id)
                text = delivery.ending_text(Ending.AUDIO_LOST)
                return await store.mark_failed(record.id, Ending.AUDIO_LOST.value, text)
            record = await store.mark_delivering(record.id)
        audio = await self._shape(record, audio, delivery)
        # Provenance tags on every file delivered, the same bytes again on a retry. Audio
        # over the upload limit goes out as Segmind's link, not as a file: nothing to tag
        # (and rewriting tens of MiB per result starved the loop under load).
        hashes: tuple[str | None, str | None] = (None, None)
        if audio.size <= delivery.upload_limit():
            stamped = await self.provenance.stamp(record, audio)
            audio, hashes = stamped.audio, (stamped.sha256, stamped.audio_sha256)
        try:
            sent = await delivery.send_result(record, audio)
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
                hashes=hashes,
            )
        except (StoreError, InvalidTransition) as exc:
            # The member has it: nothing may undo that, least of all an error message.
            _unrecorded(record, f"delivered via {sent.channel}", exc)
            return record

    async def _shape(self, record: JobRecord, audio: AudioFile, delivery: Delivery) -> AudioFile:
        """The audio as it goes out: Opus with its waveform for a voice message (where one
        may be sent), and re-encoded to fit the upload limit when it is over. What cannot
        be made so goes out as it is (the delivery says why to the member)."""
        transcoder = self._transcoder
        if transcoder is None:
            return audio
        if record.send_as == "voice_message" and await delivery.voice_message_refused() is None:
            try:
                audio = await transcoder.voice_message(audio)
            except AudioError as exc:
                log.warning("Job %s: cannot make a voice message of its audio: %s", record.id, exc)
        limit = delivery.upload_limit()
        if audio.size > limit:
            try:
                fitted = await transcoder.fit(audio, limit)
            except AudioError as exc:
                log.warning("Job %s: cannot re-encode its audio to fit: %s", record.id, exc)
                fitted = None
            log.info(
                "Job %s: %d bytes are over the upload limit of %d: %s",
                record.id,
                audio.size,
                limit,
                "sent as a link" if fitted is None else f"re-encoded to {fitted.size} bytes",
            )
            audio = fitted or audio
        return audio

    async def _explain(self, record: JobRecord, delivery: Delivery) -> JobRecord:
        try:
            await delivery.send_failure(record.failure_message or "❌ The job failed.")
        except Undeliverable as exc:
            log.error("Job %s: could not tell the user it failed (%s)", record.id, exc)
        try:
            return await self._store.mark_explained(record.id)
        except (StoreError, InvalidTransition) as exc:
            _unrecorded(record, "explained", exc)
            return record

    async def _fail_unexpectedly(
        self, record: JobRecord, delivery: Delivery, ref: str
    ) -> JobRecord:
        with contextlib.suppress(Exception):
            text = delivery.ending_text(Ending.BUG, ref)
            record = await self._store.mark_failed(record.id, Ending.BUG.value, text)
            record = await self._explain(record, delivery)
        return record


def _unrecorded(record: JobRecord, what: str, exc: Exception) -> None:
    log.log(
        logging.WARNING if isinstance(exc, StoreUnavailable) else logging.ERROR,
        "Job %s was %s, but the store could not record that (%s); a restart before it "
        "is recorded may post it again",
        record.id,
        what,
        exc,
    )
