"""/voiceclone: the server admins' controls (hidden from members by default).

Discord hides the group from members without Manage Server (`default_permissions`), but a
server's admins can change who sees a command, so every server subcommand checks Manage
Server again (`manage_server_here`, cogs/checks.py). `global`, `credits` and `ceilings`
belong to the bot's owner and live in `_owner.py`. A server's admins can only make the
operator's limits stricter (`limits`); only the owner can raise them for a server
(`ceilings`).

Every answer is ephemeral and pings nobody; every change is logged with the guild and the
admin who made it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import DAY, AboveCeiling, utc_day_start

from ..checks import checked_guild, manage_server_here
from ..wording import neutralise
from ._access import AccessCommands
from ._format import (
    EMBED_BUDGET,
    LIMIT_OPTIONS,
    MESSAGE_BUDGET,
    NO_MENTIONS,
    USAGE_DAYS,
    CooldownOption,
    GuildCharsOption,
    GuildJobsOption,
    InFlightOption,
    UserCharsOption,
    above_ceiling_text,
    audit_entry,
    fit,
    given,
    limits_lines,
    listed,
    reply,
    today_text,
    usage_block,
)
from ._owner import OwnerCommands
from ._sound import SoundCommands, form_state

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

# The extension's name, as before it was a package: log filters keep working.
log = logging.getLogger(__package__)

ConsentChoice = Literal["on", "off", "default"]


class ServerAdmin(commands.Cog):
    """The server admins' subcommands: each behind `manage_server_here`."""

    bot: VoiceCloneBot

    # -- plumbing ------------------------------------------------------------------

    def _changed(self, interaction: discord.Interaction[Any], what: str, *args: object) -> None:
        log.info(
            "Guild %s: admin %s " + what,
            interaction.guild_id,
            interaction.user.id,
            *args,
        )

    def _global_state(self, guild_id: int | None) -> str:
        policy = self.bot.policy
        switch = "on" if policy.globally_enabled else "**off** (nothing runs anywhere)"
        allowed = self.bot.settings.allowed_guild_ids
        if not allowed:
            allowlist = "none (every server the bot is in)"
        elif guild_id in allowed:
            allowlist = "set; this server is on it"
        else:
            allowlist = "set; **this server is not on it**, so nothing runs here"
        return f"owner switch {switch} · server allowlist (`ALLOWED_GUILD_IDS`): {allowlist}"

    # -- status ---------------------------------------------------------------------

    @app_commands.command(name="status", description="Show the bot's settings in this server")
    @manage_server_here()
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = checked_guild(interaction)
        policy = self.bot.policy
        config = policy.guild(guild_id)
        limits = policy.limits(guild_id)
        consent = _setting_state(config.require_consent, self.bot.settings.require_consent)
        owner_rule = _setting_state(
            config.require_owner_consent, self.bot.settings.require_owner_consent
        )
        jobs, chars = policy.today(guild_id)
        lines = [
            "**Voice cloning in this server**",
            f"Bot here: {'✅ enabled' if config.enabled else '⛔ disabled'}",
            f"Consent prompt before a member's first clone: {consent}",
            f"The voice owner's consent (“Speak in this voice” on their clip): {owner_rule}",
            f"Delivery: {form_state(config.send_as, config.play)}",
            f"Allowed channels: {listed(config.channels, '<#{}>')}",
            f"Allowed roles: {listed(config.roles, '<@&{}>')}",
            "Limits (0 = no limit):",
            *limits_lines(policy, guild_id),
            f"Today (UTC): {today_text(jobs, limits.guild_daily_jobs, 'job(s)')}, "
            f"{today_text(chars, limits.guild_daily_chars, 'characters')}",
            f"Jobs running now: {policy.in_flight(guild_id)}",
            f"Everywhere: {self._global_state(guild_id)}",
        ]
        await reply(interaction, fit(lines, MESSAGE_BUDGET, "…"))

    # -- switches -------------------------------------------------------------------

    @app_commands.command(name="enable", description="Let members use the bot in this server")
    @manage_server_here()
    async def enable(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch(interaction, True)

    @app_commands.command(name="disable", description="Stop the bot in this server")
    @manage_server_here()
    async def disable(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch(interaction, False)

    async def _switch(self, interaction: discord.Interaction[Any], enabled: bool) -> None:
        guild_id = checked_guild(interaction)
        word = "enabled" if enabled else "disabled"
        if self.bot.policy.guild(guild_id).enabled == enabled:
            await reply(interaction, f"Voice cloning is already {word} in this server.")
            return
        await self.bot.policy.update_guild(guild_id, interaction.user.id, enabled=enabled)
        self._changed(interaction, "%s the bot", word)
        if enabled:
            text = "✅ Voice cloning is enabled in this server."
            if not self.bot.policy.globally_enabled:
                text += " Note: the bot's owner has paused it everywhere for now."
        else:
            text = "⛔ Voice cloning is disabled in this server. Jobs already running finish."
        await reply(interaction, text)

    @app_commands.command(
        name="consent", description="Ask members to confirm consent before their first clone"
    )
    @manage_server_here()
    @app_commands.describe(
        required="on, off, or default (the bot operator's setting)",
        owner='ask the member whose clip is used by "Speak in this voice": on, off or default',
    )
    async def consent(
        self,
        interaction: discord.Interaction[Any],
        required: ConsentChoice,
        owner: ConsentChoice | None = None,
    ) -> None:
        guild_id = checked_guild(interaction)
        value = _switch(required)
        await self.bot.policy.update_guild(guild_id, interaction.user.id, require_consent=value)
        self._changed(interaction, "set the consent prompt to %s", required)
        effective = self.bot.settings.require_consent if value is None else value
        source = " (the operator's default)" if value is None else ""
        if effective:
            text = (
                f"✅ Consent prompt: **on**{source}. Each member confirms, before their first "
                "clone here, that the voice is theirs or that they have permission."
            )
        else:
            text = (
                f"Consent prompt: **off**{source}. Members are not asked to confirm; every "
                "result is still labelled AI-generated."
            )
        if owner is not None:
            asked = _switch(owner)
            await self.bot.policy.update_guild(
                guild_id, interaction.user.id, require_owner_consent=asked
            )
            self._changed(interaction, "set the voice owner's consent to %s", owner)
            state = _setting_state(asked, self.bot.settings.require_owner_consent)
            text += f"\nThe voice owner's consent for “Speak in this voice”: **{state}**."
        await reply(interaction, text)

    # -- limits ----------------------------------------------------------------------

    @app_commands.command(name="limits", description="Show or tighten this server's limits")
    @manage_server_here()
    @app_commands.describe(
        cooldown_seconds="Seconds a member waits between jobs (0 = no wait)",
        max_in_flight="Jobs one member may have running at once (0 = no limit)",
        user_daily_chars="Characters one member may use per day (0 = no limit)",
        guild_daily_jobs="Jobs this server may run per day (0 = no limit)",
        guild_daily_chars="Characters this server may use per day (0 = no limit)",
        reset="Drop every override made here and use the operator's limits",
    )
    async def limits(
        self,
        interaction: discord.Interaction[Any],
        cooldown_seconds: CooldownOption | None = None,
        max_in_flight: InFlightOption | None = None,
        user_daily_chars: UserCharsOption | None = None,
        guild_daily_jobs: GuildJobsOption | None = None,
        guild_daily_chars: GuildCharsOption | None = None,
        reset: bool = False,
    ) -> None:
        guild_id = checked_guild(interaction)
        policy = self.bot.policy
        changes = given(
            cooldown_seconds, max_in_flight, user_daily_chars, guild_daily_jobs, guild_daily_chars
        )
        header = "**Limits in this server** (0 = no limit):"
        if reset or changes:
            try:
                await policy.set_limits(
                    guild_id,
                    interaction.user.id,
                    {LIMIT_OPTIONS[option][0]: value for option, value in changes.items()},
                    reset=reset,
                )
            except AboveCeiling as exc:
                option = next(o for o, v in LIMIT_OPTIONS.items() if v[0] == exc.name)
                self._changed(interaction, "was refused limit %s = %s (looser)", option, exc.value)
                owner = await self.bot.is_owner(interaction.user)
                await reply(interaction, above_ceiling_text(exc, option, owner=owner))
                return
        if reset:
            self._changed(interaction, "reset the limits")
            header = "Limits reset to the operator's limits" + (
                ", then changed as asked:" if changes else ":"
            )
        for option, value in changes.items():
            self._changed(interaction, "set limit %s to %s", option, value)
        if changes and not reset:
            header = "Limits updated (0 = no limit):"
        lines = [
            header,
            *limits_lines(policy, guild_id),
            "-# A server's limits can only be stricter than the bot operator's; "
            "only the bot's owner can raise them.",
        ]
        await reply(interaction, "\n".join(lines))

    # -- usage -----------------------------------------------------------------------

    @app_commands.command(name="usage", description="Jobs and characters: today and 7 days")
    @manage_server_here()
    async def usage(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = checked_guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        now = time.time()
        today = await self.bot.store.usage(utc_day_start(now), guild_id)
        week = await self.bot.store.usage(now - USAGE_DAYS * DAY, guild_id)
        lines = [
            "**Usage in this server**",
            *usage_block("Today (since 00:00 UTC)", today),
            *usage_block(f"Last {USAGE_DAYS} days", week),
            "-# Refused, declined and cancelled jobs are not counted: they cost nothing.",
        ]
        retention = self.bot.settings.job_retention_days
        if 0 < retention < USAGE_DAYS:
            lines.append(
                f"-# Job records are kept {retention:g} day(s) (`JOB_RETENTION_DAYS`), "
                "so older jobs are not counted."
            )
        await interaction.edit_original_response(
            content=fit(lines, MESSAGE_BUDGET, "…"), allowed_mentions=NO_MENTIONS
        )

    # -- blocks ----------------------------------------------------------------------

    @app_commands.command(name="block", description="Stop a member from using the bot here")
    @manage_server_here()
    @app_commands.describe(member="Who to block", reason="Why (kept with the block)")
    async def block(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member | discord.User,
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        guild_id = checked_guild(interaction)
        if member.id == interaction.user.id:
            await reply(interaction, "You can't block yourself.")
            return
        if member.bot:
            await reply(interaction, "Bots can't use the bot anyway: nothing to block.")
            return
        before = self.bot.policy.member(guild_id, member.id)
        await self.bot.policy.update_member(
            guild_id,
            member.id,
            blocked_at=before.blocked_at or time.time(),
            blocked_by=interaction.user.id,
            block_reason=reason,
        )
        self._changed(interaction, "blocked user %s", member.id)
        text = f"⛔ {member.mention} can no longer use voice cloning in this server"
        if before.blocked_at is not None:
            text = f"{member.mention} was already blocked; the block is updated"
        if reason:
            text += f" (reason: {neutralise(reason)})"
        await reply(interaction, text + ". Undo with `/voiceclone unblock`.")

    @app_commands.command(name="unblock", description="Let a blocked member use the bot again")
    @manage_server_here()
    @app_commands.describe(member="Who to unblock")
    async def unblock(
        self, interaction: discord.Interaction[Any], member: discord.Member | discord.User
    ) -> None:
        guild_id = checked_guild(interaction)
        if self.bot.policy.member(guild_id, member.id).blocked_at is None:
            await reply(interaction, f"{member.mention} is not blocked here.")
            return
        await self.bot.policy.update_member(
            guild_id, member.id, blocked_at=None, blocked_by=None, block_reason=None
        )
        self._changed(interaction, "unblocked user %s", member.id)
        await reply(interaction, f"✅ {member.mention} can use voice cloning here again.")

    # -- audit -----------------------------------------------------------------------

    @app_commands.command(name="audit", description="The latest jobs in this server")
    @manage_server_here()
    @app_commands.describe(count="How many jobs to show, newest first (default 10)")
    async def audit(
        self, interaction: discord.Interaction[Any], count: app_commands.Range[int, 1, 25] = 10
    ) -> None:
        guild_id = checked_guild(interaction)
        await interaction.response.defer(ephemeral=True, thinking=True)
        records = await self.bot.store.recent_jobs(guild_id, count)
        settings = self.bot.settings
        if not records:
            await interaction.edit_original_response(content="No jobs recorded in this server.")
            return
        show_text = settings.audit_store_text
        entries = [audit_entry(r, show_text=show_text) for r in records]
        embed = discord.Embed(
            title=f"Last {len(records)} job(s) in this server",
            description=fit(entries, EMBED_BUDGET, "… and {} older job(s) not shown."),
        )
        notes = []
        if not show_text:
            notes.append("Texts are not stored (AUDIT_STORE_TEXT is off).")
        if settings.job_retention_days > 0:
            notes.append(f"Jobs are kept {settings.job_retention_days:g} day(s).")
        if notes:
            embed.set_footer(text=" ".join(notes))
        await interaction.edit_original_response(embed=embed, allowed_mentions=NO_MENTIONS)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(
    OwnerCommands,
    SoundCommands,
    AccessCommands,
    ServerAdmin,
    commands.GroupCog,
    group_name="voiceclone",
    group_description="Voice-clone bot settings for this server (admins)",
):
    """/voiceclone: the server admins' subcommands, then the bot owner's (`_owner.py`).

    discord.py lists a cog's commands from its most basic class up, so this order of the
    bases keeps the subcommands in the order they were always registered in.
    """

    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        super().__init__()


def _switch(choice: ConsentChoice) -> bool | None:
    """A server switch's stored value: None means the operator's default."""
    return None if choice == "default" else choice == "on"


def _setting_state(here: bool | None, default: bool) -> str:
    """A server switch as the status shows it: its state, and whether it was set here."""
    if here is None:
        return f"{'required' if default else 'off'} (the operator's default)"
    return f"{'required' if here else 'off'} (set here)"
