"""The PostgreSQL store's base: the asyncpg pool, the schema brought up to date under an
advisory lock (several processes may start at once), and the few calls every part of the
store goes through, with asyncpg's errors translated in one place (`_translated`).

Unlike SQLite there is no writer thread: each statement is one round trip on a pooled
connection, and a transition is one `UPDATE … WHERE id = $n AND (state = …) RETURNING`,
atomic in the database itself, so any number of processes may share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import asyncpg

from ..models import StoreError, StoreUnavailable
from .schema import MIGRATIONS

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 30.0
MIGRATION_LOCK = 0x766F6963  # pg_advisory_xact_lock key: "voic"
# Held (a session lock, on a connection of its own) while a store is open: until jobs are
# claimed with leases, a second bot process on the same database would resume and submit
# the first one's jobs again, so it is refused, as SQLite's jobs.lock refuses a second bot.
PROCESS_LOCK = 0x766F6365  # "voce"
_NO_PATH = Path("postgresql")  # StoreError names a path; a database has none


def describe(url: str) -> str:
    """The database as an operator can name it, without the password."""
    parts = urlsplit(url)
    host = parts.hostname or "local socket"
    return f"PostgreSQL database {parts.path.lstrip('/') or '(default)'} on {host}"


def numbered(sql: str) -> str:
    """SQLite's `?` parameters as PostgreSQL's `$1, $2, …` (the statements here hold no
    `?` in a literal)."""
    count = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(count)}", sql)


class PgBase:
    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = 30.0,
        shards: tuple[int, tuple[int, ...]] = (1, ()),
    ) -> None:
        self._url = url
        self.where = describe(url)
        self._clock = clock
        self._pool: asyncpg.Pool | None = None
        # This process among those sharing the database (leases.py): unique per open
        # store, readable in the table by an operator.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_seconds = lease_seconds
        self.shards = shards  # (SHARD_COUNT, SHARD_IDS): whose jobs it takes back first
        self._writes = 0
        self._problem: str | None = None

    @property
    def writes(self) -> int:
        """Statements this instance committed that changed a job (and schema steps)."""
        return self._writes

    async def open(self) -> None:
        if self._pool is not None:
            raise RuntimeError("job store is already open")
        with self._translated():
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=10,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
            )
        try:
            await self._migrate()
            await self._opened()
        except BaseException:
            await self.close()
            raise

    async def _opened(self) -> None:
        """Open and up to date: what the parts start (leases.py)."""

    async def _closing(self) -> None:
        """About to close: what the parts hand back while the pool still works."""

    async def _migrate(self) -> None:
        latest = len(MIGRATIONS)
        async with self._transaction() as conn:
            await conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            version = await conn.fetchval("SELECT version FROM schema_version")
            if version is None:
                await conn.execute("INSERT INTO schema_version VALUES (0)")
                version = 0
            if version > latest:
                raise StoreError(
                    _NO_PATH,
                    f"{self.where} has schema version {version} but this bot knows only up "
                    f"to {latest}: run the newer bot",
                )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await conn.execute(statement)
                self._writes += 1
            await conn.execute("UPDATE schema_version SET version = $1", latest)

    async def close(self) -> None:
        if self._pool is not None:
            await self._closing()
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                await pool.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def problem(self) -> str | None:
        """Why the store cannot be used right now (the last connection failure), if so."""
        return self._problem

    # -- the calls every part goes through ------------------------------------------------

    def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreUnavailable(_NO_PATH, f"{self.where}: the store is not open")
        return self._pool

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        with self._translated():
            return list(await self._ready().fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        with self._translated():
            row: asyncpg.Record | None = await self._ready().fetchrow(sql, *args)
            return row

    async def _fetchval(self, sql: str, *args: object) -> Any:
        with self._translated():
            return await self._ready().fetchval(sql, *args)

    async def _execute(self, sql: str, *args: object) -> str:
        with self._translated():
            status = str(await self._ready().execute(sql, *args))
        self._writes += 1
        return status

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        with self._translated():
            async with self._ready().acquire() as conn, conn.transaction():
                yield conn

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, name: str) -> AsyncIterator[None]:
        """Hold a lock named `name` that every process on the database respects (a
        session advisory lock on a pooled connection), waiting for it if need be."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        pool = self._ready()
        with self._translated():  # only the database's own calls: not the body's errors
            conn = await pool.acquire()
        try:
            with self._translated():
                await conn.execute("SELECT pg_advisory_lock($1)", key)
            try:
                yield
            finally:
                with self._translated():
                    await conn.execute("SELECT pg_advisory_unlock($1)", key)
        finally:
            await pool.release(conn)

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        """asyncpg's errors as the store's: the server gone or unreachable is
        StoreUnavailable (callers retry or pause); a refused value is ValueError, as on
        SQLite; anything else StoreError. Messages name the database, never the URL."""
        try:
            yield
            self._problem = None
        except (
            OSError,
            TimeoutError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.InterfaceError,
        ) as exc:
            self._problem = f"{self.where} does not answer ({type(exc).__name__})"
            raise StoreUnavailable(_NO_PATH, self._problem) from None
        except (
            asyncpg.exceptions.IntegrityConstraintViolationError,
            asyncpg.exceptions.DataError,
        ) as exc:
            raise ValueError(f"job store refused the values: {exc.__class__.__name__}") from None
        except asyncpg.exceptions.InvalidPasswordError:
            raise StoreError(_NO_PATH, f"{self.where}: the password was refused") from None
        except asyncpg.exceptions.PostgresError as exc:
            raise StoreError(_NO_PATH, f"{self.where}: {type(exc).__name__}") from None
