"""What the fake keeps about its traffic: recorded requests and uploads, injected errors,
held requests, gateway sessions and connections."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from tests.fakes.discord._constants import API_PREFIX
from tests.fakes.discord._models import DiscordAPIError


class UploadedFile(NamedTuple):
    """One file part of a multipart request, exactly as the client sent it."""

    filename: str
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {self.content_type!r}, <{len(self.data)} bytes>)"


@dataclass(eq=False)
class RecordedRequest:
    """Every HTTP request the fake served, for assertions about what the client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    files_by_index: dict[int, UploadedFile] = field(default_factory=dict, repr=False)
    status: int = 0
    response: Any = field(default=None, repr=False)
    at: float = field(default_factory=time.monotonic)

    @property
    def authorization(self) -> str | None:
        """The Authorization header, if any (`Bot <token>` for REST calls)."""
        return self.headers.get("Authorization")

    @property
    def route(self) -> str:
        """The path relative to the API base (`/channels/1/messages`), or the raw path."""
        return self.path.removeprefix(API_PREFIX)


@dataclass(eq=False)
class GatewaySession:
    """A gateway session: survives reconnects so RESUME can replay missed events."""

    session_id: str
    intents: int
    shard: list[int]
    seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    connection: GatewayConnection | None = None
    resumes: int = 0
    presence: dict[str, Any] | None = None


@dataclass(eq=False)
class GatewayConnection:
    """One websocket connection; `received` holds every frame the client sent."""

    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    compressor: Any = None  # zlib compressobj when the client asked for zlib-stream
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: GatewaySession | None = None
    received: list[dict[str, Any]] = field(default_factory=list, repr=False)
    closed: bool = False


@dataclass
class _InjectedError:
    method: str
    pattern: re.Pattern[str]
    error: DiscordAPIError
    times: int


@dataclass(eq=False)
class Hold:
    """Requests matching `method` + `pattern` (and `when`) are held without an answer until
    `release()`: before Discord applies them (`after_apply=False`, the request is lost if
    the client dies) or after (`after_apply=True`, applied but never acknowledged). Lets a
    test kill the client at an exact point of a request's life."""

    method: str
    pattern: re.Pattern[str]
    when: Callable[[RecordedRequest], bool]
    after_apply: bool
    held: list[RecordedRequest] = field(default_factory=list)
    _released: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, recorded: RecordedRequest) -> bool:
        return (
            not self._released.is_set()
            and self.method == recorded.method
            and bool(self.pattern.search(recorded.route))
            and self.when(recorded)
        )

    def release(self) -> None:
        self._released.set()

    async def wait(self) -> None:
        await self._released.wait()
