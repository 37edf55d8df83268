"""/voice (save, list, rename, delete, default, share, unshare) and /say: voices a member
keeps. The clip's bytes are kept in the store and uploaded to Segmind storage for a URL
that lasts (Discord's attachment URLs expire); /say hands a saved voice to the Speak
cog's one request path."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aiohttp
import discord
from discord import app_commands
from discord.ext import commands

from bot import languages
from bot.segmind.errors import SegmindError
from bot.store import StoreError, VoiceLimitReached, VoiceNameTaken, VoiceRecord
from bot.voices import clean_name, sample_sha256, voice_name_problem

from .plain_text import message_words
from .refusals import clip_problem, head_problem
from .speak import Speak
from .speak._intake import PLAY_HELP, SEND_AS_CHOICES, SEND_AS_HELP, Clip, Form
from .wording import neutralise

if TYPE_CHECKING:
    from bot.bot import VoiceCloneBot

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()
CLIP_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)
AUTOCOMPLETE_LIMIT = 25  # Discord shows at most 25 choices
SAY_MESSAGE_COMMAND = "Say this in my voice"
NOTHING_TO_SAY = "That message has no text I could say."
FEATURE_OFF = "Saved voices are turned off on this bot."
NO_VOICE = "You have no saved voice here. Save one with /voice save."
UNKNOWN_VOICE = "You have no voice called “{name}”. /voice list shows yours."
NOT_USABLE = "There is no voice called “{name}” you can use here. /voice list shows yours."
UPLOAD_FAILED = (
    "❌ The voice was not saved: the voice service could not store the clip ({reason}). "
    "Nothing was charged; try again in a minute."
)
CLIP_UNREADABLE = "❌ The voice was not saved: I could not download the clip from Discord."
STORE_FAILED = "❌ The voice was not saved: the bot's storage had a problem. Try again later."


def _echo(name: str) -> str:
    return neutralise(name, 40)


class Voices(commands.Cog):
    voice = app_commands.Group(
        name="voice", description="Voices you keep for /say", guild_only=True
    )

    def __init__(self, bot: VoiceCloneBot) -> None:
        self.bot = bot
        self.say._params["text"].max_value = bot.settings.max_text_chars  # as /speak's
        # Message commands cannot be declared in a cog class (Discord allows 5 per app).
        self.menu = app_commands.ContextMenu(name=SAY_MESSAGE_COMMAND, callback=self.say_message)
        self.menu.guild_only = True

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)

    async def _reply(self, interaction: discord.Interaction[Any], text: str) -> None:
        if interaction.response.is_done():
            await interaction.edit_original_response(content=text, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )

    def _off(self) -> bool:
        return self.bot.settings.voices_per_member == 0

    async def _own(self, interaction: discord.Interaction[Any], name: str) -> VoiceRecord | None:
        found = await self.bot.store.voice_named(interaction.user.id, clean_name(name))
        if found is None:
            await self._reply(interaction, UNKNOWN_VOICE.format(name=_echo(name)))
        return found

    # -- /voice save -------------------------------------------------------------------

    @voice.command(name="save", description="Keep a clip of your voice for /say")
    @app_commands.describe(
        name="What to call it",
        clip="A short, clear recording (mp3, wav, ogg, m4a, …)",
        consent="Whose voice is it? Only save voices you may use",
    )
    @app_commands.choices(
        consent=[
            app_commands.Choice(name="It is my own voice", value="own"),
            app_commands.Choice(name="I have the speaker's permission", value="permission"),
        ]
    )
    async def save(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 64],
        clip: discord.Attachment,
        consent: app_commands.Choice[str],
    ) -> None:
        settings = self.bot.settings
        if self._off():
            await self._reply(interaction, FEATURE_OFF)
            return
        problem = voice_name_problem(name) or clip_problem(
            clip.filename, clip.content_type, clip.size, settings.max_sample_bytes
        )
        if problem is not None:
            await self._reply(interaction, problem)
            return
        name = clean_name(name)
        # Refused before the download and the upload (a Segmind request); the store
        # checks both again as it inserts, where two saves cannot race.
        refusal = await self._save_refusal(interaction.user.id, name)
        if refusal is not None:
            await self._reply(interaction, refusal)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        data = await self._download(clip, settings.max_sample_bytes)
        if data is None:
            await self._reply(interaction, CLIP_UNREADABLE)
            return
        problem = head_problem(data[:4096])
        if problem is not None:
            await self._reply(interaction, problem)
            return
        content_type = clip.content_type or "application/octet-stream"
        try:
            url = await self.bot.segmind.upload(data, content_type)
        except SegmindError as exc:
            log.warning("User %s: voice upload failed: %s", interaction.user.id, exc)
            await self._reply(interaction, UPLOAD_FAILED.format(reason=exc.summary))
            return
        try:
            await self.bot.store.add_voice(
                interaction.user.id,
                name,
                data,
                sha256=sample_sha256(data),
                content_type=content_type,
                filename=clip.filename,
                storage_url=url,
                limit=settings.voices_per_member,
            )
        except (VoiceLimitReached, VoiceNameTaken) as exc:
            await self._reply(interaction, self._refusal_text(exc, name))
            return
        except StoreError as exc:
            log.error("User %s: could not store a voice: %s", interaction.user.id, exc)
            await self._reply(interaction, STORE_FAILED)
            return
        log.info(
            "User %s saved a voice (%d bytes; consent: %s)",
            interaction.user.id,
            len(data),
            consent.value,
        )
        await self._reply(
            interaction,
            f"✅ Saved “{_echo(name)}”. Use it with /say; it is private until you /voice share it.",
        )

    async def _save_refusal(self, user_id: int, name: str) -> str | None:
        own = await self.bot.store.own_voices(user_id)
        if len(own) >= self.bot.settings.voices_per_member:
            return self._refusal_text(VoiceLimitReached(), name)
        if any(v.name.casefold() == name.casefold() for v in own):
            return self._refusal_text(VoiceNameTaken(), name)
        return None

    def _refusal_text(self, exc: Exception, name: str) -> str:
        if isinstance(exc, VoiceLimitReached):
            return (
                f"You already keep {self.bot.settings.voices_per_member} voices, the most "
                "allowed. Delete one with /voice delete first."
            )
        return f"You already have a voice called “{_echo(name)}”."

    async def _download(self, clip: discord.Attachment, cap: int) -> bytes | None:
        """The clip's bytes, at most `cap`, within CLIP_TIMEOUT; None if they can't be had."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with self.bot.session.get(clip.url, timeout=CLIP_TIMEOUT) as resp:
                if resp.status != 200:
                    log.warning("Voice clip download answered HTTP %s", resp.status)
                    return None
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > cap:
                        return None
                    chunks.append(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Voice clip download failed: %s", type(exc).__name__)
            return None
        return b"".join(chunks)

    # -- /voice list, rename, delete, default, share, unshare ---------------------------

    @voice.command(name="list", description="The voices you keep and those shared here")
    async def list_(self, interaction: discord.Interaction[Any]) -> None:
        voices = await self.bot.store.usable_voices(interaction.guild_id, interaction.user.id)
        own = await self.bot.store.own_voices(interaction.user.id)
        if not own and not voices:
            await self._reply(interaction, NO_VOICE)
            return
        lines = [
            f"• **{_echo(v.name)}**"
            + (" (default)" if v.is_default else "")
            + (" · shared here" if interaction.guild_id and v.id in self._shared(voices) else "")
            for v in own
        ]
        others = [v for v in voices if v.owner_id != interaction.user.id]
        if others:
            lines.append("Shared with this server by others:")
            lines += [f"• {_echo(v.name)}" for v in others]
        await self._reply(interaction, "\n".join(lines))

    @staticmethod
    def _shared(voices: list[VoiceRecord]) -> set[int]:
        return {v.id for v in voices if v.shared}

    @voice.command(name="rename", description="Rename one of your voices")
    async def rename(
        self,
        interaction: discord.Interaction[Any],
        name: app_commands.Range[str, 1, 64],
        new_name: app_commands.Range[str, 1, 64],
    ) -> None:
        problem = voice_name_problem(new_name)
        if problem is not None:
            await self._reply(interaction, problem)
            return
        found = await self._own(interaction, name)
        if found is None:
            return
        try:
            await self.bot.store.rename_voice(interaction.user.id, found.id, clean_name(new_name))
        except VoiceNameTaken as exc:
            await self._reply(interaction, self._refusal_text(exc, new_name))
            return
        await self._reply(interaction, f"✅ Renamed to “{_echo(clean_name(new_name))}”.")

    @voice.command(name="delete", description="Delete one of your voices (its clip too)")
    async def delete(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 64]
    ) -> None:
        found = await self._own(interaction, name)
        if found is None:
            return
        await self.bot.store.delete_voice(interaction.user.id, found.id)
        try:  # results made with it are someone's voice too: they go with it
            await self.bot.result_cache.forget_voice(found.id)
            await self.bot.result_cache.forget_clip(found.sha256)
        except StoreError as exc:  # the voice is gone; the purge ages the rest out
            log.error("Voice %s: cached results not deleted (%s)", found.id, exc)
        log.info("User %s deleted voice %s", interaction.user.id, found.id)
        await self._reply(interaction, f"🗑️ Deleted “{_echo(found.name)}” and its clip.")

    @voice.command(name="default", description="The voice /say uses when you name none")
    async def default(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 64]
    ) -> None:
        found = await self._own(interaction, name)
        if found is None:
            return
        await self.bot.store.set_default_voice(interaction.user.id, found.id)
        await self._reply(interaction, f"✅ /say now uses “{_echo(found.name)}”.")

    @voice.command(name="share", description="Let this server's members use one of your voices")
    async def share(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 64]
    ) -> None:
        await self._share(interaction, name, True)

    @voice.command(name="unshare", description="Stop sharing one of your voices here")
    async def unshare(
        self, interaction: discord.Interaction[Any], name: app_commands.Range[str, 1, 64]
    ) -> None:
        await self._share(interaction, name, False)

    async def _share(self, interaction: discord.Interaction[Any], name: str, on: bool) -> None:
        assert interaction.guild_id is not None  # guild_only
        found = await self._own(interaction, name)
        if found is None:
            return
        await self.bot.store.share_voice(interaction.user.id, found.id, interaction.guild_id, on)
        text = "members here can now use" if on else "members here can no longer use"
        await self._reply(interaction, f"✅ Done: {text} “{_echo(found.name)}”.")

    # -- /say ----------------------------------------------------------------------------

    @app_commands.command(name="say", description="Say some text in a saved voice")
    @app_commands.guild_only()
    @app_commands.describe(
        text="What the voice should say",
        voice="A saved voice (default: yours)",
        language="The language of the text (default: English)",
        send_as=SEND_AS_HELP,
        play=PLAY_HELP,
    )
    @app_commands.rename(send_as="as")
    @app_commands.choices(send_as=SEND_AS_CHOICES)
    async def say(
        self,
        interaction: discord.Interaction[Any],
        text: app_commands.Range[str, 1, 5000],
        voice: app_commands.Range[str, 1, 64] | None = None,
        language: app_commands.Range[str, 1, languages.MAX_INPUT_CHARS] | None = None,
        send_as: str | None = None,
        play: bool | None = None,
    ) -> None:
        await self._say(interaction, text, voice, language, "say", Form(send_as, play))

    async def _say(
        self,
        interaction: discord.Interaction[Any],
        text: str,
        voice: str | None,
        language: str | None,
        origin: str,
        form: Form = Form(),  # noqa: B008 (frozen)
    ) -> None:
        if self._off():
            await self._reply(interaction, FEATURE_OFF)
            return
        found = await self._pick(interaction, voice)
        if found is None:
            return
        speak = self.bot.get_cog("Speak")
        clip = Clip.saved(found)
        if not isinstance(speak, Speak) or clip is None:
            await self._reply(interaction, "❌ /say is not available right now.")
            return
        await speak._request(interaction, clip, text, language, origin, form)

    async def say_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        """ "Say this in my voice": the message's text, as plain words, in the invoker's
        default voice."""
        text = message_words(message, self.bot.settings.max_text_chars)
        if not text:
            await self._reply(interaction, NOTHING_TO_SAY)
            return
        await self._say(interaction, text, None, None, "say_message")

    async def _pick(
        self, interaction: discord.Interaction[Any], name: str | None
    ) -> VoiceRecord | None:
        """The voice asked for (an autocomplete id or a typed name), else the member's
        default; None after telling the member why."""
        usable = await self.bot.store.usable_voices(interaction.guild_id, interaction.user.id)
        user = interaction.user.id
        if name is None:
            found = next((v for v in usable if v.owner_id == user and v.is_default), None)
            if found is None:
                await self._reply(interaction, NO_VOICE)
            return found
        wanted = clean_name(name).casefold()
        # Own voices first (usable_voices orders them so), then shared ones.
        found = next((v for v in usable if str(v.id) == name or v.name.casefold() == wanted), None)
        if found is None:
            await self._reply(interaction, NOT_USABLE.format(name=_echo(name)))
        return found

    @say.autocomplete("voice")
    async def _voice_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        usable = await self.bot.store.usable_voices(interaction.guild_id, interaction.user.id)
        typed = current.casefold()
        return [
            app_commands.Choice(
                name=v.name if v.owner_id == interaction.user.id else f"{v.name} (shared)",
                value=str(v.id),
            )
            for v in usable
            if typed in v.name.casefold()
        ][:AUTOCOMPLETE_LIMIT]

    @say.autocomplete("language")
    async def _language_choices(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        supported = self.bot.settings.supported_languages
        return [
            app_commands.Choice(name=name, value=code)
            for name, code in languages.suggest(current, supported)
        ]


async def setup(bot: VoiceCloneBot) -> None:
    await bot.add_cog(Voices(bot))
