"""A job's life in one place: the Speak cog hands a stored job over (`start`), and the
service drives it to its end, frees the member's place when it ends, resumes what the
last run left at start-up (and, with several processes on one database, what a process
that died left: `claim_every`), and purges old records once a day.

The Discord layer registers how a job reaches its member (`use`); the service knows no
more of Discord than that factory. It is built by the Bot beside the store and the
policy, so a cog reload cannot drive the same records twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from discord.ext import tasks

from ..policy import Policy
from ..store import JobRecord, JobSignals, JobStore, StoreError
from ..transcoder import Transcoder
from .cache import ResultCache
from .delivery import Delivery
from .driver import JobDriver
from .journal import Spawn
from .owner_wait import OwnerVerdict
from .resample import Resampler
from .runner import JobRunner

log = logging.getLogger(__name__)

PURGE_HOURS = 24.0
SIGNAL_SECONDS = 1.0  # between looks for clicks another process took for this one's jobs
CANCEL, OWNER = "cancel", "owner"  # job_signals kinds

DeliveryFactory = Callable[[JobRecord, int | None], Delivery]
"""(record, the interaction's upload limit when known) -> how the job reaches its member."""


class JobService:
    def __init__(
        self,
        *,
        store: JobStore,
        runner: JobRunner,
        policy: Policy,
        retention_days: float,
        spawn: Spawn,
        accepting: Callable[[], bool],
        ready: Callable[[], Awaitable[object]],
        resampler: Resampler | None = None,
        cache: ResultCache | None = None,
        transcoder: Transcoder | None = None,
        on_ended: Callable[[JobRecord], None] | None = None,
        claim_every: float | None = None,
    ) -> None:
        self._on_ended = on_ended  # the bot's metrics
        self._store = store
        self._cache = cache
        self._policy = policy
        self._retention_days = retention_days
        self._spawn = spawn
        self._ready = ready
        self.driver = JobDriver(store, runner, spawn, accepting, resampler, cache, transcoder)
        self._deliveries: DeliveryFactory | None = None
        self._housekeeping = tasks.loop(hours=PURGE_HOURS)(self._daily_purge)
        self._claiming = (
            tasks.loop(seconds=claim_every)(self._claim_orphans) if claim_every else None
        )
        # Several processes: a click Discord sent to another one (signals.py).
        self._signals = store if claim_every and isinstance(store, JobSignals) else None
        self._listening = tasks.loop(seconds=SIGNAL_SECONDS)(self._take_signals)

    def use(self, deliveries: DeliveryFactory) -> None:
        """How jobs reach their members: the Discord layer's side of the service."""
        self._deliveries = deliveries

    def start(self, record: JobRecord, *, upload_limit: int | None = None) -> None:
        """Drive a job the Speak cog has accepted (stored, acknowledged) to its end."""
        self._spawn(self._run(record, upload_limit), name=f"job-{record.id}")

    def cancel(self, job_id: str, by: int) -> bool:
        """A Cancel click: False if the job is past the stages a cancel can stop."""
        return self.driver.cancel(job_id, by)

    async def cancel_elsewhere(self, job_id: str, by: int) -> bool:
        """A Cancel click for a job this process does not drive: with several processes,
        passed on to the one that does (it cancels it if it still can). False with one."""
        if self._signals is None:
            return False
        await self._signals.signal_job(job_id, CANCEL, str(by))
        return True

    async def owner_answered(self, job_id: str, verdict: OwnerVerdict) -> bool:
        """The voice owner's click (or that they cannot be asked), for a job the caller
        found waiting in the store. With several processes, one this process does not
        drive gets it through the store. False if it was answered already."""
        if self._signals is not None and not self.driver.owner_waits.waiting(job_id):
            await self._signals.signal_job(job_id, OWNER, verdict.value)
            return True
        return self.driver.owner_waits.answer(job_id, verdict)

    async def _take_signals(self) -> None:
        assert self._signals is not None
        try:
            signals = await self._signals.take_signals()
        except StoreError as exc:  # tried again next round; the clicks wait in the store
            log.warning("Could not look for clicks other processes took: %s", exc)
            return
        for job_id, kind, value in signals:
            log.info("Job %s: a %s click another process took", job_id, kind)
            if kind == CANCEL:
                self.driver.cancel(job_id, int(value))
            elif kind == OWNER:
                self.driver.owner_waits.answer(job_id, OwnerVerdict(value))

    def abandon(self, job_id: str) -> None:
        """A reserved request that never became a job (declined, timed out, refused
        before it was stored): its place and budget come back."""
        self._policy.release(job_id, refund=True)

    def ended(self, record: JobRecord) -> None:
        """A job ended without being driven (refused after it was stored)."""
        self._policy.job_ended(record)

    async def _run(self, record: JobRecord, upload_limit: int | None) -> None:
        if self._deliveries is None:
            log.error("Job %s: no delivery is registered (is cogs.speak loaded?)", record.id)
            return
        record = await self.driver.drive(record, self._deliveries(record, upload_limit))
        # Ended for this run (even if the store failed to say so): its place is free.
        self._policy.job_ended(record)
        if self._on_ended is not None:
            self._on_ended(record)

    async def recover(self, unfinished: list[JobRecord]) -> None:
        """Once, at start-up: purge (and daily from now on), then finish every job the
        last run left, in the order they were accepted."""
        await self._ready()
        await self.purge()
        self._housekeeping.start()
        if unfinished:
            log.info("Resuming %d unfinished job(s) from the last run", len(unfinished))
        for record in unfinished:
            self.start(record)
        if self._claiming is not None:
            self._claiming.start()
        if self._signals is not None:
            self._listening.start()

    async def _claim_orphans(self) -> None:
        """Resume the jobs of a process that stopped renewing its leases (the store
        hands each to one process only)."""
        try:
            claimed = await self._store.claim_unfinished()
        except StoreError as exc:  # tried again next round
            log.warning("Could not look for other processes' orphaned jobs: %s", exc)
            return
        if claimed:
            log.info("Resuming %d job(s) a stopped bot process left", len(claimed))
        self._policy.adopt(claimed)
        for record in claimed:
            self.start(record)

    async def _daily_purge(self) -> None:
        if self._housekeeping.current_loop > 0:  # the first round is recover()'s own purge
            await self.purge()

    async def purge(self) -> None:
        if self._cache is not None:
            await self._cache.expire()
        days = self._retention_days
        if days <= 0:
            return
        try:
            removed = await self._store.purge(days * 86400)
        except StoreError as exc:  # tried again tomorrow; the jobs themselves are fine
            log.warning("Could not purge old jobs: %s", exc)
            return
        if removed:
            log.info("Removed %d finished job(s) older than %g days", removed, days)

    def close(self) -> None:
        self._housekeeping.cancel()
        if self._claiming is not None:
            self._claiming.cancel()
        self._listening.cancel()
