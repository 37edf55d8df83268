"""The bot with several shards in one process (SHARD_COUNT), end to end against the fake
Discord's sharding: each shard's guilds are served, and a gateway that requires more
shards than configured stops the bot with one clear line."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import bot_settings, running_bot
from tests.proc import start_bot


def delivered(interaction: FakeInteraction) -> bool:
    return interaction.original is not None and bool(interaction.original.attachments)


def shard_of(guild_id: int, shards: int) -> int:
    return (guild_id >> 22) % shards


async def test_two_shards_in_one_process_serve_guilds_on_both(tmp_path: Path) -> None:
    async with FakeDiscord(shards=2) as discord, FakeSegmind() as segmind:
        guilds = {shard_of(discord.guild_id, 2): discord.guild_id}
        while len(guilds) < 2:
            guild_id = discord.add_guild("another")
            guilds.setdefault(shard_of(guild_id, 2), guild_id)
        with discord.patch_discord_py():
            settings = bot_settings(
                tmp_path,
                segmind,
                discord,
                SHARD_COUNT="2",
                DISCORD_GUILD_IDS=",".join(str(g) for g in guilds.values()),
            )
            async with running_bot(discord, settings) as bot:
                assert sorted(bot.shards) == [0, 1]
                for shard, guild_id in guilds.items():
                    guild = bot.get_guild(guild_id)
                    assert guild is not None
                    assert guild.shard_id == shard
                for guild_id in guilds.values():
                    channel_id = discord.guild(guild_id).channel_ids[0]
                    clip = discord.add_attachment("voice.mp3", fake_mp3(b"clip"), "audio/mpeg")
                    interaction = await discord.slash(
                        "speak",
                        {"voice": clip, "text": "hello"},
                        guild_id=guild_id,
                        channel_id=channel_id,
                        user_id=discord.owner_id,
                    )
                    await discord.wait_for(functools.partial(delivered, interaction), 15)
                assert segmind.count("submit") == 2


async def test_too_few_shards_is_one_clear_line(tmp_path: Path) -> None:
    async with FakeDiscord(shards=2) as discord, FakeSegmind() as segmind:
        proc = await start_bot(discord, segmind, tmp_path / "data")
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 2
        text = stderr.decode()
        assert "raise SHARD_COUNT" in text
        assert "Traceback" not in text
