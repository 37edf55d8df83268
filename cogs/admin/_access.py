"""/voiceclone channels and roles: which channels (and their threads) and which members'
roles may use the bot in this server. The `Admin` cog (`_cog.py`) inherits them."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from ..checks import checked_guild, manage_server_here
from ._format import MAX_LISTED, listed, reply

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__package__)

Action = Literal["add", "remove", "clear", "list"]


class AccessCommands(commands.Cog):
    """Mixed into the `Admin` cog."""

    bot: VoiceCloneBot

    @app_commands.command(name="channels", description="Limit the bot to some channels")
    @manage_server_here()
    @app_commands.describe(
        action="Add or remove a channel, clear the list (every channel), or show it",
        channel="The channel to add or remove",
    )
    async def channels(
        self,
        interaction: discord.Interaction[Any],
        action: Action,
        channel: app_commands.AppCommandChannel | app_commands.AppCommandThread | None = None,
    ) -> None:
        guild_id = checked_guild(interaction)
        if channel is not None and channel.type is discord.ChannelType.category:
            await reply(interaction, "Pick a channel or thread, not a category.")
            return
        await self._edit_list(
            interaction,
            guild_id,
            action,
            None if channel is None else channel.id,
            field="channels",
            noun="channel",
            mention="<#{}>",
            everyone="every channel",
        )

    @app_commands.command(name="roles", description="Limit the bot to members with some roles")
    @manage_server_here()
    @app_commands.describe(
        action="Add or remove a role, clear the list (every member), or show it",
        role="The role to add or remove",
    )
    async def roles(
        self,
        interaction: discord.Interaction[Any],
        action: Action,
        role: discord.Role | None = None,
    ) -> None:
        guild_id = checked_guild(interaction)
        if role is not None and role.id == guild_id:
            await reply(interaction, "@everyone means every member: use `action: clear` for that.")
            return
        await self._edit_list(
            interaction,
            guild_id,
            action,
            None if role is None else role.id,
            field="roles",
            noun="role",
            mention="<@&{}>",
            everyone="every member",
        )

    async def _edit_list(
        self,
        interaction: discord.Interaction[Any],
        guild_id: int,
        action: Action,
        item: int | None,
        *,
        field: Literal["channels", "roles"],
        noun: str,
        mention: str,
        everyone: str,
    ) -> None:
        current: frozenset[int] = getattr(self.bot.policy.guild(guild_id), field)
        if action == "list":
            shown = listed(current, mention, MAX_LISTED)
            await reply(interaction, f"Allowed {field}: {shown}.")
            return
        if action == "clear":
            updated: frozenset[int] = frozenset()
        elif item is None:
            await reply(interaction, f"Pick the {noun} to {action}.")
            return
        elif action == "add":
            if item in current:
                await reply(interaction, f"{mention.format(item)} is already allowed.")
                return
            if len(current) >= MAX_LISTED:
                await reply(interaction, f"That's {MAX_LISTED} {field} already: remove some first.")
                return
            updated = current | {item}
        else:
            if item not in current:
                await reply(interaction, f"{mention.format(item)} is not on the list.")
                return
            updated = current - {item}
        await self.bot.policy.update_guild(guild_id, interaction.user.id, **{field: updated})
        log.info(
            "Guild %s: admin %s %s %s %s",
            guild_id,
            interaction.user.id,
            action,
            field,
            item if item is not None else "",
        )
        if updated:
            text = f"Allowed {field} now: {listed(updated, mention, MAX_LISTED)}."
        else:
            text = f"No {noun} restriction: the bot works for {everyone}."
        await reply(interaction, text)
