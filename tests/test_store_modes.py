"""The job database holds interaction tokens: its files are the bot's user's alone at
every start, not only when the store creates them."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path

from bot.store import StoreError
from bot.store.sqlite import SqliteJobStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_modes_are_enforced_at_every_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with SqliteJobStore(data):
        pass
    db = data / "jobs.sqlite3"
    wal, shm = db.with_name("jobs.sqlite3-wal"), db.with_name("jobs.sqlite3-shm")
    # What a kill -9 leaves (a WAL and its index), then a restore or copy that widened
    # every file's mode.
    keep = sqlite3.connect(db)
    keep.execute("PRAGMA journal_mode = WAL")
    keep.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    keep.commit()
    assert wal.exists()
    assert shm.exists()
    for path in (db, wal, shm):
        os.chmod(path, 0o644)
    try:
        async with SqliteJobStore(data):
            assert {path.name: mode(path) for path in (db, wal, shm)} == {
                "jobs.sqlite3": 0o600,
                "jobs.sqlite3-wal": 0o600,
                "jobs.sqlite3-shm": 0o600,
            }
    finally:
        keep.close()


async def test_a_read_only_database_is_not_made_writable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with SqliteJobStore(data):
        pass
    db = data / "jobs.sqlite3"
    os.chmod(db, 0o444)
    try:
        # As root the store opens anyway; as anyone else it refuses a read-only file.
        with contextlib.suppress(StoreError):
            async with SqliteJobStore(data):
                pass
        assert mode(db) == 0o400  # private, and still read-only for SQLite to report
    finally:
        os.chmod(db, 0o600)
