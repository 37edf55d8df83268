"""/optout and /optin: any member can say their voice must not be cloned in this guild."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.store import StoreError

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
OPTED_OUT_TEXT = (
    "🛑 Done: this bot will refuse to clone your voice in this server — clips you attach "
    "and messages you wrote. Run /optin to undo."
)
OPTED_IN_TEXT = "✅ Done: your opt-out is removed in this server."


class Members(commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot

    @app_commands.command(name="optout", description="Don't let anyone clone your voice here")
    @app_commands.guild_only()
    async def optout(self, interaction: discord.Interaction[Any]) -> None:
        # Their saved voices are hidden here by the store's query; cached results go too.
        await self._set(interaction, time.time(), OPTED_OUT_TEXT)

    @app_commands.command(name="optin", description="Undo /optout in this server")
    @app_commands.guild_only()
    async def optin(self, interaction: discord.Interaction[Any]) -> None:
        await self._set(interaction, None, OPTED_IN_TEXT)

    async def _set(
        self, interaction: discord.Interaction[Any], opted_out_at: float | None, text: str
    ) -> None:
        assert interaction.guild_id is not None  # guild_only
        # An opt-out withdraws the owner's "Always allow" too (it is not given back).
        withdrawn = {"voice_allowed_at": None} if opted_out_at else {}
        await self.bot.policy.update_member(
            interaction.guild_id, interaction.user.id, opted_out_at=opted_out_at, **withdrawn
        )
        if opted_out_at:  # what their results' Again buttons would replay goes too
            await self.bot.store.drop_replays_of(interaction.guild_id, interaction.user.id)
        log.info(
            "User %s %s in guild %s",
            interaction.user.id,
            "opted out" if opted_out_at else "opted back in",
            interaction.guild_id,
        )
        if opted_out_at is not None:
            # Results already made in their voice go too, in every server (see README).
            try:
                await self.bot.result_cache.forget_owner(interaction.user.id)
            except StoreError as exc:  # the opt-out stands: no new job uses their voice
                log.error("User %s: cached results not deleted (%s)", interaction.user.id, exc)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Members(bot))
