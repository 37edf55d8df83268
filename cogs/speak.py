"""/speak: a clip and some text in, the text spoken in that voice out."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot import languages
from bot.audio import clip_problem, head_problem
from bot.jobs import JobRequest, JobResult, Progress
from bot.segmind.errors import SegmindError
from bot.tree import error_reference

from .progress import ProgressMessage
from .replies import (
    accepted_text,
    audio_filename,
    failure_text,
    progress_text,
    result_text,
    too_large_text,
)

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

SNIFF_BYTES = 4096
SNIFF_TIMEOUT = aiohttp.ClientTimeout(total=1.5)  # well inside Discord's 3 s to answer
NO_MENTIONS = discord.AllowedMentions.none()
FINAL_EDIT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class JobContext:
    """Who asked, where, and what; enough to answer and to log."""

    ref: str  # the interaction id, until Segmind gives a request id
    user_id: int
    guild_id: int | None
    channel_id: int | None
    text: str
    language: str
    started_unix: int


class Speak(commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        settings = bot.settings
        self.progress_interval = settings.progress_update_seconds
        # The text limit is a setting, so it is applied to the command's schema here.
        self.speak._params["text"].max_value = settings.max_text_chars

    @app_commands.command(name="speak", description="Say some text in the voice from a clip")
    @app_commands.describe(
        voice="A short, clear recording of the voice (mp3, wav, ogg, m4a, …)",
        text="What the voice should say",
        language="The language of the text (default: English)",
    )
    async def speak(
        self,
        interaction: discord.Interaction[Any],
        voice: discord.Attachment,
        text: app_commands.Range[str, 1, 5000],
        language: str | None = None,
    ) -> None:
        problem = await self._validate(voice, text, language)
        if problem is not None:
            log.info(
                "Refused /speak from user %s in guild %s: %s",
                interaction.user.id,
                interaction.guild_id,
                problem,
            )
            await interaction.response.send_message(
                problem, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        code = languages.resolve(language, self.bot.settings.supported_languages)
        assert code is not None  # checked by _validate
        await interaction.response.defer(thinking=True)
        ctx = JobContext(
            ref=str(interaction.id),
            user_id=interaction.user.id,
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            text=text.strip(),
            language=code,
            started_unix=int(time.time()),
        )
        log.info(
            "Accepted /speak job %s: user %s, guild %s, %d chars, language %s",
            ctx.ref,
            ctx.user_id,
            ctx.guild_id,
            len(ctx.text),
            ctx.language,
        )
        request = JobRequest(voice.url, ctx.text, ctx.language)
        self.bot.spawn(self._run_job(interaction, request, ctx), name=f"job-{ctx.ref}")

    @speak.autocomplete("language")
    async def language_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        supported = self.bot.settings.supported_languages
        return [
            app_commands.Choice(name=name, value=code)
            for name, code in languages.suggest(current, supported)
        ]

    # -- validation ------------------------------------------------------------------

    async def _validate(
        self, voice: discord.Attachment, text: str, language: str | None
    ) -> str | None:
        settings = self.bot.settings
        if not self.bot.accepting_jobs:
            return "The bot is restarting. Please try again in a minute."
        problem = clip_problem(
            voice.filename, voice.content_type, voice.size, settings.max_sample_bytes
        )
        if problem:
            return problem
        stripped = text.strip()
        if not stripped:
            return "The text is empty. Type what the voice should say."
        if len(stripped) > settings.max_text_chars:
            return (
                f"The text is {len(stripped)} characters; the limit is "
                f"{settings.max_text_chars}. Shorten it and try again."
            )
        if languages.resolve(language, settings.supported_languages) is None:
            return (
                f"I don't know the language {discord.utils.escape_mentions(language or '')!r}. "
                "Pick one from the list (start typing its name)."
            )
        return head_problem(await self._clip_head(voice))

    async def _clip_head(self, voice: discord.Attachment) -> bytes:
        """The clip's first bytes, to catch a renamed non-audio file before it costs a job.
        Best effort: if the CDN is slow, we let Segmind judge."""
        try:
            async with self.bot.session.get(
                voice.url, headers={"Range": f"bytes=0-{SNIFF_BYTES - 1}"}, timeout=SNIFF_TIMEOUT
            ) as resp:
                if resp.status not in (200, 206):
                    return b""
                return await resp.content.read(SNIFF_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            return b""

    # -- the job ---------------------------------------------------------------------

    async def _run_job(
        self, interaction: discord.Interaction[Any], request: JobRequest, ctx: JobContext
    ) -> None:
        async def edit(content: str) -> object:
            return await interaction.edit_original_response(
                content=content, allowed_mentions=NO_MENTIONS
            )

        progress = ProgressMessage(edit, interval=self.progress_interval, job_ref=ctx.ref)
        progress.start()
        progress.show(accepted_text(ctx.started_unix))

        def on_progress(update: Progress) -> None:
            progress.show(progress_text(update, ctx.started_unix))

        try:
            try:
                result = await self.bot.jobs.run(request, on_progress)
            except SegmindError as exc:
                await progress.stop()
                log.warning(
                    "Job %s (request %s) failed: %s: %s",
                    ctx.ref,
                    exc.request_id or "-",
                    type(exc).__name__,
                    exc,
                )
                await self._final(interaction, ctx, failure_text(exc))
                return
            await progress.stop()
            await self._deliver(interaction, ctx, result)
        except asyncio.CancelledError:
            await progress.stop(grace=1)
            log.warning("Job %s cancelled (bot shutting down)", ctx.ref)
            raise
        except Exception:
            await progress.stop(grace=1)
            ref = error_reference()
            log.exception("Job %s hit an unexpected error (ref %s)", ctx.ref, ref)
            await self._final(
                interaction,
                ctx,
                f"Something went wrong on the bot's side (ref `{ref}`). Please try again.",
            )

    async def _deliver(
        self, interaction: discord.Interaction[Any], ctx: JobContext, result: JobResult
    ) -> None:
        audio = result.audio
        content = result_text(ctx.text, ctx.language, ctx.user_id)
        limit = interaction.filesize_limit
        if audio.size > limit:
            log.info(
                "Job %s: audio %d bytes over the %d limit; sending a link",
                ctx.ref,
                audio.size,
                limit,
            )
            await self._final(
                interaction,
                ctx,
                f"{content}\n{too_large_text(audio.size, limit, audio.source_url)}",
            )
            return
        filename = audio_filename(ctx.text, audio.extension)
        try:
            await asyncio.wait_for(
                interaction.edit_original_response(
                    content=content,
                    attachments=[discord.File(io.BytesIO(audio.data), filename=filename)],
                    allowed_mentions=NO_MENTIONS,
                ),
                FINAL_EDIT_TIMEOUT,
            )
        except discord.HTTPException as exc:
            if exc.status == 413:
                log.warning("Job %s: Discord refused %d bytes as too large", ctx.ref, audio.size)
                await self._final(
                    interaction,
                    ctx,
                    f"{content}\n{too_large_text(audio.size, limit, audio.source_url)}",
                )
                return
            log.warning(
                "Job %s (request %s): could not deliver (HTTP %s, code %s)",
                ctx.ref,
                result.request_id,
                exc.status,
                exc.code,
            )
            return
        except TimeoutError:
            log.warning("Job %s (request %s): upload timed out", ctx.ref, result.request_id)
            return
        log.info("Job %s (request %s) delivered: %s", ctx.ref, result.request_id, filename)

    async def _final(
        self, interaction: discord.Interaction[Any], ctx: JobContext, content: str
    ) -> None:
        try:
            await asyncio.wait_for(
                interaction.edit_original_response(content=content, allowed_mentions=NO_MENTIONS),
                FINAL_EDIT_TIMEOUT,
            )
        except (discord.HTTPException, TimeoutError) as exc:
            log.warning("Job %s: could not send the final answer (%s)", ctx.ref, exc)


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Speak(bot))
