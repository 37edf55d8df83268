"""The message store and Discord's rules for what a message may be."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import mimetypes
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    APPLICATION_COMMAND,
    ATTACH_FILES,
    CHAT_INPUT,
    CREATABLE_FLAGS,
    DM,
    IS_VOICE_MESSAGE,
    LOADING,
    MAX_CONTENT_LENGTH,
    MESSAGE_CHAT_INPUT_COMMAND,
    MESSAGE_COMPONENT,
    MESSAGE_CONTEXT_MENU_COMMAND,
    READ_MESSAGE_HISTORY,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    SEND_VOICE_MESSAGES,
    SUPPRESS_EMBEDS,
    USER_COMMAND,
    VIEW_CHANNEL,
)
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
    _form_error,
    _missing_permissions,
    _snowflake_field,
)
from tests.fakes.discord._payloads import Payloads
from tests.fakes.discord._records import RecordedRequest

_MENTION_RE = re.compile(r"<@!?(\d+)>")


class Messages(Payloads):
    """The message store: attachments and their signed URLs, Discord's rules for a
    message body, mentions, edits, who may post where, and replies."""

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
            f":{attachment.generation}"
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
