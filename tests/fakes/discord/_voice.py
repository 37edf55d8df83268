"""Voice states: members joining, moving between and leaving voice channels, and the bot's
own Update Voice State (gateway op 4), answered as Discord answers it, minus the voice server.

There is no voice server here: the fake never sends VOICE_SERVER_UPDATE, so discord.py's own
`VoiceChannel.connect()` waits for it and times out. Tests that play audio inject a
connection of their own and use op 4 only for what Discord's gateway does with it: the bot's
voice state, seen by every client with the GUILD_VOICE_STATES intent.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.fakes.discord._constants import (
    CONNECT,
    GUILD_STAGE_VOICE,
    INTENT_GUILD_VOICE_STATES,
    MUTE_MEMBERS,
    VIEW_CHANNEL,
)
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeChannel,
    FakeGuild,
    FakeVoiceState,
    _missing_permissions,
    _snowflake_field,
)
from tests.fakes.discord._records import GatewaySession
from tests.fakes.discord._rest import Rest


class Voice(Rest):
    """Who is connected where, and the VOICE_STATE_UPDATE events that tell clients.

    On a stage channel everyone joins suppressed (audience); the bot speaks after
    `PATCH /guilds/{id}/voice-states/@me` with `suppress: false`, which needs Mute Members.
    """

    async def move_voice(
        self,
        user_id: int,
        channel_id: int | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> None:
        """A member joins (or moves to) voice channel `channel_id`, or leaves voice (None).

        Dispatched as VOICE_STATE_UPDATE to clients with the GUILD_VOICE_STATES intent;
        a client that identifies later finds the member in GUILD_CREATE's `voice_states`.
        Leaving is for a member in voice, in the guild `channel_id` belongs to, or any guild.
        """
        if channel_id is None:
            guild = next((g for g in self._guilds.values() if user_id in g.voice_states), None)
            if guild is None:
                raise ValueError(f"user {user_id} is not in a voice channel")
            await self._set_voice_state(guild, user_id, None)
            return
        channel = self._voice_channel(channel_id)
        guild = self.guild(channel.guild_id or 0)
        if user_id not in guild.members:
            raise ValueError(f"user {user_id} is not a member of guild {guild.id}")
        await self._set_voice_state(
            guild, user_id, channel, self_mute=self_mute, self_deaf=self_deaf
        )

    async def join_voice(self, user_id: int, channel_id: int) -> None:
        """`move_voice` into a channel (a join, or a move if already connected elsewhere)."""
        await self.move_voice(user_id, channel_id)

    async def leave_voice(self, user_id: int) -> None:
        """`move_voice(user_id, None)`: the member disconnects from voice."""
        await self.move_voice(user_id, None)

    def voice_channel_of(self, user_id: int, guild_id: int | None = None) -> int | None:
        """The voice channel `user_id` is connected to in the guild (default guild), or None."""
        state = self.guild(guild_id or self.guild_id).voice_states.get(user_id)
        return None if state is None else state.channel_id

    async def _on_voice_state_op(self, session: GatewaySession, data: Mapping[str, Any]) -> None:
        """Op 4 from the bot: recorded in `voice_state_requests`, then applied like Discord.

        Discord ignores a request it will not grant (unknown guild, not a voice channel of
        it, the bot lacks View Channel or Connect there): no event comes back, and the
        client's connect times out. Otherwise the bot's voice state changes and every client
        with the intent gets VOICE_STATE_UPDATE for the bot user (channel null: it left).
        """
        self.voice_state_requests.append(dict(data))
        guild = self._guilds.get(_snowflake_field(data.get("guild_id")) or 0)
        if guild is None:
            return
        raw_channel = data.get("channel_id")
        if raw_channel is None:
            if self.bot_user_id in guild.voice_states:
                await self._set_voice_state(guild, self.bot_user_id, None)
            return
        channel = self._channels.get(_snowflake_field(raw_channel) or 0)
        if channel is None or not channel.is_voice or channel.guild_id != guild.id:
            return
        if ~self._bot_permissions(channel) & (VIEW_CHANNEL | CONNECT):
            return
        await self._set_voice_state(
            guild,
            self.bot_user_id,
            channel,
            self_mute=bool(data.get("self_mute")),
            self_deaf=bool(data.get("self_deaf")),
            session_id=session.session_id,
        )

    async def _edit_my_voice_state(self, request: web.Request) -> web.Response:
        """`PATCH /guilds/{id}/voice-states/@me`: the bot (un)suppresses itself on a stage."""
        guild = self._known_guild(request)
        body = self._json_body(request)
        state = guild.voice_states.get(self.bot_user_id)
        channel = self._channels.get(_snowflake_field(body.get("channel_id")) or 0)
        if state is None or channel is None or channel.id != state.channel_id:
            raise DiscordAPIError(404, 10065, "Unknown Voice State")
        if channel.type != GUILD_STAGE_VOICE:
            raise DiscordAPIError(400, 50024, "Cannot execute action on this channel type")
        suppress = bool(body.get("suppress", state.suppress))
        if not suppress and not self._bot_permissions(channel) & MUTE_MEMBERS:
            raise _missing_permissions()
        state.suppress = suppress
        await self._dispatch(
            "VOICE_STATE_UPDATE",
            self._voice_state_payload(guild, state),
            intent=INTENT_GUILD_VOICE_STATES,
        )
        return web.Response(status=204)

    def _voice_channel(self, channel_id: int) -> FakeChannel:
        channel = self.channel(channel_id)
        if not channel.is_voice:
            raise ValueError(f"channel {channel_id} is not a voice or stage channel")
        return channel

    async def _set_voice_state(
        self,
        guild: FakeGuild,
        user_id: int,
        channel: FakeChannel | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
        session_id: str | None = None,
    ) -> None:
        if channel is None:
            state = guild.voice_states.pop(user_id)
            payload = self._voice_state_payload(guild, state)
            payload["channel_id"] = None
        else:
            old = guild.voice_states.get(user_id)
            state = FakeVoiceState(
                user_id,
                channel.id,
                session_id or (old.session_id if old else secrets.token_hex(16)),
                self_mute=self_mute,
                self_deaf=self_deaf,
                deaf=old.deaf if old else False,
                mute=old.mute if old else False,
                # A stage's audience is suppressed; staying on the same stage keeps it.
                suppress=channel.type == GUILD_STAGE_VOICE
                and (old.suppress if old and old.channel_id == channel.id else True),
            )
            guild.voice_states[user_id] = state
            payload = self._voice_state_payload(guild, state)
        await self._dispatch("VOICE_STATE_UPDATE", payload, intent=INTENT_GUILD_VOICE_STATES)
