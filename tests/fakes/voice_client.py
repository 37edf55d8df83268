"""A stand-in for discord.py's VoiceClient, for tests: there is no voice server here.

`FakeVoice.connect` is what `VoicePlayback` (cogs/voice/) is given to connect with. Its
connections play through discord.py's own `AudioPlayer` (its real thread and 20 ms pacing),
encode every frame with real libopus, and tell the fake Discord's gateway where the bot is
with op 4 as discord.py's VoiceClient does; the packets go to lists instead of a socket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import discord
import numpy as np
from discord.channel import VocalGuildChannel
from discord.player import AudioPlayer

from cogs.voice import VoiceConnection
from tests.fakes.discord import FakeDiscord


def marker_of(frame: bytes) -> int:
    """The value of a frame's first sample (tests mark each clip by a constant sample)."""
    return int(np.frombuffer(frame[:2], dtype="<i2")[0])


@dataclass(eq=False)
class Play:
    """One `play` call: what reached the voice socket, and when."""

    guild_id: int
    channel_id: int
    started_at: float
    pcm: list[bytes] = field(default_factory=list)  # each frame as the source gave it
    opus: list[bytes] = field(default_factory=list)  # each as libopus encoded it
    ended_at: float | None = None

    @property
    def marker(self) -> int:
        return marker_of(self.pcm[0])


class _SpeakingSocket:
    """The voice websocket's `speak`, which AudioPlayer calls from its thread."""

    def __init__(self) -> None:
        self.states: list[discord.SpeakingState] = []

    async def speak(self, state: discord.SpeakingState) -> None:
        self.states.append(state)


class FakeVoiceClient:
    """Plays like discord.VoiceClient (its AudioPlayer thread, real libopus) and moves the
    bot with op 4 like it does; the packets go to lists instead of a UDP socket."""

    def __init__(self, voice: FakeVoice, channel: VocalGuildChannel) -> None:
        self.voice = voice
        self.channel = channel
        self.client = voice.bot  # AudioPlayer reads `client.client.loop`
        self.ws = _SpeakingSocket()
        self.timeout = 1.0
        self.encoder = discord.opus.Encoder()
        self.connected = True
        self.left = asyncio.Event()
        self._player: AudioPlayer | None = None
        self._play: Play | None = None

    # What AudioPlayer calls, on its thread.
    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        if encode and self._play is not None:
            self._play.pcm.append(data)
            self._play.opus.append(self.encoder.encode(data, self.encoder.SAMPLES_PER_FRAME))
            if len(self._play.pcm) == 1:
                self.client.loop.call_soon_threadsafe(self.voice.sounding.set)

    def wait_until_connected(self, timeout: float | None = 30.0) -> bool:
        return self.connected

    # The VoiceConnection protocol.
    def is_connected(self) -> bool:
        return self.connected

    def is_playing(self) -> bool:
        return self._player is not None and self._player.is_playing()

    def play(
        self,
        source: discord.AudioSource,
        *,
        after: Callable[[Exception | None], Any] | None = None,
    ) -> None:
        if not self.connected:
            raise discord.ClientException("Not connected to voice.")
        if self.is_playing():
            raise discord.ClientException("Already playing audio.")
        play = self._play = Play(self.channel.guild.id, self.channel.id, time.perf_counter())
        self.voice.plays.append(play)
        self.voice.playing_now += 1
        self.voice.most_at_once = max(self.voice.most_at_once, self.voice.playing_now)

        loop = self.voice.bot.loop

        def finished(error: Exception | None) -> None:  # on the player thread
            play.ended_at = time.perf_counter()
            self.voice.playing_now -= 1
            if after is not None:
                after(error)
            loop.call_soon_threadsafe(self.voice.finished.put_nowait, play)

        self._player = AudioPlayer(source, cast(discord.VoiceClient, self), after=finished)
        self._player.start()

    def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None

    async def move_to(
        self,
        channel: discord.abc.Snowflake | None,
        *,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - discord.VoiceClient's signature
    ) -> None:
        assert isinstance(channel, VocalGuildChannel)
        await self.voice.arrive(channel)
        self.voice.moves.append(channel.id)
        self.channel = channel

    async def disconnect(self, *, force: bool = False) -> None:
        self.stop()
        if self.connected:
            self.connected = False
            await self.channel.guild.change_voice_state(channel=None)
        self.left.set()


class FakeVoice:
    """The injected `connect`: every connection made, every play, failures to raise."""

    def __init__(self, bot: discord.Client, fake: FakeDiscord) -> None:
        self.bot = bot
        self.fake = fake
        self.connections: list[FakeVoiceClient] = []
        self.plays: list[Play] = []
        self.moves: list[int] = []
        self.failures: list[BaseException] = []  # raised by the next connects, in order
        self.connected = asyncio.Event()
        self.sounding = asyncio.Event()  # set when a play has sent its first frame
        self.finished: asyncio.Queue[Play] = asyncio.Queue()  # plays, as they end
        self.playing_now = 0  # changed on player threads; read after they are done
        self.most_at_once = 0

    async def connect(self, channel: VocalGuildChannel) -> VoiceConnection:
        if self.failures:
            raise self.failures.pop(0)
        await self.arrive(channel)
        connection = FakeVoiceClient(self, channel)
        self.connections.append(connection)
        self.connected.set()
        return connection

    async def arrive(self, channel: VocalGuildChannel) -> None:
        """Op 4, then wait for Discord to have the bot there, as discord.py's VoiceClient
        waits for its voice state before it counts as connected."""
        await channel.guild.change_voice_state(channel=channel, self_deaf=True)
        bot_id, guild_id = self.fake.bot_user_id, channel.guild.id
        await self.fake.wait_for(lambda: self.fake.voice_channel_of(bot_id, guild_id) == channel.id)

    async def next_finished(self) -> Play:
        return await asyncio.wait_for(self.finished.get(), timeout=5)

    async def next_connection(self) -> FakeVoiceClient:
        await asyncio.wait_for(self.connected.wait(), timeout=5)
        self.connected.clear()
        return self.connections[-1]

    async def started(self, count: int) -> None:
        """Until `count` plays have sent a frame."""
        async with asyncio.timeout(5):
            while sum(1 for play in self.plays if play.pcm) < count:
                self.sounding.clear()
                await self.sounding.wait()
