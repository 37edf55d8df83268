"""`python -m bot check`: is this setup ready to run? Checks without spending anything.

REST only (the gateway is never joined, so a running bot is not disturbed), the Segmind
credits call only (never a submit), and the data directory read-only (the store's lock is
never taken). Prints one line per check with a fix for each problem; exit status 0 when
nothing failed, warnings allowed.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from ..config import Settings
from ..logs import setup_logging
from ..runtime import run
from .database import check_postgres, check_sharing
from .discord_rest import discord_checks
from .local import local_checks
from .report import Check, Status, exit_status, fail, render
from .segmind import segmind_checks

__all__ = ["Check", "Status", "collect", "exit_status", "render", "run_doctor"]


async def collect(settings: Settings) -> list[Check]:
    """Every check, Discord and Segmind at once; the local ones in a thread. A check that
    breaks (a bug, an answer of a shape never seen) becomes a failed line, not a traceback."""
    groups = await asyncio.gather(
        discord_checks(
            settings.discord_token.get(),
            settings.discord_guild_ids,
            settings.allowed_guild_ids,
            settings.shard_count,
        ),
        segmind_checks(settings.segmind_api_key.get(), settings.segmind_workflow_url),
        asyncio.to_thread(local_checks, settings.bot_data_dir, not settings.database_url.get()),
        _database_checks(settings),
        return_exceptions=True,
    )
    checks: list[Check] = []
    names = ("Discord", "Segmind", "Local checks", "Job database")
    for name, group in zip(names, groups, strict=True):
        if isinstance(group, BaseException):
            if not isinstance(group, Exception):
                raise group
            # Only the type: an exception's text could carry what a server sent.
            checks.append(fail(name, f"the check itself failed ({type(group).__name__})"))
        else:
            checks += group
    return checks


async def _database_checks(settings: Settings) -> list[Check]:
    url = settings.database_url.get()
    sharing = check_sharing(settings)
    checks = [await check_postgres(url)] if url else []
    return checks + ([sharing] if sharing is not None else [])


def run_doctor(settings: Settings, *, out: TextIO | None = None, fancy: bool | None = None) -> int:
    """Run the checks, print the report, return the exit status. `fancy` (symbols rather
    than OK/WARN/FAIL) defaults to whether `out` is a terminal."""
    out = out or sys.stdout
    secrets = (settings.discord_token.get(), settings.segmind_api_key.get())
    # The report says what failed; the clients' retry warnings would only interleave.
    setup_logging("ERROR", secrets)
    checks = run(collect(settings))
    if fancy is None:
        fancy = out.isatty()
    out.write(render(checks, fancy=fancy, secrets=secrets))
    out.flush()
    return exit_status(checks)
