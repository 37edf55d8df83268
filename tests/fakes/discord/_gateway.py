"""The fake gateway (websocket, zlib-stream optional)."""

from __future__ import annotations

import json
import secrets
import zlib
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.discord._constants import (
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MESSAGES,
    OP_DISPATCH,
    OP_HEARTBEAT,
    OP_HEARTBEAT_ACK,
    OP_HELLO,
    OP_IDENTIFY,
    OP_INVALID_SESSION,
    OP_PRESENCE,
    OP_RECONNECT,
    OP_REQUEST_MEMBERS,
    OP_RESUME,
    OP_VOICE_STATE,
)
from tests.fakes.discord._models import FakeMessage
from tests.fakes.discord._payloads import Payloads
from tests.fakes.discord._records import GatewayConnection, GatewaySession


class Gateway(Payloads):
    """The gateway: HELLO, IDENTIFY/RESUME, heartbeats, member chunks, and dispatching
    events (with the world changes queued before them) to identified sessions."""

    async def reconnect_gateway(self) -> None:
        """Ask connected clients to reconnect (op 7); discord.py then RESUMEs."""
        for connection in list(self._live_connections()):
            await self._send(connection, {"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """HELLO, then IDENTIFY/RESUME, heartbeats and the few client ops discord.py sends."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        connection = GatewayConnection(ws, request.path, dict(request.query))
        if request.query.get("compress") == "zlib-stream":
            connection.compressor = zlib.compressobj()
        self.gateway_connections.append(connection)
        try:
            if request.query.get("v", "10") != "10":
                await ws.close(code=4012, message=b"Invalid API version")
            elif request.query.get("encoding", "json") != "json":
                await ws.close(code=4002, message=b"Error while decoding payload.")
            else:
                hello = {
                    "heartbeat_interval": self.heartbeat_interval_ms,
                    "_trace": ["fake-discord"],
                }
                await self._send(connection, {"op": OP_HELLO, "d": hello, "s": None, "t": None})
                await self._serve_gateway(connection)
        finally:
            connection.closed = True
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            await self._changed()
        return ws

    async def _serve_gateway(self, connection: GatewayConnection) -> None:
        async for frame in connection.ws:
            if frame.type is not aiohttp.WSMsgType.TEXT:
                await connection.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            try:
                payload = json.loads(frame.data)
            except ValueError:
                await connection.ws.close(code=4002, message=b"Error while decoding payload.")
                return
            connection.received.append(payload)
            await self._on_gateway_op(connection, payload)
            await self._changed()

    async def _on_gateway_op(
        self, connection: GatewayConnection, payload: Mapping[str, Any]
    ) -> None:
        op, data = payload.get("op"), payload.get("d")
        if op == OP_HEARTBEAT:
            await self._send(connection, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY:
            await self._identify(connection, data or {})
        elif op == OP_RESUME:
            await self._resume(connection, data or {})
        elif op in (OP_PRESENCE, OP_VOICE_STATE, OP_REQUEST_MEMBERS):
            if connection.session is None:
                await connection.ws.close(code=4003, message=b"Not authenticated.")
            elif op == OP_PRESENCE:
                connection.session.presence = dict(data or {})
            elif op == OP_REQUEST_MEMBERS:
                await self._send_member_chunk(connection.session, data or {})
            else:
                await self._on_voice_state_op(connection.session, data or {})
        else:
            await connection.ws.close(code=4001, message=b"Unknown opcode.")

    async def _identify(self, connection: GatewayConnection, data: Mapping[str, Any]) -> None:
        if connection.session is not None:
            await connection.ws.close(code=4005, message=b"Already authenticated.")
            return
        if data.get("token") != self.token:
            await connection.ws.close(code=4004, message=b"Authentication failed.")
            return
        if not isinstance(data.get("intents"), int):
            await connection.ws.close(code=4013, message=b"Invalid intent(s).")
            return
        shard = data.get("shard") or [0, 1]
        if not (
            isinstance(shard, list)
            and len(shard) == 2
            and all(isinstance(n, int) for n in shard)
            and 0 <= shard[0] < shard[1]
        ):
            await connection.ws.close(code=4010, message=b"Invalid shard.")
            return
        if shard[1] < self.shards:
            await connection.ws.close(code=4011, message=b"Sharding required.")
            return
        session = GatewaySession(secrets.token_hex(16), data["intents"], list(shard))
        self._sessions[session.session_id] = session
        session.connection = connection
        connection.session = session
        guilds = [gid for gid in self._guilds if _serves(session, gid)]
        ready = {
            "v": 10,
            "user": self._bot_user_payload(),
            "guilds": [{"id": str(gid), "unavailable": True} for gid in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "shard": session.shard,
            "application": {"id": str(self.application_id), "flags": (1 << 19) | (1 << 23)},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["fake"],
            "_trace": ["fake-discord"],
        }
        await self._send_dispatch(session, "READY", ready)
        for gid in guilds:
            await self._send_dispatch(
                session, "GUILD_CREATE", self._guild_payload(self._guilds[gid], full=True)
            )

    async def _resume(self, connection: GatewayConnection, data: Mapping[str, Any]) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self.token:
            await self._send(
                connection, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None}
            )
            return
        session.connection = connection
        connection.session = session
        session.resumes += 1
        last_seen = int(data.get("seq") or 0)
        for event in session.events:
            if event["s"] > last_seen:
                await self._send(connection, event)
        await self._send_dispatch(session, "RESUMED", {"_trace": ["fake-discord"]})

    async def _send_member_chunk(self, session: GatewaySession, data: Mapping[str, Any]) -> None:
        guild = self._guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": [self._member_payload(guild, uid) for uid in guild.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        await self._send_dispatch(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send(self, connection: GatewayConnection, payload: Mapping[str, Any]) -> None:
        """One frame: text JSON, or zlib-stream binary when the client asked for it."""
        text = json.dumps(payload)
        async with connection.send_lock:
            if connection.closed or connection.ws.closed:
                return
            if connection.compressor is None:
                await connection.ws.send_str(text)
            else:
                compressed = connection.compressor.compress(text.encode())
                compressed += connection.compressor.flush(zlib.Z_SYNC_FLUSH)
                await connection.ws.send_bytes(compressed)

    async def _send_dispatch(self, session: GatewaySession, event: str, data: Any) -> None:
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append(frame)
        if session.connection is not None:
            await self._send(session.connection, frame)

    async def _dispatch(self, event: str, data: Any, *, intent: int | None = None) -> None:
        """Send an event to every identified session (filtered by `intent` if given), after
        the world changes queued by `_announce`."""
        sessions = [s for s in self._sessions.values() if s.connection and not s.connection.closed]
        pending, self._pending_events = self._pending_events, []
        for session in sessions:
            for queued_event, queued_data, queued_intent in pending:
                if session.intents & queued_intent and _routes(session, queued_data):
                    await self._send_dispatch(session, queued_event, queued_data)
        if not sessions and intent is None:
            raise RuntimeError(f"cannot dispatch {event}: no client is connected to the gateway")
        for session in sessions:
            if (intent is None or session.intents & intent) and _routes(session, data):
                await self._send_dispatch(session, event, data)
        await self._changed()

    async def _broadcast_message_create(self, message: FakeMessage) -> None:
        """MESSAGE_CREATE as Discord sends it for every non-ephemeral message."""
        if message.ephemeral:
            return
        data = self._message_payload(message)
        intent = INTENT_DIRECT_MESSAGES
        if message.guild_id is not None:
            intent = INTENT_GUILD_MESSAGES
            data["guild_id"] = str(message.guild_id)
            guild = self.guild(message.guild_id)
            if message.author_id in guild.members:
                data["member"] = self._member_payload(guild, message.author_id, with_user=False)
        await self._dispatch("MESSAGE_CREATE", data, intent=intent)


def _serves(session: GatewaySession, guild_id: int) -> bool:
    """Discord's routing: a guild's events go to shard (guild_id >> 22) % num_shards."""
    shard_id, num_shards = session.shard
    return (guild_id >> 22) % num_shards == shard_id


def _routes(session: GatewaySession, data: Any) -> bool:
    """Whether an event goes to this session: by its guild's shard; without a guild (DMs,
    a DM's interactions), to shard 0 only."""
    guild_id = data.get("guild_id") if isinstance(data, Mapping) else None
    if guild_id is None:
        return session.shard[0] == 0
    return _serves(session, int(guild_id))
