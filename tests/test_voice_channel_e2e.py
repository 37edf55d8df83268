"""Results played in the requester's voice channel, end to end: /speak play:True through
the real bot and discord.py against the fake Discord's voice states, with a stand-in for
the voice connection (`tests/fakes/voice_client.py`: discord.py's own AudioPlayer and real
libopus, the packets kept in lists). There is no voice server here, so the connection to
Discord's voice servers itself is not tested."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from discord.channel import VocalGuildChannel

import cogs.voice._cog
from cogs.voice import VoiceConnection
from tests.audio_files import real_mp3
from tests.fakes.discord import DEFAULT_BOT_PERMISSIONS, FakeInteraction
from tests.fakes.discord._constants import CONNECT, GUILD_VOICE, SPEAK
from tests.fakes.segmind import JobScript
from tests.fakes.voice_client import FakeVoice
from tests.harness import World, world

SECONDS = 1.5


@pytest.fixture
def voice(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeVoice]:
    """The bot's voice connections go to a FakeVoice, made once the bot exists."""
    made: dict[str, FakeVoice] = {}

    async def connect(channel: VocalGuildChannel) -> VoiceConnection:
        return await made["voice"].connect(channel)

    monkeypatch.setattr(cogs.voice._cog, "CONNECT", connect)
    return made


@contextlib.asynccontextmanager
async def voice_world(
    tmp_path: Path, made: dict[str, FakeVoice], **settings: str
) -> AsyncIterator[tuple[World, FakeVoice]]:
    async with world(tmp_path, None, **settings) as w:
        made["voice"] = FakeVoice(w.bot, w.discord)
        yield w, made["voice"]


async def speak_and_play(w: World, **options: Any) -> FakeInteraction:
    return await w.discord.slash(
        "speak", {"voice": w.clip(), "text": "Hello there", "play": True, **options}
    )


async def test_a_result_is_posted_and_played_in_the_members_voice_channel(
    tmp_path: Path, voice: dict[str, FakeVoice]
) -> None:
    async with voice_world(tmp_path, voice) as (w, fake):
        lounge = w.discord.add_channel("Lounge", kind=GUILD_VOICE)
        await w.discord.join_voice(w.discord.user_id, lounge)
        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        interaction = await speak_and_play(w)
        answer = await w.answered(interaction, 15)
        assert len(answer.attachments) == 1  # the file as well
        assert "Not played" not in answer.content
        play = await fake.next_finished()
        assert play.channel_id == lounge
        assert all(len(frame) == 3840 for frame in play.pcm)
        assert len(play.pcm) == math.ceil(SECONDS * 50)
        assert len(play.opus) == len(play.pcm)  # each encoded by real libopus
        await w.job_ended(interaction)
        record = await w.bot.store.get(str(interaction.id))
        assert record is not None
        assert record.play


async def test_not_in_a_voice_channel_the_result_says_so(
    tmp_path: Path, voice: dict[str, FakeVoice]
) -> None:
    async with voice_world(tmp_path, voice) as (w, fake):
        interaction = await speak_and_play(w)
        answer = await w.answered(interaction, 15)
        assert len(answer.attachments) == 1
        assert "Not played in a voice channel: you are not in a voice channel" in answer.content
        assert fake.connections == []


async def test_missing_connect_and_speak_are_named(
    tmp_path: Path, voice: dict[str, FakeVoice]
) -> None:
    async with voice_world(tmp_path, voice) as (w, fake):
        closed = w.discord.add_channel(
            "Quiet", kind=GUILD_VOICE, bot_permissions=DEFAULT_BOT_PERMISSIONS & ~(CONNECT | SPEAK)
        )
        await w.discord.join_voice(w.discord.user_id, closed)
        interaction = await speak_and_play(w)
        answer = await w.answered(interaction, 15)
        assert "the bot lacks Connect and Speak in" in answer.content
        assert fake.connections == []


async def test_the_server_default_plays_and_voiceclone_stop_leaves(
    tmp_path: Path, voice: dict[str, FakeVoice]
) -> None:
    async with voice_world(tmp_path, voice, VOICE_IDLE_SECONDS="600") as (w, fake):
        lounge = w.discord.add_channel("Lounge", kind=GUILD_VOICE)
        await w.discord.join_voice(w.discord.user_id, lounge)
        owner = w.discord.owner_id
        default = await w.discord.slash(
            "voiceclone", {"play": "on"}, subcommand="delivery", user_id=owner
        )
        await w.discord.wait_for(lambda: bool(default.original), 5)
        assert default.original is not None
        assert "voice channel: on" in default.original.content

        w.segmind.script_jobs(JobScript(audio=real_mp3(SECONDS)))
        interaction = await w.discord.slash("speak", {"voice": w.clip(), "text": "Hi"})
        await w.answered(interaction, 15)
        await fake.next_finished()
        connection = fake.connections[0]
        assert connection.is_connected()  # it stays: the idle time is 10 minutes

        stop = await w.discord.slash("voiceclone", {}, subcommand="stop", user_id=owner)
        await w.discord.wait_for(lambda: bool(stop.original), 10)
        assert stop.original is not None
        assert "left the voice channel" in stop.original.content
        assert not connection.is_connected()
        bot_id = w.discord.bot_user_id
        await w.discord.wait_for(lambda: w.discord.voice_channel_of(bot_id) is None, 5)
