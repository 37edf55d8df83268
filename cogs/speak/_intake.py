"""What a request must pass before it is a job: the clip (metadata, then its first bytes
from the CDN), the text and the language; and the modal that asks for the text when the
clip comes from a message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from bot import languages

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
    voice: discord.Attachment,
    text: str,
    language: str | None,
    code: str | None,
) -> str | None:
    """Why this request cannot be a job (what the member is told), or None."""
    settings = bot.settings
    if not bot.accepting_jobs:
        return bot.closed_text
    problem = clip_problem(
        voice.filename, voice.content_type, voice.size, settings.max_sample_bytes
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
    return head_problem(await clip_head(bot.session, voice))


async def clip_head(session: aiohttp.ClientSession, voice: discord.Attachment) -> bytes:
    """The clip's first bytes (up to SNIFF_BYTES, however many reads they take), to catch a
    renamed non-audio file before it costs a job. Best effort: if the CDN is slow, we let
    Segmind judge."""
    head = b""
    try:
        async with session.get(
            voice.url, headers={"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, timeout=SNIFF_TIMEOUT
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
