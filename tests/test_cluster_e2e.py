"""Three bot processes, one PostgreSQL database, one Segmind account, end to end: each
process opens one of three shards (SHARD_COUNT=3, SHARD_IDS=i) of the fake Discord, which
routes each server's commands to its shard's process. One process is killed (`kill -9`)
while its jobs are at Segmind: the others resume them once its leases run out, and every
job is delivered exactly once, with one submit each, the Free plan's requests per minute
held across all three (the fake Segmind answers 429 past it) and the commands synced by
one process only.

Time runs SCALE times faster for the budget (botproc's VOICECLONE_TEST_BUDGET_WINDOW):
the plan's minute is three seconds here, as in test_budget_e2e.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

import asyncpg
import pytest

from tests.cluster import (
    delivered,
    guilds_on_every_shard,
    job_states,
    per_shard_settings,
    processes,
    speak,
    until_all,
)
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, JobScript, fake_mp3
from tests.harness import World, running_bot, world
from tests.proc import kill
from tests.test_fair_use_e2e import speak_from

SHARDS = 3
RPM = 5  # the Free plan
WINDOW = 3.0  # the plan's minute, scaled
LEASE = 2.0  # JOB_LEASE_SECONDS, its minimum
JOB_SECONDS = 2.5  # each job's time at the fake Segmind
JOBS_PER_SHARD = 2


def audio_messages(discord: FakeDiscord, interactions: list[FakeInteraction]) -> int:
    """Messages with audio the members can see, wherever they are."""
    channels = {x.channel_id for x in interactions}
    users = {x.user_id for x in interactions}
    places = [m for c in channels for m in discord.channel_messages(c)]
    places += [m for u in users for m in discord.dm_messages(u)]
    return sum(1 for m in places if m.attachments)


async def test_three_processes_one_killed_every_job_delivered_once(
    tmp_path: Path, pg_database: str
) -> None:
    async with (
        FakeDiscord(shards=SHARDS) as discord,
        FakeSegmind(rate_limit=(RPM, WINDOW)) as segmind,
    ):
        segmind.script_jobs(*[JobScript(duration=JOB_SECONDS)] * (SHARDS * JOBS_PER_SHARD))
        by_shard = guilds_on_every_shard(discord, SHARDS)
        guilds = list(by_shard.values())
        settings = {
            "JOB_LEASE_SECONDS": str(LEASE),
            "SEGMIND_RPM": str(RPM),
            "SEGMIND_POLL_INTERVAL": "0.3",
            "VOICECLONE_TEST_BUDGET_WINDOW": str(WINDOW),
        }
        async with processes(
            tmp_path, pg_database, discord, segmind, by_shard, **settings
        ) as procs:
            await discord.wait_for(lambda: discord.connected_shards == [0, 1, 2], 30)
            await discord.wait_for(lambda: all(discord.commands(g) for g in guilds), 30)
            jobs: dict[int, list[FakeInteraction]] = {}
            for shard, guild_id in by_shard.items():
                for n in range(JOBS_PER_SHARD):
                    interaction = await speak(discord, guild_id, f"shard {shard} job {n}")
                    jobs.setdefault(shard, []).append(interaction)
            doomed = [str(x.id) for x in jobs[1]]
            await until_all(pg_database, "submitted", doomed)
            log = await kill(procs[1])
            everything = [x for batch in jobs.values() for x in batch]
            await discord.wait_for(lambda: all(delivered(x) for x in everything), 60)
            await until_all(pg_database, "delivered")
        assert audio_messages(discord, everything) == len(everything)  # each exactly once
    assert "Resuming" not in log  # the killed one resumed nothing of the others'
    assert segmind.count("submit") == len(everything)  # one submit each, none again
    assert segmind.count_status(429) == 0
    assert segmind.most_in_window(WINDOW) <= RPM
    assert discord.command_puts == len(guilds)  # one process synced, once per server


async def test_a_limit_holds_across_processes(tmp_path: Path, pg_database: str) -> None:
    """GLOBAL_DAILY_JOBS=1 with two processes (in one test process, each its own bot and
    shard): the second server's process has not seen the first's job in its own counts,
    and the database's count refuses it all the same."""
    async with FakeDiscord(shards=2) as discord, FakeSegmind() as segmind:
        guilds = guilds_on_every_shard(discord, 2)
        with discord.patch_discord_py():
            configs = per_shard_settings(
                tmp_path, segmind, discord, pg_database, guilds, GLOBAL_DAILY_JOBS="1"
            )
            async with running_bot(discord, configs[0]), running_bot(discord, configs[1]):
                answers = []
                for shard in range(2):
                    interaction = await speak(discord, guilds[shard], f"on shard {shard}")
                    await discord.wait_for(functools.partial(answered, interaction), 15)
                    answers.append(interaction)
                await discord.wait_for(lambda: delivered(answers[0]), 15)
                refused = answers[1].original
                assert refused is not None
                assert refused.ephemeral
                assert "daily limit across all servers" in refused.content
    assert segmind.count("submit") == 1


def answered(interaction: FakeInteraction) -> bool:
    return interaction.original is not None


async def test_a_process_that_lost_its_job_stops_without_a_word(
    tmp_path: Path, pg_database: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process claimed the job while this one was at Segmind (this one stalled
    past its lease): the result comes in, and this process posts nothing and explains
    nothing; the job is the other's to finish."""
    async with world(tmp_path, None, DATABASE_URL=pg_database) as w:
        w.segmind.script_jobs(JobScript(duration=1.0))
        interaction = await w.speak("taken over")
        await until_all(pg_database, "submitted", [str(interaction.id)])
        connection = await asyncpg.connect(pg_database)
        try:
            await connection.execute("UPDATE jobs SET lease_owner = 'another process'")
        finally:
            await connection.close()
        with caplog.at_level(logging.WARNING, logger="bot.jobs.driver"):
            await w.job_ended(interaction, within=15)
        assert "another bot process drives it now; stopped here" in caplog.text
        assert interaction.original is not None
        assert not interaction.original.attachments  # still its progress message
        assert not interaction.followups
        assert (await job_states(pg_database)) == {str(interaction.id): "submitted"}


async def test_an_owner_s_dm_answer_reaches_the_process_driving_the_job(
    tmp_path: Path, pg_database: str
) -> None:
    """Two processes. The voice owner answers in a DM, which Discord sends to shard 0's
    process, for a job on a server of shard 1: the answer reaches shard 1's process,
    which drives the job, through the database."""
    async with FakeDiscord(shards=2) as discord, FakeSegmind() as segmind:
        guilds = guilds_on_every_shard(discord, 2)
        far = guilds[1]  # its commands go to process 1, DMs to process 0
        author = discord.add_user("author", guild_id=far)
        channel_id = discord.guild(far).channel_ids[0]
        with discord.patch_discord_py():
            configs = per_shard_settings(
                tmp_path, segmind, discord, pg_database, guilds, REQUIRE_OWNER_CONSENT="true"
            )
            async with running_bot(discord, configs[0]), running_bot(discord, configs[1]) as one:
                w = World(discord, segmind, one, configs[1])
                post = await discord.user_message(
                    user_id=author,
                    channel_id=channel_id,
                    attachments=[w.clip(data=fake_mp3(b"the author's voice"))],
                )
                job = await speak_from(w, post.id, discord.owner_id, "In your voice")
                await discord.wait_for(lambda: bool(discord.dm_messages(author)), 15)
                [prompt] = discord.dm_messages(author)
                await discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
                await discord.wait_for(lambda: delivered(job), 15)
    assert segmind.count("submit") == 1


async def test_a_cancel_reaches_the_process_that_resumed_the_job(
    tmp_path: Path, pg_database: str
) -> None:
    """Shard 1's process stops with a job at Segmind, shard 0's resumes it; shard 1's
    process comes back and gets the member's Cancel (the server is its), which goes on to
    shard 0's, and the job ends cancelled there."""
    async with FakeDiscord(shards=2) as discord, FakeSegmind() as segmind:
        segmind.script_jobs(JobScript(duration=60.0))
        guilds = guilds_on_every_shard(discord, 2)
        far = guilds[1]
        with discord.patch_discord_py():
            configs = per_shard_settings(
                tmp_path, segmind, discord, pg_database, guilds, JOB_LEASE_SECONDS="2"
            )
            async with running_bot(discord, configs[0]) as zero:
                async with running_bot(discord, configs[1]):
                    job = await speak(discord, far, "cancel me later")
                    await until_all(pg_database, "submitted", [str(job.id)])
                # Shard 1's process stopped (its lease handed back): shard 0's takes it
                # a lease later, being another shard's.
                await until_leased_by(pg_database, str(job.id), zero.store)
                async with running_bot(discord, configs[1]):
                    assert job.original is not None
                    await discord.click(
                        job.original.id, f"vc:cancel:{job.id}", user_id=discord.owner_id
                    )
                    await discord.wait_for(functools.partial(cancelled, job), 15)
                await until_all(pg_database, "explained", [str(job.id)])
    assert segmind.count("submit") == 1


def cancelled(interaction: FakeInteraction) -> bool:
    message = interaction.original
    return message is not None and message.content.startswith("🚫 Cancelled")


async def until_leased_by(url: str, job_id: str, store: object) -> None:
    """Only the database knows who holds a lease: it is re-read every 50 ms."""
    owner = getattr(store, "owner")  # noqa: B009 (a PostgreSQL store's)
    connection = await asyncpg.connect(url)
    try:
        async with asyncio.timeout(15):
            while True:
                holder = await connection.fetchval(
                    "SELECT lease_owner FROM jobs WHERE id = $1", job_id
                )
                if holder == owner:
                    return
                await asyncio.sleep(0.05)
    finally:
        await connection.close()
