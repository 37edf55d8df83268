"""How /voiceclone shows things: limits, usage, the audit, the credit balance (pure text).

Every answer is ephemeral and pings nobody (`reply`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import discord
from discord import app_commands

from bot.policy import LONGER_IS_STRICTER, SERVER, AboveCeiling, Policy
from bot.segmind.errors import (
    AuthenticationError,
    PermissionDeniedError,
    SegmindConnectionError,
    SegmindError,
)
from bot.store import JobRecord, JobState, UsageRow

from ..wording import neutralise

# The limit options' ranges, shared by /voiceclone limits and ceilings.
CooldownOption = app_commands.Range[int, 0, 86_400]
InFlightOption = app_commands.Range[int, 0, 1_000]
UserCharsOption = app_commands.Range[int, 0, 10_000_000]
GuildJobsOption = app_commands.Range[int, 0, 1_000_000]
GuildCharsOption = app_commands.Range[int, 0, 100_000_000]

NO_MENTIONS = discord.AllowedMentions.none()
MAX_LISTED = 50  # allowed channels, allowed roles: more is a sign of a mistake
SHOWN_IN_STATUS = 15
TOP_USERS = 5
USAGE_DAYS = 7
AUDIT_TEXT_CHARS = 100
RESULT_HASH_CHARS = 12  # enough to tell files apart by eye; the store keeps all 64
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

# -- limits --------------------------------------------------------------------------


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
    if record.result_sha256:  # provenance: what "Was this made by VoiceClone?" matches
        line += f" · file sha256 {_code(record.result_sha256[:RESULT_HASH_CHARS])}…"
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


def given(*values: int | None) -> dict[str, int]:
    """The limit options given (by name, in LIMIT_OPTIONS order)."""
    return {
        option: value
        for option, value in zip(LIMIT_OPTIONS, values, strict=True)
        if value is not None
    }


def today_text(used: int, cap: int, unit: str) -> str:
    return f"{used:,} {unit}" + (f" of {cap:,}" if cap else " (no cap)")


def credits_error_text(error: SegmindError) -> str:
    if isinstance(error, AuthenticationError | PermissionDeniedError):
        return (
            "❌ Segmind refused the bot's API key, so the balance is unknown. "
            "Check `SEGMIND_API_KEY`."
        )
    if isinstance(error, SegmindConnectionError):
        return f"❌ Could not reach Segmind to read the balance: {neutralise(error.detail)}."
    return f"❌ Segmind did not give the balance: {neutralise(str(error))}"


async def reply(interaction: discord.Interaction[Any], content: str, **kwargs: Any) -> None:
    """Every /voiceclone answer: ephemeral, pinging nobody."""
    await interaction.response.send_message(
        content, ephemeral=True, allowed_mentions=NO_MENTIONS, **kwargs
    )
