"""Checks on this machine: the data directory, its job database, free disk, PyAV.

Blocking (file system, SQLite, an import): run in a thread. Nothing here takes the store's
lock or writes to the database: a running bot must keep working while this runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from ..healthcheck import problem as store_problem
from ..store.migrations import MIGRATIONS
from ..store.sqlite import DB_NAME
from .report import Check, fail, ok, warn

MIB = 1024 * 1024
DISK_FAIL_BYTES = 50 * MIB  # the store's group commits and the result cache need room
DISK_WARN_BYTES = 1024 * MIB
SQLITE_TIMEOUT = 2.0

DATA = "Data directory"
SCHEMA = "Job database"
DISK = "Free disk space"
VOICE = "Voice features (PyAV)"


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def check_data_dir(data_dir: Path) -> Check:
    """Writable, tried for real (as root `os.access` says yes to everything)."""
    where = f"BOT_DATA_DIR={data_dir}"
    fix_perm = (
        f"make {data_dir} writable for the user that runs the bot (uid {os.getuid()}), "
        "or set BOT_DATA_DIR to a directory it owns"
    )
    if data_dir.exists() and not data_dir.is_dir():
        return fail(DATA, f"{where} is not a directory", "set BOT_DATA_DIR to a directory")
    if not data_dir.exists():
        parent = _existing_ancestor(data_dir)
        if not parent.is_dir():
            return fail(
                DATA,
                f"{where} cannot be created: {parent} is a file",
                "set BOT_DATA_DIR to a directory path",
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            return fail(DATA, f"{where} cannot be created in {parent} (not writable)", fix_perm)
        return ok(DATA, f"{data_dir} does not exist yet; the bot creates it at start")
    try:
        fd, probe = tempfile.mkstemp(prefix=".voiceclone-check-", dir=data_dir)
    except OSError as exc:
        return fail(DATA, f"{where} is not writable ({exc.strerror})", fix_perm)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return ok(DATA, f"{data_dir} is writable")


def check_schema(data_dir: Path) -> Check:
    """The database's schema version against this bot's, read-only and without the lock."""
    latest = len(MIGRATIONS)
    path = data_dir / DB_NAME
    if not path.is_file():
        return ok(
            SCHEMA, f"no {DB_NAME} yet; the bot creates it at start (schema version {latest})"
        )
    running = store_problem(data_dir) is None
    in_use = "; a running bot has it open (fine)" if running else ""
    # A read-only connection still creates -wal and -shm files, which, made by another user
    # (root, say), would lock the bot out of its own database. With no bot running,
    # `immutable` reads the file alone (a clean stop leaves no WAL behind); a running bot
    # has made those files already and its WAL may hold the newest pages.
    mode = "ro" if running else "ro&immutable=1"
    try:
        uri = f"{path.absolute().as_uri()}?mode={mode}"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=SQLITE_TIMEOUT)) as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.Error as exc:
        return fail(
            SCHEMA,
            f"{path} cannot be read ({exc})",
            "check its permissions; if it is damaged, move it aside (its jobs are lost)",
        )
    if version > latest:
        return fail(
            SCHEMA,
            f"{path} has schema version {version}, newer than this bot's {latest}{in_use}",
            "run the newer bot version that wrote it, or move the file aside to start fresh "
            "(its jobs are lost)",
        )
    if version < latest:
        return ok(
            SCHEMA, f"schema version {version}; upgraded to {latest} at the next start{in_use}"
        )
    return ok(SCHEMA, f"schema version {version}, this bot's{in_use}")


def check_disk(data_dir: Path) -> Check:
    where = _existing_ancestor(data_dir)
    if not where.is_dir():
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        return warn(DISK, f"cannot measure the free space at {where} ({exc.strerror})")
    shown = f"{free / MIB:,.0f} MiB free at {where}"
    fix = "free some space, or move BOT_DATA_DIR to a larger disk"
    if free < DISK_FAIL_BYTES:
        return fail(DISK, f"only {shown}", fix)
    if free < DISK_WARN_BYTES:
        return warn(DISK, f"only {shown}", fix)
    return ok(DISK, shown)


def check_pyav() -> Check:
    """Voice messages and voice-channel playback encode Opus in-process with PyAV."""
    fix = (
        "reinstall PyAV, whose wheels bundle FFmpeg with libopus: pip install --force-reinstall av"
    )
    try:
        import av
    except ImportError as exc:
        return warn(VOICE, f"PyAV does not import ({exc}): no voice messages or playback", fix)
    try:
        av.Codec("libopus", "w")
    except Exception:  # PyAV raises its own error types for an unknown codec
        return warn(
            VOICE,
            f"PyAV {av.__version__} has no libopus encoder: no voice messages or playback",
            fix,
        )
    return ok(VOICE, f"PyAV {av.__version__} with the libopus encoder")


def local_checks(data_dir: Path, sqlite: bool = True) -> list[Check]:
    """`sqlite`: the jobs are in BOT_DATA_DIR (no DATABASE_URL), so its file is checked."""
    schema = [check_schema(data_dir)] if sqlite else []
    return [check_data_dir(data_dir), *schema, check_disk(data_dir), check_pyav()]
