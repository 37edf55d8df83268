"""Fair use: whether a member may start a job now, and what each job counts against.

The rules (switches, channels, roles, blocks, opt-outs, cooldown, jobs in flight and
daily budgets) are checked and the job counted in one synchronous step, with no `await`
in between: two commands arriving in the same instant are seen one after the other, so
they cannot both slip under a limit. Counters live in memory and are rebuilt from the job
store at start-up; settings and member flags are written through to the store.

Usage is counted per UTC day. A job that ends without its submit ever starting (declined,
cancelled while queued, refused by Discord) is refunded: it cost the operator nothing.

The operator's limits (the settings, or what the bot's owner set for one server with
`set_ceilings`) are ceilings: a server's admins may only make them stricter
(`set_limits` refuses anything looser with `AboveCeiling`), and an override stored by an
older version that is looser does not apply (`limits` takes the stricter of the two).

A refusal is a reason code and its data (which limit, whose, when trying again can work);
the Discord layer words it (cogs/refusals.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..config import Settings
from ..store import (
    Admission,
    JobRecord,
    JobState,
    MemberRecord,
    PolicyStore,
    SharedPolicyStore,
    Standing,
)
from .ledger import DAY, Counts, Job, Ledger, day_of, utc_day_start
from .limits import (
    OPERATOR,
    SERVER,
    AboveCeiling,
    GuildConfig,
    Limits,
    checked,
    looser,
    merged,
    replaced,
    stricter,
)
from .quota import quota_refusal
from .refusals import Ask, Reason, Refusal

log = logging.getLogger(__name__)

GLOBAL_SWITCH = "enabled"  # bot_state flag the owner flips


class Policy:
    def __init__(
        self,
        settings: Settings,
        store: PolicyStore,
        *,
        clock: Callable[[], float] = time.time,
        credits_paused_until: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._clock = clock
        self._credits_paused_until = credits_paused_until
        self.globally_enabled = True
        self._guilds: dict[int, GuildConfig] = {}
        self._members: dict[tuple[int, int], MemberRecord] = {}
        # One read-modify-write of a guild's or a member's record at a time: two commands
        # at once (an /optout and an /optin, two admins) would otherwise lose a change.
        self._saving = asyncio.Lock()
        self._version = 0  # the store's policy_version last read (SharedPolicyStore)
        self._ledger = Ledger(day_of(clock()))
        self._last_start: dict[tuple[int, int], float] = {}
        self._jobs: dict[str, Job] = {}
        self._in_flight: dict[tuple[int, int], int] = {}

    async def load(self, unfinished: Iterable[JobRecord]) -> None:
        """Rebuild from the store: settings, members, today's usage, jobs still running."""
        await self._read_settings()
        now = self._clock()
        self._ledger = Ledger(day_of(now))
        for row in await self._store.usage(utc_day_start(now)):
            self._ledger.add((row.guild_id or 0, row.user_id), row.jobs, row.chars)
        for row in await self._store.usage(now - self.settings.user_cooldown_seconds - DAY):
            key = (row.guild_id or 0, row.user_id)
            self._last_start[key] = max(self._last_start.get(key, 0.0), row.last_at)
        self.adopt(unfinished)

    async def _read_settings(self) -> None:
        store = self._store
        if isinstance(store, SharedPolicyStore):  # read first: a change meanwhile shows next
            self._version = await store.policy_version()
        flags = await store.flags()
        self.globally_enabled = flags.get(GLOBAL_SWITCH, "true") == "true"
        self._guilds = {
            gid: GuildConfig.from_json(data) for gid, data in (await store.guild_settings()).items()
        }
        self._members = {(m.guild_id, m.user_id): m for m in await store.members()}

    async def refresh(self) -> bool:
        """With a store other processes write to: reload the settings, members and flags
        if any process changed them since the last read; True if it did."""
        store = self._store
        if not isinstance(store, SharedPolicyStore):
            return False
        if await store.policy_version() == self._version:
            return False
        async with self._saving:  # not between a change of ours and its write
            await self._read_settings()
        return True

    def adopt(self, records: Iterable[JobRecord]) -> None:
        """Jobs this process drives from now on that it did not reserve (the last run's,
        or another process's): each counts as in flight until it ends."""
        for record in records:
            key = (record.guild_id or 0, record.user_id)
            self._track(record.id, Job(key, record.text_chars, day_of(record.created_at), 0, None))

    # -- the rules ------------------------------------------------------------------

    def guild(self, guild_id: int | None) -> GuildConfig:
        return self._guilds.get(guild_id or 0, GuildConfig())

    def ceilings(self, guild_id: int | None) -> Limits:
        """The operator's limits for the guild: the settings, or what the bot's owner set
        for it. Its admins may only make them stricter."""
        s = self.settings
        base = Limits(
            s.user_cooldown_seconds,
            s.user_max_in_flight,
            s.user_daily_chars,
            s.guild_daily_jobs,
            s.guild_daily_chars,
        )
        return replaced(base, dict(self.guild(guild_id).ceilings))

    def limits(self, guild_id: int | None) -> Limits:
        """The limits in force: each the stricter of the operator's and the guild's own
        (an override looser than the operator's, stored by an older version, is ignored)."""
        ceilings = self.ceilings(guild_id)
        overrides = dict(self.guild(guild_id).overrides)
        if not overrides:
            return ceilings
        return replaced(
            ceilings,
            {
                name: stricter(name, value, getattr(ceilings, name))
                for name, value in overrides.items()
            },
        )

    def setter(self, guild_id: int | None, name: str) -> str:
        """Who set limit `name` as it is in force: SERVER (its admins) or OPERATOR."""
        override = dict(self.guild(guild_id).overrides).get(name)
        if override is not None and override == getattr(self.limits(guild_id), name):
            return SERVER
        return OPERATOR

    def member(self, guild_id: int | None, user_id: int) -> MemberRecord:
        return self._members.get(
            (guild_id or 0, user_id), MemberRecord(guild_id=guild_id or 0, user_id=user_id)
        )

    def needs_consent(self, guild_id: int | None, user_id: int) -> bool:
        required = self.guild(guild_id).require_consent
        if required is None:
            required = self.settings.require_consent
        return required and self.member(guild_id, user_id).consent_at is None

    def needs_owner_consent(self, guild_id: int | None, requester: int, owner: int) -> bool:
        """Whether the voice's owner must allow this request first: someone else's voice,
        the rule on here, and no "Always allow" from them in this server."""
        if owner == requester:
            return False
        required = self.guild(guild_id).require_owner_consent
        if required is None:
            required = self.settings.require_owner_consent
        return required and self.member(guild_id, owner).voice_allowed_at is None

    def result_form(
        self, guild_id: int | None, send_as: str | None, play: bool | None
    ) -> tuple[str, bool]:
        """How a result goes out: the request's choice, else the server's default, else
        a file, not played."""
        config = self.guild(guild_id)
        return send_as or config.send_as or "file", bool(config.play if play is None else play)

    def check(self, ask: Ask) -> Refusal | None:
        """What `reserve` would say now, without counting anything."""
        return self._refusal(ask, self._clock())

    def recheck(self, ask: Ask) -> Refusal | None:
        """For a job already reserved that is about to start (a consent prompt was
        answered): the rules that may have changed meanwhile (switches, channels, roles,
        blocks, opt-outs, credits), without counting the job against its own limits."""
        return self._rule_refusal(ask, self._clock())

    def reserve(self, ask: Ask, job_id: str) -> Refusal | None:
        """Check every rule and, if none refuses, count the job at once."""
        now = self._clock()
        refusal = self._refusal(ask, now)
        if refusal is not None:
            return refusal
        key = (ask.guild_id or 0, ask.user_id)
        job = Job(key, ask.chars, self._ledger.day, now, self._last_start.get(key))
        self._track(job_id, job)
        self._ledger.add(key, 1, ask.chars)
        self._last_start[key] = now
        return None

    def release(self, job_id: str, *, refund: bool) -> None:
        """The job ended (refund: it was never sent to Segmind, so it cost nothing)."""
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        left = self._in_flight.get(job.key, 0) - 1
        if left > 0:
            self._in_flight[job.key] = left
        else:
            self._in_flight.pop(job.key, None)
        if not refund:
            return
        if job.day == self._ledger.day:
            self._ledger.add(job.key, -1, -job.chars)
        if self._last_start.get(job.key) == job.started_at:
            if job.previous_start is None:
                self._last_start.pop(job.key, None)
            else:
                self._last_start[job.key] = job.previous_start

    def job_ended(self, record: JobRecord) -> None:
        # Refunded: a job that never started a submit and was not delivered. A result
        # answered from the cache (delivered, no submit) counts like any other request.
        free = record.submit_started_at is None and record.state is not JobState.DELIVERED
        self.release(record.id, refund=free)

    def _track(self, job_id: str, job: Job) -> None:
        if job_id not in self._jobs:
            self._jobs[job_id] = job
            self._in_flight[job.key] = self._in_flight.get(job.key, 0) + 1

    def _roll_day(self, now: float) -> None:
        if day_of(now) != self._ledger.day:
            self._ledger = Ledger(day_of(now))

    def _refusal(self, ask: Ask, now: float) -> Refusal | None:
        self._roll_day(now)
        return self._rule_refusal(ask, now) or self._quota_refusal(ask, now)

    def _rule_refusal(self, ask: Ask, now: float) -> Refusal | None:
        """Who may clone what, where, now: switches, allowlist, channels, roles, blocks,
        opt-outs and the credit pause (nothing about this job's own count)."""
        settings = self.settings
        guild = self.guild(ask.guild_id)
        if not self.globally_enabled:
            return Refusal(Reason.GLOBAL_OFF)
        allowed = settings.allowed_guild_ids
        if allowed and ask.guild_id not in allowed:
            return Refusal(Reason.GUILD_NOT_ALLOWED)
        if not guild.enabled:
            return Refusal(Reason.GUILD_OFF)
        if guild.channels and not guild.channels.intersection(ask.channel_ids):
            return Refusal(Reason.CHANNEL, allowed=tuple(sorted(guild.channels)))
        if guild.roles and not guild.roles & ask.role_ids:
            return Refusal(Reason.ROLE, allowed=tuple(sorted(guild.roles)))
        if self.member(ask.guild_id, ask.user_id).blocked_at is not None:
            return Refusal(Reason.BLOCKED)
        for owner in sorted(ask.voice_owner_ids):
            if self.member(ask.guild_id, owner).opted_out_at is not None:
                if owner == ask.user_id:
                    return Refusal(Reason.OPTED_OUT_SELF)
                return Refusal(Reason.OPTED_OUT)
        paused = self._credits_paused_until()
        if paused is not None and paused > now:
            return Refusal(Reason.CREDITS, retry_at=paused)
        return None

    def _quota_refusal(self, ask: Ask, now: float) -> Refusal | None:
        """Cooldown, jobs in flight, daily budgets, by this process's own counts."""
        key = (ask.guild_id or 0, ask.user_id)
        return self._over_quota(key, ask.chars, now, self._standing(key))

    def _standing(self, key: tuple[int, int]) -> Standing:
        used = self._ledger.users.get(key, Counts())
        spent = self._ledger.guilds.get(key[0], Counts())
        return Standing(
            user_jobs=used.jobs,
            user_chars=used.chars,
            guild_jobs=spent.jobs,
            guild_chars=spent.chars,
            total_jobs=self._ledger.total_jobs,
            open_jobs=self._in_flight.get(key, 0),
            last_start=self._last_start.get(key),
        )

    def admission(self, job_id: str) -> Admission | None:
        """For a store several processes share: the same quota rules for a job reserved
        here, asked again with the database's counts of every process's jobs (which do
        not hold this job yet) as it is inserted. None: the job is not reserved here."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        now = self._clock()
        cooldown = self.limits(job.key[0] or None).user_cooldown_seconds
        return Admission(
            guild_id=job.key[0],
            user_id=job.key[1],
            since=utc_day_start(now),
            recent=now - cooldown,
            decide=lambda standing: self._over_quota(job.key, job.chars, now, standing),
        )

    def _over_quota(
        self, key: tuple[int, int], chars: int, now: float, standing: Standing
    ) -> Refusal | None:
        guild_id = key[0] or None
        return quota_refusal(
            self.limits(guild_id),
            lambda name: self.setter(guild_id, name),
            self.settings.global_daily_jobs,
            chars,
            now,
            standing,
        )

    # -- what admins and members change --------------------------------------------

    async def update_guild(self, guild_id: int, by: int | None, **changes: Any) -> GuildConfig:
        async with self._saving:
            return await self._save_guild(guild_id, by, **changes)

    async def _save_guild(self, guild_id: int, by: int | None, **changes: Any) -> GuildConfig:
        config = dataclasses.replace(self.guild(guild_id), **changes)
        await self._store.save_guild_settings(guild_id, config.to_json(), by)
        self._guilds[guild_id] = config
        return config

    async def set_limits(
        self,
        guild_id: int,
        by: int | None,
        values: Mapping[str, float | None],
        *,
        reset: bool = False,
    ) -> GuildConfig:
        """The guild admins' overrides, in one write (None: back to the operator's limit);
        `reset` drops every override first. Overrides may only be stricter than the
        operator's limits: a looser one raises `AboveCeiling` and nothing is changed."""
        async with self._saving:
            ceilings = self.ceilings(guild_id)
            for name, value in checked(values).items():
                if value is not None and looser(name, value, getattr(ceilings, name)):
                    raise AboveCeiling(name, value, getattr(ceilings, name))
            overrides = merged(self.guild(guild_id).overrides, values, reset)
            return await self._save_guild(guild_id, by, overrides=overrides)

    async def set_ceilings(
        self,
        guild_id: int,
        by: int | None,
        values: Mapping[str, float | None],
        *,
        reset: bool = False,
    ) -> GuildConfig:
        """The bot owner's limits for one guild, in place of the settings, looser or
        stricter (None: back to the setting); `reset` drops them all first. The guild's
        admins' overrides stay, and apply where they are stricter."""
        async with self._saving:
            ceilings = merged(self.guild(guild_id).ceilings, checked(values), reset)
            return await self._save_guild(guild_id, by, ceilings=ceilings)

    async def update_member(self, guild_id: int, user_id: int, **changes: Any) -> MemberRecord:
        async with self._saving:
            member = dataclasses.replace(self.member(guild_id, user_id), **changes)
            await self._store.save_member(member)
            self._members[(guild_id, user_id)] = member
            return member

    async def set_globally_enabled(self, enabled: bool) -> None:
        await self._store.set_flag(GLOBAL_SWITCH, "true" if enabled else "false")
        self.globally_enabled = enabled

    # -- reports --------------------------------------------------------------------

    def in_flight(self, guild_id: int | None = None) -> int:
        return sum(
            n for key, n in self._in_flight.items() if guild_id is None or key[0] == guild_id
        )

    def today(self, guild_id: int) -> tuple[int, int]:
        """The guild's (jobs, characters) so far today."""
        self._roll_day(self._clock())
        counts = self._ledger.guilds.get(guild_id, Counts())
        return counts.jobs, counts.chars
