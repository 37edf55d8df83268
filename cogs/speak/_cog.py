"""The Speak cog: /speak and "Speak in this voice" take a request, check it, reserve its
place, ask for consent where needed, and hand the job to the core's job service."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import languages
from bot.audio import looks_like_audio
from bot.bot import STORE_BROKEN_TEXT
from bot.policy import Ask, Refusal
from bot.store import AdmissionRefused, JobRecord, JobState, StoreError, StoreUnavailable

from ..buttons import DYNAMIC_ITEMS
from ..delivery import Answer
from ..refusals import refusal_text
from ._consent import ConsentFlow, PendingConsent, role_ids
from ._intake import PLAY_HELP, SEND_AS_CHOICES, SEND_AS_HELP, Clip, Form, SpeakModal, problem_with
from ._owner import OwnerConsent
from ._results import ResultButtons

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
MESSAGE_COMMAND = "Speak in this voice"
NO_CLIP_IN_MESSAGE = (
    "That message has no audio clip. Use this on a message with a voice message or an "
    "audio file attached."
)
RESULT_OWNER_UNKNOWN = (
    "I can't tell whose voice that clip is: it is one of my own results, and I have no "
    "record of whose voice its job used (records are kept for a while only). Use the "
    "original clip instead."
)
WEBHOOK_CLIP = (
    "That message was posted through a webhook (a proxy bot or an integration), so I can't "
    "tell whose voice it is. Use the original message, or attach the clip to /speak."
)
# How long accepting a job waits for the store: with the clip check (up to 1.5 s) and
# the defer, the member still hears back within Discord's 3 s.
ACCEPT_TIMEOUT = 1.0
STORE_TROUBLE_TEXT = (
    "⏳ The bot can't save new requests right now (a problem with its storage), so yours "
    "was not accepted: nothing was sent and it costs nothing. Please try again in a minute."
)


class Speak(ConsentFlow, OwnerConsent, ResultButtons, commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        # The text limit is a setting, so it is applied to the command's schema here.
        self.speak._params["text"].max_value = bot.settings.max_text_chars
        self.pending: dict[str, PendingConsent] = {}  # jobs waiting for a consent click
        # Message commands cannot be declared in a cog class.
        self.menu = app_commands.ContextMenu(name=MESSAGE_COMMAND, callback=self.speak_from_message)
        self.menu.guild_only = True

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(*DYNAMIC_ITEMS)
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(*DYNAMIC_ITEMS)
        self.bot.tree.add_command(self.menu)
        # How the core's job service reaches a job's member (start-up recovery included).
        self.bot.job_service.use(lambda record, limit: Answer(self.bot, record, limit))

    @app_commands.command(name="speak", description="Say some text in the voice from a clip")
    @app_commands.guild_only()
    @app_commands.describe(
        voice="A short, clear recording of the voice (mp3, wav, ogg, m4a, …)",
        text="What the voice should say",
        language="The language of the text (default: English)",
        send_as=SEND_AS_HELP,
        play=PLAY_HELP,
    )
    @app_commands.rename(send_as="as")
    @app_commands.choices(send_as=SEND_AS_CHOICES)
    async def speak(
        self,
        interaction: discord.Interaction[Any],
        voice: discord.Attachment,
        text: app_commands.Range[str, 1, 5000],
        language: app_commands.Range[str, 1, languages.MAX_INPUT_CHARS] | None = None,
        send_as: str | None = None,
        play: bool | None = None,
    ) -> None:
        form = Form(send_as, play)
        await self._request(interaction, Clip.attached(voice), text, language, "speak", form)

    async def speak_from_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """The "Speak in this voice" message command: the clip is a member's message, so
        its author's opt-out applies; the text comes from a modal."""
        clip = next(
            (a for a in message.attachments if looks_like_audio(a.filename, a.content_type)), None
        )
        if clip is None:
            await self._refuse(interaction, NO_CLIP_IN_MESSAGE, "no audio in the message")
            return
        owner = await self._clip_owner(interaction, message)
        if isinstance(owner, str):
            await self._refuse(interaction, owner, "whose voice is unknown")
            return
        # Opt-outs, blocks and switches are known now: don't make the member type for nothing.
        refusal = self.bot.policy.check(self._ask(interaction, 0, owner))
        if refusal is not None:
            await self._refuse(interaction, refusal_text(refusal), refusal.code)
            return
        modal = SpeakModal(self.bot.settings.max_text_chars)

        async def submitted(modal_interaction: discord.Interaction[Any]) -> None:
            await self._request(
                modal_interaction,
                Clip.attached(clip, owner),
                modal.text.value,
                modal.language.value or None,
                "message",
            )

        modal.submitted = submitted
        await interaction.response.send_modal(modal)

    async def _clip_owner(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> int | str:
        """Whose voice a message's clip is (the member whose opt-out applies), or why that
        cannot be told. The bot's own message (a result) belongs to the voice of the job
        that made it; a webhook's message (a proxy, an integration) to nobody known."""
        me = self.bot.user
        if me is not None and message.author.id == me.id:
            record = None
            if interaction.guild_id is not None:
                record = await self.bot.store.job_for_message(interaction.guild_id, message.id)
            # None: made before the bot recorded whose voice a job used.
            if record is None or record.voice_owner_id is None:
                return RESULT_OWNER_UNKNOWN
            return record.voice_owner_id
        if message.webhook_id is not None:
            return WEBHOOK_CLIP
        return message.author.id

    async def _refuse(self, interaction: discord.Interaction[Any], text: str, why: str) -> None:
        log.info(
            "Refused a request from user %s in guild %s: %s",
            interaction.user.id,
            interaction.guild_id,
            why,
        )
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def _request(
        self,
        interaction: discord.Interaction[Any],
        clip: Clip,
        text: str,
        language: str | None,
        origin: str,
        form: Form = Form(),  # noqa: B008 (frozen)
    ) -> None:
        """Everything a request goes through before it is a job: checks, fair use, consent.
        `origin`: how it was asked for (one of `bot.store.ORIGINS`)."""
        voice_owner = clip.owner_id
        code = languages.resolve(language, self.bot.settings.supported_languages)
        problem = await problem_with(self.bot, clip, text, language, code)
        if problem is not None:
            await self._refuse(interaction, problem, problem)
            return
        assert code is not None  # checked by _validate
        job_id = str(interaction.id)
        ask = self._ask(interaction, len(text.strip()), voice_owner)
        refusal = self.bot.policy.reserve(ask, job_id)
        if refusal is not None:
            await self._refuse(interaction, refusal_text(refusal), refusal.code)
            return
        draft = JobRecord(
            id=job_id,
            created_at=time.time(),
            sample_url=clip.url,
            text=text.strip(),
            language=code,
            application_id=interaction.application_id,
            interaction_token="",
            token_expires_at=0.0,
            channel_id=interaction.channel_id or 0,
            guild_id=interaction.guild_id,
            user_id=interaction.user.id,
            voice_owner_id=interaction.user.id if voice_owner is None else voice_owner,
            origin=origin,
            voice_id=clip.voice_id,
            sample_sha256=clip.sha256,
        )
        send_as, play = self.bot.policy.result_form(interaction.guild_id, form.send_as, form.play)
        draft = dataclasses.replace(draft, send_as=send_as, play=play)
        if self.owner_must_allow(interaction, draft):
            # The owner's answer decides, not the requester's word: no statement prompt.
            draft = dataclasses.replace(draft, owner_pending_until=self.waiting_until())
            record = await self._start(interaction, draft)
            if record is not None:
                await self.ask_owner(interaction, record)
        elif self.bot.policy.needs_consent(interaction.guild_id, interaction.user.id):
            await self._ask_consent(interaction, draft, ask)
        else:
            await self._start(interaction, draft)

    @staticmethod
    def _ask(interaction: discord.Interaction[Any], chars: int, voice_owner: int | None) -> Ask:
        channel = interaction.channel
        channel_ids = [interaction.channel_id or 0]
        if isinstance(channel, discord.Thread) and channel.parent_id:
            channel_ids.append(channel.parent_id)
        return Ask(
            guild_id=interaction.guild_id,
            channel_ids=tuple(channel_ids),
            user_id=interaction.user.id,
            role_ids=role_ids(interaction),
            chars=chars,
            # Whoever attached the clip, and whose voice the message it came from is.
            voice_owner_ids=frozenset({interaction.user.id, voice_owner or interaction.user.id}),
        )

    async def _start(
        self, interaction: discord.Interaction[Any], draft: JobRecord
    ) -> JobRecord | None:
        """Accept the job on `interaction` (the /speak, or the consent click), whose
        "thinking…" message becomes the job's message; None if it could not be."""
        # Recorded before the defer: once the user sees "thinking…", a crash cannot lose it.
        # A store that does not answer in time is told to skip the insert (the member
        # hears no at once rather than Discord's "did not respond").
        add = asyncio.ensure_future(
            self.bot.store.add(
                dataclasses.replace(
                    draft,
                    application_id=interaction.application_id,
                    interaction_token=interaction.token,
                    token_expires_at=interaction.expires_at.timestamp(),
                ),
                deadline=time.monotonic() + ACCEPT_TIMEOUT,
                # PostgreSQL: the limits again, with every process's jobs counted.
                admit=self.bot.policy.admission(draft.id),
            )
        )
        try:
            record = await asyncio.wait_for(asyncio.shield(add), ACCEPT_TIMEOUT)
        except AdmissionRefused as exc:
            self.bot.job_service.abandon(draft.id)
            refusal = exc.refusal
            if not isinstance(refusal, Refusal):  # what Policy.admission decides
                raise
            await self._refuse(interaction, refusal_text(refusal), refusal.code)
            return None
        except (StoreError, TimeoutError) as exc:
            self.bot.job_service.abandon(draft.id)
            if not add.done():
                # Begun just before its deadline and committed late: end it there.
                add.add_done_callback(self._drop_unaccepted)
            broken = self.bot.broken.is_set() or isinstance(exc, StoreUnavailable)
            reason = str(exc) or f"no answer within {ACCEPT_TIMEOUT:g} s"
            try:
                await self._refuse(
                    interaction,
                    STORE_BROKEN_TEXT if broken else STORE_TROUBLE_TEXT,
                    f"the job store failed: {reason}",
                )
            finally:
                if isinstance(exc, StoreUnavailable):  # after the reply: this stops the bot
                    self.bot.store_broken(str(exc))
            return None
        except BaseException:
            self.bot.job_service.abandon(draft.id)
            if not add.done():
                add.add_done_callback(self._drop_unaccepted)
            raise
        try:
            callback = await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            # Too late (Discord's 3 s passed) or refused: the member saw "did not respond",
            # so the job must not run later and surprise them (or bill the operator).
            log.warning(
                "Job %s: could not acknowledge /speak (HTTP %s, code %s); dropped",
                record.id,
                exc.status,
                exc.code,
            )
            await self.bot.store.mark_failed(record.id, "not_acknowledged", "")
            self.bot.job_service.ended(await self.bot.store.mark_explained(record.id))
            return None
        message_id = callback.message_id if callback is not None else None
        if message_id is None:
            message_id = (await interaction.original_response()).id
        # Stored with the submit-started mark (see StoreJournal), not in a write of its own.
        record = dataclasses.replace(record, original_message_id=message_id)
        log.info(
            "Accepted /speak job %s: user %s, guild %s, %d chars, language %s",
            record.id,
            record.user_id,
            record.guild_id,
            len(record.text),
            record.language,
        )
        self.bot.job_service.start(record, upload_limit=interaction.filesize_limit)
        return record

    def _drop_unaccepted(self, add: asyncio.Future[JobRecord]) -> None:
        """An insert that landed after `_start` stopped waiting for it: the member was
        never acknowledged, so the job must not run."""
        if not add.cancelled() and add.exception() is None:
            job_id = add.result().id
            self.bot.spawn(self._end_unacknowledged(job_id), name=f"drop-{job_id}")

    async def _end_unacknowledged(self, job_id: str) -> None:
        await self.bot.store.mark_failed(job_id, "not_acknowledged", "")
        await self.bot.store.mark_explained(job_id)

    # -- cancel ----------------------------------------------------------------------

    async def cancel_clicked(self, interaction: discord.Interaction[Any], job_id: str) -> None:
        record = await self.bot.store.get(job_id)
        if record is None or not _may_cancel(interaction, record):
            log.info(
                "Refused a Cancel of job %s by user %s (from guild %s)",
                job_id,
                interaction.user.id,
                interaction.guild_id,
            )
            await interaction.response.send_message(
                "Only the member who asked (or a server admin) can cancel this.",
                ephemeral=True,
                allowed_mentions=NO_MENTIONS,
            )
            return
        if not self.bot.job_service.cancel(
            job_id, interaction.user.id
        ) and not await self._cancel_elsewhere(record, interaction.user.id):
            text = (
                "Too late to cancel: the audio is ready or being posted."
                if record.state in (JobState.COMPLETED, JobState.DELIVERING)
                or record.state.terminal
                else "This job can't be cancelled right now (the bot may be restarting). "
                "Try again in a moment."
            )
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        # The job's own message says what happened; this click needs no reply of its own.
        await interaction.response.defer()

    async def _cancel_elsewhere(self, record: JobRecord, by: int) -> bool:
        """Several processes: a job another one drives (resumed there) is cancelled there."""
        if record.state not in (JobState.ACCEPTED, JobState.SUBMITTED):
            return False
        try:
            return await self.bot.job_service.cancel_elsewhere(record.id, by)
        except StoreError as exc:
            log.warning("Job %s: could not pass a Cancel on (%s)", record.id, exc)
            return False

    @speak.autocomplete("language")
    async def language_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        supported = self.bot.settings.supported_languages
        return [
            app_commands.Choice(name=name, value=code)
            for name, code in languages.suggest(current, supported)
        ]


def _may_cancel(interaction: discord.Interaction[Any], record: JobRecord) -> bool:
    """The click comes from the job's own server, by its requester or by a member with
    Manage Server there. (A button's custom id names the job; a modified client can send
    it from a message in another server, where it may be an admin.)"""
    if interaction.guild_id != record.guild_id:
        return False
    if interaction.user.id == record.user_id:
        return True
    perms = getattr(interaction.user, "guild_permissions", None)
    return perms is not None and (perms.manage_guild or perms.administrator)
