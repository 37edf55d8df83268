"""VoiceCog: what ties a VoicePlayback to the bot's gateway events and lifetime."""

from __future__ import annotations

import discord
from discord.ext import commands

from cogs.voice._player import Connect, VoicePlayback

CONNECT: Connect | None = None
"""How the bot's player connects to a voice channel; None: discord.py's VoiceClient. Tests
replace it (there is no voice server here); read when the extension is set up."""


class VoiceCog(commands.Cog):
    """Forwards voice state updates to `playback` (so it leaves channels that empty) and
    closes it when the cog is removed, which `Bot.close()` does for every cog."""

    def __init__(self, playback: VoicePlayback) -> None:
        self.playback = playback

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.playback.voice_state_changed(member, before, after)

    async def cog_unload(self) -> None:
        await self.playback.close()
