"""Slash-command sync that spares Discord's 200-creates-a-day limit.

The command set is fingerprinted (its exact payload plus where it goes) and stored in
BOT_DATA_DIR; the bot pushes only when that fingerprint changes or when asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "command-sync.json"


def command_payloads(tree: app_commands.CommandTree[Any]) -> list[dict[str, Any]]:
    return sorted(
        (cmd.to_dict(tree) for cmd in tree.get_commands()), key=lambda c: str(c.get("name"))
    )


def fingerprint(payloads: list[dict[str, Any]], guild_ids: tuple[int, ...]) -> str:
    blob = json.dumps({"commands": payloads, "guilds": sorted(guild_ids)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _read(path: Path) -> str | None:
    try:
        value = json.loads(path.read_text("utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _write(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": value}), "utf-8")
    os.replace(tmp, path)


async def sync_commands(
    tree: app_commands.CommandTree[Any],
    data_dir: Path,
    guild_ids: tuple[int, ...],
    *,
    force: bool = False,
) -> bool:
    """Push the commands if they changed (or `force`); True if a sync was sent."""
    path = data_dir / FINGERPRINT_FILE
    current = fingerprint(command_payloads(tree), guild_ids)
    if not force and await asyncio.to_thread(_read, path) == current:
        log.info("Slash commands unchanged since the last sync; not syncing")
        return False
    if guild_ids:
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
            log.info("Synced %d slash commands to guild %d", len(synced), guild_id)
    else:
        synced = await tree.sync()
        log.info("Synced %d slash commands globally (may take up to an hour)", len(synced))
    await asyncio.to_thread(_write, path, current)
    return True
