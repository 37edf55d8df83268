"""Process lifecycle: logging, signals, start, and one clear line for fatal start-up errors."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import discord

from .bot import VoiceCloneBot
from .config import Settings
from .logs import setup_logging
from .runtime import freeze_startup_objects, run
from .store import StoreError

log = logging.getLogger("voiceclone")

SHUTDOWN_GRACE = 10.0


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
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.info("Signal received: shutting down")
            try:
                await asyncio.wait_for(bot.close(), SHUTDOWN_GRACE)
            except TimeoutError:
                log.warning("Shutdown took longer than %.0fs; exiting anyway", SHUTDOWN_GRACE)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            return 0
        stopper.cancel()
        runner.result()  # raises what ended the bot
    return 0


def run_bot(settings: Settings, *, force_sync: bool = False) -> int:
    setup_logging(
        settings.log_level, (settings.discord_token.get(), settings.segmind_api_key.get())
    )
    try:
        return run(_serve(settings, force_sync))
    except discord.LoginFailure:
        print(
            "voiceclone: DISCORD_TOKEN was rejected by Discord (reset it in the Developer "
            "Portal and update .env)",
            file=sys.stderr,
        )
        return 2
    except StoreError as exc:
        print(f"voiceclone: {exc}", file=sys.stderr)
        return 2
    except discord.PrivilegedIntentsRequired:
        print("voiceclone: Discord refused the gateway intents", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
