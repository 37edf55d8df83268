"""/speak: a clip and some text in, the text spoken in that voice out."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot import languages
from bot.audio import clip_problem, head_problem
from bot.store import JobRecord

from .pipeline import JobPipeline
from .replies import neutralise

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

SNIFF_BYTES = 4096
SNIFF_TIMEOUT = aiohttp.ClientTimeout(total=1.5)  # well inside Discord's 3 s to answer
NO_MENTIONS = discord.AllowedMentions.none()
HOUSEKEEPING_INTERVAL = 24 * 3600.0


class Speak(commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        # The text limit is a setting, so it is applied to the command's schema here.
        self.speak._params["text"].max_value = bot.settings.max_text_chars
        self.pipeline = JobPipeline(bot)

    async def cog_load(self) -> None:
        # Taken before the gateway connects, so it holds only the last run's jobs.
        unfinished = await self.bot.store.unfinished()
        self.bot.spawn(self._recover(unfinished), name="recover-jobs")
        self.bot.spawn(self._housekeeping(), name="housekeeping")

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
        code = languages.resolve(language, self.bot.settings.supported_languages)
        problem = await self._validate(voice, text, language, code)
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
        assert code is not None  # checked by _validate
        # Recorded before the defer: once the user sees "thinking…", a crash cannot lose it.
        record = await self.bot.store.add(
            JobRecord(
                id=str(interaction.id),
                created_at=time.time(),
                sample_url=voice.url,
                text=text.strip(),
                language=code,
                application_id=interaction.application_id,
                interaction_token=interaction.token,
                token_expires_at=interaction.expires_at.timestamp(),
                channel_id=interaction.channel_id or 0,
                guild_id=interaction.guild_id,
                user_id=interaction.user.id,
            )
        )
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
            await self.bot.store.mark_explained(record.id)
            return
        message_id = callback.message_id if callback is not None else None
        if message_id is None:
            message_id = (await interaction.original_response()).id
        record = await self.bot.store.set_original_message_id(record.id, message_id)
        log.info(
            "Accepted /speak job %s: user %s, guild %s, %d chars, language %s",
            record.id,
            record.user_id,
            record.guild_id,
            len(record.text),
            record.language,
        )
        self.bot.spawn(
            self.pipeline.drive(record, upload_limit=interaction.filesize_limit),
            name=f"job-{record.id}",
        )

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
        self, voice: discord.Attachment, text: str, language: str | None, code: str | None
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
        if code is None:
            return (
                f"I don't know the language {neutralise(language or '')!r}. "
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

    # -- recovery and housekeeping --------------------------------------------------

    async def _recover(self, unfinished: list[JobRecord]) -> None:
        """Finish what the last run left: every unfinished job, in the order accepted."""
        await self.bot.wait_until_ready()
        await self._purge()
        if unfinished:
            log.info("Resuming %d unfinished job(s) from the last run", len(unfinished))
        for record in unfinished:
            self.bot.spawn(self.pipeline.drive(record), name=f"job-{record.id}")

    async def _purge(self) -> None:
        days = self.bot.settings.job_retention_days
        if days > 0:
            removed = await self.bot.store.purge(days * 86400)
            if removed:
                log.info("Removed %d finished job(s) older than %g days", removed, days)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)
            await self._purge()


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Speak(bot))
