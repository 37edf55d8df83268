"""The Bot: owns the HTTP session, the Segmind client and the job runner; loads the cogs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

import aiohttp
import discord
from discord.ext import commands

from .command_sync import sync_commands
from .config import Settings
from .credits import CreditPause
from .durations import HISTORY, Observation
from .jobs import JobRunner, JobService, ResultCache
from .jobs.resample import Resampler
from .observe import Metrics
from .observe.server import MetricsServer, extra_pages
from .policy import Policy
from .segmind.budget import RequestBudget, shared_grants_of
from .segmind.client import SegmindClient
from .store import JobRecord, SharedPolicyStore, SqliteJobStore, Store, StoreError
from .transcoder import Transcoder
from .tree import VoiceCloneTree

log = logging.getLogger(__name__)

# Extensions are named, not imported: the core never depends on the cogs' code.
DEFAULT_EXTENSIONS = (
    "cogs.speak",
    "cogs.members",
    "cogs.admin",
    "cogs.provenance",
    "cogs.voices",
    "cogs.playback",
)
OUT_OF_CREDITS_DM = (
    "⚠️ VoiceClone: Segmind answered that the account is out of credits. New voice jobs "
    "are refused until a submit succeeds again; top up the account at segmind.com. "
    "(You get this once until credits are back.)"
)
SESSION_TIMEOUT = aiohttp.ClientTimeout(total=120, connect=10)
RESTARTING_TEXT = "The bot is restarting. Please try again in a minute."
STORE_BROKEN_TEXT = (
    "⚠️ The bot can't record new requests right now (its storage stopped working), so it "
    "is restarting. Nothing was sent and it costs nothing: please try again in a minute."
)
STORE_CHECK_INTERVAL = 1.0  # seconds between looks at the store's health
POLICY_FOLLOW_SECONDS = 2.0  # between looks at other processes' fair-use changes


class VoiceCloneBot(commands.AutoShardedBot):
    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        segmind: SegmindClient | None = None,
        jobs: JobRunner | None = None,
        store: Store | None = None,
        extensions: Sequence[str] = DEFAULT_EXTENSIONS,
        force_sync: bool = False,
    ) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # channel and permission cache; nothing privileged
        intents.voice_states = True  # who is in which voice channel (play:), not privileged
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            tree_cls=VoiceCloneTree,
            help_command=None,
            # Always the sharded client, with the count given: it never asks Discord for
            # a count of its own, and one shard behaves as a plain connection.
            shard_count=settings.shard_count,
            **_shard_ids(settings),
        )
        self.settings = settings
        self._owns_session = session is None
        self._session = session
        self._segmind = segmind
        self._jobs = jobs
        self._store = store
        self._policy: Policy | None = None
        self._service: JobService | None = None
        self._cache: ResultCache | None = None
        self.transcoder = Transcoder()  # audio work off the event loop (bot/transcode.py)
        # Jobs the last run left unfinished, read once in setup_hook (before the gateway
        # connects): the policy counts them and the speak cog resumes them.
        self.unfinished_at_start: list[JobRecord] = []
        self.credits = CreditPause(settings.credits_pause_seconds)
        self._extensions = tuple(extensions)
        self._force_sync = force_sync
        self._tasks: set[asyncio.Task[Any]] = set()
        self.accepting_jobs = True  # False once shutdown has begun
        # Set when the store stopped working: the runner then stops the bot and exits
        # non-zero, so that a supervisor restarts it.
        self.broken = asyncio.Event()
        self.metrics = Metrics()  # /metrics and the status page read it
        self.metrics_server: MetricsServer | None = None  # with METRICS_PORT; `.port` bound

    # The cogs reach the core through these; they exist once setup_hook has run.
    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "setup_hook has not run"
        return self._session

    @property
    def segmind(self) -> SegmindClient:
        assert self._segmind is not None, "setup_hook has not run"
        return self._segmind

    @property
    def jobs(self) -> JobRunner:
        assert self._jobs is not None, "setup_hook has not run"
        return self._jobs

    @property
    def store(self) -> Store:
        assert self._store is not None, "setup_hook has not run"
        return self._store

    @property
    def policy(self) -> Policy:
        assert self._policy is not None, "setup_hook has not run"
        return self._policy

    @property
    def job_service(self) -> JobService:
        assert self._service is not None, "setup_hook has not run"
        return self._service

    @property
    def result_cache(self) -> ResultCache:
        """Results kept for identical requests; `forget_*` delete a voice's from it."""
        assert self._cache is not None, "setup_hook has not run"
        return self._cache

    async def setup_hook(self) -> None:
        settings = self.settings
        if self._store is None:
            store = open_store(settings)
            await store.open()  # StoreError: one clear line, before anything else starts
            self._store = store
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=SESSION_TIMEOUT)
        if self._segmind is None:
            budget = RequestBudget(settings.segmind_rpm, shared=shared_grants_of(self._store))
            self._segmind = SegmindClient.from_settings(self._session, settings, budget)
        if self._jobs is None:
            self._jobs = JobRunner.from_settings(self._segmind, settings, self.credits)
        self.credits = self._jobs.credit_pause or self.credits
        self._watch_metrics(self._jobs)
        self.credits.listeners.append(self._out_of_credits)
        self._policy = Policy(
            settings, self._store, credits_paused_until=lambda: self.credits.paused_until
        )
        self.unfinished_at_start = await self._store.claim_unfinished()
        await self._policy.load(self.unfinished_at_start)
        for chars, running, done in await self._store.finish_times(HISTORY):
            self._jobs.durations.observe(Observation(chars, running, done))
        self.spawn(self._watch_store(self._store), name="store-watchdog")
        if isinstance(self._store, SharedPolicyStore):
            self.spawn(self._follow_policy(self._policy), name="policy-follow")
        self._cache = ResultCache(
            self._store,
            self._session,
            days=settings.result_cache_days,
            max_mb=settings.result_cache_mb,
            max_sample_bytes=settings.max_sample_bytes,
        )
        self._service = JobService(
            store=self._store,
            runner=self._jobs,
            policy=self._policy,
            retention_days=settings.job_retention_days,
            spawn=self.spawn,
            accepting=lambda: self.accepting_jobs,
            ready=self.wait_until_ready,
            resampler=Resampler(self._store, self._store, self._jobs.client),
            cache=self._cache,
            transcoder=self.transcoder,
            on_ended=self.metrics.job_ended,
            # Several processes may share a PostgreSQL store: look for a dead one's jobs.
            claim_every=settings.job_lease_seconds / 3 if settings.database_url.get() else None,
        )
        if settings.metrics_port:
            server = MetricsServer(
                self, settings.metrics_host, settings.metrics_port, extra_pages(self)
            )
            await server.start()  # ServerError: one clear line (lifecycle.py)
            self.metrics_server = server
        if self.user is not None:  # logged in before setup_hook: the name files are tagged with
            self._service.driver.provenance.bot_name = self.user.name
        for name in self._extensions:
            await self.load_extension(name)
        # Once per process, not per cog load: a reload must not drive the same jobs twice.
        self.spawn(self._service.recover(self.unfinished_at_start), name="recover-jobs")
        await sync_commands(
            self.tree,
            settings.bot_data_dir,
            settings.discord_guild_ids,
            force=self._force_sync,
            shared=self._store,
        )

    def _watch_metrics(self, runner: JobRunner) -> None:
        budget = runner.client.budget
        runner.client.on_request = self.metrics.segmind_request
        self.metrics.watch(
            queue_depth=lambda: runner.waiting,
            in_flight=lambda: runner.in_flight,
            budget_tokens=budget.available,
        )

    @property
    def closed_text(self) -> str:
        """What a member is told when the bot takes no new jobs."""
        return STORE_BROKEN_TEXT if self.broken.is_set() else RESTARTING_TEXT

    def store_broken(self, problem: str) -> None:
        """The store can record nothing more: take no new jobs, say why (once), and let
        the runner stop the bot with a non-zero status so that a supervisor restarts it.
        Unfinished jobs resume from what the store last committed."""
        if self.broken.is_set():
            return
        self.accepting_jobs = False
        log.error(
            "The job store stopped working (%s): refusing new jobs and exiting, so that a "
            "supervisor restarts the bot; unfinished jobs resume at the next start",
            problem,
        )
        self.broken.set()

    async def _watch_store(self, store: Store) -> None:
        """Notice a store whose writer died or stopped answering (a hung disk)."""
        while True:
            await asyncio.sleep(STORE_CHECK_INTERVAL)
            problem = store.problem()
            if problem is not None:
                self.store_broken(problem)
                return

    async def _follow_policy(self, policy: Policy) -> None:
        """Several processes: what an admin changed through another (a block, a server's
        settings, the global switch) applies here within POLICY_FOLLOW_SECONDS."""
        while True:
            await asyncio.sleep(POLICY_FOLLOW_SECONDS)
            try:
                if await policy.refresh():
                    log.info("Fair-use settings changed in another process; reloaded")
            except StoreError as exc:  # the watchdog stops the bot if the store is gone
                log.warning("Could not look for fair-use changes: %s", exc)

    def _out_of_credits(self, detail: str, until: float | None) -> None:
        """Tell the operator once (not once per job) that the Segmind account is empty."""
        log.error(
            "The Segmind account is out of credits (%s). New jobs are refused for %.0f s at a "
            "time until a submit succeeds; top up the account at segmind.com",
            detail or "HTTP 406",
            self.settings.credits_pause_seconds,
        )
        if self.settings.notify_owner_dm:
            self.spawn(self._dm_owners(OUT_OF_CREDITS_DM), name="notify-owner")

    async def _dm_owners(self, text: str) -> None:
        app = self.application or await self.application_info()
        owners = [m.id for m in app.team.members] if app.team else [app.owner.id]
        for owner_id in owners:
            try:
                user = self.get_user(owner_id) or await self.fetch_user(owner_id)
                await user.send(text, allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as exc:
                log.warning("Could not DM the bot owner %s (HTTP %s)", owner_id, exc.status)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any] | None:
        """Start a task the bot owns: kept referenced, logged if it fails, cancelled on close.

        Once shutdown has begun nothing new starts (None is returned): a job accepted in
        that instant is already stored, and the next start picks it up."""
        if not self.accepting_jobs:
            coro.close()
            log.info("Not starting %s: shutting down", name)
            return None
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Task %s failed", task.get_name(), exc_info=task.exception())

    @property
    def owned_tasks(self) -> frozenset[asyncio.Task[Any]]:
        return frozenset(self._tasks)

    async def close(self) -> None:
        self.accepting_jobs = False
        if self.metrics_server is not None:  # first: its handlers read what closes next
            await self.metrics_server.close()
            self.metrics_server = None
        if self._service is not None:
            self._service.close()
        # Twice: a task may have been started by a handler that was already running.
        for _ in range(2):
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=5)
        try:
            await super().close()
        finally:
            await self.transcoder.close()
            if self._segmind is not None:
                self._segmind.budget.close()
            if self._owns_session and self._session is not None:
                await self._session.close()
            if self._store is not None:
                await self._store.close()


def _shard_ids(settings: Settings) -> dict[str, Any]:
    """SHARD_IDS when given; without it, the client opens every shard of the count."""
    return {"shard_ids": list(settings.shard_ids)} if settings.shard_ids else {}


def open_store(settings: Settings) -> Store:
    """The job store the settings name: PostgreSQL when DATABASE_URL is set, else the
    SQLite file in BOT_DATA_DIR. Not opened yet."""
    url = settings.database_url.get()
    if url:
        from .store.pg import PostgresJobStore  # asyncpg loads only for PostgreSQL

        return PostgresJobStore(
            url,
            keep_text=settings.audit_store_text,
            lease_seconds=settings.job_lease_seconds,
            shards=(settings.shard_count, settings.shard_ids),
        )
    return SqliteJobStore(settings.bot_data_dir, keep_text=settings.audit_store_text)
