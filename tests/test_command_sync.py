"""Command sync spares Discord's daily create limit: only when changed, or when asked."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.discord import FakeDiscord
from tests.fakes.segmind import FakeSegmind
from tests.harness import bot_settings, running_bot

COMMANDS = [
    "Say this in my voice",
    "Speak in this voice",
    "Was this made by VoiceClone?",
    "optin",
    "optout",
    "say",
    "speak",
    "voice",
    "voiceclone",
]


async def test_sync_only_when_the_command_set_changes(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            settings = bot_settings(tmp_path, segmind, discord)
            async with running_bot(discord, settings):
                pass
            assert discord.command_puts == 1
            assert sorted(c["name"] for c in discord.commands(discord.guild_id)) == COMMANDS
            assert discord.commands(None) == []  # guild mode leaves global commands alone

            async with running_bot(discord, settings):
                pass
            assert discord.command_puts == 1  # unchanged: no request at all

            async with running_bot(discord, settings, force_sync=True):
                pass
            assert discord.command_puts == 2  # `python -m bot --sync`

            changed = bot_settings(tmp_path, segmind, discord, MAX_TEXT_CHARS="500")
            async with running_bot(discord, changed):
                pass
            assert discord.command_puts == 3
            speak = next(c for c in discord.commands(discord.guild_id) if c["name"] == "speak")
            text = next(o for o in speak["options"] if o["name"] == "text")
            assert text["max_length"] == 500


async def test_global_sync_without_guild_ids(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            settings = bot_settings(tmp_path, segmind, discord, DISCORD_GUILD_IDS="")
            async with running_bot(discord, settings):
                pass
            assert sorted(c["name"] for c in discord.commands(None)) == COMMANDS
            assert discord.commands(discord.guild_id) == []
            assert (tmp_path / "command-sync.json").is_file()
