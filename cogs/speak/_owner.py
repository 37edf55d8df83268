"""The voice owner decides: a request to use another member's clip waits, stored, until
that member allows it (once, or always in this server) or denies it, or the wait runs out.

The owner is asked by DM; when their DMs are closed, by a message in the job's channel
that pings only them. The job itself waits in the core (`bot/jobs/owner_wait.py`, with
its deadline stored, so a restart waits on for the rest of the time); the buttons carry
the job id, so a click after a restart still counts.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import discord

from bot.jobs.owner_wait import OwnerVerdict
from bot.store import JobRecord, JobState, StoreError

from ..buttons import cancel_view, owner_view
from ..echo import neutralise
from ..wording import quote

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
WAITING_TEXT = (
    "⏳ Waiting for <@{owner}> to allow the use of their voice (until <t:{until}:t>). "
    "Nothing is sent to the voice service before they do."
)
OWNER_ASK_TEXT = (
    "**{requester}** would like to use the voice in your clip{where} to say:\n{text}\n"
    "The result would be labelled as an AI-generated voice. Do you allow it? "
    "(“Always allow” lets any member use your clips in this server; /optout there "
    "withdraws it.)"
)
OWNER_ANSWERED_TEXT = {
    "once": "✅ You allowed it this once.",
    "always": "✅ You allowed it, and future requests in this server (until you /optout).",
    "deny": "🚫 You said no: nothing was made.",
}
OWNER_STALE_TEXT = "This request has already ended."
OWNER_NOT_YOURS_TEXT = "Only the member whose voice it is can answer this."


class OwnerConsent:
    """The Speak cog's side of the owner's consent (a mixin)."""

    bot: VoiceCloneBot

    def owner_must_allow(self, interaction: discord.Interaction[Any], draft: JobRecord) -> bool:
        """A one-off clip of someone else's voice, where the rule applies (a saved voice
        shared with the server was allowed by its owner when they shared it)."""
        owner = draft.voice_owner_id
        if draft.voice_id is not None or owner is None:
            return False
        return self.bot.policy.needs_owner_consent(interaction.guild_id, draft.user_id, owner)

    def waiting_until(self) -> float:
        return time.time() + self.bot.settings.owner_consent_timeout_seconds

    async def ask_owner(self, interaction: discord.Interaction[Any], record: JobRecord) -> None:
        """The job is stored and waits: say so on its message, then ask its owner."""
        owner = record.voice_owner_id
        assert owner is not None
        assert record.owner_pending_until is not None
        waiting = WAITING_TEXT.format(owner=owner, until=int(record.owner_pending_until))
        try:
            await interaction.edit_original_response(
                content=waiting, view=cancel_view(record.id), allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException as exc:  # the job waits all the same
            log.warning("Job %s: could not show that it waits (HTTP %s)", record.id, exc.status)
        guild = interaction.guild
        where = f" in **{neutralise(guild.name, 100)}**" if guild is not None else ""
        text = OWNER_ASK_TEXT.format(
            requester=neutralise(interaction.user.display_name, 64),
            where=where,
            text=quote(record.text, 300),
        )
        if await self._ask_by_dm(record, owner, text) or await self._ask_in_channel(
            interaction, record, owner, text
        ):
            return
        log.info("Job %s: the voice owner %s could not be asked", record.id, owner)
        await self._answered(record.id, OwnerVerdict.UNREACHABLE)

    async def _answered(self, job_id: str, verdict: OwnerVerdict) -> None:
        try:
            await self.bot.job_service.owner_answered(job_id, verdict)
        except StoreError as exc:  # the job then ends when the owner's time runs out
            log.error("Job %s: the voice owner's answer could not be passed on (%s)", job_id, exc)

    async def _ask_by_dm(self, record: JobRecord, owner: int, text: str) -> bool:
        try:
            user = self.bot.get_user(owner) or await self.bot.fetch_user(owner)
            await user.send(text, view=owner_view(record.id), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.info(
                "Job %s: no DM to the voice owner (HTTP %s, code %s)",
                record.id,
                exc.status,
                exc.code,
            )
            return False
        log.info("Job %s: asked the voice owner %s by DM", record.id, owner)
        return True

    async def _ask_in_channel(
        self, interaction: discord.Interaction[Any], record: JobRecord, owner: int, text: str
    ) -> bool:
        channel = interaction.channel
        if channel is None or not hasattr(channel, "send"):
            return False
        only_them = discord.AllowedMentions(
            everyone=False, roles=False, replied_user=False, users=[discord.Object(owner)]
        )
        try:
            await channel.send(
                f"<@{owner}> {text}", view=owner_view(record.id), allowed_mentions=only_them
            )
        except discord.HTTPException as exc:
            log.info("Job %s: no channel post to the voice owner (HTTP %s)", record.id, exc.status)
            return False
        log.info("Job %s: asked the voice owner %s in the channel", record.id, owner)
        return True

    async def owner_clicked(
        self, interaction: discord.Interaction[Any], job_id: str, answer: str
    ) -> None:
        record = await self.bot.store.get(job_id)
        if record is None or record.voice_owner_id != interaction.user.id:
            await interaction.response.send_message(
                OWNER_NOT_YOURS_TEXT, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        if record.state is not JobState.ACCEPTED or record.owner_pending_until is None:
            await interaction.response.edit_message(content=OWNER_STALE_TEXT, view=None)
            return
        if answer == "always" and record.guild_id is not None:
            await self.bot.policy.update_member(
                record.guild_id, interaction.user.id, voice_allowed_at=time.time()
            )
        verdict = OwnerVerdict.DENIED if answer == "deny" else OwnerVerdict.ALLOWED
        await self._answered(job_id, verdict)
        log.info("Job %s: the voice owner answered %s", job_id, answer)
        await interaction.response.edit_message(
            content=OWNER_ANSWERED_TEXT[answer], view=None, allowed_mentions=NO_MENTIONS
        )
