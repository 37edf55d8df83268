"""Blocking file work for the store: the data directory, the lock file, and audio files
(large results, and those left by schema version 1: written, read, deleted once
delivered, swept). Everything here blocks and runs off the event loop."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from pathlib import Path

from .models import StoreError


def make_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(
            directory,
            f"{directory} is not a directory: move the file aside, or set BOT_DATA_DIR "
            "to another directory",
        ) from None
    except OSError as exc:
        raise StoreError(
            directory,
            f"cannot create the directory {directory} ({exc.strerror}): create it and "
            "make it writable by the bot's user, or set BOT_DATA_DIR elsewhere",
        ) from None


def _create_private(path: Path) -> None:
    """Create an absent database file readable by its owner only, and make an existing
    one and its -wal and -shm files so: it holds interaction tokens, and SQLite gives the
    -wal and -shm files it creates the database's mode."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # whatever is there is SQLite's to judge, never ours to replace
    except OSError as exc:
        raise StoreError(
            path,
            f"cannot create {path} ({exc.strerror}): make {path.parent} writable by the "
            "bot's user, or set BOT_DATA_DIR elsewhere",
        ) from None
    # At every start, not only at creation (a copied or restored file may be open to
    # others): take away group's and others' bits, never add the owner's (a read-only
    # file stays so, for SQLite to report).
    for file in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
        try:
            mode = os.stat(file).st_mode
            if stat.S_ISREG(mode) and mode & 0o077:
                os.chmod(file, stat.S_IMODE(mode) & 0o700)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(
                file,
                f"cannot make {file} private ({exc.strerror}): it holds interaction tokens; "
                "let it belong to the bot's user",
            ) from None


def claim(data_dir: Path, lock_path: Path, audio_dir: Path, db_path: Path) -> int:
    """Create the data directory, lock it, then create the audio directory and database
    file (only once the lock is ours). Returns the lock fd to keep open."""
    make_dir(data_dir)
    fd = acquire_lock(lock_path)
    try:
        make_dir(audio_dir)
        _create_private(db_path)
    except BaseException:
        release_lock(fd)
        raise
    return fd


def acquire_lock(path: Path) -> int:
    """Hold an exclusive lock on `path` so a second bot on the same data directory stops
    at once instead of both submitting the same jobs. Returns the fd to keep open."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(
            path,
            f"cannot open the lock file {path} ({exc.strerror}): the job store needs a "
            f"writable data directory; make {path.parent} writable by the bot's user, or "
            "set BOT_DATA_DIR elsewhere",
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise StoreError(
                path,
                f"{path} is held by another running bot (pid {holder}) using the same data "
                "directory: stop that one, or give this one its own BOT_DATA_DIR",
            ) from None
        raise StoreError(path, f"cannot lock {path} ({exc.strerror})") from None
    with contextlib.suppress(OSError):  # the pid is only a hint for the message above
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    os.close(fd)  # closing drops the flock; the file stays, as deleting it would race


def write_file(path: Path, data: bytes) -> None:
    """Create `path` (it must not exist yet) holding `data`, durably: the file and its
    directory entry are synced before this returns. A failure leaves no file behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        remove(path)
        raise
    os.close(fd)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def explain(exc: OSError, path: Path) -> StoreError:
    """An audio file that could not be written or read, in one sentence."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        problem = f"cannot write {path}: the disk is full ({exc.strerror}): free some space"
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        problem = (
            f"cannot write {path} ({exc.strerror}): make {path.parent} writable by the bot's user"
        )
    elif exc.errno == errno.EIO:
        problem = f"cannot use {path}: disk I/O error: check the disk or volume"
    else:
        problem = f"cannot use {path} ({exc.strerror or exc})"
    return StoreError(path, problem)


def read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def remove(path: Path) -> bool:
    """Delete `path`; a file already gone is fine. Returns whether one was deleted."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def remove_unlisted(directory: Path, keep: set[str], modified_before: float) -> int:
    """Delete the regular files in `directory` not named in `keep` and last modified
    before `modified_before` (so a file being spooled right now is left alone)."""
    removed = 0
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.name in keep or not entry.is_file(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime < modified_before:
                removed += remove(Path(entry.path))
    return removed
