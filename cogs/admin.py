"""/voiceclone: the server admins' controls (hidden from members by default).

Discord hides the group from members without Manage Server (`default_permissions`), but a
server's admins can change who sees a command, so every guild subcommand checks Manage
Server again here. `global`, `credits` and `ceilings` belong to the bot's owner
(`Bot.is_owner`), who runs the bot and pays for Segmind: they are checked against that
instead. A server's admins can only make the operator's limits stricter (`limits`); only
the owner can raise them for a server (`ceilings`).

Every answer is ephemeral and pings nobody; every change is logged with the guild and the
admin who made it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.policy import (
    DAY,
    LONGER_IS_STRICTER,
    SERVER,
    AboveCeiling,
    Policy,
    utc_day_start,
)
from bot.segmind import account
from bot.segmind.errors import (
    AuthenticationError,
    PermissionDeniedError,
    SegmindConnectionError,
    SegmindError,
)
from bot.store import JobRecord, JobState, UsageRow

from .replies import neutralise

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
NEEDS_MANAGE_SERVER = "You need the Manage Server permission to change the bot's settings here."
OWNER_ONLY = "Only the bot's owner can do that."
MAX_LISTED = 50  # allowed channels, allowed roles: more is a sign of a mistake
SHOWN_IN_STATUS = 15
TOP_USERS = 5
USAGE_DAYS = 7
AUDIT_TEXT_CHARS = 100
EMBED_BUDGET = 4000  # an embed description holds 4,096 characters
MESSAGE_BUDGET = 1900  # a message holds 2,000

# Option name -> (policy limit name, what it is, unit).
LIMIT_OPTIONS: dict[str, tuple[str, str, str]] = {
    "cooldown_seconds": ("user_cooldown_seconds", "Wait between a member's jobs", "s"),
    "max_in_flight": ("user_max_in_flight", "Jobs running at once per member", ""),
    "user_daily_chars": ("user_daily_chars", "Characters per member per day", ""),
    "guild_daily_jobs": ("guild_daily_jobs", "Jobs per server per day", ""),
    "guild_daily_chars": ("guild_daily_chars", "Characters per server per day", ""),
}
LIMIT_LABELS = {name: label for name, label, _ in LIMIT_OPTIONS.values()}

Action = Literal["add", "remove", "clear", "list"]
ConsentChoice = Literal["on", "off", "default"]


# -- formatting (pure) -------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"


def limit_value(value: float, unit: str) -> str:
    if not value:
        return "no limit"
    return f"{_number(value)} {unit}".rstrip()


def limits_lines(policy: Policy, guild_id: int) -> list[str]:
    """Each limit in force in the guild and who set it."""
    limits = policy.limits(guild_id)
    config = policy.guild(guild_id)
    overrides, raised = dict(config.overrides), dict(config.ceilings)
    lines = []
    for option, (name, label, unit) in LIMIT_OPTIONS.items():
        value = limit_value(getattr(limits, name), unit)
        if policy.setter(guild_id, name) == SERVER:
            where = "set here"
        else:
            where = "set by the bot's owner" if name in raised else "default"
            if name in overrides:
                # Stored by an older version, before the operator's limits were ceilings.
                ignored = limit_value(overrides[name], unit)
                where += f"; the override set here ({ignored}) is looser, so it does not apply"
        lines.append(f"• {label}: **{value}** ({where}) · `{option}`")
    return lines


def ceiling_lines(policy: Policy, guild_id: int) -> list[str]:
    """The operator's limits for the guild (what its admins can only tighten)."""
    ceilings, limits = policy.ceilings(guild_id), policy.limits(guild_id)
    raised = dict(policy.guild(guild_id).ceilings)
    lines = []
    for option, (name, label, unit) in LIMIT_OPTIONS.items():
        source = "set for this server" if name in raised else f"`{name.upper()}`"
        line = f"• {label}: **{limit_value(getattr(ceilings, name), unit)}** ({source})"
        if getattr(limits, name) != getattr(ceilings, name):
            line += f" · stricter there: {limit_value(getattr(limits, name), unit)}"
        lines.append(f"{line} · `{option}`")
    return lines


def above_ceiling_text(error: AboveCeiling, option: str, *, owner: bool) -> str:
    """Why a server's override was refused, naming the operator's limit it would loosen."""
    unit = LIMIT_OPTIONS[option][2]
    ceiling = limit_value(error.ceiling, unit)
    asked = f"`{option}: {_number(error.value)}`" + (" (no limit)" if not error.value else "")
    if error.name in LONGER_IS_STRICTER:
        allowed = f"at least {ceiling}"
    elif error.ceiling == 1:
        allowed = "only 1"
    else:
        allowed = f"from 1 to {_number(error.ceiling)}"
    text = (
        f"⛔ Nothing changed: {asked} would loosen the bot operator's limit of **{ceiling}**. "
        f"A server's limits can only be stricter: here `{option}` can be {allowed}. "
        "Only the bot's owner can raise a server's limits."
    )
    if owner:
        text += " You are the owner: use `/voiceclone ceilings` for that."
    return text


def listed(ids: Iterable[int], mention: str, limit: int = SHOWN_IN_STATUS) -> str:
    ordered = sorted(ids)
    if not ordered:
        return "all"
    shown = ", ".join(mention.format(i) for i in ordered[:limit])
    more = len(ordered) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def usage_block(title: str, rows: Sequence[UsageRow]) -> list[str]:
    jobs = sum(r.jobs for r in rows)
    chars = sum(r.chars for r in rows)
    lines = [f"**{title}:** {jobs:,} job(s), {chars:,} characters"]
    top = sorted(rows, key=lambda r: (-r.jobs, -r.chars, r.user_id))[:TOP_USERS]
    for rank, row in enumerate(top, 1):
        lines.append(f"{rank}. <@{row.user_id}> — {row.jobs:,} job(s), {row.chars:,} characters")
    return lines


def _code(text: str) -> str:
    """Inline code that cannot be broken out of."""
    return "`" + (text.replace("`", "'") or "-") + "`"


def outcome(record: JobRecord) -> str:
    if record.state is JobState.DELIVERED:
        return f"✅ delivered via {record.delivery_channel or '?'}"
    if record.state in (JobState.FAILED, JobState.EXPLAINED):
        return f"❌ failed: {_code(record.failure_cause or 'unknown')}"
    return f"⏳ in progress: {record.state.value}"


def one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def audit_entry(record: JobRecord, *, show_text: bool) -> str:
    who = f"<@{record.user_id}> in <#{record.channel_id}>"
    request = _code(record.request_id) if record.request_id else "none"
    line = (
        f"<t:{int(record.created_at)}:f> · {who} · {record.text_chars:,} chars · "
        f"{_code(record.language)} · {outcome(record)} · request {request} · "
        f"clip from {_code(record.sample_host)}"
    )
    if show_text and record.text:
        line += "\n> " + neutralise(one_line(record.text, AUDIT_TEXT_CHARS))
    return line


def fit(lines: Sequence[str], budget: int, more: str) -> str:
    """As many whole lines as fit in `budget` characters, then a note of how many did not."""
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        cost = len(line) + 1
        if used + cost > budget - len(more) - 20:
            kept.append(more.format(len(lines) - index))
            break
        kept.append(line)
        used += cost
    return "\n".join(kept)


# -- the cog ---------------------------------------------------------------------------


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Admin(
    commands.GroupCog,
    group_name="voiceclone",
    group_description="Voice-clone bot settings for this server (admins)",
):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        super().__init__()

    # -- plumbing ------------------------------------------------------------------

    async def _reply(
        self, interaction: discord.Interaction[Any], content: str, **kwargs: Any
    ) -> None:
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS, **kwargs
        )

    async def _guild_admin(self, interaction: discord.Interaction[Any]) -> int | None:
        """The guild id if the invoker may change this guild's settings; else answer, None."""
        guild_id = interaction.guild_id
        if guild_id is None:  # guild_only: Discord never sends it from a DM
            await self._reply(interaction, "Use this command in a server.")
            return None
        permissions = interaction.permissions
        if not (permissions.manage_guild or permissions.administrator):
            log.info(
                "Refused /voiceclone %s from user %s in guild %s: no Manage Server",
                _subcommand(interaction),
                interaction.user.id,
                guild_id,
            )
            await self._reply(interaction, NEEDS_MANAGE_SERVER)
            return None
        return guild_id

    async def _owner(self, interaction: discord.Interaction[Any]) -> bool:
        if await self.bot.is_owner(interaction.user):
            return True
        log.info(
            "Refused owner-only /voiceclone %s from user %s in guild %s",
            _subcommand(interaction),
            interaction.user.id,
            interaction.guild_id,
        )
        await self._reply(interaction, OWNER_ONLY)
        return False

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
    async def status(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        policy = self.bot.policy
        config = policy.guild(guild_id)
        limits = policy.limits(guild_id)
        if config.require_consent is None:
            required = self.bot.settings.require_consent
            consent = f"{'required' if required else 'off'} (the operator's default)"
        else:
            consent = f"{'required' if config.require_consent else 'off'} (set here)"
        jobs, chars = policy.today(guild_id)
        lines = [
            "**Voice cloning in this server**",
            f"Bot here: {'✅ enabled' if config.enabled else '⛔ disabled'}",
            f"Consent prompt before a member's first clone: {consent}",
            f"Allowed channels: {listed(config.channels, '<#{}>')}",
            f"Allowed roles: {listed(config.roles, '<@&{}>')}",
            "Limits (0 = no limit):",
            *limits_lines(policy, guild_id),
            f"Today (UTC): {_today(jobs, limits.guild_daily_jobs, 'job(s)')}, "
            f"{_today(chars, limits.guild_daily_chars, 'characters')}",
            f"Jobs running now: {policy.in_flight(guild_id)}",
            f"Everywhere: {self._global_state(guild_id)}",
        ]
        await self._reply(interaction, fit(lines, MESSAGE_BUDGET, "…"))

    # -- switches -------------------------------------------------------------------

    @app_commands.command(name="enable", description="Let members use the bot in this server")
    async def enable(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch(interaction, True)

    @app_commands.command(name="disable", description="Stop the bot in this server")
    async def disable(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch(interaction, False)

    async def _switch(self, interaction: discord.Interaction[Any], enabled: bool) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        word = "enabled" if enabled else "disabled"
        if self.bot.policy.guild(guild_id).enabled == enabled:
            await self._reply(interaction, f"Voice cloning is already {word} in this server.")
            return
        await self.bot.policy.update_guild(guild_id, interaction.user.id, enabled=enabled)
        self._changed(interaction, "%s the bot", word)
        if enabled:
            text = "✅ Voice cloning is enabled in this server."
            if not self.bot.policy.globally_enabled:
                text += " Note: the bot's owner has paused it everywhere for now."
        else:
            text = "⛔ Voice cloning is disabled in this server. Jobs already running finish."
        await self._reply(interaction, text)

    @app_commands.command(
        name="consent", description="Ask members to confirm consent before their first clone"
    )
    @app_commands.describe(required="on, off, or default (the bot operator's setting)")
    async def consent(self, interaction: discord.Interaction[Any], required: ConsentChoice) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        value = None if required == "default" else required == "on"
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
        await self._reply(interaction, text)

    # -- channels and roles --------------------------------------------------------------

    @app_commands.command(name="channels", description="Limit the bot to some channels")
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
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        if channel is not None and channel.type is discord.ChannelType.category:
            await self._reply(interaction, "Pick a channel or thread, not a category.")
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
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        if role is not None and role.id == guild_id:
            await self._reply(
                interaction, "@everyone means every member: use `action: clear` for that."
            )
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
            await self._reply(interaction, f"Allowed {field}: {shown}.")
            return
        if action == "clear":
            updated: frozenset[int] = frozenset()
        elif item is None:
            await self._reply(interaction, f"Pick the {noun} to {action}.")
            return
        elif action == "add":
            if item in current:
                await self._reply(interaction, f"{mention.format(item)} is already allowed.")
                return
            if len(current) >= MAX_LISTED:
                await self._reply(
                    interaction, f"That's {MAX_LISTED} {field} already: remove some first."
                )
                return
            updated = current | {item}
        else:
            if item not in current:
                await self._reply(interaction, f"{mention.format(item)} is not on the list.")
                return
            updated = current - {item}
        await self.bot.policy.update_guild(guild_id, interaction.user.id, **{field: updated})
        self._changed(interaction, "%s %s %s", action, field, item if item is not None else "")
        if updated:
            text = f"Allowed {field} now: {listed(updated, mention, MAX_LISTED)}."
        else:
            text = f"No {noun} restriction: the bot works for {everyone}."
        await self._reply(interaction, text)

    # -- limits ----------------------------------------------------------------------

    @app_commands.command(name="limits", description="Show or tighten this server's limits")
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
        cooldown_seconds: app_commands.Range[int, 0, 86_400] | None = None,
        max_in_flight: app_commands.Range[int, 0, 1_000] | None = None,
        user_daily_chars: app_commands.Range[int, 0, 10_000_000] | None = None,
        guild_daily_jobs: app_commands.Range[int, 0, 1_000_000] | None = None,
        guild_daily_chars: app_commands.Range[int, 0, 100_000_000] | None = None,
        reset: bool = False,
    ) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        policy = self.bot.policy
        changes = _given(
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
                await self._reply(interaction, above_ceiling_text(exc, option, owner=owner))
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
        await self._reply(interaction, "\n".join(lines))

    # -- usage -----------------------------------------------------------------------

    @app_commands.command(name="usage", description="Jobs and characters: today and 7 days")
    async def usage(self, interaction: discord.Interaction[Any]) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
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
    @app_commands.describe(member="Who to block", reason="Why (kept with the block)")
    async def block(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member | discord.User,
        reason: app_commands.Range[str, 1, 200] | None = None,
    ) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        if member.id == interaction.user.id:
            await self._reply(interaction, "You can't block yourself.")
            return
        if member.bot:
            await self._reply(interaction, "Bots can't use the bot anyway: nothing to block.")
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
        await self._reply(interaction, text + ". Undo with `/voiceclone unblock`.")

    @app_commands.command(name="unblock", description="Let a blocked member use the bot again")
    @app_commands.describe(member="Who to unblock")
    async def unblock(
        self, interaction: discord.Interaction[Any], member: discord.Member | discord.User
    ) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
        if self.bot.policy.member(guild_id, member.id).blocked_at is None:
            await self._reply(interaction, f"{member.mention} is not blocked here.")
            return
        await self.bot.policy.update_member(
            guild_id, member.id, blocked_at=None, blocked_by=None, block_reason=None
        )
        self._changed(interaction, "unblocked user %s", member.id)
        await self._reply(interaction, f"✅ {member.mention} can use voice cloning here again.")

    # -- audit -----------------------------------------------------------------------

    @app_commands.command(name="audit", description="The latest jobs in this server")
    @app_commands.describe(count="How many jobs to show, newest first (default 10)")
    async def audit(
        self, interaction: discord.Interaction[Any], count: app_commands.Range[int, 1, 25] = 10
    ) -> None:
        guild_id = await self._guild_admin(interaction)
        if guild_id is None:
            return
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

    # -- the bot owner's -------------------------------------------------------------

    @app_commands.command(
        name="global", description="Bot owner: switch the bot off or on everywhere"
    )
    @app_commands.describe(enabled="On or off in every server (leave out to see the state)")
    async def global_(
        self, interaction: discord.Interaction[Any], enabled: bool | None = None
    ) -> None:
        if not await self._owner(interaction):
            return
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
        await self._reply(interaction, "\n".join(lines))

    @app_commands.command(name="credits", description="Bot owner: the Segmind credit balance")
    async def credits(self, interaction: discord.Interaction[Any]) -> None:
        if not await self._owner(interaction):
            return
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
        cooldown_seconds: app_commands.Range[int, 0, 86_400] | None = None,
        max_in_flight: app_commands.Range[int, 0, 1_000] | None = None,
        user_daily_chars: app_commands.Range[int, 0, 10_000_000] | None = None,
        guild_daily_jobs: app_commands.Range[int, 0, 1_000_000] | None = None,
        guild_daily_chars: app_commands.Range[int, 0, 100_000_000] | None = None,
        reset: bool = False,
    ) -> None:
        """The operator's limits for one server, in place of the settings: the most its
        admins may allow (they can still make them stricter with `limits`)."""
        if not await self._owner(interaction):
            return
        guild_id = _server_id(server, interaction.guild_id)
        if guild_id is None:
            await self._reply(
                interaction,
                "`server` must be a server's id (a number: with Developer Mode on, "
                "right-click the server and Copy Server ID).",
            )
            return
        policy = self.bot.policy
        changes = _given(
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
        await self._reply(interaction, "\n".join(lines))


def _given(*values: int | None) -> dict[str, int]:
    """The limit options given (by name, in LIMIT_OPTIONS order)."""
    return {
        option: value
        for option, value in zip(LIMIT_OPTIONS, values, strict=True)
        if value is not None
    }


def _server_id(text: str | None, here: int | None) -> int | None:
    if text is None:
        return here
    text = text.strip()
    return int(text) if text.isdigit() and 0 < int(text) < 1 << 64 else None


def _today(used: int, cap: int, unit: str) -> str:
    return f"{used:,} {unit}" + (f" of {cap:,}" if cap else " (no cap)")


def _subcommand(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    return command.name if command is not None else "?"


def credits_error_text(error: SegmindError) -> str:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return (
            "❌ Segmind refused the bot's API key, so the balance is unknown. "
            "Check `SEGMIND_API_KEY`."
        )
    if isinstance(error, SegmindConnectionError):
        return f"❌ Could not reach Segmind to read the balance: {neutralise(error.detail)}."
    return f"❌ Segmind did not give the balance: {neutralise(str(error))}"


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Admin(bot))
