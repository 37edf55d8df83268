"""Slash-command sync that spares Discord's 200-creates-a-day limit.

The command set is fingerprinted (its exact payload plus where it goes) and stored in
BOT_DATA_DIR; the bot pushes only when that fingerprint changes or when asked. Processes
sharing a PostgreSQL store (`SharedSync`) keep the fingerprint there and sync one at a
time, so of several starting together one pushes and the others find it done.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import discord
from discord import app_commands

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "command-sync.json"
FINGERPRINT_FLAG = "command_sync_fingerprint"


@runtime_checkable
class SharedSync(Protocol):
    """A store several processes share (PostgreSQL)."""

    def one_at_a_time(self, name: str) -> contextlib.AbstractAsyncContextManager[None]: ...
    async def flags(self) -> dict[str, str]: ...
    async def set_flag(self, key: str, value: str) -> None: ...


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
    shared: object = None,
) -> bool:
    """Push the commands if they changed (or `force`); True if a sync was sent. `shared`:
    the store, which keeps the fingerprint if several processes share it."""
    current = fingerprint(command_payloads(tree), guild_ids)
    async with _remembered(data_dir, shared) as memory:
        if not force and memory.last == current:
            log.info("Slash commands unchanged since the last sync; not syncing")
            return False
        await _push(tree, guild_ids)
        memory.last = current
    return True


class _Memory:
    def __init__(self, last: str | None) -> None:
        self.last = last


@contextlib.asynccontextmanager
async def _remembered(data_dir: Path, shared: object) -> AsyncIterator[_Memory]:
    """The last fingerprint pushed, written back if changed: in the shared store (under
    its lock, held across the push) or in BOT_DATA_DIR."""
    if isinstance(shared, SharedSync):
        async with shared.one_at_a_time("command-sync"):
            memory = _Memory((await shared.flags()).get(FINGERPRINT_FLAG))
            before = memory.last
            yield memory
            if memory.last is not None and memory.last != before:
                await shared.set_flag(FINGERPRINT_FLAG, memory.last)
        return
    path = data_dir / FINGERPRINT_FILE
    memory = _Memory(await asyncio.to_thread(_read, path))
    before = memory.last
    yield memory
    if memory.last is not None and memory.last != before:
        await asyncio.to_thread(_write, path, memory.last)


async def _push(tree: app_commands.CommandTree[Any], guild_ids: tuple[int, ...]) -> None:
    if guild_ids:
        for guild_id in guild_ids:
            guild = discord.Object(guild_id)
            tree.copy_global_to(guild=guild)
            synced = await tree.sync(guild=guild)
            log.info("Synced %d slash commands to guild %d", len(synced), guild_id)
    else:
        synced = await tree.sync()
        log.info("Synced %d slash commands globally (may take up to an hour)", len(synced))
