"""The world's data: users, channels, guilds, attachments, messages, interactions, and
Discord's error answers."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.discord._constants import (
    DEFAULT_MEMBER_PERMISSIONS,
    DISCORD_EPOCH_MS,
    EPHEMERAL,
    LOADING,
    MESSAGE_DEFAULT,
    MIB,
    PUBLIC_THREAD,
    TIER_UPLOAD_LIMITS,
    VOICE_KINDS,
)


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
    """A guild text, voice or stage channel, public thread or DM; mutate fields to change
    rules mid-test.

    `bot_permissions=None` means "what the bot's role grants" (for threads: the parent's).
    `upload_limit=None` means the guild's boost-tier limit (10 MiB at tier 0), 10 MiB in DMs.
    `user_limit` (voice channels) is how many may be connected at once; 0: no limit.
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
    user_limit: int = 0
    messages: list[FakeMessage] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        return self.type == PUBLIC_THREAD

    @property
    def is_voice(self) -> bool:
        return self.type in VOICE_KINDS


@dataclass(eq=False)
class FakeVoiceState:
    """A member connected to a voice channel (Discord's voice state, less the member)."""

    user_id: int
    channel_id: int
    session_id: str
    self_mute: bool = False
    self_deaf: bool = False
    deaf: bool = False  # server-deafened
    mute: bool = False  # server-muted
    suppress: bool = False  # on a stage: in the audience, not speaking


@dataclass(eq=False)
class FakeGuild:
    """A guild the bot is in; `members` maps user id to role ids, `voice_states` user id to
    the voice channel they are connected to."""

    id: int
    name: str
    owner_id: int
    premium_tier: int = 0
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, list[int]] = field(default_factory=dict)
    roles: dict[int, dict[str, Any]] = field(default_factory=dict)
    voice_states: dict[int, FakeVoiceState] = field(default_factory=dict)  # by user id
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
    generation: int = 0  # signed into its URLs: expiring them bumps it
    deleted: bool = False  # removed by Discord: no URL serves it, refreshed or not
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
