"""VoicePlayback and ClipSource (cogs/voice/) against the real discord.py client and the fake
Discord's voice states, with the voice connection injected.

What Discord's voice servers do (UDP, encryption, DAVE) cannot be tested here. The injected
connection plays through discord.py's own `AudioPlayer` (its real thread and 20 ms pacing)
and encodes every frame with real libopus, loaded by `ensure_opus`; it tells Discord's
gateway where it is with op 4, as discord.py's VoiceClient does.
Synchronisation is by events (the connection's, the client's voice state updates, the
fake's `wait_for`); the clock is read only to compare when things happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import math
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

import av
import discord
import numpy as np
import pytest
from discord.ext import commands

from cogs.voice import (
    FRAME_BYTES,
    ClipSource,
    Connect,
    VoiceCog,
    VoicePlayback,
    ensure_opus,
    voice_client_connect,
)
from tests.fakes.discord import (
    CONNECT,
    GUILD_STAGE_VOICE,
    GUILD_VOICE,
    MUTE_MEMBERS,
    SPEAK,
    VIEW_CHANNEL,
    FakeDiscord,
)
from tests.fakes.voice_client import FakeVoice

VOICE_PERMISSIONS = VIEW_CHANNEL | CONNECT | SPEAK
FRAMES_PER_SECOND = 50

# ------------------------------------------------------------------ audio


def _wav(seconds: float, rate: int = 44_100) -> bytes:
    """A mono 16-bit WAV of a 440 Hz tone: exactly `seconds` long."""
    samples = round(seconds * rate)
    tone = (np.sin(np.arange(samples) * 2 * np.pi * 440 / rate) * 8000).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(tone.tobytes())
    return out.getvalue()


def _decode(data: bytes) -> Iterator[bytes]:
    """Any audio PyAV reads, as 48 kHz stereo s16le PCM chunks (a stand-in for helper A's
    `bot.transcode.pcm_frames`, which the bot passes in production)."""
    with av.open(io.BytesIO(data), mode="r") as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=48_000)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                yield out.to_ndarray().tobytes()
        for out in resampler.resample(None):
            yield out.to_ndarray().tobytes()


def _tone(marker: int, seconds: float, piece: int = 1000) -> Callable[[], Iterator[bytes]]:
    """PCM whose every sample is `marker`, in pieces of `piece` bytes (not whole frames)."""
    total = round(seconds * 48_000) * 4

    def chunks() -> Iterator[bytes]:
        pcm = np.full(total // 2, marker, dtype="<i2").tobytes()
        for start in range(0, total, piece):
            yield pcm[start : start + piece]

    return chunks


class _LogEvent(logging.Handler):
    """Sets `event` when cogs.voice logs a line containing `text` (logged on the loop)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.WARNING)
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@contextlib.contextmanager
def _logged(text: str) -> Iterator[asyncio.Event]:
    handler = _LogEvent(text)
    logger = logging.getLogger("cogs.voice")
    logger.addHandler(handler)
    try:
        yield handler.event
    finally:
        logger.removeHandler(handler)


# ------------------------------------------------------------------ the bot


class VoiceBot(commands.Bot):
    """What the product's bot has for voice: the guilds and voice states intents, and the
    VoiceCog; every voice state update is also queued for the test."""

    def __init__(self) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.voice_states = True
        super().__init__(
            command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05
        )
        self.ready = asyncio.Event()
        self.voice_events: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.voice_events.put_nowait((member.id, after.channel.id if after.channel else None))


@dataclass
class World:
    fake: FakeDiscord
    bot: VoiceBot
    voice: FakeVoice
    lounge: int  # voice channels of the default guild the bot may use
    den: int
    closed: int  # the bot may see it, not connect or speak
    small: int  # user limit 1
    stage: int  # a stage where the bot may speak (Mute Members)
    audience: int  # a stage where it may not
    far_guild: int
    far: int  # a voice channel of the second guild
    far_user: int

    def guild(self) -> discord.Guild:
        guild = self.bot.get_guild(self.fake.guild_id)
        assert guild is not None
        return guild

    async def playback(
        self, idle_seconds: float = 60.0, *, connect: Connect | None = None, **options: Any
    ) -> VoicePlayback:
        """A playback on the bot through VoiceCog (which `bot.close()` unloads, closing it)."""
        playback = VoicePlayback(self.bot, idle_seconds, connect or self.voice.connect, **options)
        await self.bot.add_cog(VoiceCog(playback))
        return playback

    async def join(self, user_id: int, channel_id: int | None) -> None:
        """Move the member, and wait until the bot has seen it."""
        await self.fake.move_voice(user_id, channel_id)
        while await asyncio.wait_for(self.bot.voice_events.get(), 5) != (user_id, channel_id):
            pass


@pytest.fixture
async def world() -> AsyncIterator[World]:
    assert await asyncio.to_thread(ensure_opus)
    async with FakeDiscord() as fake:
        with fake.patch_discord_py():
            lounge = fake.add_channel("Lounge", kind=GUILD_VOICE, bot_permissions=VOICE_PERMISSIONS)
            den = fake.add_channel("Den", kind=GUILD_VOICE, bot_permissions=VOICE_PERMISSIONS)
            closed = fake.add_channel("Closed", kind=GUILD_VOICE, bot_permissions=VIEW_CHANNEL)
            small = fake.add_channel(
                "Small", kind=GUILD_VOICE, bot_permissions=VOICE_PERMISSIONS, user_limit=1
            )
            stage = fake.add_channel(
                "Stage", kind=GUILD_STAGE_VOICE, bot_permissions=VOICE_PERMISSIONS | MUTE_MEMBERS
            )
            audience = fake.add_channel(
                "Audience", kind=GUILD_STAGE_VOICE, bot_permissions=VOICE_PERMISSIONS
            )
            far_guild = fake.add_guild("Far Server")
            far = fake.add_channel(
                "Far", kind=GUILD_VOICE, guild_id=far_guild, bot_permissions=VOICE_PERMISSIONS
            )
            far_user = fake.add_user("far", guild_id=far_guild)
            bot = VoiceBot()
            runner = asyncio.create_task(bot.start(fake.token))
            try:
                await asyncio.wait_for(bot.ready.wait(), timeout=5)
                yield World(
                    fake,
                    bot,
                    FakeVoice(bot, fake),
                    lounge,
                    den,
                    closed,
                    small,
                    stage,
                    audience,
                    far_guild,
                    far,
                    far_user,
                )
            finally:
                await bot.close()
                await runner


# ------------------------------------------------------------------ ClipSource


def test_a_decoded_clip_gives_ceil_duration_times_50_frames_of_3840_bytes() -> None:
    for seconds in (0.31, 1.0, 0.05):
        source = ClipSource(_decode(_wav(seconds)))
        frames = list(iter(source.read, b""))
        assert {len(frame) for frame in frames} == {FRAME_BYTES}
        assert FRAME_BYTES == 3840  # 20 ms of 48 kHz stereo s16le
        assert len(frames) == math.ceil(seconds * FRAMES_PER_SECOND)
        assert source.read() == b""  # and it stays ended
        assert not source.is_opus()


def test_pieces_are_regrouped_and_the_last_frame_padded_with_silence() -> None:
    pcm = bytes(range(256)) * 61  # 15616 bytes: 4 frames and 256 bytes
    source = ClipSource(pcm[i : i + 1000] for i in range(0, len(pcm), 1000))
    frames = list(iter(source.read, b""))
    assert [len(f) for f in frames] == [FRAME_BYTES] * 5
    assert b"".join(frames) == pcm + bytes(5 * FRAME_BYTES - len(pcm))
    assert source.frames_read == 5


def test_cleanup_closes_the_generator() -> None:
    closed: list[bool] = []

    def frames() -> Iterator[bytes]:
        try:
            while True:
                yield bytes(FRAME_BYTES)
        finally:
            closed.append(True)

    source = ClipSource(frames())
    assert source.read() == bytes(FRAME_BYTES)
    source.cleanup()
    source.cleanup()
    assert closed == [True]
    assert source.read() == b""


# ------------------------------------------------------------------ questions


async def test_not_in_voice_missing_permissions_and_full_channels(world: World) -> None:
    playback = await world.playback()
    fake, guild = world.fake, world.guild()
    assert playback.voice_channel_of(fake.guild_id, fake.user_id) is None
    assert playback.why_not(fake.guild_id, fake.user_id) == "you are not in a voice channel"

    await world.join(fake.user_id, world.closed)
    closed = guild.get_channel(world.closed)
    assert isinstance(closed, discord.VoiceChannel)
    assert playback.voice_channel_of(fake.guild_id, fake.user_id) == closed
    assert playback.missing_permissions(closed) == ["Connect", "Speak"]
    reason = f"the bot lacks Connect and Speak in <#{world.closed}>"
    assert playback.why_not(fake.guild_id, fake.user_id) == reason
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.1), "one") == reason

    await world.join(fake.user_id, world.small)  # user limit 1, and they fill it
    assert playback.why_not(fake.guild_id, fake.user_id) == f"<#{world.small}> is full"

    await world.join(fake.user_id, world.audience)
    audience = guild.get_channel(world.audience)
    assert isinstance(audience, discord.StageChannel)
    assert playback.missing_permissions(audience) == ["Mute Members"]  # to leave the audience

    await world.join(fake.user_id, world.lounge)
    lounge = guild.get_channel(world.lounge)
    assert isinstance(lounge, discord.VoiceChannel)
    assert playback.missing_permissions(lounge) == []
    assert playback.why_not(fake.guild_id, fake.user_id) is None
    assert world.voice.connections == []  # asking connects nothing


# ------------------------------------------------------------------ playing


async def test_a_result_plays_through_discord_pys_audio_player(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    clip = _wav(0.31)
    assert await playback.enqueue(fake.guild_id, fake.user_id, lambda: _decode(clip), "r1") is None
    connection = await world.voice.next_connection()
    play = await world.voice.next_finished()
    assert (play.guild_id, play.channel_id) == (fake.guild_id, world.lounge)
    assert len(play.pcm) == math.ceil(0.31 * FRAMES_PER_SECOND)
    assert {len(frame) for frame in play.pcm} == {FRAME_BYTES}
    assert len(play.opus) == len(play.pcm)
    assert all(0 < len(packet) < FRAME_BYTES for packet in play.opus)  # real Opus packets
    assert connection.ws.states == [discord.SpeakingState.voice, discord.SpeakingState.none]
    # The bot told Discord's gateway where it went, deafened, and Discord agreed.
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) == world.lounge)
    assert fake.voice_state_requests[-1]["self_deaf"] is True


async def test_a_servers_queue_plays_in_order_one_at_a_time(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    for marker in (1, 2, 3):
        assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(marker, 0.2), "r") is None
    plays = [await world.voice.next_finished() for _ in range(3)]
    assert [p.marker for p in plays] == [1, 2, 3]
    assert [len(p.pcm) for p in plays] == [10, 10, 10]
    for earlier, later in itertools.pairwise(plays):
        assert earlier.ended_at is not None
        assert later.started_at >= earlier.ended_at
    assert world.voice.most_at_once == 1
    assert len(world.voice.connections) == 1  # joined once, stayed for the queue


async def test_a_result_for_another_channel_plays_after_a_move(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    other = fake.add_user("other")
    await world.join(fake.user_id, world.lounge)
    await world.join(other, world.den)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.1), "r1") is None
    assert await playback.enqueue(fake.guild_id, other, _tone(2, 0.1), "r2") is None
    plays = [await world.voice.next_finished() for _ in range(2)]
    assert [(p.marker, p.channel_id) for p in plays] == [(1, world.lounge), (2, world.den)]
    assert world.voice.moves == [world.den]
    assert len(world.voice.connections) == 1
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) == world.den)


async def test_two_servers_play_at_the_same_time(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    await world.join(world.far_user, world.far)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.5), "here") is None
    assert await playback.enqueue(world.far_guild, world.far_user, _tone(2, 0.5), "far") is None
    plays = {p.guild_id: p for p in [await world.voice.next_finished() for _ in range(2)]}
    here, far = plays[fake.guild_id], plays[world.far_guild]
    assert (here.marker, far.marker) == (1, 2)
    assert here.ended_at is not None
    assert far.ended_at is not None
    assert here.started_at < far.ended_at
    assert far.started_at < here.ended_at
    assert world.voice.most_at_once == 2


async def test_stop_clears_the_queue_and_leaves(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    for marker in (1, 2, 3):
        assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(marker, 3), "r") is None
    connection = await world.voice.next_connection()
    await world.voice.started(1)
    assert await playback.stop(fake.guild_id) == 3
    assert connection.left.is_set()
    cut = await world.voice.next_finished()
    assert len(cut.pcm) < 3 * FRAMES_PER_SECOND
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) is None)
    assert fake.voice_state_requests[-1]["channel_id"] is None
    assert [p.marker for p in world.voice.plays] == [1]
    assert await playback.stop(fake.guild_id) == 0
    # The server can play again afterwards.
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(4, 0.1), "r4") is None
    assert (await world.voice.next_finished()).marker == 4


async def test_leaves_after_idle_seconds(world: World) -> None:
    playback = await world.playback(idle_seconds=0.2)
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.1), "r1") is None
    connection = await world.voice.next_connection()
    play = await world.voice.next_finished()
    await asyncio.wait_for(connection.left.wait(), timeout=5)
    assert play.ended_at is not None
    assert time.perf_counter() - play.ended_at >= 0.2
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) is None)


async def test_leaves_at_once_when_only_bots_are_left(world: World) -> None:
    playback = await world.playback(idle_seconds=60)
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 3), "long") is None
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(2, 3), "next") is None
    connection = await world.voice.next_connection()
    await world.voice.started(1)
    await world.join(fake.user_id, None)
    await asyncio.wait_for(connection.left.wait(), timeout=2)
    cut = await world.voice.next_finished()
    assert len(cut.pcm) < 3 * FRAMES_PER_SECOND
    assert [p.marker for p in world.voice.plays] == [1]  # the one queued there was dropped
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) is None)


async def test_a_failed_connect_is_logged_and_the_next_result_plays(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    playback = await world.playback()
    fake = world.fake
    dave = discord.ConnectionClosed(
        cast(Any, SimpleNamespace(close_code=4017)), shard_id=None, code=4017
    )
    world.voice.failures = [dave, TimeoutError()]
    await world.join(fake.user_id, world.lounge)
    caplog.set_level(logging.WARNING, logger="cogs.voice")
    for marker in (1, 2, 3):
        assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(marker, 0.1), "r") is None
    play = await world.voice.next_finished()
    assert play.marker == 3
    joins = [r.getMessage() for r in caplog.records if "could not join" in r.getMessage()]
    assert len(joins) == 2
    assert "ConnectionClosed" in joins[0]
    assert "4017" in joins[0]
    assert "TimeoutError" in joins[1]


async def test_discord_pys_own_voice_client_times_out_without_a_voice_server(
    world: World,
) -> None:
    """The default `connect`: the fake never sends VOICE_SERVER_UPDATE, as a voice server
    that never answers; the wait is bounded, logged, and the bot leaves."""
    fake = world.fake
    playback = await world.playback(connect=voice_client_connect(0.3), connect_timeout=0.3)
    await world.join(fake.user_id, world.lounge)
    with _logged("could not join") as failed:
        assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.1), "r1") is None
        await asyncio.wait_for(failed.wait(), timeout=5)
    await fake.wait_for(lambda: len(fake.voice_state_requests) >= 2)
    [joining, *leaving] = [r["channel_id"] for r in fake.voice_state_requests]
    assert (joining, set(leaving)) == (world.lounge, {None})  # discord.py left on its own
    await fake.wait_for(lambda: fake.voice_channel_of(fake.bot_user_id) is None)
    assert world.guild().voice_client is None


async def test_unloading_the_cog_closes_the_playback_in_every_server(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.lounge)
    await world.join(world.far_user, world.far)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 3), "here") is None
    assert await playback.enqueue(world.far_guild, world.far_user, _tone(2, 3), "far") is None
    await world.voice.started(2)
    await world.bot.remove_cog("VoiceCog")  # what bot.close() does with every cog
    assert all(c.left.is_set() for c in world.voice.connections)
    assert len(world.voice.connections) == 2
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(3, 0.1), "late") == (
        "the bot is shutting down"
    )


async def test_on_a_stage_the_bot_makes_itself_a_speaker(world: World) -> None:
    playback = await world.playback()
    fake = world.fake
    await world.join(fake.user_id, world.stage)
    assert await playback.enqueue(fake.guild_id, fake.user_id, _tone(1, 0.1), "r1") is None
    play = await world.voice.next_finished()
    assert play.channel_id == world.stage
    [patch] = fake.requests_to("PATCH", r"/voice-states/@me$")
    assert patch.status == 204
    assert patch.json == {
        "channel_id": world.stage,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    assert fake.guild(fake.guild_id).voice_states[fake.bot_user_id].suppress is False
    assert fake.guild(fake.guild_id).voice_states[fake.user_id].suppress is True  # audience
