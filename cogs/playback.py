"""The voice-channel player as an extension: it owns the bot's one `VoicePlayback`
(cogs/voice/), feeds it the gateway's voice state changes, and closes it on unload (the
bot leaves every voice channel). The delivery (`cogs/delivery.py`) and /voiceclone stop
find it with `playback_of`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from .voice import Connect, VoicePlayback

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

CONNECT: Connect | None = None
"""How the player connects to a voice channel; None: discord.py's VoiceClient. Tests
replace it: there is no voice server here."""


class Playback(commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.playback = VoicePlayback(bot, bot.settings.voice_idle_seconds, CONNECT)

    async def cog_unload(self) -> None:
        await self.playback.close()

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.playback.voice_state_changed(member, before, after)


def playback_of(bot: commands.Bot) -> VoicePlayback | None:
    cog = bot.get_cog("Playback")
    return cog.playback if isinstance(cog, Playback) else None


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Playback(bot))
