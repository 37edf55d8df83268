"""REST routes for channels and channel messages."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    DM,
    EMBED_LINKS,
    EPHEMERAL,
    MANAGE_MESSAGES,
    MESSAGE_REPLY,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
)
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeChannel,
    FakeMessage,
    _missing_permissions,
    _snowflake_field,
    _unknown,
)
from tests.fakes.discord._rest import Rest, _json_response


class RestChannels(Rest):
    """REST: channels and their messages (post with nonces and replies, list, get, edit,
    delete, typing)."""

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
            if time.time() - message.created_at > self.nonce_window:
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
