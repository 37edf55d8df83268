"""What the store does when SQLite says no: which errors pass on their own and how long a
write waits them out (`retry_while_locked`), and how every other error reaches a caller
(`translate`): a `StoreError` whose one sentence an operator can act on, a `ValueError`
for values a constraint refused, a `StoreUnavailable` once the writer thread is gone.

The retry policy. A write that fails as a whole for a passing reason (the database locked
by another program: SQLITE_BUSY, SQLITE_LOCKED) is tried again after a pause that doubles
each time, for up to `retry_for` seconds in all, before its caller sees the error; any
other failure (disk full, read-only, I/O error) is the caller's at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .models import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_FOR = 30.0  # seconds a write is retried while the database is locked
RETRY_FIRST = 0.05  # the first pause between tries; it doubles up to RETRY_MAX
RETRY_MAX = 2.0
_TRANSIENT = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

T = TypeVar("T")


class WriterDied(RuntimeError):
    """The writer thread is gone: nothing queued to it will run."""


def transient(exc: sqlite3.Error) -> bool:
    """Whether the error passes on its own: the database is locked by someone else."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _TRANSIENT


def retry_while_locked(
    attempt: Callable[[], T],
    *,
    retry_for: float,
    stopping: threading.Event,
    failed: Callable[[], None],
) -> T:
    """`attempt()`, again while it fails because the database is locked, for up to
    `retry_for` seconds in all (or until `stopping` is set); then its last error. Blocks:
    the writer thread's. `failed` is called after each failed attempt."""
    delay = RETRY_FIRST
    first_failure: float | None = None
    while True:
        try:
            result = attempt()
        except sqlite3.Error as exc:
            failed()
            now = time.monotonic()
            if first_failure is None:
                first_failure = now
            left = first_failure + retry_for - now
            if not transient(exc) or left <= 0 or stopping.is_set():
                raise
            if delay == RETRY_FIRST:
                log.warning(
                    "Job store: %s (another program has it open?); retrying for up to %g s",
                    exc,
                    retry_for,
                )
            stopping.wait(min(delay, left))
            delay = min(delay * 2, RETRY_MAX)
            continue
        if first_failure is not None:
            waited = time.monotonic() - first_failure
            log.info("Job store: writing again after %.1f s", waited)
        return result


def translate(exc: sqlite3.Error | WriterDied, path: Path) -> ValueError | StoreError:
    """What a caller of the store sees for an error the writer handed back."""
    if isinstance(exc, sqlite3.IntegrityError):
        return ValueError(f"job store refused the values: {exc}")
    if isinstance(exc, WriterDied):
        return StoreUnavailable(path, f"{path}: {exc}")
    return explain(exc, path)


def explain(exc: sqlite3.Error, path: Path) -> StoreError:
    """Turn an sqlite error into one sentence an operator can act on."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    code = "_".join(name.split("_")[:2])
    if code in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
        problem = (
            f"{path} is not a valid database (corrupt?): move it aside to start fresh; "
            "jobs in it will be lost"
        )
    elif code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        problem = (
            f"{path} is locked by another program: stop whatever else has it open "
            "(another bot, an sqlite shell) and start again"
        )
    elif code in ("SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH"):
        problem = (
            f"{path} is read-only: make it and {path.parent} writable by the bot's user, "
            "or set BOT_DATA_DIR elsewhere"
        )
    elif code == "SQLITE_CANTOPEN":
        problem = (
            f"cannot open {path}: it must be a regular file (or absent) and {path.parent} "
            "must be writable by the bot's user"
        )
    elif code == "SQLITE_FULL":
        problem = f"cannot write {path}: the disk is full: free some space"
    elif code == "SQLITE_IOERR":
        problem = f"cannot use {path}: disk I/O error ({name}): check the disk or volume"
    else:
        problem = f"cannot use {path}: {exc}"
    return StoreError(path, problem)
