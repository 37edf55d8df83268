"""The store tests' backends: `make_store(**options)` makes an unopened store of the kind
the test is parametrised with, over the same data each call (so a test can reopen it).

SQLite keeps it in the test's `tmp_path`; PostgreSQL in a fresh database of the
throwaway server (`tests/pg.py`). Where that server cannot run, the PostgreSQL variants
are skipped, saying why; with VOICECLONE_REQUIRE_POSTGRES=1 (CI) they fail instead.

tests/conftest.py imports the fixtures: a test takes `make_store` as an argument.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bot.store import SqliteJobStore
from bot.store.models import Store

from . import pg

BACKENDS = ("sqlite", "postgres")
MakeStore = Callable[..., Store]
"""`make_store(**options)` -> an unopened store (`async with make_store() as store:`)."""


def postgres_unavailable(reason: str) -> NoReturn:
    if os.environ.get("VOICECLONE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL store tests cannot run: {reason}")
    pytest.skip(f"PostgreSQL store tests skipped: {reason}")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (tests/pg.py); its URL."""
    try:
        server = pg.start_server(tmp_path_factory.mktemp("pg"), tmp_path_factory.mktemp("run"))
    except pg.PgUnavailable as exc:
        postgres_unavailable(str(exc))
    try:
        yield server.url
    finally:
        pg.stop_server(server)


@pytest.fixture
async def pg_database(pg_server: str) -> AsyncIterator[str]:
    """A fresh, empty database on the session's server, dropped after the test; its URL."""
    url = await pg.create_database(pg_server)
    try:
        yield url
    finally:
        await pg.drop_database(pg_server, url)


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(store_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> MakeStore:
    if store_backend == "sqlite":

        def sqlite_store(**options: Any) -> SqliteJobStore:
            return SqliteJobStore(tmp_path, **options)

        return sqlite_store
    try:
        store_class = importlib.import_module("bot.store.pg").PostgresJobStore
    except (ImportError, AttributeError) as exc:
        postgres_unavailable(f"no PostgreSQL store to test ({exc})")
    url = str(request.getfixturevalue("pg_database"))

    def postgres_store(**options: Any) -> Store:
        store: Store = store_class(url, **options)
        return store

    return postgres_store
