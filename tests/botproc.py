"""Run `python -m bot` in a child process, pointed at a loopback fake Discord.

The product has no test hooks; this launcher does what `FakeDiscord.patch_discord_py`
does in-process (REST base, gateway, CDN base) and then runs the real entry point.
Usage: `python -m tests.botproc API_BASE GATEWAY_URL CDN_BASE [bot args…]`.

SIGUSR1 kills the job store's writer thread from outside (an exception raised in it, as
a bug or an interpreter error would), for the tests of a bot whose store stopped working.

VOICECLONE_TEST_BUDGET_WINDOW (seconds) shrinks the Segmind budget's minute, as the
in-process tests do with `RequestBudget(rpm, window=…)`: a plan's limit binds within a
test's few seconds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any

import discord
import discord.gateway
import discord.http
import yarl

import bot.bot
from bot.__main__ import main
from bot.segmind.budget import RequestBudget


def patch(api_base: str, gateway: str, cdn_base: str) -> None:
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    discord.asset.Asset.BASE = cdn_base


def kill_store_writer(signum: int = 0, frame: FrameType | None = None) -> None:
    """Raise SystemExit in the store's writer thread the next time it runs Python code."""
    for thread in threading.enumerate():
        if thread.name == "job-store" and thread.ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(SystemExit)
            )


if __name__ == "__main__":
    api, gateway, cdn, *rest = sys.argv[1:]
    patch(api, gateway, cdn)
    window = float(os.environ.get("VOICECLONE_TEST_BUDGET_WINDOW") or 0)
    if window:

        class ShortMinute(RequestBudget):
            def __init__(self, per_minute: int, **options: Any) -> None:
                super().__init__(per_minute, window=window, **options)

        vars(bot.bot)["RequestBudget"] = ShortMinute
    signal.signal(signal.SIGUSR1, kill_store_writer)
    sys.exit(main(rest))
