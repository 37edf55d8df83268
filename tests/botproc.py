"""Run `python -m bot` in a child process, pointed at a loopback fake Discord.

The product has no test hooks; this launcher does what `FakeDiscord.patch_discord_py`
does in-process (REST base, gateway, CDN base) and then runs the real entry point.
Usage: `python -m tests.botproc API_BASE GATEWAY_URL CDN_BASE [bot args…]`.
"""

from __future__ import annotations

import sys

import discord
import discord.gateway
import discord.http
import yarl

from bot.__main__ import main


def patch(api_base: str, gateway: str, cdn_base: str) -> None:
    discord.http.Route.BASE = api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway)
    discord.asset.Asset.BASE = cdn_base


if __name__ == "__main__":
    api, gateway, cdn, *rest = sys.argv[1:]
    patch(api, gateway, cdn)
    sys.exit(main(rest))
