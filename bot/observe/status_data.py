"""What the operator's status page shows, gathered in one pass: the open jobs, today's
usage against the caps, the last hour's Segmind requests and job durations, and the latest
failures. Only counts, states, ids, languages and the bot's own error refs are gathered:
no text, URL or token ever reaches the page."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from ..config import Settings
from ..policy import Limits, utc_day_start
from ..store import FailureSummary, JobState, JobSummary, StatusStore, UsageRow

MINUTES = 60  # the request chart's bars: the last hour, a minute each
HOUR = 3600.0
OPEN_JOBS_SHOWN = 200  # a backlog beyond this is summed up, not listed
FAILURES_SHOWN = 20
TOP_GUILDS = 10
# The bot words a bug's ending "(ref `abcd1234`)" and a Segmind error's "(ref <request id>)".
_REF = re.compile(r"\bref `?([^`\s()]+)`?")


class RequestStats(Protocol):
    """The bot's metrics as far as the page reads them."""

    def requests_per_minute(self, now: float | None = None) -> list[int]:
        """Segmind requests in each of the last 60 minutes, oldest first."""
        ...

    def recent_durations(self) -> list[tuple[float, float]]:
        """(finished at, seconds) of the jobs that finished in the last hour."""
        ...


class UsageCounts(Protocol):
    """The fair-use rules' counters (`bot.policy.Policy`)."""

    def today(self, guild_id: int) -> tuple[int, int]: ...
    def limits(self, guild_id: int | None) -> Limits: ...


class StatusReads(StatusStore, Protocol):
    async def usage(self, since: float, guild_id: int | None = None) -> list[UsageRow]: ...
    async def count_by_state(self) -> dict[JobState, int]: ...


@dataclass(frozen=True, slots=True)
class OpenJob:
    id: str
    phase: str  # what it waits for, in words
    queued: bool  # not yet sent to Segmind
    age_s: float
    guild_id: int | None
    language: str
    text_chars: int


@dataclass(frozen=True, slots=True)
class GuildUsage:
    guild_id: int | None  # None: direct messages
    jobs: int
    jobs_cap: int  # 0: no limit
    chars: int
    chars_cap: int


@dataclass(frozen=True, slots=True)
class Failure:
    job_id: str
    at: float
    guild_id: int | None
    cause: str
    ref: str  # "" when the ending carried none


@dataclass(frozen=True, slots=True)
class Snapshot:
    now: float
    open_jobs: list[OpenJob]
    open_total: int  # may exceed len(open_jobs)
    jobs_today: int
    global_cap: int  # GLOBAL_DAILY_JOBS; 0: no limit
    guilds: list[GuildUsage]  # the busiest first
    guilds_total: int
    requests: list[int]  # MINUTES counts, oldest first
    rpm_limit: int  # SEGMIND_RPM; 0: no limit
    durations: list[tuple[float, float]]  # (seconds ago, seconds), last hour
    failures: list[Failure]


def phase(job: JobSummary) -> tuple[str, bool]:
    """What the job is doing, and whether it is still queued (not sent to Segmind)."""
    if job.state is JobState.ACCEPTED:
        if job.submit_started_at is not None:
            return "submitting", False
        if job.owner_pending_until is not None:
            return "waiting for the voice's owner", True
        return "queued", True
    if job.state is JobState.SUBMITTED:
        return "at Segmind", False
    if job.state is JobState.FAILED:
        return "failed, telling the member", False
    return "delivering", False


def failure_ref(message: str) -> str:
    found = _REF.search(message)
    return found.group(1) if found else ""


def guild_usage(rows: Iterable[UsageRow], counts: UsageCounts) -> list[GuildUsage]:
    """Today's usage per guild, as the rules count it, the busiest first."""
    guilds = {row.guild_id for row in rows}
    usage = []
    for guild_id in guilds:
        jobs, chars = counts.today(guild_id or 0)
        if guild_id is None:  # DMs: only the global cap applies
            usage.append(GuildUsage(None, jobs, 0, chars, 0))
            continue
        limits = counts.limits(guild_id)
        usage.append(
            GuildUsage(guild_id, jobs, limits.guild_daily_jobs, chars, limits.guild_daily_chars)
        )
    usage.sort(key=lambda g: (-g.jobs, -g.chars, g.guild_id or 0))
    return usage


def last_hour(requests: list[int]) -> list[int]:
    """Exactly MINUTES counts: a shorter answer is padded with zeros at the old end."""
    counts = [max(0, int(n)) for n in requests[-MINUTES:]]
    return [0] * (MINUTES - len(counts)) + counts


async def gather(
    store: StatusReads,
    counts: UsageCounts,
    settings: Settings,
    metrics: RequestStats,
    now: float,
) -> Snapshot:
    summaries = await store.open_jobs(OPEN_JOBS_SHOWN)
    by_state = await store.count_by_state()
    rows = await store.usage(utc_day_start(now))
    failures: list[FailureSummary] = await store.recent_failures(FAILURES_SHOWN)
    open_jobs = []
    for job in summaries:
        words, queued = phase(job)
        open_jobs.append(
            OpenJob(
                job.id,
                words,
                queued,
                max(0.0, now - job.created_at),
                job.guild_id,
                job.language,
                job.text_chars,
            )
        )
    guilds = guild_usage(rows, counts)
    return Snapshot(
        now=now,
        open_jobs=open_jobs,
        open_total=sum(n for state, n in by_state.items() if not state.terminal),
        jobs_today=sum(g.jobs for g in guilds),
        global_cap=settings.global_daily_jobs,
        guilds=guilds[:TOP_GUILDS],
        guilds_total=len(guilds),
        requests=last_hour(metrics.requests_per_minute(now)),
        rpm_limit=settings.segmind_rpm,
        durations=[
            (now - at, seconds)
            for at, seconds in metrics.recent_durations()
            if 0 <= now - at <= HOUR and seconds >= 0
        ],
        failures=[
            Failure(f.id, f.at, f.guild_id, f.cause, failure_ref(f.message)) for f in failures
        ],
    )
