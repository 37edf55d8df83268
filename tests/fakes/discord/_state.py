"""FakeState: what every part of the fake shares, and the lookups and waits on it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tests.fakes.discord._constants import API_PREFIX, DM, OP_IDENTIFY
from tests.fakes.discord._models import (
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMessage,
    FakeUser,
    _Snowflakes,
)
from tests.fakes.discord._records import (
    GatewayConnection,
    GatewaySession,
    Hold,
    RecordedRequest,
    _InjectedError,
)


class FakeState:
    """What every part of the fake shares: the rules in force, the world's tables, what was
    recorded, and the lookups and waits on them.

    `FakeDiscord.__init__` fills these in; the parts (`World`, `UserActions`, the REST
    routes, `Cdn`, `Gateway`) read and change them. The few methods one part calls in a part
    it does not build on are declared under TYPE_CHECKING at the end, so each part
    type-checks on its own and `FakeDiscord` supplies them at run time.
    """

    # Rules in force; each interaction captures the values when it is dispatched.
    token: str
    callback_deadline: float
    token_lifetime: float
    attachment_size_limit: int
    heartbeat_interval_ms: int
    shards: int
    cdn_url_lifetime: float
    command_create_limit: int
    nonce_window: float

    # What the client did.
    requests: list[RecordedRequest]
    gateway_connections: list[GatewayConnection]
    command_puts: int
    voice_state_requests: list[dict[str, Any]]  # the `d` of every op 4, oldest first

    # The world.
    application_id: int
    bot_user_id: int
    owner_id: int
    guild_id: int
    channel_id: int
    user_id: int
    _ids: _Snowflakes
    _cdn_secret: bytes
    _condition: asyncio.Condition
    _users: dict[int, FakeUser]
    _guilds: dict[int, FakeGuild]
    _channels: dict[int, FakeChannel]
    _messages: dict[int, FakeMessage]
    _attachments: dict[int, FakeAttachment]
    _interactions: dict[int, FakeInteraction]
    _interactions_by_token: dict[str, FakeInteraction]
    _commands: dict[int | None, list[dict[str, Any]]]
    _command_creates: dict[tuple[int | None, str], int]
    _command_overrides: dict[tuple[int, str], bool]
    _permission_roles: set[int]
    _pending_events: list[tuple[str, dict[str, Any], int]]
    _sessions: dict[str, GatewaySession]
    _injected: list[_InjectedError]
    _holds: list[Hold]
    _runner: web.AppRunner | None
    _port: int | None

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """A distinct path so tests can see the client resumed where READY told it to."""
        return f"ws://127.0.0.1:{self.port}/gateway/resume"

    # ------------------------------------------------------------------ lookups

    def user(self, user_id: int) -> FakeUser:
        return self._users[user_id]

    def guild(self, guild_id: int) -> FakeGuild:
        return self._guilds[guild_id]

    def channel(self, channel_id: int) -> FakeChannel:
        return self._channels[channel_id]

    def message(self, message_id: int) -> FakeMessage:
        return self._messages[message_id]

    def interaction(self, interaction_id: int) -> FakeInteraction:
        return self._interactions[interaction_id]

    def commands(self, guild_id: int | None = None) -> list[dict[str, Any]]:
        """The commands currently synced globally, or to `guild_id`."""
        return list(self._commands.get(guild_id, []))

    def set_command_permissions(
        self, name: str, *, everyone: bool, guild_id: int | None = None
    ) -> None:
        """What a server's admins do under Server Settings > Integrations: an @everyone
        override that lets every member use `name` (or denies it), replacing its
        `default_member_permissions` in that guild. Administrators always pass."""
        self._command_overrides[(guild_id or self.guild_id, name)] = everyone

    def command_creates_today(self, guild_id: int | None = None) -> int:
        """Creates counted against the daily limit (a name not present before is a create)."""
        return self._command_creates.get((guild_id, self._today()), 0)

    def _today(self) -> str:
        return datetime.now(UTC).date().isoformat()

    def channel_messages(self, channel_id: int) -> list[FakeMessage]:
        """Messages visible in the channel (not deleted, not ephemeral), oldest first."""
        return [m for m in self.channel(channel_id).messages if not m.deleted]

    def dm_messages(self, user_id: int) -> list[FakeMessage]:
        """Messages in the bot's DM channel with `user_id`."""
        for channel in self._channels.values():
            if channel.type == DM and channel.recipient_id == user_id:
                return self.channel_messages(channel.id)
        return []

    def requests_to(self, method: str, route_pattern: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose route matches `route_pattern` (re.search)."""
        pattern = re.compile(route_pattern)
        return [r for r in self.requests if r.method == method and pattern.search(r.route)]

    @property
    def identify_payload(self) -> dict[str, Any] | None:
        """The `d` of the most recent IDENTIFY (token, intents, properties…)."""
        for connection in reversed(self.gateway_connections):
            for frame in connection.received:
                if frame.get("op") == OP_IDENTIFY:
                    data: dict[str, Any] = frame["d"]
                    return data
        return None

    @property
    def connected(self) -> bool:
        """True when a client holds an identified, open gateway connection."""
        return any(self._live_connections())

    @property
    def connected_shards(self) -> list[int]:
        """The shard ids of the identified, open gateway connections (any client)."""
        return sorted(
            session.shard[0]
            for session in self._sessions.values()
            if session.connection is not None and not session.connection.closed
        )

    def _live_connections(self) -> Iterator[GatewayConnection]:
        for session in self._sessions.values():
            connection = session.connection
            if connection is not None and not connection.closed:
                yield connection

    # ------------------------------------------------------------------ waiting

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 5.0,  # noqa: ASYNC109 - a public API shaped like asyncio.wait_for
    ) -> None:
        """Wait until `predicate()` holds; re-checked after every state change, no polling."""
        try:
            async with asyncio.timeout(timeout), self._condition:
                await self._condition.wait_for(predicate)
        except TimeoutError:
            recent = [f"{r.method} {r.route} -> {r.status}" for r in self.requests[-8:]]
            raise TimeoutError(
                f"condition not met in {timeout}s; last requests: {recent}"
            ) from None

    async def wait_until(self, moment: float) -> None:
        """Sleep until monotonic `moment` has passed (e.g. `interaction.deadline`).

        For tests about time itself: letting a deadline lapse has no event to wait on.
        """
        delay = moment - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay + 0.005)

    async def _changed(self) -> None:
        async with self._condition:
            self._condition.notify_all()

    if TYPE_CHECKING:
        # Supplied by parts that do not build on one another (see the class docstring).

        # World
        def dm_channel(self, user_id: int) -> int: ...

        # Gateway
        async def _dispatch(self, event: str, data: Any, *, intent: int | None = None) -> None: ...

        async def _broadcast_message_create(self, message: FakeMessage) -> None: ...

        # Voice
        async def _on_voice_state_op(
            self, session: GatewaySession, data: Mapping[str, Any]
        ) -> None: ...
