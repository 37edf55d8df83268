"""The command tree: no failure is ever answered with Discord's silent "did not respond"."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)


def error_reference() -> str:
    return secrets.token_hex(4)


async def reply_privately(interaction: discord.Interaction[Any], content: str) -> None:
    """Answer the user whichever state the interaction is in; never raise."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(content, ephemeral=True)
        else:
            await interaction.followup.send(content, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning(
            "Could not tell the user about an error (interaction %s): HTTP %s %s",
            interaction.id,
            exc.status,
            exc.code,
        )


class Refused(app_commands.CheckFailure):
    """A command's check turned the member away; `text` (worded by the cog) says why.

    Raised by the check decorators in `cogs/checks.py`; the tree answers it, privately,
    instead of the generic "You can't use this command here."
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class VoiceCloneTree(app_commands.CommandTree[Any]):
    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /
    ) -> None:
        if isinstance(error, app_commands.CommandOnCooldown):
            await reply_privately(
                interaction, f"Slow down: try again in {error.retry_after:.0f} s."
            )
            return
        if isinstance(error, Refused):
            await reply_privately(interaction, error.text)
            return
        if isinstance(error, app_commands.MissingPermissions | app_commands.CheckFailure):
            await reply_privately(interaction, "You can't use this command here.")
            return
        ref = error_reference()
        command = interaction.command.qualified_name if interaction.command else "?"
        original = getattr(error, "original", error)
        log.error(
            "Unhandled error in /%s (ref %s, interaction %s, user %s, guild %s)",
            command,
            ref,
            interaction.id,
            interaction.user.id,
            interaction.guild_id,
            exc_info=(type(original), original, original.__traceback__),
        )
        await reply_privately(
            interaction,
            f"Something went wrong on the bot's side (ref `{ref}`). "
            "Please try again; if it keeps happening, give the ref to a server admin.",
        )
