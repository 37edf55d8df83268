"""Loopback fake of the slice of Discord API v10 (REST, gateway, CDN) that discord.py 2.7.1 uses.

Why: the bot's behaviour under Discord's real rules (3 s acknowledgement deadline, 15 min
interaction tokens, upload limits, permissions, blocked DMs, daily command-create limit) can
only be tested end to end against something that enforces them. This fake is an aiohttp server
on 127.0.0.1 that the *real* discord.py client logs into, connects to, and answers
interactions against; tests drive users' actions (`slash`, `autocomplete`, `context_menu`,
`user_context_menu`, `click`, `submit_modal`, `user_message`) and inspect what the bot did
(`requests`, `channel_messages`, `FakeInteraction`), waiting on state changes with `wait_for`
rather than sleeping. Members get permissions through roles (`add_user(permissions=...)`,
`add_role`, `grant_role`); interactions carry `member.roles`, `member.permissions` and
`app_permissions` computed from them.

Typical use::

    async with FakeDiscord() as fake:
        with fake.patch_discord_py():
            ...  # start a discord.py client with fake.token

Rules enforced (status/code): initial callback after `callback_deadline` 404/10062; a second
initial callback 400/40060; interaction-token webhook calls after `token_lifetime` 401/50027;
files over the interaction's `attachment_size_limit` or the channel's `upload_limit` 413/40005;
channel posts without View Channel 403/50001, without Send Messages (in Threads) or Attach
Files 403/50013; DMs to users with `blocks_dms` 403/50007; replies without Read Message
History 400/160002; empty messages 400/50006; over-long content 400/50035; voice-message
shape 400/50159-50161, edits 400/50162; more than `command_create_limit` new command names
per scope per UTC day 429/30034 (sent without `Via`, so discord.py raises at once instead of
sleeping until midnight as it would against real Discord); CDN URLs are signed and expire.
Like the Discord client, user actions refuse (PermissionError) what a user could not do:
commands hidden from them by `default_member_permissions` (null: everyone; "0": admins;
else every bit, which administrators and the owner always have), by `contexts` /
`dm_permission` (global commands) or for lack of Use Application Commands; clicking
someone else's ephemeral message.

Times: `FakeInteraction.dispatched_at`, `deadline`, `expires_at` and callback/edit times are
`time.monotonic()` values; message `created_at`/`edited_at` are wall-clock `time.time()`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import mimetypes
import re
import secrets
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple, Self

import aiohttp
import yarl
from aiohttp import web
from aiohttp.typedefs import Handler

__all__ = [
    "ADMINISTRATOR",
    "ATTACH_FILES",
    "BOT_DM",
    "CHAT_INPUT",
    "DEFAULT_BOT_PERMISSIONS",
    "DEFAULT_MEMBER_PERMISSIONS",
    "EMBED_LINKS",
    "EPHEMERAL",
    "FAKE_TOKEN",
    "GUILD",
    "IS_VOICE_MESSAGE",
    "MANAGE_GUILD",
    "MESSAGE_COMMAND",
    "READ_MESSAGE_HISTORY",
    "SEND_MESSAGES",
    "SEND_MESSAGES_IN_THREADS",
    "SEND_VOICE_MESSAGES",
    "USER_COMMAND",
    "USE_APPLICATION_COMMANDS",
    "VIEW_CHANNEL",
    "DiscordAPIError",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMessage",
    "FakeUser",
    "GatewayConnection",
    "RecordedRequest",
    "UploadedFile",
]

# Shaped like a real bot token (base64 user id . timestamp . HMAC) so format checks pass.
FAKE_TOKEN = "MTEwMDAwMDAwMDAwMDAwMDAwMQ.GfAkE1.fake-discord-token-abcdefghijklmnopqrstu"

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1_420_070_400_000
DISCORD_TOKEN_LIFETIME = 900.0  # what discord.py assumes when computing Interaction.expires_at
MIB = 1024 * 1024
NONCE_WINDOW = 300.0  # seconds Discord remembers an enforced nonce ("a few minutes")
TIER_UPLOAD_LIMITS = {0: 10 * MIB, 1: 10 * MIB, 2: 50 * MIB, 3: 100 * MIB}
MAX_CONTENT_LENGTH = 2000
MAX_COMMANDS_PER_SCOPE = 100

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE = 1 << 0
ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_EXTERNAL_EMOJIS = 1 << 18
CONNECT = 1 << 20
SPEAK = 1 << 21
USE_VAD = 1 << 25
CHANGE_NICKNAME = 1 << 26
USE_APPLICATION_COMMANDS = 1 << 31
CREATE_PUBLIC_THREADS = 1 << 35
SEND_MESSAGES_IN_THREADS = 1 << 38
SEND_VOICE_MESSAGES = 1 << 46
ALL_PERMISSIONS = (1 << 51) - 1

DEFAULT_MEMBER_PERMISSIONS = (
    CREATE_INSTANT_INVITE
    | ADD_REACTIONS
    | VIEW_CHANNEL
    | SEND_MESSAGES
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_EXTERNAL_EMOJIS
    | CONNECT
    | SPEAK
    | USE_VAD
    | CHANGE_NICKNAME
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
    | SEND_VOICE_MESSAGES
)
DEFAULT_BOT_PERMISSIONS = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | SEND_MESSAGES_IN_THREADS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | USE_APPLICATION_COMMANDS
    | SEND_VOICE_MESSAGES
)

# Message flags.
SUPPRESS_EMBEDS = 1 << 2
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_NOTIFICATIONS = 1 << 12
IS_VOICE_MESSAGE = 1 << 13
IS_COMPONENTS_V2 = 1 << 15
CREATABLE_FLAGS = (
    SUPPRESS_EMBEDS | EPHEMERAL | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE | IS_COMPONENTS_V2
)

# Channel, interaction, callback, option and message types.
GUILD_TEXT, DM, PUBLIC_THREAD = 0, 1, 11
APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE = 4, 5, 6
UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = 7, 8, 9
ALLOWED_CALLBACKS = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE}
    | {UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE}
    | {UPDATE_MESSAGE},
}
CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3  # application command types
COMMAND_KINDS = {CHAT_INPUT: "slash", USER_COMMAND: "user", MESSAGE_COMMAND: "message"}
GUILD, BOT_DM = 0, 1  # interaction context types (`contexts`)
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN = 1, 2, 3, 4, 5
USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = 6, 7, 8, 9, 10, 11
MESSAGE_DEFAULT, MESSAGE_REPLY, MESSAGE_CHAT_INPUT_COMMAND = 0, 19, 20
MESSAGE_CONTEXT_MENU_COMMAND = 23
USER_MESSAGE_FLAGS = SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS | IS_VOICE_MESSAGE

# Gateway opcodes and close codes.
OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_PRESENCE, OP_VOICE_STATE = 0, 1, 2, 3, 4
OP_RESUME, OP_RECONNECT, OP_REQUEST_MEMBERS, OP_INVALID_SESSION = 6, 7, 8, 9
OP_HELLO, OP_HEARTBEAT_ACK = 10, 11
INTENT_GUILDS, INTENT_GUILD_MEMBERS = 1 << 0, 1 << 1
INTENT_GUILD_MESSAGES, INTENT_DIRECT_MESSAGES = 1 << 9, 1 << 12

JSON_HEADERS = {"Content-Type": "application/json"}
_MENTION_RE = re.compile(r"<@!?(\d+)>")
_FILE_FIELD_RE = re.compile(r"files\[(\d+)\]")
_COMMAND_NAME_RE = re.compile(r"[-_\w]{1,32}")


class UploadedFile(NamedTuple):
    """One file part of a multipart request, exactly as the client sent it."""

    filename: str
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, <{len(self.data)} bytes>)"


@dataclass(eq=False)
class RecordedRequest:
    """Every HTTP request the fake served, for assertions about what the client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    files_by_index: dict[int, UploadedFile] = field(default_factory=dict, repr=False)
    status: int = 0
    response: Any = field(default=None, repr=False)
    at: float = field(default_factory=time.monotonic)

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any (`Bot <token>` for REST calls)."""
        return self.headers.get("Authorization")

    @property
    def route(self) -> str:
        """The path relative to the API base (`/channels/1/messages`), or the raw path."""
        return self.path.removeprefix(API_PREFIX)


class DiscordAPIError(Exception):
    """Raised by a handler to answer with Discord's error shape `{"code", "message"}`."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        errors: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = dict(errors) if errors else None
        self.extra = dict(extra) if extra else {}
        self.headers = dict(headers) if headers else {}

    def body(self) -> dict[str, Any]:
        """The JSON body Discord would send."""
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


def _form_error(field_path: str, code: str, message: str) -> DiscordAPIError:
    """50035 Invalid Form Body with one nested field error, like Discord's validator."""
    errors: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(field_path.split(".")):
        errors = {part: errors}
    return DiscordAPIError(400, 50035, "Invalid Form Body", errors=errors)


def _unknown(code: int, what: str) -> DiscordAPIError:
    return DiscordAPIError(404, code, f"Unknown {what}")


def _unknown_interaction() -> DiscordAPIError:
    return DiscordAPIError(404, 10062, "Unknown interaction")


def _invalid_webhook_token() -> DiscordAPIError:
    return DiscordAPIError(401, 50027, "Invalid Webhook Token")


def _missing_permissions() -> DiscordAPIError:
    return DiscordAPIError(403, 50013, "Missing Permissions")


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """JSON with Content-Type exactly `application/json`: discord.py ignores anything else."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={**JSON_HEADERS, **(headers or {})}
    )


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _snowflake_field(value: Any) -> int | None:
    """Discord accepts snowflakes as strings or numbers."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _Snowflakes:
    """Unique, time-ordered ids; `at=` mints ids whose embedded time is in the past."""

    def __init__(self) -> None:
        self._last = 0
        self._increment = 0

    def next(self, at: float | None = None) -> int:
        self._increment = (self._increment + 1) & 0xFFF
        stamp = int((time.time() if at is None else at) * 1000) - DISCORD_EPOCH_MS
        value = (stamp << 22) | self._increment
        if at is None:
            value = max(value, self._last + 1)
            self._last = value
        return value


@dataclass(eq=False)
class FakeUser:
    """A Discord user; `permissions` are what `add_user` granted through a role (roles added
    later change the member's real permissions: see `FakeDiscord.permissions`)."""

    id: int
    name: str
    bot: bool = False
    permissions: int = DEFAULT_MEMBER_PERMISSIONS
    blocks_dms: bool = False
    locale: str = "en-US"

    def payload(self) -> dict[str, Any]:
        """The public user object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "username": self.name,
            "global_name": None if self.bot else self.name.title(),
            "discriminator": "0",
            "avatar": None,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
            "collectibles": None,
            "primary_guild": None,
        }
        if self.bot:
            data["bot"] = True
        return data


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel, public thread or DM; mutate fields to change rules mid-test.

    `bot_permissions=None` means "what the bot's role grants" (for threads: the parent's).
    `upload_limit=None` means the guild's boost-tier limit (10 MiB at tier 0), 10 MiB in DMs.
    """

    id: int
    type: int
    name: str
    guild_id: int | None = None
    parent_id: int | None = None
    bot_permissions: int | None = None
    upload_limit: int | None = None
    recipient_id: int | None = None
    position: int = 0
    messages: list[FakeMessage] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type == PUBLIC_THREAD


@dataclass(eq=False)
class FakeGuild:
    """A guild the bot is in; `members` maps user id to role ids."""

    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, list[int]] = field(default_factory=dict)
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    joined_at: float = field(default_factory=time.time)

    @property
    def upload_limit(self) -> int:
        return TIER_UPLOAD_LIMITS.get(self.premium_tier, 10 * MIB)


@dataclass(eq=False)
class FakeAttachment:
    """A stored file: served from the fake CDN, `data` holds the exact bytes."""

    id: int
    channel_id: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None
    url: str = ""
    proxy_url: str = ""
    description: str | None = None
    title: str | None = None
    duration_secs: float | None = None
    waveform: str | None = None
    ephemeral: bool = False
    expires_at: float = 0.0  # wall clock; the CDN answers 404 afterwards
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        """The Discord attachment object."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
        }
        optional = {
            "content_type": self.content_type,
            "description": self.description,
            "title": self.title,
            "duration_secs": self.duration_secs,
            "waveform": self.waveform,
        }
        data.update({key: value for key, value in optional.items() if value is not None})
        if self.ephemeral:
            data["ephemeral"] = True
        data.update(self.extra)
        return data


@dataclass(eq=False)
class FakeMessage:
    """A message as Discord stores it, plus what the sender asked for (`allowed_mentions`).

    `mentions` lists the user ids actually pinged after applying `allowed_mentions`;
    `history` holds snapshots of earlier versions, oldest first.
    """

    id: int
    channel_id: int
    guild_id: int | None
    author: dict[str, Any] = field(repr=False)
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0
    type: int = MESSAGE_DEFAULT
    tts: bool = False
    allowed_mentions: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    mentions: list[int] = field(default_factory=list)
    mention_everyone: bool = False
    webhook_id: int | None = None
    interaction_id: int | None = None
    interaction_metadata: dict[str, Any] | None = field(default=None, repr=False)
    created_at: float = field(default_factory=time.time)
    edited_at: float | None = None
    deleted: bool = False
    nonce: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @property
    def author_id(self) -> int:
        return int(self.author["id"])

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "thinking…" message that nobody edited yet."""
        return bool(self.flags & LOADING)

    def snapshot(self) -> dict[str, Any]:
        """The editable state, for `history`."""
        return {
            "content": self.content,
            "embeds": list(self.embeds),
            "components": list(self.components),
            "attachments": [(a.filename, a.content_type, a.data) for a in self.attachments],
            "flags": self.flags,
            "allowed_mentions": self.allowed_mentions,
            "edited_at": self.edited_at,
        }


@dataclass(eq=False)
class FakeInteraction:
    """Handle on one dispatched interaction and everything the bot answered to it."""

    id: int
    token: str
    type: int
    payload: dict[str, Any] = field(repr=False)
    channel_id: int
    guild_id: int | None
    user_id: int
    callback_deadline: float
    token_lifetime: float
    attachment_size_limit: int
    message_id: int | None = None  # the message a component/modal interaction came from
    dispatched_at: float = 0.0
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    acknowledged_at: float | None = None
    response_type: int | None = None
    original: FakeMessage | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    followups: list[FakeMessage] = field(default_factory=list)
    autocomplete_choices: list[dict[str, Any]] | None = None
    modal: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        """The interaction's `data` object as dispatched."""
        data: dict[str, Any] = self.payload["data"]
        return data

    @property
    def deadline(self) -> float:
        """Monotonic time after which the initial callback gets 10062."""
        return self.dispatched_at + self.callback_deadline

    @property
    def expires_at(self) -> float:
        """Monotonic time after which the token's webhook calls get 401/50027."""
        return self.dispatched_at + self.token_lifetime


@dataclass(eq=False)
class GatewaySession:
    """A gateway session: survives reconnects so RESUME can replay missed events."""

    session_id: str
    intents: int
    shard: list[int]
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    connection: GatewayConnection | None = None
    resumes: int = 0
    presence: dict[str, Any] | None = None


@dataclass(eq=False)
class GatewayConnection:
    """One websocket connection; `received` holds every frame the client sent."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    compressor: Any = None  # zlib compressobj when the client asked for zlib-stream
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: GatewaySession | None = None
    received: list[dict[str, Any]] = field(default_factory=list, repr=False)
    closed: bool = False


_RECORDED = web.RequestKey("recorded", RecordedRequest)


@dataclass
class _InjectedError:
    method: str
    pattern: re.Pattern[str]
    error: DiscordAPIError
    times: int


@dataclass(eq=False)
class Hold:
    """Requests matching `method` + `pattern` (and `when`) are held without an answer until
    `release()`: before Discord applies them (`after_apply=False`, the request is lost if
    the client dies) or after (`after_apply=True`, applied but never acknowledged). Lets a
    test kill the client at an exact point of a request's life."""

    method: str
    pattern: re.Pattern[str]
    when: Callable[[RecordedRequest], bool]
    after_apply: bool
    held: list[RecordedRequest] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, recorded: RecordedRequest) -> bool:
        return (
            not self._released.is_set()
            and self.method == recorded.method
            and bool(self.pattern.search(recorded.route))
            and self.when(recorded)
        )

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        await self._released.wait()


def _command_label(name: str, kind: int) -> str:
    return f"/{name}" if kind == CHAT_INPUT else f"the {COMMAND_KINDS.get(kind)} command {name!r}"


def _walk_components(components: Sequence[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    """Every component, depth first (rows, labels, containers, sections, accessories)."""
    for component in components:
        yield component
        children = list(component.get("components", []))
        for key in ("component", "accessory"):
            if isinstance(component.get(key), Mapping):
                children.append(component[key])
        yield from _walk_components(children)


def _modal_submit_components(
    components: Sequence[Mapping[str, Any]], values: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Echo a modal's layout back with the user's values, as Discord's MODAL_SUBMIT does."""
    submitted: list[dict[str, Any]] = []
    for component in components:
        kind = component.get("type")
        if kind == 1:
            submitted.append(
                {"type": 1, "components": _modal_submit_components(component["components"], values)}
            )
        elif kind == 18:
            inner = _modal_submit_components([component["component"]], values)
            if inner:
                label = {"type": 18, "component": inner[0]}
                if "id" in component:
                    label["id"] = component["id"]
                submitted.append(label)
        elif "custom_id" in component:
            custom_id = component["custom_id"]
            entry: dict[str, Any] = {"type": kind, "custom_id": custom_id}
            if "id" in component:
                entry["id"] = component["id"]
            value = values.get(custom_id, "" if kind == 4 else [])
            entry["value" if kind == 4 else "values"] = value
            submitted.append(entry)
    return submitted


class FakeDiscord:
    """The fake Discord: world state, HTTP + gateway server, and test-side actions.

    The world starts with the bot user (id == application id, as for modern apps), an
    application owner, a guild (`guild_id`) with one text channel (`channel_id`), and one
    ordinary member (`user_id`). Rules such as `callback_deadline`, `token_lifetime`,
    `attachment_size_limit` and `command_create_limit` are plain attributes: change them
    between steps; each interaction captures the values in force when it is dispatched.
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
    ) -> None:
        self.token = token
        self.callback_deadline = callback_deadline
        self.token_lifetime = token_lifetime
        self.attachment_size_limit = attachment_size_limit
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.cdn_url_lifetime = cdn_url_lifetime
        self.command_create_limit = command_create_limit

        self.requests: list[RecordedRequest] = []
        self.gateway_connections: list[GatewayConnection] = []
        self.command_puts = 0

        self._ids = _Snowflakes()
        self._cdn_secret = secrets.token_bytes(16)
        self._condition = asyncio.Condition()
        self._users: dict[int, FakeUser] = {}
        self._guilds: dict[int, FakeGuild] = {}
        self._channels: dict[int, FakeChannel] = {}
        self._messages: dict[int, FakeMessage] = {}
        self._attachments: dict[int, FakeAttachment] = {}
        self._interactions: dict[int, FakeInteraction] = {}
        self._interactions_by_token: dict[str, FakeInteraction] = {}
        self._commands: dict[int | None, list[dict[str, Any]]] = {}
        self._command_creates: dict[tuple[int | None, str], int] = {}
        self._command_overrides: dict[tuple[int, str], bool] = {}
        self._permission_roles: set[int] = set()  # made by `_role_for`, reused by permissions
        self._pending_events: list[tuple[str, dict[str, Any], int]] = []
        self._sessions: dict[str, GatewaySession] = {}
        self._injected: list[_InjectedError] = []
        self._holds: list[Hold] = []
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

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

    # ------------------------------------------------------------------ world building

    def add_guild(self, name: str, *, premium_tier: int = 0) -> int:
        """A guild with a "general" text channel, the bot and the owner; announced at IDENTIFY."""
        guild = FakeGuild(self._ids.next(), name, self.owner_id, premium_tier=premium_tier)
        guild.roles[guild.id] = self._role_payload(guild.id, "@everyone", 0, position=0)
        bot_role = self._ids.next()
        guild.roles[bot_role] = self._role_payload(
            bot_role, "VoiceClone", DEFAULT_BOT_PERMISSIONS, position=1, managed=True
        )
        guild.roles[bot_role]["tags"] = {"bot_id": str(self.bot_user_id)}
        guild.members[self.bot_user_id] = [bot_role]
        guild.members[self.owner_id] = [self._role_for(guild, ADMINISTRATOR)]
        self._guilds[guild.id] = guild
        self.add_channel("general", guild_id=guild.id)
        return guild.id

    def add_user(
        self,
        name: str,
        *,
        permissions: int = DEFAULT_MEMBER_PERMISSIONS,
        blocks_dms: bool = False,
        guild_id: int | None = None,
    ) -> int:
        """A member of the default guild (or `guild_id`) with exactly `permissions`."""
        user = FakeUser(self._ids.next(), name, permissions=permissions, blocks_dms=blocks_dms)
        self._users[user.id] = user
        guild = self.guild(guild_id or self.guild_id)
        guild.members[user.id] = [self._role_for(guild, permissions)]
        return user.id

    def add_role(self, name: str, *, permissions: int = 0, guild_id: int | None = None) -> int:
        """A new role in the default guild (or `guild_id`) granting `permissions`; its id.

        A connected client gets GUILD_ROLE_CREATE before the next event the fake dispatches.
        """
        guild = self.guild(guild_id or self.guild_id)
        role_id = self._ids.next()
        guild.roles[role_id] = self._role_payload(
            role_id, name, permissions, position=len(guild.roles)
        )
        self._announce_role(guild, role_id)
        return role_id

    def grant_role(self, user_id: int, role_id: int) -> None:
        """Give a member a role (of the guild holding `role_id`); shows in `member.roles` and
        `member.permissions` of their next interactions. Announced as GUILD_MEMBER_UPDATE
        (only clients with the privileged members intent receive it, as on Discord)."""
        guild = self._role_guild(role_id)
        roles = guild.members[user_id]
        if role_id not in roles:
            roles.append(role_id)
            self._announce_member(guild, user_id)

    def revoke_role(self, user_id: int, role_id: int) -> None:
        """Take a role away from a member (the inverse of `grant_role`)."""
        guild = self._role_guild(role_id)
        roles = guild.members[user_id]
        if role_id in roles:
            roles.remove(role_id)
            self._announce_member(guild, user_id)

    def _role_guild(self, role_id: int) -> FakeGuild:
        guild = next((g for g in self._guilds.values() if role_id in g.roles), None)
        if guild is None or role_id == guild.id:
            raise ValueError(f"{role_id} is not a grantable role of any guild")
        return guild

    def _announce_role(self, guild: FakeGuild, role_id: int) -> None:
        data = {"guild_id": str(guild.id), "role": guild.roles[role_id]}
        self._announce("GUILD_ROLE_CREATE", data, INTENT_GUILDS)

    def _announce_member(self, guild: FakeGuild, user_id: int) -> None:
        data = {"guild_id": str(guild.id), **self._member_payload(guild, user_id)}
        self._announce("GUILD_MEMBER_UPDATE", data, INTENT_GUILD_MEMBERS)

    def _announce(self, event: str, data: dict[str, Any], intent: int) -> None:
        """Queue a world change for connected clients; `_dispatch` sends it before its event.

        World building is synchronous, so the event waits for the next dispatch; clients that
        identify later get the state in GUILD_CREATE instead.
        """
        if any(self._live_connections()):
            self._pending_events.append((event, data, intent))

    def add_channel(
        self,
        name: str,
        *,
        bot_permissions: int | None = None,
        thread: bool = False,
        guild_id: int | None = None,
        upload_limit: int | None = None,
    ) -> int:
        """A text channel, or a public thread under the guild's first channel.

        `bot_permissions` becomes a member overwrite for the bot, so discord.py's cache
        (`channel.permissions_for(guild.me)`) agrees with what the fake enforces.
        """
        guild = self.guild(guild_id or self.guild_id)
        parent = guild.channel_ids[0] if thread and guild.channel_ids else None
        channel = FakeChannel(
            self._ids.next(),
            PUBLIC_THREAD if thread else GUILD_TEXT,
            name,
            guild_id=guild.id,
            parent_id=parent,
            bot_permissions=bot_permissions,
            upload_limit=upload_limit,
            position=len(guild.channel_ids),
        )
        self._channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        return channel.id

    def dm_channel(self, user_id: int) -> int:
        """The bot's DM channel with `user_id`, created on first use (like Discord)."""
        for channel in self._channels.values():
            if channel.type == DM and channel.recipient_id == user_id:
                return channel.id
        self.user(user_id)
        channel = FakeChannel(self._ids.next(), DM, "", recipient_id=user_id)
        self._channels[channel.id] = channel
        return channel.id

    def add_attachment(
        self,
        filename: str,
        data: bytes,
        content_type: str | None,
        *,
        channel_id: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A user-uploaded file on the CDN; returns the attachment object for `slash`.

        `content_type=None` omits the field, as Discord does when it cannot tell. Extra
        keyword arguments (e.g. `duration_secs`, `waveform`) are added to the object.
        """
        attachment = self._store_attachment(
            channel_id or self.channel_id, filename, data, content_type, ephemeral=True
        )
        for key in ("description", "title", "duration_secs", "waveform"):
            if key in extra:
                setattr(attachment, key, extra.pop(key))
        attachment.extra.update(extra)
        return attachment.payload()

    def expire_attachment(self, attachment_id: int) -> None:
        """Make the CDN refuse this attachment's URLs from now on (signed URL expiry)."""
        self._attachments[attachment_id].expires_at = 0.0

    def inject_error(
        self,
        method: str,
        path_pattern: str,
        status: int,
        code: int = 0,
        message: str = "Injected error",
        *,
        times: int = 1,
        retry_after: float | None = None,
    ) -> None:
        """Fail the next `times` requests whose API route matches `path_pattern` (re.search).

        With status 429 and `retry_after`, the answer carries `Via` and `retry_after` as a
        real rate limit does, so discord.py sleeps and retries instead of raising.
        """
        extra: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if retry_after is not None:
            extra = {"retry_after": retry_after, "global": False}
            headers = {"Retry-After": str(retry_after), "Via": "1.1 google"}
        error = DiscordAPIError(status, code, message, extra=extra, headers=headers)
        self._injected.append(
            _InjectedError(method.upper(), re.compile(path_pattern), error, times)
        )

    def hold(
        self,
        method: str,
        path_pattern: str,
        *,
        when: Callable[[RecordedRequest], bool] = lambda _: True,
        after_apply: bool = False,
    ) -> Hold:
        """Hold matching requests without answering them (see `Hold`); `release()` lets
        them (and later matches) through. Closing the fake releases every hold."""
        hold = Hold(method.upper(), re.compile(path_pattern), when, after_apply)
        self._holds.append(hold)
        return hold

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

    def permissions(self, user_id: int, guild_id: int | None = None) -> int:
        """A member's guild permissions from their roles (all bits for the owner or an admin)."""
        return self._guild_permissions(self.guild(guild_id or self.guild_id), user_id)

    def visible_commands(
        self,
        user_id: int,
        guild_id: int | None = None,
        *,
        channel_id: int | None = None,
        kind: int | None = None,
    ) -> list[str]:
        """Names of the synced commands the Discord client would show `user_id`, sorted.

        Where: `channel_id` (a DM channel from `dm_channel` means the bot's DM), else the
        first channel of `guild_id` (default: the default guild). `kind` keeps one command
        type (`CHAT_INPUT`, `USER_COMMAND`, `MESSAGE_COMMAND`); None lists them all.
        """
        if channel_id is None:
            channel_id = self.guild(guild_id or self.guild_id).channel_ids[0]
        channel = self.channel(channel_id)
        self._check_guild(channel, guild_id)
        scopes: list[int | None] = [None] if channel.guild_id is None else [channel.guild_id, None]
        names = {
            command["name"]
            for scope in scopes
            for command in self._commands.get(scope, [])
            if kind in (None, command.get("type", CHAT_INPUT))
            and self._hidden_because(command, scope, channel, user_id) is None
        }
        return sorted(names)

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

    # ------------------------------------------------------------------ user actions

    async def slash(
        self,
        name: str,
        options: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        guild_id: int | None = None,
        attachments: Mapping[str, Mapping[str, Any]] | None = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """A user runs `/name`; dispatches APPLICATION_COMMAND (type 2) and returns its handle.

        The command must have been synced (guild commands win over global ones). `options`
        maps option names to values (ints for users/channels/roles, attachment objects from
        `add_attachment` for attachments) and is checked against the synced schema the way
        the Discord client would; a list of raw option dicts is sent verbatim instead.
        `attachments` maps attachment option names to attachment objects (same as putting
        them in `options`; with a raw list they only fill `resolved`, which the raw list's
        attachment options must name by id). `subcommand` is "sub" or "group sub".

        Raises PermissionError when the Discord client would not show the command to this
        user here (`default_member_permissions`, `contexts`/`dm_permission`, Use Application
        Commands: see `visible_commands`), since a real user could not run it.
        """
        channel = self.channel(channel_id or self.channel_id)
        self._check_guild(channel, guild_id)
        command, scope = self._usable_command(name, channel, user_id)
        resolved: dict[str, dict[str, Any]] = {}
        if options is not None and not isinstance(options, Mapping):
            built = [dict(option) for option in options]
            for attachment in (attachments or {}).values():
                resolved.setdefault("attachments", {})[str(attachment["id"])] = dict(attachment)
        else:
            values = {**(options or {}), **(attachments or {})}
            schema, wrap = self._subcommand_schema(command, subcommand)
            built = wrap(self._build_options(schema, values, resolved, channel))
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": command.get("type", 1),
            "options": built,
        }
        if resolved:
            data["resolved"] = resolved
        if scope is not None:
            data["guild_id"] = str(scope)
        return await self._dispatch_interaction(APPLICATION_COMMAND, data, channel, user_id)

    async def autocomplete(
        self,
        name: str,
        focused_option: str,
        value: str,
        options: Mapping[str, Any] | None = None,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        subcommand: str | None = None,
    ) -> FakeInteraction:
        """A user types `value` into `focused_option` of `/name` (AUTOCOMPLETE, type 4).

        Raises PermissionError, like `slash`, when the user cannot see the command.
        """
        channel = self.channel(channel_id or self.channel_id)
        command, scope = self._usable_command(name, channel, user_id)
        schema, wrap = self._subcommand_schema(command, subcommand)
        focused = next((o for o in schema if o["name"] == focused_option), None)
        if focused is None or not focused.get("autocomplete"):
            raise ValueError(f"/{name} has no autocomplete option {focused_option!r}")
        resolved: dict[str, dict[str, Any]] = {}
        others = [o for o in schema if o["name"] != focused_option]
        built = self._build_options(others, options or {}, resolved, channel, partial=True)
        built.append(
            {"name": focused_option, "type": focused["type"], "value": value, "focused": True}
        )
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": command.get("type", 1),
            "options": wrap(built),
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return await self._dispatch_interaction(AUTOCOMPLETE, data, channel, user_id)

    async def click(
        self,
        message_id: int,
        custom_id: str,
        *,
        user_id: int | None = None,
        values: Sequence[str] | None = None,
        forged: bool = False,
    ) -> FakeInteraction:
        """A user clicks a button (or picks `values` in a select) on a bot message.

        Ephemeral messages work too, clicked by the user they were shown to (nobody else
        sees them: PermissionError); the interaction carries the message with its flags.

        `forged` is the worst case of a hostile client: a click on this bot message with a
        `custom_id` it does not carry, and a Discord that neither refuses it nor tells the
        app (the interaction's `message` shows the button). Discord's docs tell apps not to
        rely on the API for this, so an app's checks must hold even then.
        """
        message = self.message(message_id)
        component = next(
            (c for c in _walk_components(message.components) if c.get("custom_id") == custom_id),
            None,
        )
        source = message
        if forged and component is None and message.author_id == self.bot_user_id:
            component = {"type": 2, "style": 2, "label": "?", "custom_id": custom_id}  # button
            row = {"type": 1, "components": [component]}  # action row
            source = dataclasses.replace(message, components=[*message.components, row])
        if component is None or message.deleted:
            raise ValueError(f"message {message_id} has no component {custom_id!r}")
        self._check_sees_message(message, user_id or self.user_id)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if values is not None:
            data["values"] = list(values)
        channel = self.channel(message.channel_id)
        return await self._dispatch_interaction(
            MESSAGE_COMPONENT, data, channel, user_id, source=source
        )

    async def submit_modal(
        self,
        opened_by: FakeInteraction,
        values: Mapping[str, str | Sequence[str]],
        *,
        user_id: int | None = None,
    ) -> FakeInteraction:
        """The user submits the modal the bot opened in answer to `opened_by` (type 5)."""
        if opened_by.modal is None:
            raise ValueError("the bot did not answer that interaction with a modal")
        data = {
            "custom_id": opened_by.modal["custom_id"],
            "components": _modal_submit_components(opened_by.modal["components"], values),
        }
        channel = self.channel(opened_by.channel_id)
        source = self._messages.get(opened_by.message_id or 0)
        return await self._dispatch_interaction(
            MODAL_SUBMIT, data, channel, user_id or opened_by.user_id, source=source
        )

    async def context_menu(
        self, name: str, message_id: int, *, user_id: int | None = None
    ) -> FakeInteraction:
        """A user runs the message command `name` (Apps menu of a message) on `message_id`.

        Dispatches APPLICATION_COMMAND with `data.type` 3, `target_id` and the whole target
        message (author, attachments with CDN URLs, flags) in `data.resolved.messages`, in
        the message's channel. The command is found by (name, type 3) and checked like
        `slash` (PermissionError when the user cannot see it).
        """
        target = self.message(message_id)
        if target.deleted:
            raise ValueError(f"message {message_id} was deleted")
        uid = user_id or self.user_id
        self._check_sees_message(target, uid)
        channel = self.channel(target.channel_id)
        command, scope = self._usable_command(name, channel, uid, MESSAGE_COMMAND)
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": MESSAGE_COMMAND,
            "target_id": str(target.id),
            "resolved": {"messages": {str(target.id): self._message_payload(target)}},
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return await self._dispatch_interaction(APPLICATION_COMMAND, data, channel, uid)

    async def user_context_menu(
        self,
        name: str,
        target_user_id: int,
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
    ) -> FakeInteraction:
        """A user runs the user command `name` (Apps menu of a user) on `target_user_id`.

        `data.type` 2, `target_id`, and `data.resolved.users` (+ `members` in a guild when
        the target is a member). Discord refuses it without Send Messages in the channel
        (PermissionError here), besides the visibility rules of `slash`.
        """
        channel = self.channel(channel_id or self.channel_id)
        uid = user_id or self.user_id
        command, scope = self._usable_command(name, channel, uid, USER_COMMAND)
        if channel.guild_id is not None:
            granted = self._guild_permissions(self.guild(channel.guild_id), uid)
            needed = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
            if not granted & needed:
                raise PermissionError(
                    f"user {uid} cannot send messages in channel {channel.id}: Discord "
                    f"answers 'Permission Denied' to the user command {name!r}"
                )
        target = self.user(target_user_id)
        resolved: dict[str, dict[str, Any]] = {"users": {str(target.id): target.payload()}}
        if channel.guild_id is not None and target.id in self.guild(channel.guild_id).members:
            member = self._member_payload(
                self.guild(channel.guild_id), target.id, with_user=False, channel=channel
            )
            resolved["members"] = {str(target.id): member}
        data: dict[str, Any] = {
            "id": command["id"],
            "name": name,
            "type": USER_COMMAND,
            "target_id": str(target.id),
            "resolved": resolved,
        }
        if scope is not None:
            data["guild_id"] = str(scope)
        return await self._dispatch_interaction(APPLICATION_COMMAND, data, channel, uid)

    def _check_sees_message(self, message: FakeMessage, user_id: int) -> None:
        """Only the user an ephemeral message was shown to can act on it."""
        if not message.ephemeral or message.interaction_metadata is None:
            return
        owner = int(message.interaction_metadata["user"]["id"])
        if owner != user_id:
            raise PermissionError(
                f"message {message.id} is ephemeral, shown only to user {owner}, not {user_id}"
            )

    async def redeliver(self, interaction: FakeInteraction) -> None:
        """Dispatch the same INTERACTION_CREATE again (e.g. a second bot instance sees it)."""
        await self._dispatch("INTERACTION_CREATE", interaction.payload)

    async def user_message(
        self,
        content: str = "",
        *,
        user_id: int | None = None,
        channel_id: int | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
        flags: int = 0,
    ) -> FakeMessage:
        """A user posts in a channel; dispatched as MESSAGE_CREATE.

        `attachments` are objects from `add_attachment` (made for this channel, or moved to
        it: same id, URLs re-signed for the message's channel). `flags` may hold
        SUPPRESS_EMBEDS, SUPPRESS_NOTIFICATIONS and IS_VOICE_MESSAGE (1 << 13): a voice
        message is one audio attachment with `duration_secs` and `waveform`, no content,
        as the Discord client records it. A message Discord would refuse is a ValueError.
        """
        channel = self.channel(channel_id or self.channel_id)
        author = self.user(user_id or self.user_id)
        if flags & ~USER_MESSAGE_FLAGS:
            raise ValueError(f"users cannot post messages with flags {flags & ~USER_MESSAGE_FLAGS}")
        message = FakeMessage(
            self._ids.next(),
            channel.id,
            channel.guild_id,
            author.payload(),
            content=content,
            attachments=[self._posted_attachment(a, channel) for a in attachments],
            flags=flags,
        )
        try:
            self._check_message_body(message)
        except DiscordAPIError as refused:
            raise ValueError(f"Discord would refuse this message: {refused}") from None
        message.mentions, message.mention_everyone = self._mentions(content, None, None)
        self._store_message(channel, message)
        await self._broadcast_message_create(message)
        return message

    async def webhook_message(
        self,
        content: str = "",
        *,
        name: str = "Proxy",
        channel_id: int | None = None,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> FakeMessage:
        """A message posted through one of the channel's webhooks (a proxy bot re-posting a
        member's message, an integration); dispatched as MESSAGE_CREATE. As on Discord, its
        author is the webhook: a bot user with the webhook's id and name, no member."""
        channel = self.channel(channel_id or self.channel_id)
        webhook_id = self._ids.next()
        author = {
            "id": str(webhook_id),
            "username": name,
            "avatar": None,
            "discriminator": "0000",
            "bot": True,
        }
        message = FakeMessage(
            self._ids.next(),
            channel.id,
            channel.guild_id,
            author,
            content=content,
            attachments=[self._posted_attachment(a, channel) for a in attachments],
            webhook_id=webhook_id,
        )
        self._check_message_body(message)
        self._store_message(channel, message)
        await self._broadcast_message_create(message)
        return message

    def _posted_attachment(
        self, attachment: Mapping[str, Any], channel: FakeChannel
    ) -> FakeAttachment:
        """An `add_attachment` file as part of a message posted in `channel`."""
        stored = self._attachments[int(attachment["id"])]
        stored.ephemeral = False
        if stored.channel_id != channel.id:
            stored.channel_id = channel.id
            self._sign_urls(stored)
        return stored

    async def reconnect_gateway(self) -> None:
        """Ask connected clients to reconnect (op 7); discord.py then RESUMEs."""
        for connection in list(self._live_connections()):
            await self._send(connection, {"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    # ------------------------------------------------------------------ interaction building

    def _check_guild(self, channel: FakeChannel, guild_id: int | None) -> None:
        if guild_id is not None and guild_id != channel.guild_id:
            raise ValueError(f"channel {channel.id} is not in guild {guild_id}")

    def _find_command(
        self, name: str, guild_id: int | None, kind: int = CHAT_INPUT
    ) -> tuple[dict[str, Any], int | None]:
        """The synced command of this (name, type): the guild's, else the global one."""
        scopes: list[int | None] = [guild_id, None] if guild_id is not None else [None]
        for scope in scopes:
            for command in self._commands.get(scope, []):
                if command["name"] == name and command.get("type", CHAT_INPUT) == kind:
                    return command, scope
        synced = {
            scope: [(c["name"], COMMAND_KINDS.get(c.get("type", CHAT_INPUT))) for c in cmds]
            for scope, cmds in self._commands.items()
        }
        raise LookupError(
            f"{_command_label(name, kind)} is not synced here (synced: {synced}); "
            "call tree.sync() first"
        )

    def _usable_command(
        self, name: str, channel: FakeChannel, user_id: int | None, kind: int = CHAT_INPUT
    ) -> tuple[dict[str, Any], int | None]:
        """`_find_command`, then refuse what the Discord client would not show this user."""
        command, scope = self._find_command(name, channel.guild_id, kind)
        uid = user_id or self.user_id
        reason = self._hidden_because(command, scope, channel, uid)
        if reason is not None:
            raise PermissionError(
                f"user {uid} cannot see {_command_label(name, kind)} in channel {channel.id}: "
                f"{reason}; the Discord client never shows it to them, so it cannot be run"
            )
        return command, scope

    def _hidden_because(
        self, command: Mapping[str, Any], scope: int | None, channel: FakeChannel, user_id: int
    ) -> str | None:
        """Why the Discord client hides `command` from `user_id` in `channel`, or None.

        `contexts` (else the deprecated `dm_permission`) only restrict global commands;
        guild commands never appear in DMs. In a guild the member needs Use Application
        Commands and every bit of `default_member_permissions` ("0": administrators only;
        null: everyone); the owner and administrators pass everything. Those bits mean
        nothing in DMs (no guild permissions there). Subcommands have no permissions of
        their own: they inherit the top-level command's.
        """
        contexts = command.get("contexts") if scope is None else None
        if channel.guild_id is None:
            if scope is not None:
                return "guild commands are not available in DMs"
            if contexts is not None:
                return None if BOT_DM in contexts else f"its contexts {contexts} exclude DMs"
            return None if command.get("dm_permission", True) else "dm_permission is false"
        if scope is not None and scope != channel.guild_id:
            return f"it is a command of guild {scope}"
        if contexts is not None and GUILD not in contexts:
            return f"its contexts {contexts} exclude guilds"
        granted = self._guild_permissions(self.guild(channel.guild_id), user_id)
        if not granted & USE_APPLICATION_COMMANDS:
            return "they lack Use Application Commands (1 << 31)"
        override = self._command_overrides.get((channel.guild_id, command["name"]))
        if override is not None and not granted & ADMINISTRATOR:
            return None if override else "the server's admins denied it to @everyone"
        required = command.get("default_member_permissions")
        if required is None:
            return None
        bits = int(required)
        if bits == 0:
            return None if granted & ADMINISTRATOR else 'default_member_permissions is "0" (admins)'
        missing = bits & ~granted
        return f"they lack default_member_permissions bits {missing:#x}" if missing else None

    def _subcommand_schema(
        self, command: Mapping[str, Any], subcommand: str | None
    ) -> tuple[list[dict[str, Any]], Callable[[list[dict[str, Any]]], list[dict[str, Any]]]]:
        """Option schema of the (sub)command, and a function nesting built options under it."""
        schema: list[dict[str, Any]] = list(command.get("options", []))
        path = subcommand.split() if subcommand else []
        chain: list[tuple[str, int]] = []
        for part in path:
            node = next((o for o in schema if o["name"] == part and o["type"] in (1, 2)), None)
            if node is None:
                raise ValueError(f"/{command['name']} has no subcommand {subcommand!r}")
            chain.append((part, node["type"]))
            schema = list(node.get("options", []))

        def wrap(options: list[dict[str, Any]]) -> list[dict[str, Any]]:
            for part, kind in reversed(chain):
                options = [{"name": part, "type": kind, "options": options}]
            return options

        return schema, wrap

    def _build_options(
        self,
        schema: Sequence[Mapping[str, Any]],
        values: Mapping[str, Any],
        resolved: dict[str, dict[str, Any]],
        channel: FakeChannel,
        *,
        partial: bool = False,
    ) -> list[dict[str, Any]]:
        """Options as the Discord client sends them, validated like its UI would."""
        known = {option["name"] for option in schema}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; the command has {sorted(known)}")
        built: list[dict[str, Any]] = []
        for option in schema:
            name = option["name"]
            if name not in values:
                if option.get("required") and not partial:
                    raise ValueError(f"required option {name!r} missing")
                continue
            value = self._option_value(option, values[name], resolved, channel)
            built.append({"name": name, "type": option["type"], "value": value})
        return built

    def _option_value(
        self,
        option: Mapping[str, Any],
        value: Any,
        resolved: dict[str, dict[str, Any]],
        channel: FakeChannel,
    ) -> Any:
        kind = option["type"]
        if kind == ATTACHMENT:
            attachment = (
                value if isinstance(value, Mapping) else self._attachments[int(value)].payload()
            )
            resolved.setdefault("attachments", {})[str(attachment["id"])] = dict(attachment)
            return str(attachment["id"])
        if kind in (USER, MENTIONABLE) and int(value) in self._users:
            user = self.user(int(value))
            resolved.setdefault("users", {})[str(user.id)] = user.payload()
            if channel.guild_id is not None:
                member = self._member_payload(
                    self.guild(channel.guild_id), user.id, with_user=False, channel=channel
                )
                resolved.setdefault("members", {})[str(user.id)] = member
            return str(user.id)
        if kind in (ROLE, MENTIONABLE):
            guild = self.guild(channel.guild_id or self.guild_id)
            resolved.setdefault("roles", {})[str(value)] = guild.roles[int(value)]
            return str(value)
        if kind == CHANNEL:
            target = self.channel(int(value))
            resolved.setdefault("channels", {})[str(target.id)] = self._resolved_channel(target)
            return str(target.id)
        converted = {STRING: str, INTEGER: int, NUMBER: float, BOOLEAN: bool}[kind](value)
        choices = option.get("choices")
        if choices and converted not in [choice["value"] for choice in choices]:
            raise ValueError(f"{converted!r} is not a choice of option {option['name']!r}")
        return converted

    async def _dispatch_interaction(
        self,
        kind: int,
        data: dict[str, Any],
        channel: FakeChannel,
        user_id: int | None,
        *,
        source: FakeMessage | None = None,
    ) -> FakeInteraction:
        """Build the full interaction payload, register it, then send INTERACTION_CREATE."""
        user = self.user(user_id or self.user_id)
        created = time.time() - max(0.0, DISCORD_TOKEN_LIFETIME - self.token_lifetime)
        # Backdating the id makes discord.py's Interaction.expires_at agree with token_lifetime.
        interaction_id = self._ids.next(at=created)
        token = "aW50ZXJhY3Rpb246" + base64.urlsafe_b64encode(
            f"{interaction_id}:{secrets.token_hex(24)}".encode()
        ).decode().rstrip("=")
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": kind,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel.id),
            "channel": self._interaction_channel(channel, user),
            "locale": user.locale,
            "app_permissions": str(self._bot_permissions(channel)),
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": self.attachment_size_limit,
        }
        if channel.guild_id is not None:
            guild = self.guild(channel.guild_id)
            payload["guild_id"] = str(guild.id)
            payload["guild"] = {"id": str(guild.id), "locale": "en-US", "features": []}
            payload["guild_locale"] = "en-US"
            payload["member"] = self._member_payload(guild, user.id, channel=channel)
            payload["authorizing_integration_owners"] = {"0": str(guild.id)}
            payload["context"] = 0
        else:
            payload["user"] = user.payload()
            payload["authorizing_integration_owners"] = {"0": "0"}
            payload["context"] = 1
        if source is not None:
            payload["message"] = self._message_payload(source)
        interaction = FakeInteraction(
            id=interaction_id,
            token=token,
            type=kind,
            payload=payload,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            user_id=user.id,
            callback_deadline=self.callback_deadline,
            token_lifetime=self.token_lifetime,
            attachment_size_limit=self.attachment_size_limit,
            message_id=source.id if source is not None else None,
        )
        self._interactions[interaction_id] = interaction
        self._interactions_by_token[token] = interaction
        interaction.dispatched_at = time.monotonic()
        await self._dispatch("INTERACTION_CREATE", payload)
        return interaction

    # ------------------------------------------------------------------ permissions & payloads

    def _role_payload(
        self, role_id: int, name: str, permissions: int, *, position: int, managed: bool = False
    ) -> dict[str, Any]:
        return {
            "id": str(role_id),
            "name": name,
            "permissions": str(permissions),
            "position": position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": managed,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }

    def _role_for(self, guild: FakeGuild, permissions: int) -> int:
        """A role granting exactly `permissions` (@everyone grants nothing in fake guilds);
        shared by members `add_user` made with the same permissions, never an `add_role` one."""
        for role_id in self._permission_roles & guild.roles.keys():
            if int(guild.roles[role_id]["permissions"]) == permissions:
                return role_id
        role_id = self._ids.next()
        name = "Members" if permissions == DEFAULT_MEMBER_PERMISSIONS else f"perms-{permissions:x}"
        guild.roles[role_id] = self._role_payload(
            role_id, name, permissions, position=len(guild.roles)
        )
        self._permission_roles.add(role_id)
        self._announce_role(guild, role_id)
        return role_id

    def _guild_permissions(self, guild: FakeGuild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        permissions = 0
        for role_id in [guild.id, *guild.members.get(user_id, [])]:
            permissions |= int(guild.roles[role_id]["permissions"])
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def _bot_permissions(self, channel: FakeChannel) -> int:
        """The bot's effective permissions in `channel` (member overwrite, else role)."""
        if channel.type == DM:
            return DEFAULT_BOT_PERMISSIONS
        if channel.bot_permissions is not None:
            return channel.bot_permissions
        if channel.parent_id is not None:
            return self._bot_permissions(self.channel(channel.parent_id))
        return self._guild_permissions(self.guild(channel.guild_id or 0), self.bot_user_id)

    def _upload_limit(self, channel: FakeChannel) -> int:
        if channel.upload_limit is not None:
            return channel.upload_limit
        if channel.guild_id is None:
            return 10 * MIB
        return self.guild(channel.guild_id).upload_limit

    def _member_payload(
        self,
        guild: FakeGuild,
        user_id: int,
        *,
        with_user: bool = True,
        channel: FakeChannel | None = None,
    ) -> dict[str, Any]:
        member: dict[str, Any] = {
            "roles": [str(r) for r in guild.members[user_id]],
            "joined_at": _iso(guild.joined_at),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "nick": None,
            "avatar": None,
            "banner": None,
            "communication_disabled_until": None,
        }
        if with_user:
            member["user"] = self.user(user_id).payload()
        if channel is not None:
            member["permissions"] = str(self._guild_permissions(guild, user_id))
        return member

    def _channel_payload(self, channel: FakeChannel) -> dict[str, Any]:
        if channel.type == DM:
            recipient = self.user(channel.recipient_id or 0)
            return {
                "id": str(channel.id),
                "type": DM,
                "last_message_id": None,
                "flags": 0,
                "recipients": [recipient.payload()],
            }
        data: dict[str, Any] = {
            "id": str(channel.id),
            "type": channel.type,
            "name": channel.name,
            "guild_id": str(channel.guild_id),
            "position": channel.position,
            "parent_id": str(channel.parent_id) if channel.parent_id else None,
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
            "permission_overwrites": [],
        }
        if channel.is_thread:
            data.update(
                owner_id=str(self.owner_id),
                message_count=len(channel.messages),
                member_count=1,
                total_message_sent=len(channel.messages),
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": _iso(time.time()),
                    "locked": False,
                },
            )
            del data["permission_overwrites"]
        elif channel.bot_permissions is not None:
            data["permission_overwrites"] = [
                {
                    "id": str(self.bot_user_id),
                    "type": 1,
                    "allow": str(channel.bot_permissions),
                    "deny": str(ALL_PERMISSIONS & ~channel.bot_permissions),
                }
            ]
        return data

    def _interaction_channel(self, channel: FakeChannel, user: FakeUser) -> dict[str, Any]:
        data = self._channel_payload(channel)
        if channel.guild_id is not None:
            data["permissions"] = str(
                self._guild_permissions(self.guild(channel.guild_id), user.id)
            )
        return data

    def _resolved_channel(self, channel: FakeChannel) -> dict[str, Any]:
        data = {
            key: value
            for key, value in self._channel_payload(channel).items()
            if key in ("id", "type", "name", "parent_id", "thread_metadata", "guild_id")
        }
        data["permissions"] = str(self._bot_permissions(channel))
        return data

    def _guild_payload(self, guild: FakeGuild, *, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(guild.id),
            "name": guild.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(guild.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": guild.premium_tier,
            "premium_subscription_count": 0,
            "premium_progress_bar_enabled": False,
            "preferred_locale": "en-US",
            "system_channel_id": str(guild.channel_ids[0]) if guild.channel_ids else None,
            "system_channel_flags": 0,
            "features": [],
            "roles": list(guild.roles.values()),
            "emojis": [],
            "stickers": [],
            "max_members": 500_000,
            "vanity_url_code": None,
            "application_id": None,
        }
        if full:
            channels = [self.channel(cid) for cid in guild.channel_ids]
            data.update(
                joined_at=_iso(guild.joined_at),
                large=False,
                unavailable=False,
                member_count=len(guild.members),
                members=[self._member_payload(guild, uid) for uid in guild.members],
                channels=[self._channel_payload(c) for c in channels if not c.is_thread],
                threads=[self._channel_payload(c) for c in channels if c.is_thread],
                presences=[],
                voice_states=[],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
            )
        return data

    def _bot_user_payload(self) -> dict[str, Any]:
        data = self.user(self.bot_user_id).payload()
        data.update(verified=True, mfa_enabled=False, locale="en-US", email=None)
        return data

    def _application_payload(self) -> dict[str, Any]:
        return {
            "id": str(self.application_id),
            "name": "VoiceClone",
            "description": "Speaks text in a cloned voice.",
            "icon": None,
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": secrets.token_hex(32),
            "owner": self.user(self.owner_id).payload(),
            "team": None,
            "flags": (1 << 19) | (1 << 23),  # GATEWAY_MESSAGE_CONTENT_LIMITED, COMMAND_BADGE
            "bot": self.user(self.bot_user_id).payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "approximate_guild_count": len(self._guilds),
        }

    def _message_payload(self, message: FakeMessage, *, nested: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(message.id),
            "channel_id": str(message.channel_id),
            "type": message.type,
            "content": message.content,
            "author": message.author,
            "attachments": [a.payload() for a in message.attachments],
            "embeds": message.embeds,
            "components": message.components,
            "mentions": [self.user(uid).payload() for uid in message.mentions],
            "mention_roles": [],
            "mention_everyone": message.mention_everyone,
            "pinned": False,
            "tts": message.tts,
            "timestamp": _iso(message.created_at),
            "edited_timestamp": _iso(message.edited_at),
            "flags": message.flags,
        }
        if message.webhook_id is not None:
            data["webhook_id"] = str(message.webhook_id)
            if message.webhook_id == self.application_id:  # not a channel's own webhook
                data["application_id"] = str(self.application_id)
        if message.interaction_metadata is not None:
            data["interaction_metadata"] = message.interaction_metadata
        if message.message_reference is not None:
            data["message_reference"] = message.message_reference
            referenced = self._messages.get(int(message.message_reference["message_id"]))
            if not nested:
                data["referenced_message"] = (
                    self._message_payload(referenced, nested=True) if referenced else None
                )
        return data

    # ------------------------------------------------------------------ messages

    def _store_attachment(
        self,
        channel_id: int,
        filename: str,
        data: bytes,
        content_type: str | None,
        *,
        ephemeral: bool = False,
    ) -> FakeAttachment:
        """Keep the bytes and mint signed CDN URLs, as Discord does for every upload."""
        safe_name = re.sub(r"[^\w.\-]", "_", filename) or "unknown"
        attachment = FakeAttachment(
            self._ids.next(), channel_id, safe_name, data, content_type, ephemeral=ephemeral
        )
        self._sign_urls(attachment)
        self._attachments[attachment.id] = attachment
        return attachment

    def _sign_urls(self, attachment: FakeAttachment) -> None:
        """Mint the signed CDN `url`/`proxy_url` for the attachment's channel, from now."""
        issued = int(time.time())
        expires = issued + int(self.cdn_url_lifetime)
        attachment.expires_at = time.time() + self.cdn_url_lifetime
        query = (
            f"ex={expires:x}&is={issued:x}&hm={self._cdn_signature(attachment, expires, issued)}&"
        )
        path = f"attachments/{attachment.channel_id}/{attachment.id}/{attachment.filename}"
        attachment.url = f"{self.base_url}/{path}?{query}"
        attachment.proxy_url = f"{self.base_url}/media/{path}?{query}"

    def _cdn_signature(self, attachment: FakeAttachment, expires: int, issued: int) -> str:
        signed = (
            f"{attachment.channel_id}/{attachment.id}/{attachment.filename}:{expires:x}:{issued:x}"
        )
        return hmac.new(self._cdn_secret, signed.encode(), hashlib.sha256).hexdigest()

    def _attachments_from_upload(
        self,
        channel_id: int,
        payload: Mapping[str, Any],
        request: RecordedRequest,
        keep: Sequence[FakeAttachment] = (),
    ) -> list[FakeAttachment]:
        """New files by `files[n]` index plus metadata from `attachments`; `keep` survives."""
        metadata: dict[int, Mapping[str, Any]] = {}
        kept: list[FakeAttachment] = []
        existing = {a.id: a for a in keep}
        for entry in payload.get("attachments") or []:
            entry_id = _snowflake_field(entry.get("id"))
            if entry_id in existing:
                kept.append(existing[entry_id])
            elif entry_id is not None:
                metadata[entry_id] = entry
        created: list[FakeAttachment] = []
        for index, upload in sorted(request.files_by_index.items()):
            meta = metadata.get(index, {})
            content_type = mimetypes.guess_type(meta.get("filename") or upload.filename)[0]
            attachment = self._store_attachment(
                channel_id, meta.get("filename") or upload.filename, upload.data, content_type
            )
            attachment.description = meta.get("description")
            attachment.title = meta.get("title")
            attachment.duration_secs = meta.get("duration_secs")
            attachment.waveform = meta.get("waveform")
            created.append(attachment)
        return kept + created

    def _check_upload_sizes(self, request: RecordedRequest, limit: int) -> None:
        if any(len(upload.data) > limit for upload in request.files):
            raise DiscordAPIError(413, 40005, "Request entity too large")

    def _check_message_body(self, message: FakeMessage) -> None:
        """Discord's create/edit validation: length, emptiness, voice-message rules."""
        if len(message.content) > MAX_CONTENT_LENGTH:
            raise _form_error(
                "content",
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_CONTENT_LENGTH} or fewer in length.",
            )
        if len(message.embeds) > 10:
            raise _form_error("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        if len(message.attachments) > 10:
            raise _form_error(
                "attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."
            )
        if not (message.content or message.embeds or message.attachments or message.components):
            raise DiscordAPIError(400, 50006, "Cannot send an empty message")
        if message.flags & IS_VOICE_MESSAGE:
            if message.content or message.embeds or message.components:
                raise DiscordAPIError(
                    400, 50159, "Voice messages do not support additional content."
                )
            audio = [a for a in message.attachments if (a.content_type or "").startswith("audio/")]
            if len(message.attachments) != 1 or len(audio) != 1:
                raise DiscordAPIError(
                    400, 50160, "Voice messages must have a single audio attachment."
                )
            if audio[0].duration_secs is None or audio[0].waveform is None:
                raise DiscordAPIError(400, 50161, "Voice messages must have supporting metadata.")

    def _mentions(
        self, content: str, allowed: Mapping[str, Any] | None, replied_to: int | None
    ) -> tuple[list[int], bool]:
        """User ids pinged and whether @everyone pings, after `allowed_mentions`."""
        named = [int(m) for m in _MENTION_RE.findall(content)]
        candidates = [uid for uid in dict.fromkeys(named) if uid in self._users]
        everyone = "@everyone" in content or "@here" in content
        if allowed is None:
            users, replied = candidates, True
        else:
            parse = allowed.get("parse") or []
            explicit = {int(uid) for uid in allowed.get("users") or []}
            users = [uid for uid in candidates if "users" in parse or uid in explicit]
            everyone = everyone and "everyone" in parse
            replied = bool(allowed.get("replied_user", False))
        if replied_to is not None and replied and replied_to not in users:
            users.append(replied_to)
        return users, everyone

    def _new_message(
        self,
        channel: FakeChannel,
        payload: Mapping[str, Any],
        request: RecordedRequest,
        *,
        interaction: FakeInteraction | None = None,
        extra_flags: int = 0,
    ) -> FakeMessage:
        """Create (not yet store) a bot message from a request body."""
        message = FakeMessage(
            self._ids.next(),
            channel.id,
            channel.guild_id,
            self.user(self.bot_user_id).payload(),
            content=payload.get("content") or "",
            embeds=list(payload.get("embeds") or []),
            components=list(payload.get("components") or []),
            flags=(int(payload.get("flags") or 0) & CREATABLE_FLAGS) | extra_flags,
            tts=bool(payload.get("tts", False)),
            allowed_mentions=payload.get("allowed_mentions"),
            nonce=str(payload["nonce"]) if payload.get("nonce") else None,
        )
        message.attachments = self._attachments_from_upload(channel.id, payload, request)
        if interaction is not None:
            message.webhook_id = self.application_id
            message.interaction_id = interaction.id
            message.interaction_metadata = {
                "id": str(interaction.id),
                "type": interaction.type,
                "user": self.user(interaction.user_id).payload(),
                "authorizing_integration_owners": interaction.payload[
                    "authorizing_integration_owners"
                ],
            }
            if interaction.type == APPLICATION_COMMAND:
                kind = interaction.data.get("type", CHAT_INPUT)
                if kind == CHAT_INPUT:
                    message.type = MESSAGE_CHAT_INPUT_COMMAND
                else:
                    message.type = MESSAGE_CONTEXT_MENU_COMMAND
                    target = interaction.data["target_id"]
                    if kind == USER_COMMAND:
                        message.interaction_metadata["target_user"] = self.user(
                            int(target)
                        ).payload()
                    else:
                        message.interaction_metadata["target_message_id"] = target
            elif interaction.type == MESSAGE_COMPONENT and interaction.message_id is not None:
                message.interaction_metadata["interacted_message_id"] = str(interaction.message_id)
        if not message.flags & LOADING:
            self._check_message_body(message)
        self._refresh_mentions(message)
        return message

    def _refresh_mentions(self, message: FakeMessage) -> None:
        """Who the message pings: content mentions and the replied-to author, if allowed."""
        replied_to = None
        if message.message_reference is not None:
            target = self._messages.get(int(message.message_reference["message_id"]))
            replied_to = target.author_id if target is not None else None
        message.mentions, message.mention_everyone = self._mentions(
            message.content, message.allowed_mentions, replied_to
        )

    def _store_message(self, channel: FakeChannel, message: FakeMessage) -> None:
        self._messages[message.id] = message
        if not message.ephemeral:
            channel.messages.append(message)

    def _apply_edit(
        self, message: FakeMessage, payload: Mapping[str, Any], request: RecordedRequest
    ) -> None:
        """PATCH semantics: present fields replace; `attachments` lists what to keep.

        The edit is built on a copy and validated before it lands, so a rejected edit
        leaves the message as it was (as on Discord).
        """
        if message.flags & IS_VOICE_MESSAGE:
            raise DiscordAPIError(400, 50162, "Voice messages cannot be edited.")
        edited = dataclasses.replace(message)  # fields below are reassigned, never mutated
        if "content" in payload:
            edited.content = payload["content"] or ""
        if "embeds" in payload:
            edited.embeds = list(payload["embeds"] or [])
        if "components" in payload:
            edited.components = list(payload["components"] or [])
        if "allowed_mentions" in payload:
            edited.allowed_mentions = payload["allowed_mentions"]
        if payload.get("flags") is not None:
            suppress = int(payload["flags"]) & SUPPRESS_EMBEDS
            edited.flags = (edited.flags & ~SUPPRESS_EMBEDS) | suppress
        if "attachments" in payload:
            edited.attachments = self._attachments_from_upload(
                message.channel_id, payload, request, keep=message.attachments
            )
        elif request.files:
            added = self._attachments_from_upload(message.channel_id, payload, request)
            edited.attachments = [*message.attachments, *added]
        edited.flags &= ~LOADING
        self._check_message_body(edited)
        message.history.append(message.snapshot())
        if not message.loading:
            message.edited_at = time.time()
        for name in ("content", "embeds", "components", "allowed_mentions", "flags", "attachments"):
            setattr(message, name, getattr(edited, name))
        self._refresh_mentions(message)

    def _check_channel_send(
        self, channel: FakeChannel, payload: Mapping[str, Any], files: bool
    ) -> None:
        """The permission and block rules for a bot posting in a channel."""
        if channel.type == DM:
            if self.user(channel.recipient_id or 0).blocks_dms:
                raise DiscordAPIError(403, 50007, "Cannot send messages to this user")
            return
        granted = self._bot_permissions(channel)
        if granted & ADMINISTRATOR:
            return
        if not granted & VIEW_CHANNEL:
            raise DiscordAPIError(403, 50001, "Missing Access")
        needed = SEND_MESSAGES_IN_THREADS if channel.is_thread else SEND_MESSAGES
        if files:
            needed |= ATTACH_FILES
        if granted & needed != needed:
            raise _missing_permissions()
        if int(payload.get("flags") or 0) & IS_VOICE_MESSAGE and not granted & SEND_VOICE_MESSAGES:
            raise DiscordAPIError(403, 50173, "You cannot send voice messages in this channel.")
        if payload.get("message_reference") and not granted & READ_MESSAGE_HISTORY:
            raise DiscordAPIError(
                400, 160002, "Cannot reply without permission to read message history"
            )

    def _resolve_reference(
        self, channel: FakeChannel, reference: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A reply's message_reference as Discord echoes it, or None if it may be dropped."""
        message_id = _snowflake_field(reference.get("message_id"))
        target = self._messages.get(message_id or 0)
        target_channel = _snowflake_field(reference.get("channel_id")) or channel.id
        if target is None or target.deleted or target.channel_id != target_channel:
            if reference.get("fail_if_not_exists", True):
                raise _form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
            return None
        echoed = {"type": 0, "message_id": str(target.id), "channel_id": str(target.channel_id)}
        if target.guild_id is not None:
            echoed["guild_id"] = str(target.guild_id)
        return echoed

    # ------------------------------------------------------------------ HTTP plumbing

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
        ]
        for method, path, handler in routes:
            router.add_route(method, path, handler)

    async def _handle(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Record every request, enforce auth, map DiscordAPIError to Discord's error JSON."""
        if request.path in ("/gateway", "/gateway/resume"):
            response: web.StreamResponse = await handler(request)
            return response
        recorded = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers)
        )
        self.requests.append(recorded)
        try:
            await self._parse_body(request, recorded)
            self._check_auth(request)
            self._raise_injected(recorded)
            request[_RECORDED] = recorded
            hold = next((h for h in self._holds if h.matches(recorded)), None)
            if hold is not None and not hold.after_apply:
                await self._park(hold, recorded)
                if request.transport is None or request.transport.is_closing():
                    # The client died while the request was "in transit": never applied.
                    recorded.status = 0
                    return web.Response(status=499)
            response = await handler(request)
            if hold is not None and hold.after_apply:
                await self._park(hold, recorded)
        except DiscordAPIError as error:
            response = _json_response(error.body(), error.status, error.headers)
        except web.HTTPMethodNotAllowed:
            response = _json_response({"message": "405: Method Not Allowed", "code": 0}, 405)
        except web.HTTPNotFound:
            response = _json_response({"message": "404: Not Found", "code": 0}, 404)
        recorded.status = response.status
        if isinstance(response, web.Response) and response.content_type == "application/json":
            recorded.response = (
                json.loads(response.body) if isinstance(response.body, bytes) else None
            )
        await self._changed()
        return response

    async def _parse_body(self, request: web.Request, recorded: RecordedRequest) -> None:
        """JSON bodies, or multipart `payload_json` + `files[n]` (bytes kept verbatim)."""
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            position = 0
            async for part in reader:
                if not isinstance(part, aiohttp.BodyPartReader):
                    continue
                if part.name == "payload_json":
                    recorded.json = self._loads(await part.text())
                elif part.filename is not None:
                    upload = UploadedFile(
                        part.filename, part.headers.get("Content-Type"), bytes(await part.read())
                    )
                    match = _FILE_FIELD_RE.fullmatch(part.name or "")
                    index = int(match.group(1)) if match else position
                    recorded.files.append(upload)
                    recorded.files_by_index[index] = upload
                    position += 1
        elif request.body_exists:
            raw = await request.read()
            if raw:
                recorded.json = self._loads(raw.decode())

    @staticmethod
    def _loads(text: str) -> Any:
        try:
            return json.loads(text)
        except ValueError:
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.") from None

    def _check_auth(self, request: web.Request) -> None:
        """Bot token on REST; interaction and webhook-token routes are authorised by token."""
        if not request.path.startswith(API_PREFIX):
            return
        route = request.path.removeprefix(API_PREFIX)
        if route.startswith(("/interactions/", "/webhooks/")) or route == "/gateway":
            return
        if request.headers.get("Authorization") != f"Bot {self.token}":
            raise DiscordAPIError(401, 0, "401: Unauthorized")

    async def _park(self, hold: Hold, recorded: RecordedRequest) -> None:
        hold.held.append(recorded)
        await self._changed()
        await hold.wait()

    def _raise_injected(self, recorded: RecordedRequest) -> None:
        for injected in self._injected:
            if injected.method == recorded.method and injected.pattern.search(recorded.route):
                injected.times -= 1
                if injected.times <= 0:
                    self._injected.remove(injected)
                raise injected.error

    @staticmethod
    def _recorded(request: web.Request) -> RecordedRequest:
        return request[_RECORDED]

    def _json_body(self, request: web.Request) -> dict[str, Any]:
        body = self._recorded(request).json
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise DiscordAPIError(400, 50109, "The request body contains invalid JSON.")
        return body

    def _path_int(self, request: web.Request, key: str) -> int:
        return int(request.match_info[key])

    def _today(self) -> str:
        return datetime.now(UTC).date().isoformat()

    # ------------------------------------------------------------------ REST: identity

    async def _get_me(self, request: web.Request) -> web.Response:
        return _json_response(self._bot_user_payload())

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self._users.get(self._path_int(request, "user_id"))
        if user is None:
            raise _unknown(10013, "User")
        return _json_response(user.payload())

    async def _get_application(self, request: web.Request) -> web.Response:
        return _json_response(self._application_payload())

    async def _get_gateway(self, request: web.Request) -> web.Response:
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, request: web.Request) -> web.Response:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1}
        return _json_response({"url": self.gateway_url, "shards": 1, "session_start_limit": limit})

    async def _create_dm(self, request: web.Request) -> web.Response:
        recipient = _snowflake_field(self._json_body(request).get("recipient_id"))
        if recipient is None or recipient not in self._users:
            raise DiscordAPIError(400, 50033, "Invalid Recipient(s)")
        return _json_response(self._channel_payload(self.channel(self.dm_channel(recipient))))

    # ------------------------------------------------------------------ REST: commands

    def _command_scope(self, request: web.Request) -> int | None:
        if self._path_int(request, "application_id") != self.application_id:
            raise DiscordAPIError(403, 50001, "Missing Access")
        if "guild_id" not in request.match_info:
            return None
        guild_id = self._path_int(request, "guild_id")
        if guild_id not in self._guilds:
            raise DiscordAPIError(403, 50001, "Missing Access")
        return guild_id

    async def _list_commands(self, request: web.Request) -> web.Response:
        return _json_response(self.commands(self._command_scope(request)))

    async def _get_command(self, request: web.Request) -> web.Response:
        return _json_response(self._command_by_id(request)[1])

    def _command_by_id(self, request: web.Request) -> tuple[int | None, dict[str, Any]]:
        scope = self._command_scope(request)
        command_id = request.match_info["command_id"]
        for command in self._commands.get(scope, []):
            if command["id"] == command_id:
                return scope, command
        raise _unknown(10063, "application command")

    async def _delete_command(self, request: web.Request) -> web.Response:
        scope, command = self._command_by_id(request)
        self._commands[scope].remove(command)
        return web.Response(status=204)

    async def _put_commands(self, request: web.Request) -> web.Response:
        """Bulk overwrite: same ids for unchanged names; new names count as daily creates."""
        scope = self._command_scope(request)
        body = self._recorded(request).json
        if not isinstance(body, list):
            raise _form_error("_root", "BASE_TYPE_ARRAY", "Must be an array.")
        self.command_puts += 1
        self._commands[scope] = self._upsert_commands(scope, body, replace=True)
        return _json_response(self.commands(scope))

    async def _post_command(self, request: web.Request) -> web.Response:
        scope = self._command_scope(request)
        body = self._json_body(request)
        existing = {(c.get("type", 1), c["name"]) for c in self._commands.get(scope, [])}
        self._commands[scope] = self._upsert_commands(scope, [body], replace=False)
        key = (body.get("type", 1), body.get("name"))
        command = next(c for c in self._commands[scope] if (c.get("type", 1), c["name"]) == key)
        return _json_response(command, 200 if key in existing else 201)

    def _upsert_commands(
        self, scope: int | None, bodies: Sequence[Any], *, replace: bool
    ) -> list[dict[str, Any]]:
        current = {(c.get("type", 1), c["name"]): c for c in self._commands.get(scope, [])}
        for index, body in enumerate(bodies):
            self._validate_command(index, body)
        keys = [(body.get("type", 1), body["name"]) for body in bodies]
        if len(set(keys)) != len(keys):
            raise _form_error(
                "_root",
                "APPLICATION_COMMANDS_DUPLICATE_NAME",
                "Application command names must be unique",
            )
        creates = sum(1 for key in keys if key not in current)
        self._charge_command_creates(scope, creates)
        result = {} if replace else dict(current)
        for key, body in zip(keys, bodies, strict=True):
            result[key] = self._stored_command(scope, body, current.get(key))
        if sum(1 for kind, _ in result if kind == 1) > MAX_COMMANDS_PER_SCOPE:
            raise DiscordAPIError(
                400, 30032, "Maximum number of application commands reached (100)"
            )
        return list(result.values())

    def _charge_command_creates(self, scope: int | None, creates: int) -> None:
        key = (scope, self._today())
        used = self._command_creates.get(key, 0)
        if used + creates > self.command_create_limit:
            now = datetime.now(UTC)
            midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() + 86_400
            retry_after = round(midnight - now.timestamp(), 3)
            raise DiscordAPIError(
                429,
                30034,
                f"Max number of daily application command creates has been reached "
                f"({self.command_create_limit})",
                extra={"retry_after": retry_after, "global": False},
                headers={"Retry-After": str(int(retry_after) + 1)},
            )
        self._command_creates[key] = used + creates

    def _validate_command(self, index: int, body: Any) -> None:
        """The checks Discord applies to names, descriptions and option order."""
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise _form_error(f"{index}.name", "BASE_TYPE_REQUIRED", "This field is required")
        name, kind = body["name"], body.get("type", 1)
        description = body.get("description") or ""
        if kind == 1:
            if not _COMMAND_NAME_RE.fullmatch(name) or name != name.lower():
                raise _form_error(
                    f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid"
                )
            if not 1 <= len(description) <= 100:
                raise _form_error(
                    f"{index}.description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
        elif not 1 <= len(name) <= 32:
            raise _form_error(
                f"{index}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length."
            )
        self._validate_options(f"{index}.options", body.get("options") or [])
        required = body.get("default_member_permissions")
        if required is not None:
            try:
                valid = not isinstance(required, bool) and int(required) >= 0
            except (TypeError, ValueError):
                valid = False
            if not valid:
                raise _form_error(
                    f"{index}.default_member_permissions",
                    "NUMBER_TYPE_COERCE",
                    f'Value "{required}" is not int.',
                )

    def _validate_options(self, where: str, options: Sequence[Mapping[str, Any]]) -> None:
        if len(options) > 25:
            raise _form_error(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen_optional = False
        for position, option in enumerate(options):
            if option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
                self._validate_options(f"{where}.{position}.options", option.get("options") or [])
                continue
            if not option.get("required"):
                seen_optional = True
            elif seen_optional:
                raise _form_error(
                    where,
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )

    def _stored_command(
        self, scope: int | None, body: Mapping[str, Any], previous: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        """What Discord returns for a command: ids, version, defaults filled in."""
        kind = body.get("type", 1)
        required = body.get("default_member_permissions")
        command: dict[str, Any] = {
            "id": previous["id"] if previous else str(self._ids.next()),
            "application_id": str(self.application_id),
            "version": previous["version"] if previous else str(self._ids.next()),
            "type": kind,
            "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description") or "",
            "description_localizations": body.get("description_localizations"),
            # A bit set sent as a number (discord.py does) comes back as a string.
            "default_member_permissions": None if required is None else str(int(required)),
            "dm_permission": body.get("dm_permission", True),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
            "nsfw": bool(body.get("nsfw", False)),
        }
        if kind == 1:
            command["options"] = list(body.get("options") or [])
        if scope is not None:
            command["guild_id"] = str(scope)
        if previous is not None and {k: v for k, v in previous.items() if k != "version"} != {
            k: v for k, v in command.items() if k != "version"
        }:
            command["version"] = str(self._ids.next())
        return command

    # ------------------------------------------------------------------ REST: interactions

    async def _callback(self, request: web.Request) -> web.Response:
        """The initial response: deadline, double-ack and type rules, then its effect."""
        recorded = self._recorded(request)
        interaction = self._interactions.get(self._path_int(request, "interaction_id"))
        if interaction is None or interaction.token != request.match_info["token"]:
            raise _unknown_interaction()
        self._check_upload_sizes(recorded, interaction.attachment_size_limit)
        now = time.monotonic()
        if interaction.acknowledged_at is not None:
            raise DiscordAPIError(400, 40060, "Interaction has already been acknowledged.")
        if now > interaction.deadline:
            raise _unknown_interaction()
        body = self._json_body(request)
        kind = body.get("type")
        updates_message = kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
        if kind not in ALLOWED_CALLBACKS.get(interaction.type, set()) or (
            updates_message and interaction.message_id is None
        ):
            raise _form_error(
                "type", "INTERACTION_RESPONSE_TYPE_INVALID", "Invalid interaction response type"
            )
        data: dict[str, Any] = body.get("data") or {}
        message = self._apply_callback(interaction, kind, data, recorded)
        interaction.callbacks.append(
            {"type": kind, "data": data, "time": now, "files": recorded.files}
        )
        interaction.acknowledged_at = now
        interaction.response_type = kind
        if message is not None:
            interaction.original = message
        if message is not None and kind in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            await self._broadcast_message_create(message)
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        return _json_response(self._callback_response(interaction, kind, message))

    def _apply_callback(
        self,
        interaction: FakeInteraction,
        kind: int,
        data: dict[str, Any],
        recorded: RecordedRequest,
    ) -> FakeMessage | None:
        channel = self.channel(interaction.channel_id)
        source = self._messages.get(interaction.message_id or 0)
        if kind == CHANNEL_MESSAGE:
            message = self._new_message(channel, data, recorded, interaction=interaction)
            self._store_message(channel, message)
            return message
        if kind == DEFERRED_CHANNEL_MESSAGE:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            message = self._new_message(
                channel, {}, recorded, interaction=interaction, extra_flags=flags
            )
            self._store_message(channel, message)
            return message
        if kind == UPDATE_MESSAGE and source is not None:
            self._apply_edit(source, data, recorded)
        if kind == AUTOCOMPLETE_RESULT:
            choices = list(data.get("choices") or [])
            if len(choices) > 25:
                raise _form_error(
                    "data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."
                )
            interaction.autocomplete_choices = choices
        if kind == MODAL:
            if not 1 <= len(data.get("title") or "") <= 45:
                raise _form_error(
                    "data.title", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."
                )
            interaction.modal = data
        return source if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) else None

    def _callback_response(
        self, interaction: FakeInteraction, kind: int, message: FakeMessage | None
    ) -> dict[str, Any]:
        """The `?with_response=1` body discord.py reads (`interaction` + `resource`)."""
        summary: dict[str, Any] = {"id": str(interaction.id), "type": interaction.type}
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            summary["response_message_id"] = str(message.id)
            summary["response_message_loading"] = message.loading
            summary["response_message_ephemeral"] = message.ephemeral
            if kind != DEFERRED_UPDATE_MESSAGE:
                resource["message"] = self._message_payload(message)
        return {"interaction": summary, "resource": resource}

    def _webhook_interaction(self, request: web.Request) -> FakeInteraction:
        """The interaction behind `/webhooks/{app}/{token}`; 401/50027 once the token died."""
        if self._path_int(request, "application_id") != self.application_id:
            raise _unknown(10015, "Webhook")
        interaction = self._interactions_by_token.get(request.match_info["token"])
        if interaction is None or time.monotonic() > interaction.expires_at:
            raise _invalid_webhook_token()
        if interaction.acknowledged_at is None or interaction.type == AUTOCOMPLETE:
            raise _unknown(10015, "Webhook")
        return interaction

    def _webhook_message(self, request: web.Request, interaction: FakeInteraction) -> FakeMessage:
        message_id = request.match_info.get("message_id")
        if message_id is None:
            message = interaction.original
        else:
            owned = [interaction.original, *interaction.followups]
            message = next((m for m in owned if m is not None and m.id == int(message_id)), None)
        if message is None or message.deleted:
            raise _unknown(10008, "Message")
        return message

    async def _execute_webhook(self, request: web.Request) -> web.Response:
        """A follow-up; right after a bare defer it edits the "thinking" message instead."""
        interaction = self._webhook_interaction(request)
        recorded = self._recorded(request)
        self._check_upload_sizes(recorded, interaction.attachment_size_limit)
        payload = self._json_body(request)
        original = interaction.original
        if (
            interaction.response_type == DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original.loading
            and not original.deleted
        ):
            edit = {k: v for k, v in payload.items() if k != "flags"}
            self._apply_edit(original, edit, recorded)
            message = original
        else:
            channel = self.channel(interaction.channel_id)
            message = self._new_message(channel, payload, recorded, interaction=interaction)
            self._store_message(channel, message)
            await self._broadcast_message_create(message)
        interaction.followups.append(message)
        if request.query.get("wait") in ("0", "false", "False"):
            return web.Response(status=204)
        return _json_response(self._message_payload(message))

    async def _get_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        return _json_response(self._message_payload(self._webhook_message(request, interaction)))

    async def _edit_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        recorded = self._recorded(request)
        self._check_upload_sizes(recorded, interaction.attachment_size_limit)
        message = self._webhook_message(request, interaction)
        payload = self._json_body(request)
        self._apply_edit(message, payload, recorded)
        interaction.edits.append(
            {
                "message_id": message.id,
                "payload": payload,
                "files": recorded.files,
                "time": time.monotonic(),
            }
        )
        return _json_response(self._message_payload(message))

    async def _delete_webhook_message(self, request: web.Request) -> web.Response:
        interaction = self._webhook_interaction(request)
        self._webhook_message(request, interaction).deleted = True
        return web.Response(status=204)

    # ------------------------------------------------------------------ REST: channels

    def _visible_channel(self, request: web.Request) -> FakeChannel:
        channel = self._channels.get(self._path_int(request, "channel_id"))
        if channel is None:
            raise _unknown(10003, "Channel")
        if channel.type != DM and not self._bot_permissions(channel) & (
            VIEW_CHANNEL | ADMINISTRATOR
        ):
            raise DiscordAPIError(403, 50001, "Missing Access")
        return channel

    def _channel_message(self, request: web.Request, channel: FakeChannel) -> FakeMessage:
        message = self._messages.get(self._path_int(request, "message_id"))
        if (
            message is None
            or message.deleted
            or message.ephemeral
            or message.channel_id != channel.id
        ):
            raise _unknown(10008, "Message")
        return message

    async def _get_channel(self, request: web.Request) -> web.Response:
        return _json_response(self._channel_payload(self._visible_channel(request)))

    async def _create_channel_message(self, request: web.Request) -> web.Response:
        channel = self._visible_channel(request)
        recorded = self._recorded(request)
        self._check_upload_sizes(recorded, self._upload_limit(channel))
        payload = self._json_body(request)
        self._check_channel_send(channel, payload, bool(recorded.files))
        duplicate = self._enforced_nonce_duplicate(channel, payload)
        if duplicate is not None:
            return _json_response(self._message_payload(duplicate))
        reference = payload.get("message_reference")
        echoed = self._resolve_reference(channel, reference) if reference else None
        flags = int(payload.get("flags") or 0) & ~EPHEMERAL
        message = self._new_message(channel, {**payload, "flags": flags}, recorded)
        if echoed is not None:
            message.message_reference, message.type = echoed, MESSAGE_REPLY
            self._refresh_mentions(message)
        lacks_embed_links = not self._bot_permissions(channel) & (EMBED_LINKS | ADMINISTRATOR)
        if channel.type != DM and lacks_embed_links:
            message.embeds = []  # Discord silently drops embeds without Embed Links
        self._store_message(channel, message)
        await self._broadcast_message_create(message)
        return _json_response(self._message_payload(message))

    def _enforced_nonce_duplicate(
        self, channel: FakeChannel, payload: Mapping[str, Any]
    ) -> FakeMessage | None:
        """Discord's `enforce_nonce`: a second send with the same nonce by the same author
        within a few minutes returns the first message instead of posting again."""
        nonce = payload.get("nonce")
        if not nonce or not payload.get("enforce_nonce"):
            return None
        for message in reversed(self.channel_messages(channel.id)):
            if time.time() - message.created_at > NONCE_WINDOW:
                break
            if message.nonce == str(nonce) and message.author_id == self.bot_user_id:
                return message
        return None

    async def _list_channel_messages(self, request: web.Request) -> web.Response:
        channel = self._visible_channel(request)
        if channel.type != DM and not self._bot_permissions(channel) & READ_MESSAGE_HISTORY:
            return _json_response([])
        messages = list(reversed(self.channel_messages(channel.id)))
        before = _snowflake_field(request.query.get("before"))
        after = _snowflake_field(request.query.get("after"))
        if before is not None:
            messages = [m for m in messages if m.id < before]
        if after is not None:
            messages = [m for m in messages if m.id > after]
        limit = min(int(request.query.get("limit", "50")), 100)
        return _json_response([self._message_payload(m) for m in messages[:limit]])

    async def _get_channel_message(self, request: web.Request) -> web.Response:
        channel = self._visible_channel(request)
        if channel.type != DM and not self._bot_permissions(channel) & READ_MESSAGE_HISTORY:
            raise _missing_permissions()
        return _json_response(self._message_payload(self._channel_message(request, channel)))

    async def _edit_channel_message(self, request: web.Request) -> web.Response:
        channel = self._visible_channel(request)
        message = self._channel_message(request, channel)
        if message.author_id != self.bot_user_id or message.webhook_id is not None:
            raise DiscordAPIError(403, 50005, "Cannot edit a message authored by another user")
        recorded = self._recorded(request)
        self._check_upload_sizes(recorded, self._upload_limit(channel))
        self._apply_edit(message, self._json_body(request), recorded)
        return _json_response(self._message_payload(message))

    async def _delete_channel_message(self, request: web.Request) -> web.Response:
        channel = self._visible_channel(request)
        message = self._channel_message(request, channel)
        if (
            message.author_id != self.bot_user_id
            and not self._bot_permissions(channel) & MANAGE_MESSAGES
        ):
            raise _missing_permissions()
        message.deleted = True
        return web.Response(status=204)

    async def _typing(self, request: web.Request) -> web.Response:
        self._visible_channel(request)
        return web.Response(status=204)

    # ------------------------------------------------------------------ REST: guilds

    def _known_guild(self, request: web.Request) -> FakeGuild:
        guild = self._guilds.get(self._path_int(request, "guild_id"))
        if guild is None:
            raise _unknown(10004, "Guild")
        return guild

    async def _get_guild(self, request: web.Request) -> web.Response:
        guild = self._known_guild(request)
        data = self._guild_payload(guild, full=False)
        if request.query.get("with_counts") in ("1", "true"):
            data.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return _json_response(data)

    async def _get_guild_channels(self, request: web.Request) -> web.Response:
        guild = self._known_guild(request)
        channels = [self.channel(cid) for cid in guild.channel_ids]
        return _json_response([self._channel_payload(c) for c in channels if not c.is_thread])

    async def _get_guild_roles(self, request: web.Request) -> web.Response:
        return _json_response(list(self._known_guild(request).roles.values()))

    async def _list_members(self, request: web.Request) -> web.Response:
        guild = self._known_guild(request)
        limit = int(request.query.get("limit", "1"))
        members = [self._member_payload(guild, uid) for uid in sorted(guild.members)]
        return _json_response(members[:limit])

    async def _get_member(self, request: web.Request) -> web.Response:
        guild = self._known_guild(request)
        user_id = self._path_int(request, "user_id")
        if user_id not in guild.members:
            raise _unknown(10007, "Member")
        return _json_response(self._member_payload(guild, user_id))

    # ------------------------------------------------------------------ CDN

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        """Signed attachment URLs: 404 "no longer available" when unknown, forged or expired."""
        attachment = self._attachments.get(self._path_int(request, "attachment_id"))
        query = request.query
        gone = web.Response(status=404, text="This content is no longer available.")
        if (
            attachment is None
            or attachment.channel_id != self._path_int(request, "channel_id")
            or attachment.filename != request.match_info["filename"]
            or time.time() > attachment.expires_at
        ):
            return gone
        try:
            expires, issued = int(query["ex"], 16), int(query["is"], 16)
        except (KeyError, ValueError):
            return gone
        expected = self._cdn_signature(attachment, expires, issued)
        if not hmac.compare_digest(expected, query.get("hm", "")) or time.time() > expires:
            return gone
        return web.Response(
            body=attachment.data,
            headers={"Content-Type": attachment.content_type or "application/octet-stream"},
        )

    # ------------------------------------------------------------------ gateway

    def _live_connections(self) -> Iterator[GatewayConnection]:
        for session in self._sessions.values():
            connection = session.connection
            if connection is not None and not connection.closed:
                yield connection

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """HELLO, then IDENTIFY/RESUME, heartbeats and the few client ops discord.py sends."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        connection = GatewayConnection(ws, request.path, dict(request.query))
        if request.query.get("compress") == "zlib-stream":
            connection.compressor = zlib.compressobj()
        self.gateway_connections.append(connection)
        try:
            if request.query.get("v", "10") != "10":
                await ws.close(code=4012, message=b"Invalid API version")
            elif request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload.")
            else:
                hello = {
                    "heartbeat_interval": self.heartbeat_interval_ms,
                    "_trace": ["fake-discord"],
                }
                await self._send(connection, {"op": OP_HELLO, "d": hello, "s": None, "t": None})
                await self._serve_gateway(connection)
        finally:
            connection.closed = True
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            await self._changed()
        return ws

    async def _serve_gateway(self, connection: GatewayConnection) -> None:
        async for frame in connection.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                await connection.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            try:
                payload = json.loads(frame.data)
            except ValueError:
                await connection.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            connection.received.append(payload)
            await self._on_gateway_op(connection, payload)
            await self._changed()

    async def _on_gateway_op(
        self, connection: GatewayConnection, payload: Mapping[str, Any]
    ) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            await self._send(connection, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            await self._resume(connection, data or {})
        elif op in (OP_PRESENCE, OP_VOICE_STATE, OP_REQUEST_MEMBERS):
            if connection.session is None:
                await connection.ws.close(code=4003, message=b"Not authenticated.")
            elif op == OP_PRESENCE:
                connection.session.presence = dict(data or {})
            elif op == OP_REQUEST_MEMBERS:
                await self._send_member_chunk(connection.session, data or {})
        else:
            await connection.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, connection: GatewayConnection, data: Mapping[str, Any]) -> None:
        if connection.session is not None:
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        if not isinstance(data.get("intents"), int):
            await connection.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        session = GatewaySession(
            secrets.token_hex(16), data["intents"], list(data.get("shard") or [0, 1])
        )
        self._sessions[session.session_id] = session
        session.connection = connection
        connection.session = session
        ready = {
            "v": 10,
            "user": self._bot_user_payload(),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in self._guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "shard": session.shard,
            "application": {"id": str(self.application_id), "flags": (1 << 19) | (1 << 23)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "_trace": ["fake-discord"],
        }
        await self._send_dispatch(session, "READY", ready)
        for guild in self._guilds.values():
            await self._send_dispatch(
                session, "GUILD_CREATE", self._guild_payload(guild, full=True)
            )

    async def _resume(self, connection: GatewayConnection, data: Mapping[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.token:
            await self._send(
                connection, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}
            )
            return
        session.connection = connection
        connection.session = session
        session.resumes += 1
        last_seen = int(data.get("seq") or 0)
        for event in session.events:
            if event["s"] > last_seen:
                await self._send(connection, event)
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord"]})

    async def _send_member_chunk(self, session: GatewaySession, data: Mapping[str, Any]) -> None:
        guild = self._guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [self._member_payload(guild, uid) for uid in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send(self, connection: GatewayConnection, payload: Mapping[str, Any]) -> None:
        """One frame: text JSON, or zlib-stream binary when the client asked for it."""
        text = json.dumps(payload)
        async with connection.send_lock:
            if connection.closed or connection.ws.closed:
                return
            if connection.compressor is None:
                await connection.ws.send_str(text)
            else:
                compressed = connection.compressor.compress(text.encode())
                compressed += connection.compressor.flush(zlib.Z_SYNC_FLUSH)
                await connection.ws.send_bytes(compressed)

    async def _send_dispatch(self, session: GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.connection is not None:
            await self._send(session.connection, frame)

    async def _dispatch(self, event: str, data: Any, *, intent: int | None = None) -> None:
        """Send an event to every identified session (filtered by `intent` if given), after
        the world changes queued by `_announce`."""
        sessions = [s for s in self._sessions.values() if s.connection and not s.connection.closed]
        pending, self._pending_events = self._pending_events, []
        for session in sessions:
            for queued_event, queued_data, queued_intent in pending:
                if session.intents & queued_intent:
                    await self._send_dispatch(session, queued_event, queued_data)
        if not sessions and intent is None:
            raise RuntimeError(f"cannot dispatch {event}: no client is connected to the gateway")
        for session in sessions:
            if intent is None or session.intents & intent:
                await self._send_dispatch(session, event, data)
        await self._changed()

    async def _broadcast_message_create(self, message: FakeMessage) -> None:
        """MESSAGE_CREATE as Discord sends it for every non-ephemeral message."""
        if message.ephemeral:
            return
        data = self._message_payload(message)
        intent = INTENT_DIRECT_MESSAGES
        if message.guild_id is not None:
            intent = INTENT_GUILD_MESSAGES
            data["guild_id"] = str(message.guild_id)
            guild = self.guild(message.guild_id)
            if message.author_id in guild.members:
                data["member"] = self._member_payload(guild, message.author_id, with_user=False)
        await self._dispatch("MESSAGE_CREATE", data, intent=intent)
