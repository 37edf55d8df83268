"""A throwaway PostgreSQL server (the PyPI package pgserver: a unix socket, no network)
and fresh databases on it. Plain functions, no pytest, so the store tests
(tests/store_backends.py) and the benchmark (bench/pg_store.py) share one implementation.
"""

from __future__ import annotations

import atexit
import importlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class PgUnavailable(Exception):
    """The server cannot run here; the message says why (for a skip or a report line)."""


@dataclass(frozen=True)
class PgServer:
    url: str
    """`postgresql://postgres:@/postgres?host=<socket dir>`: the maintenance database."""
    pid: int
    """The postmaster's: its process tree is the server's CPU."""
    handle: Any
    """pgserver's PostgresServer, for `stop_server`."""


def start_server(data_dir: Path, runtime_dir: Path) -> PgServer:
    """Start a server over `data_dir` (created if need be); PgUnavailable if it cannot."""
    # Must be set before pgserver is first imported: its platformdirs looks the runtime dir
    # up at import (for its lock file), and warns without one (root in a container has none).
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # platformdirs wants 0700
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    try:
        pgserver = importlib.import_module("pgserver")
    except ImportError as exc:
        raise PgUnavailable(
            f"the pgserver package is missing ({exc}): make .venv/.installed"
        ) from exc
    try:
        handle = pgserver.get_server(data_dir, cleanup_mode="stop")
    except Exception as exc:  # any reason it cannot start is the reason
        raise PgUnavailable(f"the throwaway server did not start: {exc}") from exc
    return PgServer(str(handle.get_uri()), int(handle.get_pid() or 0), handle)


def stop_server(server: PgServer) -> None:
    server.handle.cleanup()
    # pgserver registered the same cleanup with atexit; left there, it would take its lock
    # again at exit and so recreate the lock file under a runtime dir already removed.
    atexit.unregister(server.handle._cleanup)


def database_url(server_url: str, name: str) -> str:
    """The URL of database `name` on the server at `server_url` (same socket, same user)."""
    base, _, query = server_url.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}?{query}"


async def create_database(server_url: str) -> str:
    """A fresh, empty database on the server; its URL."""
    asyncpg = importlib.import_module("asyncpg")
    name = f"t_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    """Drop the database at `url` (made by `create_database`), whoever is still connected."""
    asyncpg = importlib.import_module("asyncpg")
    name = url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
