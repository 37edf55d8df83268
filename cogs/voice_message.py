"""Posting a native Discord voice message, which discord.py 2.7 has no API for
(Rapptz/discord.py#10165): one multipart `POST /channels/{id}/messages` through the bot's
own HTTP client (its rate limits, retries and auth), with the voice-message flag and the
attachment's `duration_secs` and `waveform`.

Discord's rules (../shared/PLATFORM.md): exactly one audio attachment (else 50160), no
text, embeds or components (50159), the metadata (50161), Send Voice Messages (403/50173);
such a message cannot be edited, but it may reply to one.
"""

from __future__ import annotations

import io
import json
from typing import Any

import discord
from discord.http import HTTPClient, Route

from bot.audio import AudioFile

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
