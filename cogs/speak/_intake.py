"""What a request must pass before it is a job: the clip (metadata, then its first bytes
from the CDN), the text and the language; and the modal that asks for the text when the
clip comes from a message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands

from bot import languages
from bot.store import VoiceRecord

from ..echo import has_visible
from ..refusals import clip_problem, head_problem
from ..wording import neutralise

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

SNIFF_BYTES = 4096
SNIFF_TIMEOUT = aiohttp.ClientTimeout(total=1.5)  # well inside Discord's 3 s to answer
MODAL_TIMEOUT = 300.0
LANGUAGE_ECHO_CHARS = 40  # of an unknown language, in the refusal
EMPTY_TEXT = "The text is empty (or only invisible characters). Type what the voice should say."


SEND_AS_HELP = "How the result is sent: a file or a voice message (default: the server's)"
PLAY_HELP = "Also play it in your voice channel (default: the server's)"
SEND_AS_CHOICES = [
    app_commands.Choice(name="file", value="file"),
    app_commands.Choice(name="voice message", value="voice_message"),
]
"""The `as:` option: how the result goes out (`bot.store.SEND_AS`)."""


@dataclass(frozen=True, slots=True)
class Form:
    """How the member wants the result: None leaves it to the server's default."""

    send_as: str | None = None
    play: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Clip:
    """The voice a request uses: an attachment of this request or of a message, a saved
    voice, or the clip of an earlier job."""

    url: str  # where Segmind fetches it
    filename: str
    content_type: str | None
    size: int
    owner_id: int | None = None  # whose voice it is, when not the requester's
    voice_id: int | None = None  # a saved voice
    sha256: str | None = None  # of its bytes, when known
    checked: bool = False  # checked already (a saved voice): no metadata or head check

    @classmethod
    def attached(cls, attachment: discord.Attachment, owner_id: int | None = None) -> Clip:
        return cls(
            url=attachment.url,
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            owner_id=owner_id,
        )

    @classmethod
    def saved(cls, voice: VoiceRecord) -> Clip | None:
        """A saved voice's clip, at its Segmind storage URL; None if it has none yet."""
        if voice.storage_url is None:
            return None
        return cls(
            url=voice.storage_url,
            filename=voice.filename,
            content_type=voice.content_type,
            size=voice.size,
            owner_id=voice.owner_id,
            voice_id=voice.id,
            sha256=voice.sha256,
            checked=True,  # checked when it was saved
        )


class SpeakModal(discord.ui.Modal, title="Speak in this voice"):
    """Asks for the text (and language) when the clip comes from a message."""

    def __init__(self, max_chars: int) -> None:
        super().__init__(timeout=MODAL_TIMEOUT)
        self.text: discord.ui.TextInput[Any] = discord.ui.TextInput(
            style=discord.TextStyle.paragraph, max_length=max_chars, custom_id="text"
        )
        self.language: discord.ui.TextInput[Any] = discord.ui.TextInput(
            required=False,
            max_length=languages.MAX_INPUT_CHARS,
            placeholder="en",
            custom_id="language",
        )
        self.add_item(discord.ui.Label(text="What should the voice say?", component=self.text))
        self.add_item(discord.ui.Label(text="Language (name or code)", component=self.language))
        self.submitted: Callable[[discord.Interaction[Any]], Awaitable[None]] | None = None

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        if self.submitted is not None:
            await self.submitted(interaction)


async def problem_with(
    bot: VoiceCloneBot,
    clip: Clip,
    text: str,
    language: str | None,
    code: str | None,
) -> str | None:
    """Why this request cannot be a job (what the member is told), or None."""
    settings = bot.settings
    if not bot.accepting_jobs:
        return bot.closed_text
    if not clip.checked:
        problem = clip_problem(
            clip.filename, clip.content_type, clip.size, settings.max_sample_bytes
        )
        if problem:
            return problem
    stripped = text.strip()
    if not has_visible(stripped):
        # Spaces, line breaks or invisible characters alone: nothing to say or bill.
        return EMPTY_TEXT
    if len(stripped) > settings.max_text_chars:
        return (
            f"The text is {len(stripped)} characters; the limit is "
            f"{settings.max_text_chars}. Shorten it and try again."
        )
    if code is None:
        return (
            f"I don't know the language “{neutralise(language or '', LANGUAGE_ECHO_CHARS)}”."
            " Pick one from the list (start typing its name)."
        )
    if clip.checked:
        return None
    return head_problem(await clip_head(bot.session, clip.url))


async def clip_head(session: aiohttp.ClientSession, url: str) -> bytes:
    """The clip's first bytes (up to SNIFF_BYTES, however many reads they take), to catch a
    renamed non-audio file before it costs a job. Best effort: if the CDN is slow, we let
    Segmind judge."""
    head = b""
    try:
        async with session.get(
            url, headers={"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, timeout=SNIFF_TIMEOUT
        ) as resp:
            if resp.status not in (200, 206):
                return b""
            async for chunk in resp.content.iter_chunked(SNIFF_BYTES):
                head += chunk
                if len(head) >= SNIFF_BYTES:
                    break
    except (aiohttp.ClientError, TimeoutError):
        pass  # what arrived is still worth a look
    return head[:SNIFF_BYTES]
