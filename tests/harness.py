"""Runs the real VoiceCloneBot (real discord.py) against the fake Discord and fake Segmind."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.bot import VoiceCloneBot
from bot.config import Settings, load_settings
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.segmind import FAKE_API_KEY, FakeSegmind, fake_mp3


@dataclass
class World:
    discord: FakeDiscord
    segmind: FakeSegmind
    bot: VoiceCloneBot
    settings: Settings

    def clip(
        self,
        filename: str = "voice.mp3",
        data: bytes | None = None,
        content_type: str | None = "audio/mpeg",
    ) -> dict[str, Any]:
        return self.discord.add_attachment(
            filename, fake_mp3(b"sample") if data is None else data, content_type
        )

    async def speak(
        self, text: str = "Hello world", language: str | None = None, **kwargs: Any
    ) -> FakeInteraction:
        options: dict[str, Any] = {"voice": kwargs.pop("clip", None) or self.clip(), "text": text}
        if language is not None:
            options["language"] = language
        return await self.discord.slash("speak", options, **kwargs)

    async def answered(self, interaction: FakeInteraction, within: float = 10.0) -> FakeMessage:
        """Wait until the original response holds a final answer (a file or a result line)."""

        def final() -> bool:
            msg = interaction.original
            return msg is not None and not msg.loading and is_final(msg)

        await self.discord.wait_for(final, within)
        assert interaction.original is not None
        return interaction.original

    async def job_ended(self, interaction: FakeInteraction, within: float = 10.0) -> None:
        """Wait for the bot's task driving this job to end: its last store write is done
        (delivered or explained recorded) and its place and budget are settled."""
        name = f"job-{interaction.id}"
        tasks = [t for t in self.bot.owned_tasks if t.get_name() == name]
        if tasks:
            await asyncio.wait(tasks, timeout=within)


def is_final(message: FakeMessage) -> bool:
    return bool(message.attachments) or message.content.startswith(
        ("❌", "⏳ The", "⌛", ">", "🚫")
    )


# Fair-use limits off and no consent prompt: tests of other features send many jobs from
# one member. Tests of those rules set them back.
NO_FAIR_USE = {
    "REQUIRE_CONSENT": "false",
    "REQUIRE_OWNER_CONSENT": "false",
    "USER_COOLDOWN_SECONDS": "0",
    "USER_MAX_IN_FLIGHT": "0",
    "USER_DAILY_CHARS": "0",
    "GUILD_DAILY_JOBS": "0",
    "GUILD_DAILY_CHARS": "0",
    "GLOBAL_DAILY_JOBS": "0",
}


def bot_settings(
    data_dir: Path, segmind: FakeSegmind, discord: FakeDiscord, **extra: str
) -> Settings:
    env = {
        "DISCORD_TOKEN": discord.token,
        "SEGMIND_API_KEY": FAKE_API_KEY,
        "SEGMIND_WORKFLOW_URL": segmind.workflow_url,
        "SEGMIND_POLL_INTERVAL": "0.02",
        "SEGMIND_RPM": "0",
        "PROGRESS_UPDATE_SECONDS": "0.05",
        "BOT_DATA_DIR": str(data_dir),
        "DISCORD_GUILD_IDS": str(discord.guild_id),
        **NO_FAIR_USE,
        # Off unless a test turns it on: tests of other features repeat one request and
        # count its submits (tests/test_result_cache*.py turn it on).
        "RESULT_CACHE_DAYS": "0",
        **extra,
    }
    return load_settings(env, dotenv_path=None)


@contextlib.asynccontextmanager
async def running_bot(
    discord: FakeDiscord, settings: Settings, **bot_kwargs: Any
) -> AsyncIterator[VoiceCloneBot]:
    bot = VoiceCloneBot(settings, **bot_kwargs)
    # discord.py waits 2 s after the last GUILD_CREATE before on_ready; tests need not.
    bot._connection.guild_ready_timeout = 0.05
    runner = asyncio.create_task(bot.start(settings.discord_token.get()))
    ready = asyncio.create_task(bot.wait_until_ready())
    try:
        done, _ = await asyncio.wait(
            {runner, ready}, timeout=10, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if runner.done():
                runner.result()
            raise RuntimeError("the bot did not become ready")
        yield bot
    finally:
        await bot.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(runner, 10)


@contextlib.asynccontextmanager
async def world(
    data_dir: Path, discord_options: dict[str, Any] | None = None, **settings: str
) -> AsyncIterator[World]:
    async with FakeDiscord(**(discord_options or {})) as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(data_dir, segmind, discord, **settings)
            async with running_bot(discord, config) as bot:
                yield World(discord, segmind, bot, config)
