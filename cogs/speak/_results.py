"""The buttons on a result: Again (the same voice, text and language as a new job), Edit
text (a modal prefilled with the old text, then a new job in the same voice) and Delete.

Again and Edit are the original requester's, in the job's own server: the new job is
billed to the clicker and held to that server's limits, and the requester is who stated
the voice may be cloned (a voice owned by someone else is asked again by `_request`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from bot.store import Replay

from ._intake import Clip, Form, SpeakModal
from ._replay import replay_clip

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
REPLAY_GONE = (
    "I no longer keep what this result was made from (it is kept for a while only, and "
    "/optout removes it). Use /speak with the clip again."
)
NOT_YOURS = "Only the member who asked for this result can use Again or Edit text on it."
NOT_HERE = (
    "Again and Edit text work in the server the result was made in (its limits apply): "
    "use the button on the result there, or /speak."
)
STILL_POSTING = "This result is still being recorded; try again in a moment."
MAY_NOT_DELETE = "Only the member who asked for this result (or a server admin) can delete it."
EDIT_TITLE = "Edit the text"


class ResultButtons:
    """Mixed into the Speak cog, whose `_request` makes the new jobs."""

    bot: VoiceCloneBot

    async def _request(
        self,
        interaction: discord.Interaction[Any],
        clip: Clip,
        text: str,
        language: str | None,
        origin: str,
        form: Form = ...,
    ) -> None:
        raise NotImplementedError

    async def result_clicked(
        self, interaction: discord.Interaction[Any], job_id: str, action: str
    ) -> None:
        if action == "delete":
            await self._delete_result(interaction, job_id)
            return
        replay = await self.bot.store.replay(job_id)
        problem = _replay_problem(interaction, replay)
        if replay is None and await self._still_open(job_id):
            problem = STILL_POSTING
        if problem is not None or replay is None:
            await _tell(interaction, problem or REPLAY_GONE, f"{action} of job {job_id}")
            return
        if action == "again":
            clip = await replay_clip(self.bot, replay)
            if isinstance(clip, str):
                await _tell(interaction, clip, f"again of job {job_id}: voice gone")
                return
            form = Form(replay.send_as, bool(replay.play))
            await self._request(interaction, clip, replay.text, replay.language, "again", form)
            return
        await self._edit(interaction, replay)

    async def _still_open(self, job_id: str) -> bool:
        """The job is not recorded delivered yet (a click in the moment after the post, or
        before a restart's recovery got to it)."""
        record = await self.bot.store.get(job_id)
        return record is not None and not record.state.terminal

    async def _edit(self, interaction: discord.Interaction[Any], replay: Replay) -> None:
        modal = SpeakModal(self.bot.settings.max_text_chars)
        modal.title = EDIT_TITLE
        modal.text.default = replay.text[: self.bot.settings.max_text_chars]
        modal.language.default = replay.language

        async def submitted(modal_interaction: discord.Interaction[Any]) -> None:
            clip = await replay_clip(self.bot, replay)
            if isinstance(clip, str):
                await _tell(modal_interaction, clip, f"edit of job {replay.job_id}: voice gone")
                return
            language = modal.language.value or None
            form = Form(replay.send_as, bool(replay.play))
            await self._request(modal_interaction, clip, modal.text.value, language, "edit", form)

        modal.submitted = submitted
        await interaction.response.send_modal(modal)

    async def _delete_result(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        record = await self.bot.store.get(job_id)
        if not _may_delete(
            interaction, record.guild_id if record else None, record.user_id if record else None
        ):
            await _tell(interaction, MAY_NOT_DELETE, f"delete of job {job_id}")
            return
        # After a deferred update, "@original" is the clicked message, wherever it is
        # (the interaction's message, a channel reply, a DM): no channel permission needed.
        await interaction.response.defer()
        # Forgotten first: the member asked for the result to go, whatever Discord says.
        await self.bot.store.drop_replay(job_id)
        try:
            await interaction.delete_original_response()
        except discord.HTTPException as exc:
            log.warning("Job %s: could not delete its result (HTTP %s)", job_id, exc.status)
            await interaction.followup.send(
                "I couldn't delete that message; try again in a moment.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        log.info("Job %s: result deleted by user %s", job_id, interaction.user.id)


def _replay_problem(interaction: discord.Interaction[Any], replay: Replay | None) -> str | None:
    if replay is None:
        return REPLAY_GONE
    if interaction.user.id != replay.user_id:
        return NOT_YOURS
    if interaction.guild_id is None or interaction.guild_id != replay.guild_id:
        return NOT_HERE
    return None


def _may_delete(
    interaction: discord.Interaction[Any], guild_id: int | None, user_id: int | None
) -> bool:
    """The requester; or a member with Manage Server in the job's own server (in that
    server, once the job's record is purged). In a DM only its one member can click."""
    if interaction.guild_id is None:
        return user_id is None or interaction.user.id == user_id
    if user_id is not None and guild_id != interaction.guild_id:
        return False
    if interaction.user.id == user_id:
        return True
    perms = getattr(interaction.user, "guild_permissions", None)
    return perms is not None and (perms.manage_guild or perms.administrator)


async def _tell(interaction: discord.Interaction[Any], text: str, why: str) -> None:
    log.info("Refused a result button by user %s: %s", interaction.user.id, why)
    await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)
