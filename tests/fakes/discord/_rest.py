"""HTTP plumbing and the identity and guild REST routes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes.discord._constants import API_PREFIX
from tests.fakes.discord._messages import Messages
from tests.fakes.discord._models import DiscordAPIError, FakeGuild, _snowflake_field, _unknown
from tests.fakes.discord._records import Hold, RecordedRequest, UploadedFile

JSON_HEADERS = {"Content-Type": "application/json"}
_FILE_FIELD_RE = re.compile(r"files\[(\d+)\]")
_RECORDED = web.RequestKey("recorded", RecordedRequest)


def _json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    """JSON with Content-Type exactly `application/json`: discord.py ignores anything else."""
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={**JSON_HEADERS, **(headers or {})}
    )


class Rest(Messages):
    """The HTTP plumbing every REST route runs through (recording, auth, injected
    errors, holds, Discord's error JSON) and the small identity and guild routes."""

    # ------------------------------------------------------------------ HTTP plumbing

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
        body = {"url": self.gateway_url, "shards": self.shards, "session_start_limit": limit}
        return _json_response(body)

    async def _create_dm(self, request: web.Request) -> web.Response:
        recipient = _snowflake_field(self._json_body(request).get("recipient_id"))
        if recipient is None or recipient not in self._users:
            raise DiscordAPIError(400, 50033, "Invalid Recipient(s)")
        return _json_response(self._channel_payload(self.channel(self.dm_channel(recipient))))

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
