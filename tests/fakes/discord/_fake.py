"""FakeDiscord: the parts put together, its constructor, lifecycle and route table."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import yarl
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.discord._actions import UserActions
from tests.fakes.discord._cdn import Cdn
from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    API_PREFIX,
    DEFAULT_BOT_PERMISSIONS,
    FAKE_TOKEN,
    MIB,
    NONCE_WINDOW,
)
from tests.fakes.discord._gateway import Gateway
from tests.fakes.discord._models import FakeUser, _Snowflakes
from tests.fakes.discord._rest_channels import RestChannels
from tests.fakes.discord._rest_commands import RestCommands
from tests.fakes.discord._rest_interactions import RestInteractions
from tests.fakes.discord._voice import Voice
from tests.fakes.discord._world import World


class FakeDiscord(
    World, UserActions, Voice, RestCommands, RestInteractions, RestChannels, Cdn, Gateway
):
    """The fake Discord: world state, HTTP + gateway server, and test-side actions.

    The world starts with the bot user (id == application id, as for modern apps), an
    application owner, a guild (`guild_id`) with one text channel (`channel_id`), and one
    ordinary member (`user_id`). Rules such as `callback_deadline`, `token_lifetime`,
    `attachment_size_limit` and `command_create_limit` are plain attributes: change them
    between steps; each interaction captures the values in force when it is dispatched.
    `nonce_window` is how long an enforced nonce is remembered (Discord: a few minutes);
    0 plays a restart that came later than that.
    """

    def __init__(
        self,
        *,
        token: str = FAKE_TOKEN,
        callback_deadline: float = 3.0,
        token_lifetime: float = 900.0,
        attachment_size_limit: int = 10 * MIB,
        heartbeat_interval_ms: int = 41_250,
        cdn_url_lifetime: float = 86_400.0,
        command_create_limit: int = 200,
        nonce_window: float = NONCE_WINDOW,
        shards: int = 1,
    ) -> None:
        self.token = token
        self.callback_deadline = callback_deadline
        self.token_lifetime = token_lifetime
        self.attachment_size_limit = attachment_size_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.cdn_url_lifetime = cdn_url_lifetime
        self.command_create_limit = command_create_limit
        self.nonce_window = nonce_window
        self.shards = shards  # recommended (GET /gateway/bot), and the fewest accepted

        self.requests = []
        self.gateway_connections = []
        self.command_puts = 0
        self.voice_state_requests = []

        self._ids = _Snowflakes()
        self._cdn_secret = secrets.token_bytes(16)
        self._condition = asyncio.Condition()
        self._users = {}
        self._guilds = {}
        self._channels = {}
        self._messages = {}
        self._attachments = {}
        self._interactions = {}
        self._interactions_by_token = {}
        self._commands = {}
        self._command_creates = {}
        self._command_overrides = {}
        self._permission_roles = set()  # made by `_role_for`, reused by permissions
        self._pending_events = []
        self._sessions = {}
        self._injected = []
        self._holds = []
        self._runner = None
        self._port = None

        self.application_id = self._ids.next()
        self.bot_user_id = self.application_id
        self.owner_id = self._ids.next()
        self._users[self.bot_user_id] = FakeUser(
            self.bot_user_id, "VoiceClone", bot=True, permissions=DEFAULT_BOT_PERMISSIONS
        )
        self._users[self.owner_id] = FakeUser(self.owner_id, "owner", permissions=ADMINISTRATOR)
        self.guild_id = self.add_guild("VoiceClone Test Server")
        self.channel_id = self._guilds[self.guild_id].channel_ids[0]
        self.user_id = self.add_user("tester")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Serve on a free loopback port."""

        @web.middleware
        async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self._handle(request, handler)

        app = web.Application(middlewares=[middleware], client_max_size=256 * MIB)
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close open gateway sockets (code 1001, going away), then stop serving."""
        for hold in self._holds:
            hold.release()
        for connection in self.gateway_connections:
            if not connection.closed:
                await connection.ws.close(code=1001, message=b"Fake Discord shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @contextlib.contextmanager
    def patch_discord_py(self) -> Iterator[None]:
        """Point discord.py's REST base, default gateway and CDN base at this fake.

        Interaction callbacks and webhook calls are built from `Route.BASE` at call time, so
        they follow; attachment URLs come from payloads, so they are already loopback.
        """
        import discord.asset
        import discord.gateway
        import discord.http

        saved = (
            discord.http.Route.BASE,
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
            discord.asset.Asset.BASE,
        )
        discord.http.Route.BASE = self.api_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.gateway_url)
        discord.asset.Asset.BASE = self.base_url
        try:
            yield
        finally:
            (
                discord.http.Route.BASE,
                discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                discord.asset.Asset.BASE,
            ) = saved

    # ------------------------------------------------------------------ routes

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        api = API_PREFIX
        webhook = api + r"/webhooks/{application_id:\d+}/{token}"
        commands = api + r"/applications/{application_id:\d+}"
        guild_commands = commands + r"/guilds/{guild_id:\d+}"
        channel = api + r"/channels/{channel_id:\d+}"
        guild = api + r"/guilds/{guild_id:\d+}"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/gateway", self._gateway),
            ("GET", "/gateway/resume", self._gateway),
            ("GET", r"/attachments/{channel_id:\d+}/{attachment_id:\d+}/{filename}", self._cdn),
            (
                "GET",
                r"/media/attachments/{channel_id:\d+}/{attachment_id:\d+}/{filename}",
                self._cdn,
            ),
            ("POST", api + "/attachments/refresh-urls", self._refresh_urls),
            ("GET", api + "/users/@me", self._get_me),
            ("POST", api + "/users/@me/channels", self._create_dm),
            ("GET", api + r"/users/{user_id:\d+}", self._get_user),
            ("GET", api + "/oauth2/applications/@me", self._get_application),
            ("GET", api + "/applications/@me", self._get_application),
            ("GET", api + "/gateway", self._get_gateway),
            ("GET", api + "/gateway/bot", self._get_gateway_bot),
            ("GET", commands + "/commands", self._list_commands),
            ("PUT", commands + "/commands", self._put_commands),
            ("POST", commands + "/commands", self._post_command),
            ("GET", commands + r"/commands/{command_id:\d+}", self._get_command),
            ("DELETE", commands + r"/commands/{command_id:\d+}", self._delete_command),
            ("GET", guild_commands + "/commands", self._list_commands),
            ("PUT", guild_commands + "/commands", self._put_commands),
            ("POST", guild_commands + "/commands", self._post_command),
            ("GET", guild_commands + r"/commands/{command_id:\d+}", self._get_command),
            ("DELETE", guild_commands + r"/commands/{command_id:\d+}", self._delete_command),
            ("POST", api + r"/interactions/{interaction_id:\d+}/{token}/callback", self._callback),
            ("POST", webhook, self._execute_webhook),
            ("GET", webhook + "/messages/@original", self._get_webhook_message),
            ("PATCH", webhook + "/messages/@original", self._edit_webhook_message),
            ("DELETE", webhook + "/messages/@original", self._delete_webhook_message),
            ("GET", webhook + r"/messages/{message_id:\d+}", self._get_webhook_message),
            ("PATCH", webhook + r"/messages/{message_id:\d+}", self._edit_webhook_message),
            ("DELETE", webhook + r"/messages/{message_id:\d+}", self._delete_webhook_message),
            ("GET", channel, self._get_channel),
            ("GET", channel + "/messages", self._list_channel_messages),
            ("POST", channel + "/messages", self._create_channel_message),
            ("GET", channel + r"/messages/{message_id:\d+}", self._get_channel_message),
            ("PATCH", channel + r"/messages/{message_id:\d+}", self._edit_channel_message),
            ("DELETE", channel + r"/messages/{message_id:\d+}", self._delete_channel_message),
            ("POST", channel + "/typing", self._typing),
            ("GET", guild, self._get_guild),
            ("GET", guild + "/channels", self._get_guild_channels),
            ("GET", guild + "/roles", self._get_guild_roles),
            ("GET", guild + "/members", self._list_members),
            ("GET", guild + r"/members/{user_id:\d+}", self._get_member),
            ("PATCH", guild + "/voice-states/@me", self._edit_my_voice_state),
        ]
        for method, path, handler in routes:
            router.add_route(method, path, handler)
