"""`make bench ARGS="--only cluster"`: three bot processes on one PostgreSQL and one
Segmind account, against the fakes (a sharded fake Discord, a fake Segmind enforcing a
paid plan's requests per minute with 429s).

Two phases. Throughput: BURST jobs spread over the three processes' servers, timed from
the first command to the last delivery, with every request to Segmind logged to see the
plan's rate held across all three. Recovery: RECOVERY_JOBS jobs on one process's server
are at Segmind when that process is killed (`kill -9`); the others resume them once its
leases run out, and the time from the kill to each delivery is measured.

The budget's minute runs SCALE times faster (botproc's VOICECLONE_TEST_BUDGET_WINDOW), as
the fake's window does; the job times are real seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests import pg
from tests.cluster import delivered, guilds_on_every_shard, processes, speak, until_all
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, JobScript
from tests.proc import kill

from . import docs
from .core_report import floors_table
from .noise import OtherLoad
from .procstat import cpu_s
from .section import Floor, Options, SectionReport

NAME = "cluster"
TITLE = "Cluster: three processes, one PostgreSQL, one Segmind account"
PROCESSES = 3
SCALE = 10.0
RPM = 50  # a paid plan's requests per minute
WINDOW = 60.0 / SCALE
BURST = 60
JOB_SECONDS = 1.0  # each job's time at the fake Segmind (real seconds)
RECOVERY_JOBS = 6
RECOVERY_JOB_SECONDS = 3.0
LEASE = 5.0  # JOB_LEASE_SECONDS: another shard's jobs are taken a lease after it ran out
POLL = 0.5  # SEGMIND_POLL_INTERVAL (real seconds)
# A killed process's last renewal may be up to a third of a lease old; its jobs are another
# shard's, so they wait two leases after it, plus one claim round (a third of a lease).
RECOVERY_BOUND = round(2 * LEASE + LEASE / 3 + RECOVERY_JOB_SECONDS + 2.0, 1)


class ClusterError(Exception):
    pass


@dataclass
class ClusterRun:
    jobs: int = 0
    delivered_once: int = 0
    audio_messages: int = 0
    submits: int = 0
    rejected_429: int = 0
    api_requests: int = 0
    most_in_window: int = 0
    burst_seconds: float = 0.0
    cpu_per_job_ms: list[float] = field(default_factory=list)  # each process, the burst
    recovery_first: float = 0.0
    recovery_last: float = 0.0
    recovery_jobs: int = 0

    @property
    def misdelivered(self) -> int:
        """Jobs without their audio, plus audio posted more than once."""
        return (self.jobs - self.delivered_once) + abs(self.audio_messages - self.delivered_once)

    @property
    def jobs_per_second(self) -> float:
        return BURST / self.burst_seconds if self.burst_seconds else 0.0


@contextlib.asynccontextmanager
async def database(workdir: Path) -> AsyncIterator[str]:
    try:
        server = await asyncio.to_thread(pg.start_server, workdir / "pg", workdir / "run")
    except pg.PgUnavailable as exc:
        raise ClusterError(f"no PostgreSQL server: {exc}") from None
    try:
        yield await pg.create_database(server.url)
    finally:
        await asyncio.to_thread(pg.stop_server, server)


async def run_scenario(workdir: Path) -> ClusterRun:
    result = ClusterRun()
    async with (
        database(workdir) as url,
        FakeDiscord(shards=PROCESSES) as discord,
        FakeSegmind(rate_limit=(RPM, WINDOW)) as segmind,
    ):
        segmind.script_jobs(*[JobScript(duration=JOB_SECONDS)] * BURST)
        segmind.script_jobs(*[JobScript(duration=RECOVERY_JOB_SECONDS)] * RECOVERY_JOBS)
        guilds = guilds_on_every_shard(discord, PROCESSES)
        settings = {
            "JOB_LEASE_SECONDS": str(LEASE),
            "SEGMIND_RPM": str(RPM),
            "SEGMIND_POLL_INTERVAL": str(POLL),
            "VOICECLONE_TEST_BUDGET_WINDOW": str(WINDOW),
            "LOG_LEVEL": "WARNING",
        }
        async with processes(workdir, url, discord, segmind, guilds, **settings) as procs:
            await discord.wait_for(lambda: len(discord.connected_shards) == PROCESSES, 60)
            await discord.wait_for(lambda: all(discord.commands(g) for g in guilds.values()), 60)
            everything = await _burst(discord, guilds, procs, result)
            everything += await _recovery(discord, url, guilds, procs, result)
        result.jobs = len(everything)
        result.delivered_once = sum(1 for x in everything if delivered(x))
        result.audio_messages = sum(
            1
            for g in guilds.values()
            for m in discord.channel_messages(discord.guild(g).channel_ids[0])
            if m.attachments
        )
        result.submits = segmind.count("submit")
        result.rejected_429 = segmind.count_status(429)
        result.api_requests = len(segmind.api_times())
        result.most_in_window = segmind.most_in_window(WINDOW)
    return result


async def _burst(
    discord: FakeDiscord,
    guilds: dict[int, int],
    procs: list[asyncio.subprocess.Process],
    result: ClusterRun,
) -> list[FakeInteraction]:
    cpu_before = [cpu_s(p.pid) for p in procs]
    started = time.monotonic()
    jobs = [await speak(discord, guilds[n % PROCESSES], f"burst job {n}") for n in range(BURST)]
    await discord.wait_for(lambda: all(delivered(x) for x in jobs), 300)
    result.burst_seconds = time.monotonic() - started
    per_process = BURST / PROCESSES
    result.cpu_per_job_ms = [
        (cpu_s(p.pid) - before) / per_process * 1000
        for p, before in zip(procs, cpu_before, strict=True)
    ]
    return jobs


async def _recovery(
    discord: FakeDiscord,
    url: str,
    guilds: dict[int, int],
    procs: list[asyncio.subprocess.Process],
    result: ClusterRun,
) -> list[FakeInteraction]:
    doomed = [await speak(discord, guilds[1], f"doomed job {n}") for n in range(RECOVERY_JOBS)]
    await until_all(url, "submitted", [str(x.id) for x in doomed])
    await kill(procs[1])
    killed = time.monotonic()
    times: list[float] = []

    async def one(interaction: FakeInteraction) -> None:
        await discord.wait_for(lambda: delivered(interaction), 120)
        times.append(time.monotonic() - killed)

    await asyncio.gather(*(one(x) for x in doomed))
    result.recovery_first, result.recovery_last = min(times), max(times)
    result.recovery_jobs = len(times)
    return doomed


def check_floors(run: ClusterRun | None) -> list[Floor]:
    if run is None:
        return []
    return [
        Floor("jobs not delivered exactly once", 0, run.misdelivered, "", "<="),
        Floor("submits per job", 1, run.submits / max(1, run.jobs), "submits", "<="),
        Floor("429s from Segmind", 0, run.rejected_429, "", "<="),
        Floor(f"requests in any {WINDOW:g} s window", RPM, run.most_in_window, "", "<="),
        Floor("recovery after kill -9 (last job)", RECOVERY_BOUND, run.recovery_last, "s", "<="),
    ]


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def figures_table(run: ClusterRun) -> str:
    rows = [
        ["jobs (burst + recovery)", str(run.jobs)],
        ["delivered, each once", str(run.audio_messages)],
        ["submits", str(run.submits)],
        [f"burst: {BURST} jobs, first command to last delivery (s)", _fmt(run.burst_seconds)],
        ["burst: jobs per second (3 processes)", _fmt(run.jobs_per_second, 2)],
        [
            "burst: CPU per job in each process (ms)",
            " / ".join(_fmt(v) for v in run.cpu_per_job_ms),
        ],
        ["Segmind requests (submits + polls)", str(run.api_requests)],
        [f"most requests in any {WINDOW:g} s window (plan: {RPM})", str(run.most_in_window)],
        ["429s", str(run.rejected_429)],
        ["recovery after kill -9: first job delivered (s)", _fmt(run.recovery_first)],
        ["recovery after kill -9: last job delivered (s)", _fmt(run.recovery_last)],
    ]
    return docs.table(["figure", "value"], rows)


def conditions() -> str:
    return (
        f"{PROCESSES} processes (SHARD_COUNT={PROCESSES}, SHARD_IDS=i), PostgreSQL 16 "
        f"(pgserver, unix socket), SEGMIND_RPM={RPM} with the minute scaled to {WINDOW:g} s "
        f"(the fake answers 429 past it), JOB_LEASE_SECONDS={LEASE:g}, "
        f"SEGMIND_POLL_INTERVAL={POLL:g} s, jobs of {JOB_SECONDS:g} s at Segmind "
        f"({RECOVERY_JOB_SECONDS:g} s for the {RECOVERY_JOBS} killed with their process)"
    )


NOTES = f"""Recovery: the killed process's jobs belong to another shard's servers for the
survivors, so they are claimed a lease after its leases ran out (its own restarted process
would take them at once); its last renewal may be up to a third of a lease old, and the
survivors look every third of a lease. So the bound is 2 × lease + lease / 3 + the job's
own time + 2 s: {RECOVERY_BOUND:g} s here, about 75 s with the default JOB_LEASE_SECONDS=30.
Throughput is the plan's: {RPM} requests per (scaled) minute shared by all three processes,
at the requests per job below; the CPU is far from the limit. CPU per job is the whole bot
process (gateway, the interaction's answer and progress edits, the result's provenance
tags and upload, the leases and the shared budget's row), not only the core section's
client and store; the launcher sets PROGRESS_UPDATE_SECONDS=0.1 (tests/proc.py), so each
job's message is edited several times a second, where the default is every 3 s."""


def notes(run: ClusterRun) -> str:
    per_job = run.api_requests / max(1, run.jobs)
    return f"{NOTES}\n\nRequests per job in this run: {per_job:.2f} (a submit and its polls)."


def run(options: Options) -> SectionReport:
    others = OtherLoad()
    outcome: ClusterRun | None = None
    crash = ""
    with (
        tempfile.TemporaryDirectory(prefix="bench-cluster-") as workdir,
        asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner,
    ):
        try:
            outcome = runner.run(
                asyncio.wait_for(run_scenario(Path(workdir)), options.scenario_timeout)
            )
        except (ClusterError, AssertionError) as exc:
            crash = str(exc) or type(exc).__name__
        except TimeoutError:
            crash = f"no result within {options.scenario_timeout:g} s"
    floors = check_floors(outcome)
    when = time.strftime("%Y-%m-%d")
    head = docs.provenance(when, others.share(), "asyncpg", "discord.py")
    if outcome is None:
        print(f"cluster: crashed: {crash}", file=sys.stderr)
        body = f"Did not finish: {crash.splitlines()[0] if crash else 'unknown'}"
        text = f"{TITLE}\n{body}"
        return SectionReport(NAME, text, f"## {TITLE}\n\n{head}\n\n{body}\n", [], [body])
    table = figures_table(outcome)
    text = f"{TITLE}\n{conditions()}\n{table}\n{floors_table(floors)}"
    parts = (f"## {TITLE}", head, f"{conditions()}.", table, floors_table(floors), notes(outcome))
    markdown = "\n\n".join(parts) + "\n"
    return SectionReport(NAME, text, markdown, floors)
