"""REST routes for application commands."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.discord._constants import MAX_COMMANDS_PER_SCOPE, SUB_COMMAND, SUB_COMMAND_GROUP
from tests.fakes.discord._models import DiscordAPIError, _form_error, _unknown
from tests.fakes.discord._rest import Rest, _json_response

_COMMAND_NAME_RE = re.compile(r"[-_\w]{1,32}")


class RestCommands(Rest):
    """REST: application commands (list, get, bulk overwrite, create, delete), validated
    like Discord and charged against the daily create limit."""

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
