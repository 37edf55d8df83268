"""Several bot processes on one PostgreSQL against the sharded fake Discord: what the
cluster tests and the cluster benchmark share (servers on every shard, a /speak in one,
the job states only the database can show, and settings for one process per shard)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bot.config import Settings
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import bot_settings
from tests.proc import start_bot, stop


def shard_of(guild_id: int, shards: int) -> int:
    """Discord's routing: a server's events go to this shard."""
    return (guild_id >> 22) % shards


def guilds_on_every_shard(discord: FakeDiscord, shards: int) -> dict[int, int]:
    """shard -> a server routed to it (servers are added until each shard has one)."""
    guilds = {shard_of(discord.guild_id, shards): discord.guild_id}
    while len(guilds) < shards:
        guild_id = discord.add_guild("another")
        guilds.setdefault(shard_of(guild_id, shards), guild_id)
    return guilds


async def speak(discord: FakeDiscord, guild_id: int, text: str) -> FakeInteraction:
    """The server's owner runs /speak in its first channel."""
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"clip"), "audio/mpeg")
    return await discord.slash(
        "speak",
        {"voice": clip, "text": text},
        guild_id=guild_id,
        channel_id=discord.guild(guild_id).channel_ids[0],
        user_id=discord.owner_id,
    )


def delivered(interaction: FakeInteraction) -> bool:
    """The job's own message carries the audio (its token is alive all along)."""
    return interaction.original is not None and bool(interaction.original.attachments)


async def job_states(url: str) -> dict[str, str]:
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch("SELECT id, state FROM jobs")
    finally:
        await connection.close()
    return {str(row["id"]): str(row["state"]) for row in rows}


async def until_all(url: str, state: str, ids: list[str] | None = None) -> None:
    """Only the database knows another process's job states: it is re-read every 50 ms."""
    async with asyncio.timeout(60):
        while True:
            states = await job_states(url)
            if all(states.get(job_id) == state for job_id in ids or states):
                return
            await asyncio.sleep(0.05)


def per_shard_settings(
    tmp_path: Path,
    segmind: FakeSegmind,
    discord: FakeDiscord,
    url: str,
    guilds: dict[int, int],
    **extra: str,
) -> list[Settings]:
    """One in-process bot's settings per shard, all on the database at `url`."""
    common: dict[str, Any] = {
        "DATABASE_URL": url,
        "SHARD_COUNT": str(len(guilds)),
        "DISCORD_GUILD_IDS": ",".join(str(g) for g in guilds.values()),
        **extra,
    }
    return [
        bot_settings(tmp_path / str(n), segmind, discord, SHARD_IDS=str(n), **common)
        for n in range(len(guilds))
    ]


@contextlib.asynccontextmanager
async def processes(
    workdir: Path,
    url: str,
    discord: FakeDiscord,
    segmind: FakeSegmind,
    guilds: dict[int, int],
    **settings: str,
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """One real bot process per shard (`python -m bot`, tests/botproc.py), all on the
    database at `url`; those still running are stopped (SIGTERM) at the end."""
    procs = [
        await start_bot(
            discord,
            segmind,
            workdir / f"data-{shard}",
            DATABASE_URL=url,
            SHARD_COUNT=str(len(guilds)),
            SHARD_IDS=str(shard),
            DISCORD_GUILD_IDS=",".join(str(g) for g in guilds.values()),
            **settings,
        )
        for shard in range(len(guilds))
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                await stop(proc, signal.SIGTERM)
