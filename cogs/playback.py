"""The voice-channel player as an extension: the bot's one `VoicePlayback` (cogs/voice/),
held by a `VoiceCog` that feeds it the gateway's voice state changes and closes it on
unload (the bot leaves every voice channel). The delivery (`cogs/delivery.py`) and
/voiceclone stop find it with `playback_of`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from discord.ext import commands

from .voice import VoiceCog, VoicePlayback, _cog

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot


def playback_of(bot: commands.Bot | commands.AutoShardedBot) -> VoicePlayback | None:
    cog = bot.get_cog(VoiceCog.__cog_name__)
    return cog.playback if isinstance(cog, VoiceCog) else None


async def setup(bot: VoiceCloneBot) -> None:
    playback = VoicePlayback(
        bot,
        bot.settings.voice_idle_seconds,
        _cog.CONNECT,
        on_played=lambda: bot.metrics.delivered("voice_channel"),
    )
    await bot.add_cog(VoiceCog(playback))
