"""User actions: what tests make users do; each is dispatched to the connected client."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from tests.fakes.discord._constants import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMMAND,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    SEND_MESSAGES,
    SEND_MESSAGES_IN_THREADS,
    USER_COMMAND,
    USER_MESSAGE_FLAGS,
)
from tests.fakes.discord._interactions import InteractionBuilder
from tests.fakes.discord._models import (
    DiscordAPIError,
    FakeAttachment,
    FakeChannel,
    FakeInteraction,
    FakeMessage,
)


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


class UserActions(InteractionBuilder):
    """What users do, as tests call it: run commands, autocomplete, click, submit
    modals, use context menus, post messages (also through a webhook)."""

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
