"""Results as native voice messages and within the upload limit, end to end: the real bot
(discord.py) against the fake Discord, which enforces the voice-message rules (one audio
attachment, no content, its metadata, Send Voice Messages) and the upload limits."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from cogs.wording import CANNOT_CONVERT, VOICE_MESSAGE_NOTE
from tests.audio_files import opus_facts, real_mp3
from tests.fakes.discord import (
    DEFAULT_BOT_PERMISSIONS,
    IS_VOICE_MESSAGE,
    SEND_VOICE_MESSAGES,
    FakeInteraction,
    FakeMessage,
)
from tests.fakes.segmind import JobScript
from tests.harness import World, world

SECONDS = 2.0


def voice_messages(w: World, channel_id: int | None = None) -> list[FakeMessage]:
    channel = channel_id or w.discord.channel_id
    return [m for m in w.discord.channel_messages(channel) if m.flags & IS_VOICE_MESSAGE]


async def speak(w: World, **options: Any) -> FakeInteraction:
    channel_id = options.pop("channel_id", None)
    kwargs = {"channel_id": channel_id} if channel_id is not None else {}
    return await w.discord.slash(
        "speak", {"voice": w.clip(), "text": "Hello there", **options}, **kwargs
    )


async def test_a_result_can_be_a_voice_message_replying_to_the_job_message(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        interaction = await speak(w, **{"as": "voice_message"})
        await w.discord.wait_for(lambda: bool(voice_messages(w)), 15)
        await w.job_ended(interaction)

        [voice] = voice_messages(w)
        assert voice.content == ""
        [clip] = voice.attachments
        assert clip.filename.endswith(".ogg")
        assert clip.content_type == "audio/ogg"
        _, codec, rate, channels, seconds = opus_facts(clip.data)
        assert (codec, channels, rate) == ("opus", 1, 48000)
        assert abs(seconds - SECONDS) < 0.05
        assert clip.duration_secs is not None
        assert abs(clip.duration_secs - SECONDS) < 0.05
        assert clip.waveform is not None
        assert 1 <= len(base64.b64decode(clip.waveform)) <= 256
        assert voice.mentions == []  # a reply that pings nobody

        # The job's own message keeps the label, the quote and the buttons, no file.
        original = interaction.original
        assert original is not None
        assert voice.message_reference is not None
        assert voice.message_reference["message_id"] == str(original.id)
        assert original.attachments == []
        assert VOICE_MESSAGE_NOTE in original.content
        assert "AI" in original.content
        assert original.components  # Again / Edit text / Delete

        record = await w.bot.store.get(str(interaction.id))
        assert record is not None
        assert record.delivery_channel == "channel"
        assert record.delivery_message_id == voice.id
        assert record.send_as == "voice_message"


async def test_without_send_voice_messages_the_result_is_a_file_with_a_note(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        muted = w.discord.add_channel(
            "no-voice-messages", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_VOICE_MESSAGES
        )
        interaction = await speak(w, channel_id=muted, **{"as": "voice_message"})
        answer = await w.answered(interaction, 15)
        [file] = answer.attachments
        assert file.filename.endswith(".mp3")  # nothing converted for nothing
        assert "Send Voice Messages" in answer.content
        assert voice_messages(w, muted) == []


async def test_audio_that_cannot_be_converted_goes_as_a_file(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        # The fake's default audio is a few garbage MPEG frames: nothing decodes them.
        interaction = await speak(w, **{"as": "voice_message"})
        answer = await w.answered(interaction, 15)
        assert len(answer.attachments) == 1
        assert CANNOT_CONVERT in answer.content
        assert voice_messages(w) == []


async def test_a_refused_voice_message_falls_back_to_a_file(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        # Discord's answer when the permission changed after the bot looked.
        w.discord.inject_error(
            "POST",
            rf"/channels/{w.discord.channel_id}/messages$",
            403,
            50173,
            "You cannot send voice messages in this channel.",
        )
        interaction = await speak(w, **{"as": "voice_message"})
        answer = await w.answered(interaction, 15)
        [file] = answer.attachments
        assert file.filename.endswith(".ogg")  # the converted audio, as a file
        assert "may not send voice messages" in answer.content
        assert voice_messages(w) == []


async def test_the_server_default_applies_when_the_member_does_not_choose(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        set_default = await w.discord.slash(
            "voiceclone",
            {"as": "voice message"},
            subcommand="delivery",
            user_id=w.discord.owner_id,
        )
        await w.discord.wait_for(lambda: bool(set_default.original), 5)
        assert set_default.original is not None
        assert "a voice message" in set_default.original.content
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)), JobScript(audio=real_mp3(1)))
        first = await speak(w)
        await w.discord.wait_for(lambda: len(voice_messages(w)) == 1, 15)
        await w.job_ended(first)
        # The member's own choice wins over the server's.
        second = await speak(w, **{"as": "file"})
        answer = await w.answered(second, 15)
        assert answer.attachments[0].filename.endswith(".mp3")
        assert len(voice_messages(w)) == 1


async def test_audio_over_the_upload_limit_is_re_encoded_to_fit(tmp_path: Path) -> None:
    audio = real_mp3(20.0)  # ~320 KB of 128 kb/s MP3
    limit = len(audio) // 2  # 20 s of Opus fits at 64 kb/s (~160 KB) or below
    async with world(tmp_path, {"attachment_size_limit": limit}) as w:
        w.segmind.script_jobs(JobScript(audio=audio))
        interaction = await speak(w)
        answer = await w.answered(interaction, 20)
        [file] = answer.attachments
        assert file.filename.endswith(".ogg")
        assert file.size <= limit
        _, codec, _, _, seconds = opus_facts(file.data)
        assert codec == "opus"
        assert abs(seconds - 20.0) < 0.1


async def test_audio_that_cannot_fit_even_compressed_goes_as_a_link(tmp_path: Path) -> None:
    audio = real_mp3(20.0)
    # 20 s at the 24 kb/s floor is ~60 KB: a 20 KB limit cannot be met.
    async with world(tmp_path, {"attachment_size_limit": 20_000}) as w:
        w.segmind.script_jobs(JobScript(audio=audio))
        interaction = await speak(w)
        answer = await w.answered(interaction, 20)
        assert answer.attachments == []
        assert "even compressed" in answer.content
        assert "/files/" in answer.content  # Segmind's link
