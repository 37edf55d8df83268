"""/voiceclone global, credits and ceilings: the bot owner's subcommands.

The owner (`Bot.is_owner`) runs the bot and pays for Segmind: these are checked against
that (`bot_owner`, cogs/checks.py), not against a server's permissions. The `Admin` cog
(`_cog.py`) inherits them, so they stay in the one /voiceclone group.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.segmind import account
from bot.segmind.errors import SegmindError

from ..checks import bot_owner
from ._format import (
    LIMIT_OPTIONS,
    NO_MENTIONS,
    CooldownOption,
    GuildCharsOption,
    GuildJobsOption,
    InFlightOption,
    UserCharsOption,
    ceiling_lines,
    credits_error_text,
    given,
    reply,
)

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

# The extension's name, as before it was a package: log filters keep working.
log = logging.getLogger(__package__)


class OwnerCommands(commands.Cog):
    """The owner's subcommands, mixed into the `Admin` cog (never added on its own)."""

    bot: VoiceCloneBot

    @app_commands.command(
        name="global", description="Bot owner: switch the bot off or on everywhere"
    )
    @bot_owner()
    @app_commands.describe(enabled="On or off in every server (leave out to see the state)")
    async def global_(
        self, interaction: discord.Interaction[Any], enabled: bool | None = None
    ) -> None:
        policy = self.bot.policy
        if enabled is not None and enabled != policy.globally_enabled:
            await policy.set_globally_enabled(enabled)
            log.info(
                "Owner %s switched the bot %s everywhere (from guild %s)",
                interaction.user.id,
                "on" if enabled else "off",
                interaction.guild_id,
            )
        allowed = self.bot.settings.allowed_guild_ids
        allowlist = ", ".join(f"`{g}`" for g in allowed[:20]) if allowed else "not set"
        if len(allowed) > 20:
            allowlist += f" and {len(allowed) - 20} more"
        lines = [
            f"Voice cloning everywhere: **{'on' if policy.globally_enabled else 'off'}**"
            + ("" if policy.globally_enabled else " (jobs already running finish)"),
            f"Server allowlist (`ALLOWED_GUILD_IDS`): {allowlist}",
            f"Servers the bot is in: {len(self.bot.guilds)} · jobs running: {policy.in_flight()}",
        ]
        await reply(interaction, "\n".join(lines))

    @app_commands.command(name="credits", description="Bot owner: the Segmind credit balance")
    @bot_owner()
    async def credits(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            balance = await account.fetch_credits(self.bot.segmind)
        except SegmindError as exc:
            log.warning("Credit balance check for owner %s failed: %s", interaction.user.id, exc)
            text = credits_error_text(exc)
        else:
            log.info("Owner %s checked the credit balance", interaction.user.id)
            text = (
                f"Segmind balance: **{balance.credits:,.2f}** credits"
                f" + **{balance.free_credits:,.2f}** free credits."
            )
        await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)

    @app_commands.command(
        name="ceilings", description="Bot owner: a server's limits, above or below the defaults"
    )
    @bot_owner()
    @app_commands.describe(
        server="The server's id (default: this server)",
        cooldown_seconds="Least seconds between a member's jobs (0 = no wait)",
        max_in_flight="Most jobs one member may have running at once (0 = no limit)",
        user_daily_chars="Most characters one member may use per day (0 = no limit)",
        guild_daily_jobs="Most jobs the server may run per day (0 = no limit)",
        guild_daily_chars="Most characters the server may use per day (0 = no limit)",
        reset="Drop the server's ceilings: back to the settings",
    )
    async def ceilings(
        self,
        interaction: discord.Interaction[Any],
        server: app_commands.Range[str, 1, 25] | None = None,
        cooldown_seconds: CooldownOption | None = None,
        max_in_flight: InFlightOption | None = None,
        user_daily_chars: UserCharsOption | None = None,
        guild_daily_jobs: GuildJobsOption | None = None,
        guild_daily_chars: GuildCharsOption | None = None,
        reset: bool = False,
    ) -> None:
        """The operator's limits for one server, in place of the settings: the most its
        admins may allow (they can still make them stricter with `limits`)."""
        guild_id = server_id(server, interaction.guild_id)
        if guild_id is None:
            await reply(
                interaction,
                "`server` must be a server's id (a number: with Developer Mode on, "
                "right-click the server and Copy Server ID).",
            )
            return
        policy = self.bot.policy
        changes = given(
            cooldown_seconds, max_in_flight, user_daily_chars, guild_daily_jobs, guild_daily_chars
        )
        if reset or changes:
            await policy.set_ceilings(
                guild_id,
                interaction.user.id,
                {LIMIT_OPTIONS[option][0]: value for option, value in changes.items()},
                reset=reset,
            )
            log.info(
                "Owner %s set the ceilings of guild %s (from guild %s):%s %s",
                interaction.user.id,
                guild_id,
                interaction.guild_id,
                " reset," if reset else "",
                ", ".join(f"{option}={value}" for option, value in changes.items()) or "-",
            )
        where = "this server" if guild_id == interaction.guild_id else f"server `{guild_id}`"
        lines = [
            f"**The bot operator's limits for {where}** (0 = no limit; its admins can only "
            "make them stricter):",
            *ceiling_lines(policy, guild_id),
        ]
        if self.bot.get_guild(guild_id) is None:
            lines.append("-# The bot is not in that server now: these apply if it joins.")
        await reply(interaction, "\n".join(lines))


def server_id(text: str | None, here: int | None) -> int | None:
    if text is None:
        return here
    text = text.strip()
    return int(text) if text.isdigit() and 0 < int(text) < 1 << 64 else None
