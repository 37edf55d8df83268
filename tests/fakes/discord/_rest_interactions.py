"""REST routes for interaction callbacks and interaction-token webhooks."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from tests.fakes.discord._constants import (
    ALLOWED_CALLBACKS,
    AUTOCOMPLETE,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    EPHEMERAL,
    LOADING,
    MODAL,
    UPDATE_MESSAGE,
)
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeInteraction,
    FakeMessage,
    _form_error,
    _invalid_webhook_token,
    _unknown,
    _unknown_interaction,
)
from tests.fakes.discord._records import RecordedRequest
from tests.fakes.discord._rest import Rest, _json_response


class RestInteractions(Rest):
    """REST: the interaction callback and the interaction-token webhook routes
    (follow-ups, @original and follow-up messages)."""

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
