"""The Discord side of a job's life (`bot.jobs.Delivery`): its progress on the job's
message, and where its answer goes: the interaction's message while its token lives, then
the channel (as a reply naming the requester, without a ping), then a DM.

Built from the stored record alone, so it works the same after a restart as before. A
result carries the job's mark (`buttons.result_view`) wherever it goes, so that after a
crash mid-delivery `posted_before` can find it in each of those places before posting.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord

from bot.audio import MIB, AudioFile
from bot.jobs import Ending, Progress, Sent, Undeliverable
from bot.segmind.errors import SegmindError
from bot.store import JobRecord

from .buttons import cancel_view, carries_result, result_view
from .playback import playback_of
from .progress import ProgressMessage
from .voice_message import VoiceMessageReplies
from .wording import (
    CACHED_NOTE,
    CANNOT_CONVERT,
    NO_PLAYBACK,
    audio_filename,
    ending_text,
    failure_text,
    long_job_text,
    not_played_text,
    not_voice_message_text,
    progress_text,
    result_text,
    too_large_text,
)

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
TOKEN_SAFETY = 10.0  # seconds: don't start a webhook call this close to the token's end
DEFAULT_UPLOAD_LIMIT = 10 * MIB
TOKEN_GONE_CODES = (50027, 10015, 10062, 10008)  # invalid token, unknown webhook/message
# After a crash mid-delivery, the earlier post is looked for among the messages of the
# channel and of the DM from a little before that attempt started (clock skew), oldest
# first: it came seconds after, so it is among the first few unless the place is very busy.
SCAN_SLACK = 60.0
SCAN_LIMIT = 200


def token_gone(exc: discord.HTTPException) -> bool:
    return exc.code in TOKEN_GONE_CODES or exc.status in (401, 404)


class Answer(VoiceMessageReplies):
    def __init__(
        self, bot: VoiceCloneBot, record: JobRecord, upload_limit: int | None = None
    ) -> None:
        self.bot = bot
        self.record = record
        self.webhook = discord.Webhook.partial(
            record.application_id, record.interaction_token, client=bot
        )
        self.interaction_limit = upload_limit  # the interaction's, when known
        self.no_channel_because = ""  # why `channel()` last found no channel, if it knows
        self._progress = ProgressMessage(
            lambda text: self.edit(text, cancellable=True),
            interval=bot.settings.progress_update_seconds,
            job_ref=record.id,
        )
        self._progress_started = False

    # -- the job's progress ----------------------------------------------------------

    def show(self, update: Progress) -> None:
        if not self._progress_started:
            self._progress_started = True
            if self.alive():
                self._progress.start()
        self._progress.show(progress_text(update, int(self.record.created_at)))

    async def close_progress(self, grace: float) -> None:
        await self._progress.stop(grace=grace)

    async def watch_token(self) -> None:
        """Before the token dies, say where the result will go (progress edits stop)."""
        record = self.record
        lifetime = record.token_expires_at - record.created_at
        margin = min(60.0, 0.2 * lifetime)
        wait = record.token_expires_at - margin - time.time()
        if wait <= 0 and not self.alive(margin=0):
            return
        await asyncio.sleep(max(0.0, wait))
        await self._progress.stop()
        in_channel = await self.channel() is not None
        text = long_job_text(int(record.created_at), in_channel, self.no_channel_because)
        with contextlib.suppress(discord.HTTPException):
            await self.edit(text, cancellable=True)
            log.info(
                "Job %s: will outlast its interaction token; result goes to the channel", record.id
            )

    # -- the answer ------------------------------------------------------------------

    def failure_text(self, error: SegmindError) -> str:
        return failure_text(error)

    def ending_text(self, ending: Ending, ref: str = "") -> str:
        return ending_text(ending, ref)

    @staticmethod
    def _result_content(record: JobRecord) -> str:
        content = result_text(record.text, record.language, record.user_id)
        if record.cached_from is not None:
            content += f"\n{CACHED_NOTE}"
        return content

    async def send_result(self, record: JobRecord, audio: AudioFile) -> Sent:
        content = self._result_content(record)
        playback = playback_of(self.bot) if record.play else None
        if record.play:
            why = NO_PLAYBACK
            if playback is not None and record.guild_id is not None:
                why = playback.why_not(record.guild_id, record.user_id) or ""
            if why:
                content += f"\n{not_played_text(why)}"
                playback = None
        sent = await self._post_result(record, audio, content)
        if playback is not None and record.guild_id is not None:
            from bot.transcode import pcm_frames  # PyAV loads at the first play

            data = audio.data
            refused = await playback.enqueue(
                record.guild_id, record.user_id, lambda: pcm_frames(data), f"job {record.id}"
            )
            if refused is not None:  # they left the channel in the meantime
                log.info("Job %s: not played in voice: %s", record.id, refused)
        return sent

    async def _post_result(self, record: JobRecord, audio: AudioFile, content: str) -> Sent:
        if record.send_as == "voice_message":
            if audio.voice is not None:  # made into one by the driver: the channel allowed it
                sent = await self._send_voice_message(content, audio)
                if isinstance(sent, Sent):
                    self.bot.metrics.delivered("voice_message")
                    return sent
                refused = sent
            else:
                refused = await self.voice_message_refused() or CANNOT_CONVERT
            content += f"\n{not_voice_message_text(refused)}"
        link = too_large_text(audio.size, record.audio_url or "")
        sent = await self.send(content, audio, audio_filename(record.text, audio.extension), link)
        self.bot.metrics.delivered(sent.channel)
        return sent

    async def send_failure(self, text: str) -> None:
        try:
            await self.send(text, None, "", "")
        except discord.HTTPException as exc:
            raise Undeliverable(f"HTTP {exc.status} {exc.code}") from None

    def alive(self, margin: float | None = None) -> bool:
        """The token can still carry a webhook call started now."""
        if margin is None:
            lifetime = self.record.token_expires_at - self.record.created_at
            margin = min(TOKEN_SAFETY, 0.05 * lifetime)
        return time.time() < self.record.token_expires_at - margin

    @property
    def nonce(self) -> str:
        # Discord drops a second message with the same nonce (enforce_nonce) for a few
        # minutes: a re-sent delivery after a crash cannot post twice.
        return f"vc{self.record.id}"[:25]

    @property
    def message_id(self) -> int:
        """The interaction's message. Unknown only if the bot died right after deferring;
        Discord also accepts "@original" for it."""
        if self.record.original_message_id is not None:
            return self.record.original_message_id
        return "@original"  # type: ignore[return-value]

    async def edit(self, content: str, *, cancellable: bool = False) -> None:
        """Edit the interaction's message (progress, notices), with a Cancel button or
        without any."""
        await self.webhook.edit_message(
            self.message_id,
            content=content,
            view=cancel_view(self.record.id) if cancellable else None,
            allowed_mentions=NO_MENTIONS,
        )

    async def posted_before(self) -> Sent | None:
        """After a crash mid-delivery: the result as an earlier run posted it, wherever it
        went (the interaction's message, the channel, the DM), found by the job's mark on
        a message by the bot; None if it is in none of them. The nonce alone would not do:
        Discord remembers it for minutes, and a restart can come later."""
        record = self.record
        message = await self._interaction_message()
        # The job's own message: any file in it is the result (also from before the mark).
        if message is not None and (message.attachments or carries_result(message, record.id)):
            return Sent("interaction", message.id)
        since = datetime.fromtimestamp((record.updated_at or record.created_at) - SCAN_SLACK, UTC)
        places: list[tuple[str, discord.abc.Messageable]] = [
            ("channel", self.bot.get_partial_messageable(record.channel_id))
        ]
        try:
            places.append(("dm", await self.bot.create_dm(discord.Object(record.user_id))))
        except discord.HTTPException as exc:
            log.warning("Job %s: cannot open the DM to look for the result: %s", record.id, exc)
        me = self.bot.user.id if self.bot.user is not None else record.application_id
        for kind, place in places:
            try:
                voice: discord.Message | None = None
                async for message in place.history(limit=SCAN_LIMIT, after=since):
                    if message.author.id != me:
                        continue
                    if carries_result(message, record.id):
                        return Sent(kind, message.id)
                    if voice is None and self._is_voice_message(message):
                        voice = message
                if voice is not None:  # its label (with the mark) never came: post it now
                    await self._label_voice_message(self._result_content(record), voice.id)
                    return Sent(kind, voice.id)
            except discord.HTTPException as exc:
                # No access now: most likely none then either, so no reply there.
                log.warning("Job %s: cannot read the %s's messages: %s", record.id, kind, exc)
        return None

    async def _interaction_message(self) -> discord.Message | None:
        try:
            if self.alive(margin=0):
                return await self.webhook.fetch_message(self.message_id)
            if self.record.original_message_id is None:
                return None
            channel = self.bot.get_partial_messageable(self.record.channel_id)
            return await channel.fetch_message(self.record.original_message_id)
        except discord.HTTPException:
            return None

    def largest_upload(self) -> int:
        """The most any path here may upload: larger audio goes out as a link."""
        guild = self.bot.get_guild(self.record.guild_id) if self.record.guild_id else None
        channel_limit = guild.filesize_limit if guild is not None else DEFAULT_UPLOAD_LIMIT
        return max(self.interaction_limit or DEFAULT_UPLOAD_LIMIT, channel_limit)

    def upload_limit(self) -> int:
        """The limit of the first path tried: the interaction's while its token lives."""
        if self.alive():
            return self.interaction_limit or DEFAULT_UPLOAD_LIMIT
        return self._limit_for(self.bot.get_channel(self.record.channel_id))

    def _limit_for(self, channel: object) -> int:
        guild = getattr(channel, "guild", None)
        if isinstance(guild, discord.Guild):
            return guild.filesize_limit
        return DEFAULT_UPLOAD_LIMIT

    async def send(
        self, content: str, audio: AudioFile | None, filename: str, link_text: str
    ) -> Sent:
        """Post the final answer by the first path that works. `link_text` replaces the
        file when it is over the path's upload limit."""
        record = self.record
        if self.alive():
            limit = self.interaction_limit or DEFAULT_UPLOAD_LIMIT
            try:
                body, files = self._body(content, audio, filename, limit, link_text)
                message = await self.webhook.edit_message(
                    self.message_id,
                    content=body,
                    attachments=files,
                    view=self._mark(audio),
                    allowed_mentions=NO_MENTIONS,
                )
                return Sent("interaction", message.id)
            except discord.HTTPException as exc:
                if exc.status == 413 and audio is not None:
                    return await self._send_link_instead(content, link_text)
                reason = "token expired" if token_gone(exc) else f"HTTP {exc.status} {exc.code}"
                log.info(
                    "Job %s: cannot answer the interaction (%s); trying the channel",
                    record.id,
                    reason,
                )
        return await self._send_elsewhere(content, audio, filename, link_text)

    def _mark(self, audio: AudioFile | None) -> discord.ui.View | None:
        """A result carries the job's mark; an explanation carries nothing."""
        return result_view(self.record.id) if audio is not None else None

    async def _send_link_instead(self, content: str, link_text: str) -> Sent:
        message = await self.webhook.edit_message(
            self.message_id,
            content=f"{content}\n{link_text}",
            attachments=[],
            view=result_view(self.record.id),
            allowed_mentions=NO_MENTIONS,
        )
        return Sent("interaction", message.id)

    @staticmethod
    def _body(
        content: str, audio: AudioFile | None, filename: str, limit: int, link_text: str
    ) -> tuple[str, list[discord.File]]:
        if audio is None:
            return content, []
        if audio.size > limit:
            return f"{content}\n{link_text}", []
        return content, [discord.File(io.BytesIO(audio.data), filename=filename)]

    async def _send_elsewhere(
        self, content: str, audio: AudioFile | None, filename: str, link_text: str
    ) -> Sent:
        record = self.record
        intro = f"<@{record.user_id}>, here is the answer to your /speak:\n"
        channel = await self.channel()
        if channel is not None:
            reference = None
            if record.original_message_id is not None:
                reference = discord.MessageReference(
                    message_id=record.original_message_id,
                    channel_id=record.channel_id,
                    fail_if_not_exists=False,
                )
            body, files = self._body(content, audio, filename, self._limit_for(channel), link_text)
            try:
                message = await channel.send(
                    intro + body,
                    files=files,
                    reference=reference,  # type: ignore[arg-type]
                    allowed_mentions=NO_MENTIONS,
                    nonce=self.nonce,
                    view=self._mark(audio),  # type: ignore[arg-type]
                )
                return Sent("channel", message.id)
            except discord.HTTPException as exc:
                log.info(
                    "Job %s: channel post failed (HTTP %s %s); trying a DM",
                    record.id,
                    exc.status,
                    exc.code,
                )
        try:
            user = self.bot.get_user(record.user_id) or await self.bot.fetch_user(record.user_id)
            body, files = self._body(content, audio, filename, DEFAULT_UPLOAD_LIMIT, link_text)
            message = await user.send(
                body,
                files=files,
                allowed_mentions=NO_MENTIONS,
                nonce=self.nonce,
                view=self._mark(audio),  # type: ignore[arg-type]
            )
            return Sent("dm", message.id)
        except discord.HTTPException as exc:
            raise Undeliverable(f"DM failed (HTTP {exc.status} {exc.code})") from None

    async def channel(self, *, voice_message: bool = False) -> discord.abc.Messageable | None:
        """The job's channel if the bot may reply there with a file, else None (and
        `no_channel_because` names what it lacks). A reply needs Read Message History,
        and so does finding it again after a crash (`posted_before`)."""
        self.no_channel_because = ""
        channel = self.bot.get_channel(self.record.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(self.record.channel_id)
            except discord.HTTPException:
                return None
        if not isinstance(channel, discord.TextChannel | discord.Thread | discord.VoiceChannel):
            return None
        user = self.bot.user
        if user is None or channel.guild.get_member(user.id) is None:
            # A server on another process's shard (a job resumed here): no member cache
            # to check against; Discord refuses what is missing, and that is handled.
            return channel
        missing = _missing_permissions(channel, voice_message=voice_message)
        if missing:
            self.no_channel_because = f"the bot lacks {' and '.join(missing)} in this channel"
            log.info(
                "Job %s: cannot reply in channel %s: %s",
                self.record.id,
                channel.id,
                self.no_channel_because,
            )
            return None
        return channel


def _missing_permissions(
    channel: discord.TextChannel | discord.Thread | discord.VoiceChannel,
    *,
    voice_message: bool = False,
) -> list[str]:
    """What the bot lacks to reply in the channel with a file (or a voice message)."""
    perms = channel.permissions_for(channel.guild.me)
    thread = isinstance(channel, discord.Thread)
    needed = {
        "View Channels": perms.view_channel,
        "Send Messages in Threads" if thread else "Send Messages": (
            perms.send_messages_in_threads if thread else perms.send_messages
        ),
        "Attach Files": perms.attach_files,
        "Read Message History": perms.read_message_history,
    }
    if voice_message:
        needed["Send Voice Messages"] = perms.send_voice_messages
    return [name for name, granted in needed.items() if not granted]
