"""Runs one voice job from request to audio: wait for a slot, submit, poll, download.

Everything happens in the caller's task, so cancelling that task stops the job at once
and leaves nothing behind; progress is reported through a plain callback that must not
block (the Discord layer records it and edits its message on its own schedule).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import random
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

from ..audio import AudioFile
from ..config import Settings
from ..credits import CreditPause, CreditsPausedError
from ..durations import DUE_Z, SCARCE_DUE_Z, DurationModel, Estimate, Observation
from ..segmind.client import SegmindClient
from ..segmind.errors import (
    InsufficientCreditsError,
    JobFailedError,
    JobTimeoutError,
    MalformedResponseError,
    SegmindError,
)
from ..segmind.models import JobHandle, JobStatus, find_audio_url
from ..segmind.retry import get_retryable
from ..slots import FairSlots

log = logging.getLogger(__name__)


class Phase(enum.Enum):
    QUEUED = "queued"  # waiting for a slot (position is set)
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"  # Segmind has it, not started yet
    PROCESSING = "processing"
    DOWNLOADING = "downloading"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class JobRequest:
    sample_url: str
    text: str
    language: str


@dataclass(frozen=True, slots=True)
class Progress:
    phase: Phase
    elapsed: float  # seconds since the job was handed to the runner
    position: int | None = None  # QUEUED only
    handle: JobHandle | None = None  # from SUBMITTED on
    eta: float | None = None  # about how many seconds are left (once the bot has history)


@dataclass(frozen=True, slots=True)
class JobResult:
    audio: AudioFile
    request_id: str
    elapsed: float
    polls: int
    observation: Observation  # when polls saw it finish: what the duration model learns


@dataclass(frozen=True, slots=True)
class _Timing:
    started: float  # loop time the job was handed to the runner
    submitted_at: float  # loop time Segmind accepted it (earlier, for a resumed job)
    estimate: Estimate | None  # how long this workflow usually takes for this text
    # This job's own offset of its poll grid: jobs alike (same text length, started
    # together) would otherwise share one grid and poll in the same loop iteration.
    phase: float = 0.0


ProgressCallback = Callable[[Progress], None]

# How long a cancelled job waits for a submit already sent to come back and be recorded.
SUBMIT_GRACE = 5.0


class JobJournal(Protocol):
    """Durable record of the steps that cost money; each is awaited before the next acts."""

    async def submitting(self) -> None: ...

    async def submitted(self, handle: JobHandle) -> None: ...


class _Report(Protocol):
    def __call__(
        self, phase: Phase, position: int | None = ..., handle: JobHandle | None = ...
    ) -> None: ...


# Each wait between polls is stretched by up to this fraction, at random (never shortened):
# jobs started together (a burst of /speak) would otherwise poll in lockstep, all waking in
# the same loop iteration and stalling every other user's command.
POLL_JITTER = 0.5

# With history the polls keep a grid instead, each job's shifted by its own phase (within
# POLL_JITTER of an interval around its due time), plus a little jitter per poll.
GRID_JITTER = 0.1

# Consecutive unusable status answers tolerated before the job is given up: one garbled
# answer from a proxy should not throw away a paid job.
MAX_MALFORMED_POLLS = 3


class JobRunner:
    def __init__(
        self,
        client: SegmindClient,
        *,
        poll_interval: float,
        timeout: float,
        max_concurrent: int,
        credit_pause: CreditPause | None = None,
    ) -> None:
        self.client = client
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.slots = FairSlots(max_concurrent)
        self.credit_pause = credit_pause
        self.durations = DurationModel()

    @classmethod
    def from_settings(
        cls,
        client: SegmindClient,
        settings: Settings,
        credit_pause: CreditPause | None = None,
    ) -> JobRunner:
        return cls(
            client,
            poll_interval=settings.segmind_poll_interval,
            timeout=settings.segmind_timeout,
            max_concurrent=settings.segmind_max_concurrent,
            credit_pause=credit_pause,
        )

    @property
    def in_flight(self) -> int:
        return self.slots.in_use

    @property
    def waiting(self) -> int:
        return self.slots.waiting

    async def run(
        self,
        request: JobRequest,
        progress: ProgressCallback | None = None,
        *,
        journal: JobJournal | None = None,
        resume: JobHandle | None = None,
        submitted_ago: float = 0.0,
        owner: Hashable = None,
    ) -> JobResult:
        """Turn a request into audio, or raise a `SegmindError`.

        With `resume`, the job was submitted earlier (before a restart): it is polled, not
        submitted again, and `submitted_ago` counts against its deadline. The deadline
        (`timeout`) counts from the submit, as documented; waiting for a slot costs nothing
        on Segmind, and the submit itself (its wait for a grant included) has a deadline of
        the same length. `owner` (the requester) is the key the slots take turns between;
        None is shared by all callers that give none. While the account is paused for lack
        of credits, a new job fails with `CreditsPausedError` when its turn comes, without
        submitting.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        scarce = self.client.budget.interval > self.poll_interval
        estimate = self.durations.estimate(len(request.text), SCARCE_DUE_Z if scarce else DUE_Z)

        def report(
            phase: Phase, position: int | None = None, handle: JobHandle | None = None
        ) -> None:
            if progress is None:
                return
            eta = None
            if estimate is not None and handle is not None and phase is not Phase.DOWNLOADING:
                eta = max(0.0, estimate.median - (loop.time() - submitted_at))
            progress(Progress(phase, loop.time() - started, position, handle, eta))

        await self.slots.acquire(
            owner, (lambda pos: report(Phase.QUEUED, position=pos)) if progress else None
        )
        handle = resume
        submitted_at = loop.time() - submitted_ago
        try:
            if handle is None:
                self._check_credits()
                report(Phase.SUBMITTING)
                async with asyncio.timeout(self.timeout):
                    handle = await self._submit(request, journal)
                submitted_at = loop.time()
                log.info("Segmind job %s submitted", handle.request_id)
            elif not self.client.trusts_poll_url(handle):
                # A stored record is checked again: the key goes to Segmind's own
                # status URLs only, whatever the store holds.
                log.error("Segmind job %s: stored status URL is not Segmind's", handle.request_id)
                raise MalformedResponseError(
                    "the stored status URL points outside Segmind", request_id=handle.request_id
                )
            else:
                log.info("Segmind job %s resumed", handle.request_id)
            report(Phase.SUBMITTED, handle=handle)
            async with asyncio.timeout_at(submitted_at + self.timeout):
                result = await self._finish(
                    handle,
                    request,
                    _Timing(started, submitted_at, estimate, self._grid_phase()),
                    report,
                )
            self.durations.observe(result.observation)
            return result
        except TimeoutError:
            request_id = handle.request_id if handle else None
            log.warning("Segmind job %s passed its %.0fs deadline", request_id, self.timeout)
            raise JobTimeoutError(
                f"no result within {self.timeout:.0f} s", request_id=request_id
            ) from None
        except SegmindError as exc:
            if handle is not None and exc.request_id is None:
                exc.request_id = handle.request_id
            raise
        finally:
            self.slots.release()

    def _check_credits(self) -> None:
        pause = self.credit_pause
        if pause is not None and pause.active():
            raise CreditsPausedError(paused_until=pause.paused_until)

    async def _submit(self, request: JobRequest, journal: JobJournal | None) -> JobHandle:
        """Submit and record it. A cancel (shutdown, deadline) waits for a submit already
        on the wire to land and be recorded, so no paid job is left unknown."""

        async def submit_and_record() -> JobHandle:
            if journal is not None:
                await journal.submitting()
            try:
                handle = await self.client.submit(
                    request.sample_url, request.text, request.language
                )
            except InsufficientCreditsError as exc:
                # Pause new submits so queued jobs fail fast instead of each earning a 406.
                if self.credit_pause is not None:
                    self.credit_pause.trip(exc.detail or exc.summary)
                raise
            if self.credit_pause is not None:
                self.credit_pause.clear()  # credits are back (or were never gone)
            if journal is not None:
                await journal.submitted(handle)
            return handle

        task = asyncio.create_task(submit_and_record(), name="segmind-submit")
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, SUBMIT_GRACE)
            raise

    async def _finish(
        self, handle: JobHandle, request: JobRequest, timing: _Timing, report: _Report
    ) -> JobResult:
        loop = asyncio.get_running_loop()
        polls = 0
        malformed = 0
        misses = 0  # polls after the due time that found the job still running
        last_poll = timing.submitted_at
        lower = 0.0  # seconds after the submit: the last poll that saw it unfinished
        phase = Phase.SUBMITTED

        def rank() -> float:
            elapsed = loop.time() - timing.submitted_at
            if timing.estimate is None:
                return elapsed / max(self.poll_interval, 1e-3) - 1.0
            return timing.estimate.likelihood(elapsed)

        while True:
            await self._wait_for_turn(timing, last_poll, misses)
            last_poll = sent_at = loop.time()
            polls += 1
            try:
                result = await self.client.poll(handle, rank)
            except MalformedResponseError:
                malformed += 1
                if malformed >= MAX_MALFORMED_POLLS:
                    raise
                log.warning("Segmind job %s: unusable status answer, polling on", handle.request_id)
                continue
            except SegmindError as exc:
                if not get_retryable(exc):
                    raise
                # Retries inside poll() ran out; the job is paid for, so keep waiting
                # until the deadline rather than give it up.
                log.warning("Segmind job %s: poll failed (%s), polling on", handle.request_id, exc)
                continue
            malformed = 0
            if result.status is JobStatus.FAILED:
                log.info("Segmind job %s failed: %s", handle.request_id, result.error)
                raise JobFailedError(result.error, request_id=handle.request_id)
            if result.status is JobStatus.COMPLETED:
                seen = Observation(len(request.text), lower, loop.time() - timing.submitted_at)
                return await self._download(
                    handle, request, result.output, timing, polls, seen, report
                )
            lower = sent_at - timing.submitted_at
            if timing.estimate is not None and lower >= timing.estimate.due:
                misses += 1
            if result.status is JobStatus.PROCESSING and phase is not Phase.PROCESSING:
                phase = Phase.PROCESSING
                report(phase, handle=handle)
            elif timing.estimate is not None:
                report(phase, handle=handle)  # a fresh ETA

    async def _wait_for_turn(self, timing: _Timing, last_poll: float, misses: int) -> None:
        """Sleep until this job's next poll is worth a request.

        Never sooner than `poll_interval` after the last one. With no history, polls come
        every interval, each wait stretched by up to POLL_JITTER at random (jobs started
        together would otherwise poll in lockstep). With history, they keep the interval
        but on a grid that puts one poll near the job's due time (when most such jobs are
        done; each job's grid is shifted by its own phase, so jobs alike do not poll
        together), so a roomy budget finds the job soon after its end. When the budget has
        no room for the poll, the job waits for its due time instead (later after each
        poll that found it still running) and the budget's queue gives the request to
        whichever waiting job is most likely done.
        """
        interval = self.poll_interval
        estimate = timing.estimate
        if estimate is None:
            await _sleep_until(last_poll + interval * (1 + POLL_JITTER * random.random()))
            return
        due = timing.submitted_at + estimate.due
        grid = due + timing.phase
        earliest = last_poll + interval * (1 + GRID_JITTER * random.random())
        await _sleep_until(grid + math.ceil((earliest - grid) / interval) * interval)
        if self._budget_has_room():
            return
        await _sleep_until(due + self._after_due(estimate, misses))

    def _grid_phase(self) -> float:
        """Spread jobs' grids over POLL_JITTER of an interval, centred on their due time."""
        return self.poll_interval * POLL_JITTER * (random.random() - 0.5)

    def _budget_has_room(self) -> bool:
        """Room now, and enough for every job in flight to poll each interval: one free
        request on a budget that is short overall must go where it pays."""
        budget = self.client.budget
        return budget.has_room() and budget.interval * self.slots.in_use <= self.poll_interval

    def _after_due(self, estimate: Estimate, misses: int) -> float:
        """Extra wait after the due time once `misses` polls found the job running: gaps
        that grow by half each time, from the poll interval or a tenth of the due time."""
        gap = max(self.poll_interval, 0.1 * estimate.due)
        return sum(min(gap * 1.5**i, max(gap, estimate.due)) for i in range(misses))

    async def _download(
        self,
        handle: JobHandle,
        request: JobRequest,
        output: object,
        timing: _Timing,
        polls: int,
        seen: Observation,
        report: _Report,
    ) -> JobResult:
        url = find_audio_url(output, exclude=(request.sample_url,))
        report(Phase.DOWNLOADING, handle=handle)
        audio = await self.client.download(url, request_id=handle.request_id)
        elapsed = asyncio.get_running_loop().time() - timing.started
        report(Phase.DONE, handle=handle)
        log.info(
            "Segmind job %s done in %.1fs after %d polls (%d bytes)",
            handle.request_id,
            elapsed,
            polls,
            audio.size,
        )
        return JobResult(audio, handle.request_id, elapsed, polls, seen)


async def _sleep_until(when: float) -> None:
    await asyncio.sleep(max(0.0, when - asyncio.get_running_loop().time()))
