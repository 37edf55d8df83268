"""Interaction building: command visibility, options and INTERACTION_CREATE payloads."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.fakes.discord._constants import (
    ADMINISTRATOR,
    ATTACHMENT,
    BOOLEAN,
    BOT_DM,
    CHANNEL,
    CHAT_INPUT,
    COMMAND_KINDS,
    DISCORD_TOKEN_LIFETIME,
    GUILD,
    INTEGER,
    MENTIONABLE,
    NUMBER,
    ROLE,
    STRING,
    USE_APPLICATION_COMMANDS,
    USER,
)
from tests.fakes.discord._messages import Messages
from tests.fakes.discord._models import FakeChannel, FakeInteraction, FakeMessage


def _command_label(name: str, kind: int) -> str:
    return f"/{name}" if kind == CHAT_INPUT else f"the {COMMAND_KINDS.get(kind)} command {name!r}"


class InteractionBuilder(Messages):
    """What the Discord client shows a user, and the interactions it sends: command
    lookup and visibility, options checked against the synced schema, full payloads."""

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
