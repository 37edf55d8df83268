"""The consent prompt before a member's first clone in a server: Yes starts the job on
the click's own message, No or no answer within CONSENT_TIMEOUT sends nothing, and the
rules are checked again at the click (they may have changed while the prompt was up)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from bot.policy import Ask
from bot.store import JobRecord

from ..buttons import consent_view
from ..refusals import refusal_text

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
CONSENT_TIMEOUT = 300.0
CONSENT_TEXT = (
    "**Before your first voice clone in this server:** is this voice **your own**, or do you "
    "have **the speaker's permission** to clone it? The result will be labelled as an "
    "AI-generated voice."
)
CONSENT_THANKS_TEXT = "✅ Thanks: your answer is recorded. Your clip is on its way below."
CONSENT_DECLINED_TEXT = "Cancelled: nothing was sent, and nothing was cloned."
CONSENT_EXPIRED_TEXT = "⌛ No answer, so nothing was sent. Run /speak again when you're ready."
CONSENT_REFUSED_NOTE = "Your answer is recorded, but nothing was sent."
CONSENT_STALE_YES_TEXT = (
    "✅ Your answer is recorded, but this request has expired (the bot restarted or "
    "waited too long). Run /speak again."
)


@dataclass(slots=True)
class PendingConsent:
    draft: JobRecord
    interaction: discord.Interaction[Any]  # the /speak, to replace the prompt later
    expiry: asyncio.Task[None] | None
    ask: Ask  # checked again at the click: the rules may have changed during the prompt


class ConsentFlow(commands.Cog):
    """The Speak cog's consent prompt (a mixin: the cog supplies `_start`)."""

    bot: VoiceCloneBot
    pending: dict[str, PendingConsent]

    async def _start(
        self, interaction: discord.Interaction[Any], draft: JobRecord
    ) -> JobRecord | None:
        raise NotImplementedError

    async def _ask_consent(
        self, interaction: discord.Interaction[Any], draft: JobRecord, ask: Ask
    ) -> None:
        # Known before the prompt is shown: a quick click must find it.
        self.pending[draft.id] = PendingConsent(draft, interaction, None, ask)
        try:
            await interaction.response.send_message(
                CONSENT_TEXT,
                view=consent_view(draft.id),
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
        except BaseException:
            self.pending.pop(draft.id, None)
            self.bot.job_service.abandon(draft.id)
            raise
        pending = self.pending.get(draft.id)
        if pending is not None:
            pending.expiry = self.bot.spawn(
                self._consent_expiry(draft.id), name=f"consent-{draft.id}"
            )

    async def _consent_expiry(self, job_id: str) -> None:
        await asyncio.sleep(CONSENT_TIMEOUT)
        pending = self.pending.pop(job_id, None)
        if pending is None:
            return
        self.bot.job_service.abandon(job_id)
        log.info("Job %s: no answer to the consent prompt; dropped", job_id)
        with contextlib.suppress(discord.HTTPException):
            await pending.interaction.edit_original_response(
                content=CONSENT_EXPIRED_TEXT, view=None
            )

    async def consent_answered(
        self, interaction: discord.Interaction[Any], job_id: str, agreed: bool
    ) -> None:
        pending = self.pending.get(job_id)
        if pending is not None and pending.draft.user_id != interaction.user.id:
            await interaction.response.send_message(
                "This isn't your request.", ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        guild_id, user_id = interaction.guild_id, interaction.user.id
        if agreed and guild_id is not None:
            await self.bot.policy.update_member(guild_id, user_id, consent_at=time.time())
            log.info("User %s gave consent in guild %s", user_id, guild_id)
        if pending is None or self.pending.pop(job_id, None) is None:
            # The bot restarted (or the prompt timed out) since the prompt was shown.
            text = CONSENT_STALE_YES_TEXT if agreed else CONSENT_DECLINED_TEXT
            await interaction.response.edit_message(content=text, view=None)
            return
        if pending.expiry is not None:
            pending.expiry.cancel()
        if not agreed:
            self.bot.job_service.abandon(job_id)
            log.info("Job %s: user %s declined the consent prompt", job_id, user_id)
            await interaction.response.edit_message(content=CONSENT_DECLINED_TEXT, view=None)
            return
        # A block, an opt-out, a switch or a channel or role rule may have come meanwhile.
        ask = dataclasses.replace(pending.ask, role_ids=role_ids(interaction))
        refusal = self.bot.policy.recheck(ask)
        if refusal is not None:
            self.bot.job_service.abandon(job_id)
            log.info("Job %s: refused at the consent click: %s", job_id, refusal.code)
            await interaction.response.edit_message(
                content=f"🚫 {refusal_text(refusal)} {CONSENT_REFUSED_NOTE}",
                view=None,
                allowed_mentions=NO_MENTIONS,
            )
            return
        await self._start(interaction, pending.draft)
        with contextlib.suppress(discord.HTTPException):
            await pending.interaction.edit_original_response(content=CONSENT_THANKS_TEXT, view=None)


def role_ids(interaction: discord.Interaction[Any]) -> frozenset[int]:
    """The member's roles as of this interaction."""
    return frozenset(role.id for role in getattr(interaction.user, "roles", ()))
