"""The operator's HTTP server (`METRICS_PORT`): `/healthz`, `/metrics`, and any extra
pages given to it (the status page at `/`). aiohttp, on the bot's own event loop."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from .health import health

if TYPE_CHECKING:
    from ..bot import VoiceCloneBot

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SHUTDOWN_TIMEOUT = 2.0  # seconds close() gives a scrape in progress


class ServerError(Exception):
    """The server cannot listen where the settings say."""


def extra_pages(bot: VoiceCloneBot) -> dict[str, Handler]:
    """The status page at `/` when its module is installed (bot/observe/status_page.py,
    `handler(bot)`); without it `/` answers 404."""
    try:
        module = importlib.import_module(f"{__package__}.status_page")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.status_page":
            raise  # the page is there but something it imports is not: say so
        return {}
    return {"/": cast(Handler, module.handler(bot))}


class MetricsServer:
    """Serves `bot`'s health and metrics on host:port (port 0: a free one, see `port`).
    `pages` maps more GET paths to handlers; a path not served answers 404."""

    def __init__(
        self,
        bot: VoiceCloneBot,
        host: str,
        port: int,
        pages: Mapping[str, Handler] | None = None,
    ) -> None:
        self._bot = bot
        self._host = host
        self._port = port
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        for path, handler in (pages or {}).items():
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        self.port: int | None = None  # the bound port, once started

    async def start(self) -> None:
        """Listen; `ServerError` (one line, naming the setting) if the address is taken."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ServerError(
                f"METRICS_PORT: cannot listen on {self._host}:{self._port} ({exc.strerror})"
            ) from None
        self.port = int(self._runner.addresses[0][1])
        log.info("Health and metrics on http://%s:%d/ (/healthz, /metrics)", self._host, self.port)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every socket listening."""
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    async def close(self) -> None:
        await self._runner.cleanup()

    async def _healthz(self, request: web.Request) -> web.Response:
        healthy, checks = await health(self._bot)
        body = {"status": "ok" if healthy else "unhealthy", "checks": checks}
        return web.json_response(body, status=200 if healthy else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self._bot.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response
