"""/voiceclone delivery and stop: how results reach members in this server by default (a
file or a voice message; also played in the requester's voice channel or not), and
stopping what the bot plays here. The `Admin` cog (`_cog.py`) inherits them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from ..checks import checked_guild, manage_server_here
from ..playback import playback_of
from ._format import reply

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__package__)

FormChoice = Literal["file", "voice message", "default"]
PlayChoice = Literal["on", "off", "default"]


def form_state(send_as: str | None, play: bool | None) -> str:
    """The server's delivery defaults as the status and `delivery` show them."""
    form = {"voice_message": "a voice message", "file": "a file"}.get(send_as or "", "")
    form = form or "a file (the default)"
    played = "off (the default)" if play is None else ("on" if play else "off")
    return f"results go out as {form}; played in the requester's voice channel: {played}"


class SoundCommands(commands.Cog):
    """Mixed into the `Admin` cog."""

    bot: VoiceCloneBot

    @app_commands.command(
        name="delivery", description="How results go out here when a member does not choose"
    )
    @manage_server_here()
    @app_commands.describe(
        send_as="a file or a voice message (members can still choose with /speak as:)",
        play="also play results in the requester's voice channel (members: /speak play:)",
    )
    @app_commands.rename(send_as="as")
    async def delivery(
        self,
        interaction: discord.Interaction[Any],
        send_as: FormChoice | None = None,
        play: PlayChoice | None = None,
    ) -> None:
        guild_id = checked_guild(interaction)
        changes: dict[str, Any] = {}
        if send_as is not None:
            changes["send_as"] = {"file": "file", "voice message": "voice_message"}.get(send_as)
        if play is not None:
            changes["play"] = None if play == "default" else play == "on"
        config = self.bot.policy.guild(guild_id)
        if changes:
            config = await self.bot.policy.update_guild(guild_id, interaction.user.id, **changes)
            log.info(
                "Guild %s: admin %s set the delivery defaults: %s",
                guild_id,
                interaction.user.id,
                changes,
            )
        await reply(interaction, f"Here, {form_state(config.send_as, config.play)}.")

    @app_commands.command(name="stop", description="Stop playing in voice here and leave")
    @manage_server_here()
    async def stop(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = checked_guild(interaction)
        playback = playback_of(self.bot)
        cleared = await playback.stop(guild_id) if playback is not None else 0
        log.info(
            "Guild %s: admin %s stopped voice playback (%d queued result(s) dropped)",
            guild_id,
            interaction.user.id,
            cleared,
        )
        dropped = f" and dropped {cleared} queued result(s)" if cleared else ""
        await reply(interaction, f"⏹️ Stopped playing{dropped}; the bot left the voice channel.")
