"""Run `python -m bot` in a child process, pointed at a loopback fake Discord.

The product has no test hooks; this launcher does what `FakeDiscord.patch_discord_py`
does in-process (REST base, gateway, CDN base) and then runs the real entry point.
Usage: `python -m tests.botproc API_BASE GATEWAY_URL CDN_BASE [bot args…]`.

SIGUSR1 kills the job store's writer thread from outside (an exception raised in it, as
a bug or an interpreter error would), for the tests of a bot whose store stopped working.
"""

from __future__ import annotations

import ctypes
import signal
import sys
import threading
from types import FrameType

import discord
import discord.gateway
import discord.http
import yarl

from bot.__main__ import main


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
    signal.signal(signal.SIGUSR1, kill_store_writer)
    sys.exit(main(rest))
