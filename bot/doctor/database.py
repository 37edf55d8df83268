"""Checks of the PostgreSQL store (DATABASE_URL) and of several processes' settings:
reachable, the password accepted, the schema version against this bot's, the right to
write, and SHARD_IDS without a shared database. Read-only (no migration, no lock); errors
name the database and its host, never the URL."""

from __future__ import annotations

import asyncio

from ..config import Settings
from ..store.pg.base import CONNECT_TIMEOUT, describe
from ..store.pg.schema import MIGRATIONS
from .report import Check, fail, ok, warn

SCHEMA = "Job database"
SHARING = "Several processes"
_FIX_REACH = "check DATABASE_URL's host, port and database name, and that PostgreSQL runs"
_CAN_WRITE = (
    "SELECT has_table_privilege('jobs', 'INSERT, UPDATE, DELETE') "
    "AND has_table_privilege('segmind_budget', 'UPDATE')"
)


async def check_postgres(url: str) -> Check:
    import asyncpg  # only with DATABASE_URL, as the store itself

    where = describe(url)
    latest = len(MIGRATIONS)
    try:
        conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT)
    except asyncpg.exceptions.InvalidPasswordError:
        return fail(SCHEMA, f"{where}: the password was refused", "fix DATABASE_URL's password")
    except asyncpg.exceptions.InvalidCatalogNameError:
        return fail(SCHEMA, f"{where} does not exist", "create it (CREATE DATABASE …)")
    except (OSError, TimeoutError, asyncpg.exceptions.PostgresError) as exc:
        return fail(SCHEMA, f"{where} does not answer ({type(exc).__name__})", _FIX_REACH)
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
                return ok(SCHEMA, f"{where}: empty; the bot creates its tables at start")
            version = int(await conn.fetchval("SELECT version FROM schema_version") or 0)
            if version > latest:
                return fail(
                    SCHEMA,
                    f"{where} has schema version {version}, newer than this bot's {latest}",
                    "run the newer bot version that wrote it",
                )
            if version < latest:
                return ok(
                    SCHEMA,
                    f"{where}: schema version {version}; upgraded to {latest} at the next start",
                )
            if not await conn.fetchval(_CAN_WRITE):
                return fail(
                    SCHEMA,
                    f"{where}: this user may not write the bot's tables",
                    "connect as the tables' owner, or GRANT INSERT, UPDATE, DELETE on them",
                )
            return ok(SCHEMA, f"{where}: schema version {version}, this bot's")
    except (OSError, TimeoutError, asyncpg.exceptions.PostgresError) as exc:
        return fail(SCHEMA, f"{where} could not be read ({type(exc).__name__})", _FIX_REACH)
    finally:
        await conn.close()


def check_sharing(settings: Settings) -> Check | None:
    """SHARD_IDS opens some shards only: the processes with the others must share this
    one's database, or each has its own jobs, request budget and limits."""
    if not settings.shard_ids:
        return None
    ids = ",".join(str(i) for i in settings.shard_ids)
    mine = f"SHARD_IDS={ids} of SHARD_COUNT={settings.shard_count}"
    if settings.database_url.get():
        return ok(SHARING, f"{mine}; jobs, budget and limits shared through DATABASE_URL")
    return warn(
        SHARING,
        f"{mine} without DATABASE_URL: the processes with the other shards share neither "
        "jobs nor the Segmind budget nor the limits with this one",
        'give every process the same DATABASE_URL (see "Running at scale")',
    )
