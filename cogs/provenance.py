"""The "Was this made by VoiceClone?" message command: anyone can check an audio file.

The file's tags say which job it claims to be, but tags can be forged, so only the
store decides: a job whose delivered file had this exact hash, or (tags stripped or
edited) whose delivered audio had this hash without its tags. Another server's job is
confirmed as made by this bot and nothing more: who asked for what, and where, is that
server's business; that the audio is synthetic is everyone's.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot.audio import MIB, looks_like_audio
from bot.provenance import Examined, examine
from bot.store import JobRecord

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

MENU_NAME = "Was this made by VoiceClone?"
MAX_CHECK_BYTES = 25 * MIB  # Discord's largest uploads are bigger; results are far smaller
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=20, sock_connect=5)
NO_MENTIONS = discord.AllowedMentions.none()

NO_AUDIO = (
    "That message has no audio file to check. Use this on a message with a voice message "
    "or an audio file attached."
)
TOO_BIG = (
    "That file is too large to check (over {mib} MB). Files made by this bot are much "
    "smaller, so it was not delivered by it as it is."
)
DOWNLOAD_FAILED = (
    "I couldn't download that file from Discord to check it (it may have been deleted, or "
    "Discord was slow). Please try again in a moment."
)
ELSEWHERE = (
    "🤖 **Yes: this audio was made by this bot**, AI-generated speech in a cloned voice, "
    "but not in this server. Who asked for it, and where, is known only there."
)
NO_RECORD = (
    "❔ **No record.** This bot has no record of making this file. It was not made here, "
    "or it was re-encoded or edited since, or its record was deleted (records are kept "
    "for a while only). That is not proof it is a real recording."
)


class Provenance(commands.Cog):
    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        # Message commands cannot be declared in a cog class.
        self.menu = app_commands.ContextMenu(name=MENU_NAME, callback=self.check)

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def check(self, interaction: discord.Interaction[Any], message: discord.Message) -> None:
        attachment = next(
            (a for a in message.attachments if looks_like_audio(a.filename, a.content_type)),
            None,
        )
        if attachment is None:
            await self._say(interaction, NO_AUDIO, "no audio in the message")
            return
        if attachment.size > MAX_CHECK_BYTES:
            text = TOO_BIG.format(mib=MAX_CHECK_BYTES // MIB)
            await self._say(interaction, text, f"file of {attachment.size} bytes")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await download(self.bot.session, attachment.url, MAX_CHECK_BYTES)
        if data is None:
            await self._answer(interaction, DOWNLOAD_FAILED, "download failed")
            return
        if len(data) > MAX_CHECK_BYTES:
            await self._answer(interaction, TOO_BIG.format(mib=MAX_CHECK_BYTES // MIB), "big")
            return
        seen = await asyncio.to_thread(examine, data)
        text, verdict = await self._verdict(interaction, seen)
        await self._answer(interaction, text, verdict)

    async def _verdict(
        self, interaction: discord.Interaction[Any], seen: Examined
    ) -> tuple[str, str]:
        """What to tell the member, and a short word for the log."""
        store = self.bot.store
        here = interaction.guild_id
        matches = await store.delivered_matching(seen.sha256, seen.audio_sha256)
        exact = [r for r in matches if r.result_sha256 == seen.sha256]
        same_audio = [
            r for r in matches if seen.audio_sha256 and r.result_audio_sha256 == seen.audio_sha256
        ]
        claimed = seen.claim.job_id if seen.claim else None
        # The tags' own job first (a cached result shares its audio with older jobs).
        for found in (exact, same_audio):
            found.sort(key=lambda r: (r.guild_id != here or here is None, r.id != claimed))
        if exact and exact[0].guild_id == here and here is not None:
            return made_here(exact[0], intact=True), "made here, intact"
        if same_audio and same_audio[0].guild_id == here and here is not None:
            return made_here(same_audio[0], intact=False), "made here, tags changed"
        if exact or same_audio:
            return ELSEWHERE, "made in another server"
        if seen.claim is None:
            return NO_RECORD, "no record"
        me = self.bot.application_id
        if seen.claim.application_id is not None and seen.claim.application_id != me:
            return other_bot(seen.claim.application_id), "claims another bot"
        record = await store.get(claimed) if claimed else None
        if record is not None and record.guild_id == here and here is not None:
            if record.result_sha256 is None:  # delivered before files were hashed
                return unverifiable(record), "claims an unhashed job"
            return edited(record), "edited after delivery"
        return FORGED, "claims ours, no record"

    async def _say(self, interaction: discord.Interaction[Any], text: str, why: str) -> None:
        log.info("Provenance check by user %s: %s", interaction.user.id, why)
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def _answer(self, interaction: discord.Interaction[Any], text: str, why: str) -> None:
        log.info("Provenance check by user %s: %s", interaction.user.id, why)
        await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)


FORGED = (
    "⚠️ **No record, though the file claims to be from this bot.** Its tags name a job of "
    "this bot, but no file this bot delivered matches it: it was edited since (re-encoded, "
    "cut or mixed), or the tags were copied onto another file (forged)."
)


def made_here(record: JobRecord, *, intact: bool) -> str:
    how = (
        "The file is exactly as it was delivered."
        if intact
        else "The audio is the one delivered, but its tags were removed or changed since."
    )
    return (
        f"🤖 **Yes: made by this bot** (AI-generated speech in a cloned voice) for job "
        f"`{record.id}`, on <t:{int(record.created_at)}:f>, requested by <@{record.user_id}>. "
        + how
    )


def edited(record: JobRecord) -> str:
    return (
        f"⚠️ **Edited or forged.** Its tags name job `{record.id}` of this server (requested "
        f"by <@{record.user_id}> on <t:{int(record.created_at)}:f>), but the file is not what "
        "that job delivered: it was edited since (re-encoded, cut or mixed), or the tags were "
        "copied onto another file."
    )


def unverifiable(record: JobRecord) -> str:
    return (
        f"❔ **Can't confirm.** Its tags name job `{record.id}` of this server (requested by "
        f"<@{record.user_id}> on <t:{int(record.created_at)}:f>), but that job was delivered "
        "before the bot recorded its files' hashes, so the tags can't be checked against it."
    )


def other_bot(application_id: int) -> str:
    return (
        f"❔ **Not this bot's.** Its tags say it was made by another VoiceClone bot "
        f"(Discord application {application_id}); only that bot's records can confirm it. "
        "Tags alone prove nothing: they can be copied."
    )


async def download(session: aiohttp.ClientSession, url: str, limit: int) -> bytes | None:
    """The file at `url`, read up to one byte past `limit` (so a longer file shows as
    too long), or None if it could not be fetched in time."""
    data = bytearray()
    try:
        async with session.get(url, timeout=DOWNLOAD_TIMEOUT) as resp:
            if resp.status != 200:
                log.info("Provenance check: the CDN answered HTTP %s", resp.status)
                return None
            async for chunk in resp.content.iter_chunked(64 * 1024):
                data += chunk
                if len(data) > limit:
                    break
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.info("Provenance check: download failed (%s)", type(exc).__name__)
        return None
    return bytes(data)


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Provenance(bot))
