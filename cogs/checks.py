"""Who may run a command: check decorators, written once (as RoboDanny's cogs/utils/checks.py).

    @manage_server_here()   # the server's admins (Manage Server, or Administrator)
    @bot_owner()            # the bot's owner (`Bot.is_owner`): who runs it and pays Segmind

A check runs before the command's options are read and its body starts. When it fails it
logs who was turned away and raises `Refused` with the sentence for the member, which the
command tree answers privately (bot/tree.py), so a refused command does nothing at all.

Discord hides a command from members without its `default_permissions`, but a server's
admins can change who sees a command, so the permission is checked again here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import discord
from discord import app_commands

from bot.tree import Refused

log = logging.getLogger(__name__)

T = TypeVar("T")

NOT_IN_A_SERVER = "Use this command in a server."
NEEDS_MANAGE_SERVER = "You need the Manage Server permission to change the bot's settings here."
OWNER_ONLY = "Only the bot's owner can do that."


def _command(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    return command.qualified_name if command is not None else "?"


def manage_server_here() -> Callable[[T], T]:
    """Only in a server, by a member who may manage it (Manage Server or Administrator)."""

    async def predicate(interaction: discord.Interaction[Any]) -> bool:
        if interaction.guild_id is None:  # guild_only: Discord never sends it from a DM
            raise Refused(NOT_IN_A_SERVER)
        permissions = interaction.permissions
        if not (permissions.manage_guild or permissions.administrator):
            log.info(
                "Refused /%s from user %s in guild %s: no Manage Server",
                _command(interaction),
                interaction.user.id,
                interaction.guild_id,
            )
            raise Refused(NEEDS_MANAGE_SERVER)
        return True

    return app_commands.check(predicate)


def bot_owner() -> Callable[[T], T]:
    """Only the bot's owner (or a member of the team that owns the application)."""

    async def predicate(interaction: discord.Interaction[Any]) -> bool:
        if await interaction.client.is_owner(interaction.user):
            return True
        log.info(
            "Refused owner-only /%s from user %s in guild %s",
            _command(interaction),
            interaction.user.id,
            interaction.guild_id,
        )
        raise Refused(OWNER_ONLY)

    return app_commands.check(predicate)


def checked_guild(interaction: discord.Interaction[Any]) -> int:
    """The server a command behind `manage_server_here()` runs in."""
    assert interaction.guild_id is not None  # manage_server_here refused it otherwise
    return interaction.guild_id
