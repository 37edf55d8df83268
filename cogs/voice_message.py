"""Posting a native Discord voice message, which discord.py 2.7 has no API for
(Rapptz/discord.py#10165): one multipart `POST /channels/{id}/messages` through the bot's
own HTTP client (its rate limits, retries and auth), with the voice-message flag and the
attachment's `duration_secs` and `waveform`.

Discord's rules (../shared/PLATFORM.md): exactly one audio attachment (else 50160), no
text, embeds or components (50159), the metadata (50161), Send Voice Messages (403/50173);
such a message cannot be edited, but it may reply to one. `VoiceMessageReplies` is how
a job's answer uses it (mixed into `cogs.delivery.Answer`).
"""

from __future__ import annotations

import io
import json
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.http import HTTPClient, Route

from bot.audio import AudioFile
from bot.jobs import Sent
from bot.store import JobRecord

from .buttons import result_view
from .wording import VOICE_MESSAGE_NOTE

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)
NO_MENTIONS = discord.AllowedMentions.none()

VOICE_MESSAGE_FLAG = discord.MessageFlags.voice.flag
FILENAME = "voice-message.ogg"
# Why a voice message was refused, as Discord codes it: the result then goes as a file.
REFUSED_CODES = {
    50159: "Discord refused it",
    50160: "Discord refused it",
    50161: "Discord refused it",
    50173: "the bot may not send voice messages in this channel",
}


async def send_voice_message(
    http: HTTPClient,
    channel_id: int,
    audio: AudioFile,
    *,
    reply_to: int | None = None,
    nonce: str | None = None,
) -> int:
    """Post `audio` (Opus in OGG, with its `voice` shape) as a voice message in the channel,
    as a reply to `reply_to` if given; the new message's id. Raises discord.HTTPException."""
    if audio.voice is None:
        raise ValueError("a voice message needs the audio's duration and waveform")
    payload: dict[str, Any] = {
        "flags": VOICE_MESSAGE_FLAG,
        "attachments": [
            {
                "id": "0",
                "filename": FILENAME,
                "duration_secs": round(audio.voice.duration_secs, 3),
                "waveform": audio.voice.waveform,
            }
        ],
        "allowed_mentions": {"parse": [], "replied_user": False},
    }
    if reply_to is not None:
        payload["message_reference"] = {
            "message_id": str(reply_to),
            "channel_id": str(channel_id),
            "fail_if_not_exists": False,
        }
    if nonce is not None:
        payload["nonce"] = nonce
        payload["enforce_nonce"] = True
    # A discord.File, so that discord.py rewinds it if it retries the request.
    file = discord.File(io.BytesIO(audio.data), filename=FILENAME)
    form: list[dict[str, Any]] = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": file.fp, "filename": FILENAME, "content_type": "audio/ogg"},
    ]
    route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel_id)
    try:
        message = await http.request(route, form=form, files=[file])
    finally:
        file.close()
    return int(message["id"])


class VoiceMessageReplies:
    """A job's answer as a voice message (mixed into `cogs.delivery.Answer`, whose paths
    and checks it uses): the voice message replies to the job's message, which then
    carries the label, the quote and the buttons; after a crash it is recognised by that
    reply, as it cannot carry the job's mark."""

    bot: VoiceCloneBot
    record: JobRecord
    webhook: discord.Webhook
    no_channel_because: str

    if TYPE_CHECKING:

        @property
        def nonce(self) -> str: ...
        @property
        def message_id(self) -> int: ...
        def alive(self, margin: float | None = None) -> bool: ...
        async def channel(
            self, *, voice_message: bool = False
        ) -> discord.abc.Messageable | None: ...

    async def _send_voice_message(self, content: str, audio: AudioFile) -> Sent | str:
        """The voice message, as a reply to the job's message, which then carries the label,
        the quote and the buttons (a voice message can carry none of them); or why Discord
        refused it (the result then goes as a file)."""
        record = self.record
        try:
            voice_id = await send_voice_message(
                self.bot.http,
                record.channel_id,
                audio,
                reply_to=record.original_message_id,
                nonce=self.nonce,
            )
        except discord.HTTPException as exc:
            log.info(
                "Job %s: voice message refused (HTTP %s %s); sending a file",
                record.id,
                exc.status,
                exc.code,
            )
            return REFUSED_CODES.get(exc.code, f"Discord answered HTTP {exc.status}")
        await self._label_voice_message(content, voice_id)
        return Sent("channel", voice_id)

    async def _label_voice_message(self, content: str, voice_id: int) -> None:
        """The label, the quote and the buttons for the voice message: on the job's message
        while its token lives, else in a reply to the voice message."""
        record = self.record
        text = f"{content}\n{VOICE_MESSAGE_NOTE}"
        try:
            if self.alive():
                await self.webhook.edit_message(
                    self.message_id,
                    content=text,
                    attachments=[],
                    view=result_view(record.id),
                    allowed_mentions=NO_MENTIONS,
                )
            else:
                await self.bot.get_partial_messageable(record.channel_id).send(
                    text,
                    reference=discord.MessageReference(
                        message_id=voice_id, channel_id=record.channel_id
                    ),
                    view=result_view(record.id),
                    allowed_mentions=NO_MENTIONS,
                )
        except discord.HTTPException as exc:
            # The member has the result: only its label and buttons are missing.
            log.warning(
                "Job %s: voice message sent, but its label could not be (HTTP %s %s)",
                record.id,
                exc.status,
                exc.code,
            )

    def _is_voice_message(self, message: discord.Message) -> bool:
        """The job's voice message: it replies to the job's message (and has no mark)."""
        reference = message.reference
        return (
            message.flags.voice
            and reference is not None
            and self.record.original_message_id is not None
            and reference.message_id == self.record.original_message_id
        )

    async def voice_message_refused(self) -> str | None:
        if await self.channel(voice_message=True) is None:
            return self.no_channel_because or "voice messages go to a server's text channels only"
        return None
