"""Permissions and payloads: the JSON shapes of members, channels, guilds, the bot
user, the application and messages."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DM,
    MIB,
)
from tests.fakes.discord._models import (
    FakeChannel,
    FakeGuild,
    FakeMessage,
    FakeUser,
    FakeVoiceState,
    _iso,
)
from tests.fakes.discord._state import FakeState


class Payloads(FakeState):
    """Permissions as Discord computes them, and every object as Discord sends it."""

    def _guild_permissions(self, guild: FakeGuild, user_id: int) -> int:
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        permissions = 0
        for role_id in [guild.id, *guild.members.get(user_id, [])]:
            permissions |= int(guild.roles[role_id]["permissions"])
        return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions

    def permissions(self, user_id: int, guild_id: int | None = None) -> int:
        """A member's guild permissions from their roles (all bits for the owner or an admin)."""
        return self._guild_permissions(self.guild(guild_id or self.guild_id), user_id)

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
        if channel.is_voice:
            data.update(
                bitrate=64_000,
                user_limit=channel.user_limit,
                rtc_region=None,
                video_quality_mode=1,
            )
        if channel.bot_permissions is not None and not channel.is_thread:
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
                voice_states=[
                    self._voice_state_payload(guild, state, with_guild=False)
                    for state in guild.voice_states.values()
                ],
                stage_instances=[],
                guild_scheduled_events=[],
                soundboard_sounds=[],
            )
        return data

    def _voice_state_payload(
        self, guild: FakeGuild, state: FakeVoiceState, *, with_guild: bool = True
    ) -> dict[str, Any]:
        """Discord's voice state object; GUILD_CREATE's list leaves out `guild_id`."""
        data: dict[str, Any] = {
            "channel_id": str(state.channel_id),
            "user_id": str(state.user_id),
            "member": self._member_payload(guild, state.user_id),
            "session_id": state.session_id,
            "deaf": state.deaf,
            "mute": state.mute,
            "self_deaf": state.self_deaf,
            "self_mute": state.self_mute,
            "self_stream": False,
            "self_video": False,
            "suppress": state.suppress,
            "request_to_speak_timestamp": None,
        }
        if with_guild:
            data["guild_id"] = str(guild.id)
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
