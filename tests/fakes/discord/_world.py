"""World building: what a test sets up before (or between) users' actions."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    CHANNEL_KINDS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_MEMBER_PERMISSIONS,
    DM,
    GUILD_TEXT,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILDS,
    PUBLIC_THREAD,
)
from tests.fakes.discord._messages import Messages
from tests.fakes.discord._models import DiscordAPIError, FakeChannel, FakeGuild, FakeUser
from tests.fakes.discord._records import Hold, RecordedRequest, _InjectedError


class World(Messages):
    """Test-side world building: guilds, members, roles, channels, DMs, uploaded files,
    injected errors and held requests."""

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
        kind: int = GUILD_TEXT,
        user_limit: int = 0,
    ) -> int:
        """A text channel (`kind` GUILD_VOICE or GUILD_STAGE_VOICE: a voice or stage channel,
        with `user_limit`), or a public thread under the guild's first channel.

        `bot_permissions` becomes a member overwrite for the bot, so discord.py's cache
        (`channel.permissions_for(guild.me)`) agrees with what the fake enforces.
        """
        if kind not in CHANNEL_KINDS or (thread and kind != GUILD_TEXT):
            raise ValueError(f"cannot make a channel of kind {kind} (thread={thread})")
        guild = self.guild(guild_id or self.guild_id)
        parent = guild.channel_ids[0] if thread and guild.channel_ids else None
        channel = FakeChannel(
            self._ids.next(),
            PUBLIC_THREAD if thread else kind,
            name,
            guild_id=guild.id,
            parent_id=parent,
            bot_permissions=bot_permissions,
            upload_limit=upload_limit,
            position=len(guild.channel_ids),
            user_limit=user_limit,
        )
        self._channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        if not thread:  # as Discord tells connected clients (threads: not needed yet)
            self._announce("CHANNEL_CREATE", self._channel_payload(channel), INTENT_GUILDS)
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
        attachment = self._attachments[attachment_id]
        attachment.expires_at = 0.0
        attachment.generation += 1  # a refreshed URL is signed anew, and works

    def delete_attachment(self, attachment_id: int) -> None:
        """Remove the file from the CDN, as Discord does with slash-command uploads after a
        while: its URLs answer 404 and refreshing them does not bring it back."""
        self._attachments[attachment_id].deleted = True

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
