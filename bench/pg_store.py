"""The core section's PostgreSQL server: one throwaway pgserver in a temp dir for the
whole section (started and stopped here, via tests/pg.py as the store tests do), a fresh
database for every run, and its CPU over the section so that it is not taken for another
process's load."""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests import pg

from . import procstat


@dataclass
class BenchServer:
    """A running server, or why there is none (`server` None, `reason` set)."""

    server: pg.PgServer | None
    reason: str = ""
    cpu_s: float = 0.0
    """The server's CPU from start to stop (set on stop): the section's own load."""

    @property
    def pid(self) -> int:
        return self.server.pid if self.server else 0

    @contextmanager
    def database(self) -> Iterator[str]:
        """A fresh, empty database for one run (the store's schema is made by the run's
        store, as the bot's would be), dropped afterwards; its URL."""
        assert self.server is not None
        url = asyncio.run(pg.create_database(self.server.url))
        try:
            yield url
        finally:
            asyncio.run(pg.drop_database(self.server.url, url))


@contextmanager
def bench_server(wanted: bool) -> Iterator[BenchServer]:
    """Yield a running server if `wanted` and pgserver can start one; else none, with the
    reason (the section says it and skips the PostgreSQL rows rather than crash)."""
    if not wanted:
        yield BenchServer(None, "not asked for")
        return
    # Not `TemporaryDirectory`: as root, pgserver chowns the data dir to its own user, and
    # the cleanup must not fail the section over a file that user left behind.
    top = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    try:
        try:
            server = pg.start_server(top / "data", top / "run")
        except pg.PgUnavailable as exc:
            print(f"core: PostgreSQL rows skipped: {exc}", file=sys.stderr)
            yield BenchServer(None, str(exc))
            return
        cpu0 = procstat.tree_cpu_s(server.pid)
        bench = BenchServer(server)
        try:
            yield bench
        finally:
            # Read before the stop: afterwards the tree is gone (its shutdown checkpoint,
            # a few ms, is left out).
            bench.cpu_s = procstat.tree_cpu_s(server.pid) - cpu0
            pg.stop_server(server)
    finally:
        shutil.rmtree(top, ignore_errors=True)
