"""Process lifecycle: logging, signals, start, and one clear line for fatal start-up errors."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from urllib.parse import urlsplit

import discord

from .bot import VoiceCloneBot
from .config import Settings
from .logs import setup_logging
from .observe.server import ServerError
from .runtime import freeze_startup_objects, run
from .store import StoreError

log = logging.getLogger("voiceclone")

SHUTDOWN_GRACE = 10.0
# The job store stopped working while running: exit so that a supervisor restarts the bot.
EXIT_STORE_BROKEN = 3


async def _serve(settings: Settings, force_sync: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    bot = VoiceCloneBot(settings, force_sync=force_sync)
    freeze_startup_objects()
    async with bot:
        runner = asyncio.create_task(bot.start(settings.discord_token.get()), name="discord")
        stopper = asyncio.create_task(stop.wait(), name="signal")
        broken = asyncio.create_task(bot.broken.wait(), name="store-broken")
        done, _ = await asyncio.wait({runner, stopper, broken}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        broken.cancel()
        if runner not in done:
            if stopper in done:
                log.info("Signal received: shutting down")
            try:
                await asyncio.wait_for(bot.close(), SHUTDOWN_GRACE)
            except TimeoutError:
                log.warning("Shutdown took longer than %.0fs; exiting anyway", SHUTDOWN_GRACE)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return 0 if stopper in done else EXIT_STORE_BROKEN
        runner.result()  # raises what ended the bot
    return 0


# Start-up failures an operator fixes by hand: one line on stderr, exit status 2.
SHARDING_REQUIRED = 4011  # the gateway's close code: too many guilds for the shard count


def _fatal(message: str) -> int:
    print(f"voiceclone: {message}", file=sys.stderr)
    return 2


def run_bot(settings: Settings, *, force_sync: bool = False) -> int:
    setup_logging(
        settings.log_level,
        (
            settings.discord_token.get(),
            settings.segmind_api_key.get(),
            urlsplit(settings.database_url.get()).password or "",
        ),
        json_lines=settings.log_format == "json",
    )
    try:
        return run(_serve(settings, force_sync))
    except discord.LoginFailure:
        return _fatal(
            "DISCORD_TOKEN was rejected by Discord (reset it in the Developer Portal and "
            "update .env)"
        )
    except (StoreError, ServerError) as exc:
        return _fatal(str(exc))
    except discord.PrivilegedIntentsRequired:
        return _fatal("Discord refused the gateway intents")
    except discord.ConnectionClosed as exc:
        if exc.code == SHARDING_REQUIRED:
            return _fatal(
                f"Discord requires more shards than SHARD_COUNT={settings.shard_count} for "
                "this many servers: raise SHARD_COUNT (one per 2,500 servers)"
            )
        raise
    except KeyboardInterrupt:
        return 0
