"""VoicePlayback: finished results played in the requester's voice channel.

One queue and one worker task per server: results play one after another, never two at
once; the first connects the bot (or moves it to the result's channel), and the bot leaves
after `idle_seconds` with nothing to play, at once when its channel has nobody left but
bots, and on `stop`. Voice connection failures (timeouts, DAVE close code 4017, a missing
voice library) are logged and cost only that playback: the member already has the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord
from discord.channel import VocalGuildChannel

from cogs.voice._opus import ensure_opus
from cogs.voice._source import ClipSource

log = logging.getLogger(__name__)

VocalChannel = discord.VoiceChannel | discord.StageChannel

# Beyond discord.py's own connect timeout, before the wait on it gives up.
_CONNECT_GRACE = 5.0
_LEAVE_TIMEOUT = 10.0
_PREPARE_TIMEOUT = 30.0  # calling an item's `frames` (it should only build a generator)
_NEEDED: tuple[tuple[str, str], ...] = (
    ("view_channel", "View Channels"),
    ("connect", "Connect"),
    ("speak", "Speak"),
)
# On a stage the bot joins the audience; it may make itself a speaker only with this.
_NEEDED_ON_STAGE = (("mute_members", "Mute Members"),)
_CONNECT_ERRORS = (
    TimeoutError,
    discord.ClientException,  # ConnectionClosed (e.g. 4017 without DAVE) is one
    discord.HTTPException,
    OSError,
    RuntimeError,  # discord.py without PyNaCl or davey
)


class VoiceConnection(Protocol):
    """The slice of `discord.VoiceClient` the player uses."""

    @property
    def channel(self) -> VocalGuildChannel: ...

    def is_connected(self) -> bool: ...

    def is_playing(self) -> bool: ...

    def play(
        self,
        source: discord.AudioSource,
        *,
        after: Callable[[Exception | None], Any] | None = None,
    ) -> None: ...

    def stop(self) -> None: ...

    async def move_to(
        self,
        channel: discord.abc.Snowflake | None,
        *,
        timeout: float | None = 30.0,  # noqa: ASYNC109 - discord.VoiceClient's signature
    ) -> None: ...

    async def disconnect(self, *, force: bool = False) -> None: ...


Connect = Callable[[VocalGuildChannel], Awaitable[VoiceConnection]]
Frames = Callable[[], Iterable[bytes]]


def voice_client_connect(timeout: float) -> Connect:
    """The real connection: discord.py's VoiceClient, deafened (the bot never listens)."""

    async def connect(channel: VocalGuildChannel) -> VoiceConnection:
        return await channel.connect(cls=discord.VoiceClient, self_deaf=True, timeout=timeout)

    return connect


@dataclass(eq=False)
class _Item:
    channel_id: int
    user_id: int
    frames: Frames
    label: str


@dataclass(eq=False)
class _Guild:
    """One server's queue, its connection, and the worker task that owns both."""

    guild_id: int
    queue: deque[_Item] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    left: asyncio.Event = field(default_factory=asyncio.Event)
    connection: VoiceConnection | None = None
    playing: _Item | None = None
    leave_now: bool = False
    generation: int = 0  # bumped by stop: an item popped before it does not play
    task: asyncio.Task[None] | None = None


class VoicePlayback:
    """Plays results in members' voice channels; one per bot.

    The bot needs the voice states intent, and must forward `on_voice_state_update` to
    `voice_state_changed` (that is how it notices a channel has emptied).
    """

    def __init__(
        self,
        bot: discord.Client,
        idle_seconds: float,
        connect: Connect | None = None,
        *,
        connect_timeout: float = 20.0,
        max_queue: int = 20,
        max_clip_seconds: float = 900.0,
        on_played: Callable[[], None] | None = None,
    ) -> None:
        self._on_played = on_played  # the bot's metrics: a result played in voice
        self._bot = bot
        self._idle_seconds = idle_seconds
        self._connect_timeout = connect_timeout
        self._connect = connect or voice_client_connect(connect_timeout)
        self._max_queue = max_queue
        self._max_clip_seconds = max_clip_seconds
        self._guilds: dict[int, _Guild] = {}
        self._closed = False

    # ------------------------------------------------------------------ questions

    def missing_permissions(self, channel: VocalChannel) -> list[str]:
        """The permissions the bot lacks in `channel` to play there, by their names in
        Discord's settings ("View Channels", "Connect", "Speak", and on a stage "Mute
        Members"); empty when it has all."""
        granted = channel.permissions_for(channel.guild.me)
        needed = _NEEDED
        if isinstance(channel, discord.StageChannel):
            needed = (*_NEEDED, *_NEEDED_ON_STAGE)
        return [name for flag, name in needed if not getattr(granted, flag)]

    def voice_channel_of(self, guild_id: int, user_id: int) -> VocalChannel | None:
        """The voice or stage channel the member is connected to in that server, if any."""
        guild = self._bot.get_guild(guild_id)
        if guild is None:
            return None
        member = guild.get_member(user_id)
        channel = member.voice.channel if member is not None and member.voice else None
        if isinstance(channel, VocalChannel):
            return channel
        # Members the cache does not hold still have their voice state on the channel.
        vocals: list[VocalChannel] = [*guild.voice_channels, *guild.stage_channels]
        for vocal in vocals:
            if user_id in vocal.voice_states:
                return vocal
        return None

    def why_not(self, guild_id: int, user_id: int) -> str | None:
        """None when a result for this member can be queued now; else why not, for them."""
        return self._refusal(guild_id, self.voice_channel_of(guild_id, user_id))

    # ------------------------------------------------------------------ actions

    async def enqueue(self, guild_id: int, user_id: int, frames: Frames, label: str) -> str | None:
        """Queue one result for the member's current voice channel: None when queued, else
        the reason (`why_not`). `frames()` is called when its turn comes, on a worker
        thread, and must give 48 kHz stereo s16le PCM (e.g. `pcm_frames(data)`)."""
        channel = self.voice_channel_of(guild_id, user_id)
        reason = self._refusal(guild_id, channel)
        if reason is not None or channel is None:
            return reason
        state = self._guilds.get(guild_id)
        if state is None:
            state = self._guilds[guild_id] = _Guild(guild_id)
            state.task = asyncio.create_task(self._run(state), name=f"voice-{guild_id}")
        state.queue.append(_Item(channel.id, user_id, frames, label))
        state.wake.set()
        log.info("voice: queued %s in %s (%d waiting)", label, channel.id, len(state.queue))
        return None

    async def stop(self, guild_id: int) -> int:
        """Clear the server's queue, cut the result playing, leave; how many results were
        dropped (the one cut off included)."""
        state = self._guilds.get(guild_id)
        if state is None:
            return 0
        dropped = len(state.queue) + (state.playing is not None)
        state.queue.clear()
        state.generation += 1
        state.leave_now = True
        state.left.clear()
        if state.connection is not None:
            state.connection.stop()
        state.wake.set()
        wait = self._connect_timeout + _CONNECT_GRACE + _LEAVE_TIMEOUT
        try:
            async with asyncio.timeout(wait):
                await state.left.wait()
        except TimeoutError:
            log.warning("voice: guild %s did not leave in %.0f s; cancelling", guild_id, wait)
            await self._cancel(state)
            await self._leave(state)
        return dropped

    def voice_state_changed(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        """Call from `on_voice_state_update`: when the bot's channel has nobody left but
        bots, its queued results there are dropped, the one playing is cut, and it leaves."""
        state = self._guilds.get(member.guild.id)
        if state is None or state.connection is None or state.leave_now:
            return
        channel = state.connection.channel
        touched = {c.id for c in (before.channel, after.channel) if c is not None}
        if channel.id not in touched or self._has_listeners(channel):
            return
        log.info("voice: %s in guild %s has emptied; leaving", channel.id, state.guild_id)
        state.queue = deque(item for item in state.queue if item.channel_id != channel.id)
        state.leave_now = True
        state.connection.stop()
        state.wake.set()

    async def close(self) -> None:
        """Stop every server's playback and leave; cancel the workers."""
        self._closed = True
        states = list(self._guilds.values())
        for state in states:
            state.queue.clear()
        await asyncio.gather(*(self._cancel(state) for state in states))
        await asyncio.gather(*(self._leave(state) for state in states))
        self._guilds.clear()

    # ------------------------------------------------------------------ the worker

    async def _run(self, state: _Guild) -> None:
        try:
            while True:
                if state.leave_now:
                    state.leave_now = False
                    await self._leave(state)
                if state.queue:
                    await self._play_next(state)
                    continue
                if state.connection is None:
                    return
                state.wake.clear()
                try:
                    async with asyncio.timeout(self._idle_seconds):
                        await state.wake.wait()
                except TimeoutError:
                    log.info(
                        "voice: idle for %.0f s in guild %s", self._idle_seconds, state.guild_id
                    )
                    state.leave_now = True
        finally:
            if self._guilds.get(state.guild_id) is state:
                del self._guilds[state.guild_id]
            state.left.set()

    async def _play_next(self, state: _Guild) -> None:
        item = state.queue.popleft()
        generation = state.generation
        try:
            channel = self._playable_channel(state.guild_id, item)
            if channel is None or not await asyncio.to_thread(ensure_opus):
                return
            connection = await self._join(state, channel)
            if connection is None:
                return
            async with asyncio.timeout(_PREPARE_TIMEOUT):
                source = ClipSource(await asyncio.to_thread(item.frames))
            if generation != state.generation or state.leave_now:
                source.cleanup()  # stopped, or the channel emptied, meanwhile
                return
            await self._play(state, connection, item, source)
        except Exception:
            log.exception("voice: playing %s failed", item.label)

    def _playable_channel(self, guild_id: int, item: _Item) -> VocalChannel | None:
        guild = self._bot.get_guild(guild_id)
        channel = guild.get_channel(item.channel_id) if guild is not None else None
        if not isinstance(channel, VocalChannel):
            log.info("voice: %s skipped: its channel is gone", item.label)
            return None
        if not self._has_listeners(channel):
            log.info("voice: %s skipped: nobody left in %s", item.label, channel.id)
            return None
        missing = self.missing_permissions(channel)
        if missing:
            log.info("voice: %s skipped: the bot lacks %s", item.label, _and(missing))
            return None
        return channel

    async def _join(self, state: _Guild, channel: VocalChannel) -> VoiceConnection | None:
        """Connected to `channel`, connecting or moving as needed; None (logged) on failure."""
        connection = state.connection
        if connection is not None and not connection.is_connected():
            await self._leave(state)  # dropped (kicked, voice server gone): start afresh
            connection = None
        try:
            async with asyncio.timeout(self._connect_timeout + _CONNECT_GRACE):
                if connection is None:
                    connection = state.connection = await self._connect(channel)
                elif connection.channel.id != channel.id:
                    await connection.move_to(channel, timeout=self._connect_timeout)
                else:
                    return connection
                if isinstance(channel, discord.StageChannel):
                    await self._unsuppress(channel)
        except _CONNECT_ERRORS as error:
            log.warning(
                "voice: could not join %s in guild %s: %s: %s",
                channel.id,
                state.guild_id,
                type(error).__name__,
                error,
            )
            await self._leave(state)
            return None
        return connection

    async def _unsuppress(self, channel: discord.StageChannel) -> None:
        """Speak on the stage instead of listening in its audience (needs Mute Members)."""
        payload = {"channel_id": channel.id, "suppress": False, "request_to_speak_timestamp": None}
        try:
            await self._bot.http.edit_my_voice_state(channel.guild.id, payload)
        except discord.HTTPException as error:  # playing on is harmless: nobody hears it
            log.warning("voice: could not speak on stage %s: %s", channel.id, error)

    async def _play(
        self, state: _Guild, connection: VoiceConnection, item: _Item, source: ClipSource
    ) -> None:
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[Exception | None] = loop.create_future()

        def after(error: Exception | None) -> None:  # on discord.py's player thread
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(_settle, finished, error)

        try:
            connection.play(source, after=after)
        except discord.ClientException as error:
            source.cleanup()
            log.warning("voice: could not play %s: %s", item.label, error)
            return
        state.playing = item
        try:
            async with asyncio.timeout(self._max_clip_seconds):
                failure = await finished
            if failure is not None:
                log.warning("voice: playing %s failed: %r", item.label, failure)
            else:
                log.info("voice: played %s (%d frames)", item.label, source.frames_read)
                if self._on_played is not None:
                    self._on_played()
        except TimeoutError:
            log.warning(
                "voice: %s still playing after %.0f s; cut", item.label, self._max_clip_seconds
            )
        finally:
            state.playing = None
            if not finished.done():
                connection.stop()

    async def _leave(self, state: _Guild) -> None:
        connection, state.connection = state.connection, None
        guild = self._bot.get_guild(state.guild_id)
        # A connect cut short can leave discord.py's own client registered: leave it too.
        stale = guild.voice_client if guild is not None else None
        voices: list[VoiceConnection | discord.VoiceProtocol] = []
        if connection is not None:
            voices.append(connection)
        if stale is not None and id(stale) != id(connection):
            voices.append(stale)
        for voice in voices:
            try:
                async with asyncio.timeout(_LEAVE_TIMEOUT):
                    await voice.disconnect(force=True)
            except (TimeoutError, discord.ClientException, discord.HTTPException, OSError) as e:
                log.warning("voice: leaving guild %s: %s: %s", state.guild_id, type(e).__name__, e)
        if voices:
            log.info("voice: left guild %s", state.guild_id)
        state.left.set()

    async def _cancel(self, state: _Guild) -> None:
        task = state.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=_LEAVE_TIMEOUT)

    # ------------------------------------------------------------------ helpers

    def _refusal(self, guild_id: int, channel: VocalChannel | None) -> str | None:
        if self._closed:
            return "the bot is shutting down"
        if channel is None:
            return "you are not in a voice channel"
        missing = self.missing_permissions(channel)
        if missing:
            return f"the bot lacks {_and(missing)} in {channel.mention}"
        if self._is_full(channel):
            return f"{channel.mention} is full"
        state = self._guilds.get(guild_id)
        if state is not None and len(state.queue) >= self._max_queue:
            return f"this server already has {len(state.queue)} results waiting to play"
        return None

    def _has_listeners(self, channel: VocalGuildChannel) -> bool:
        """Whether anyone but bots is connected to `channel` (unknown members count)."""
        me = self._bot.user.id if self._bot.user is not None else None
        for user_id in channel.voice_states:
            member = channel.guild.get_member(user_id)
            if user_id != me and (member is None or not member.bot):
                return True
        return False

    def _is_full(self, channel: VocalChannel) -> bool:
        """Full to the bot: at its user limit, the bot not in it, and no Move Members."""
        me = channel.guild.me
        if not channel.user_limit or me.id in channel.voice_states:
            return False
        at_limit = len(channel.voice_states) >= channel.user_limit
        return at_limit and not channel.permissions_for(me).move_members


def _settle(future: asyncio.Future[Exception | None], error: Exception | None) -> None:
    if not future.done():
        future.set_result(error)


def _and(names: list[str]) -> str:
    """'Connect', 'Connect and Speak', 'View Channels, Connect and Speak'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
