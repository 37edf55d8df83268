"""The job store on SQLite: opened and migrated through aiosqlite, then written through a
group-committing thread (`batch.py`).

Every operation is one statement: a transition is an
`UPDATE ... WHERE id = ? AND state IN (allowed) RETURNING *`, so the state check and the
write are atomic, and no second caller can slip in between; it returns once committed.
If it matches no row, a read tells the caller why (`InvalidTransition`).

A call cancelled while its statement is queued may still commit: after a cancellation,
re-read the job with `get()` rather than assume either way.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import aiosqlite

from ..audio import AudioFile
from . import spool
from .batch import GroupCommitter
from .migrations import migrate
from .models import (
    DELIVERY_CHANNELS,
    TERMINAL_STATES,
    InvalidTransition,
    JobRecord,
    JobState,
    StoreError,
)
from .policy import PolicyQueries

log = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite3"
LOCK_NAME = "jobs.lock"
AUDIO_DIR = "audio"
# An unreferenced audio file younger than this may be one being spooled right now.
ORPHAN_GRACE_SECONDS = 3600.0

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")

COLUMNS = tuple(f.name for f in fields(JobRecord))
_SELECT = ", ".join(COLUMNS)
_STATE, _UPDATED_AT, _TEXT_CHARS, _SAMPLE_HOST = (
    COLUMNS.index(name) for name in ("state", "updated_at", "text_chars", "sample_host")
)
_OPEN_STATES = tuple(s for s in JobState if not s.terminal)
_FAILABLE_STATES = tuple(s for s in _OPEN_STATES if s is not JobState.FAILED)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _values(states: Iterable[JobState]) -> tuple[str, ...]:
    return tuple(s.value for s in states)


def _record(row: Sequence[Any]) -> JobRecord:
    values = dict(zip(COLUMNS, row, strict=True))
    values["state"] = JobState(values["state"])
    return JobRecord(**values)


def _explain(exc: sqlite3.Error, path: Path) -> StoreError:
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


class SqliteJobStore(PolicyQueries):
    """Jobs in `data_dir/jobs.sqlite3`, their audio under `data_dir/audio/`, and an
    exclusive `data_dir/jobs.lock` held while open."""

    def __init__(
        self,
        data_dir: Path,
        *,
        synchronous: Synchronous = "FULL",
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        keep_text: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.lock_path = self.data_dir / LOCK_NAME
        self.audio_dir = self.data_dir / AUDIO_DIR
        # FULL: in WAL mode a commit then fsyncs the WAL before returning. NORMAL fsyncs
        # only at checkpoints, which survives the process being killed (the commit is in
        # the OS page cache) but not a power loss or kernel crash, which can drop the
        # last commits. A lost `submit_started_at` would let recovery submit (and pay
        # for) the job again, and a lost DELIVERED would post the audio twice, so the
        # default pays one WAL fsync per transition: measured on ext4 in a VM, +0.15 ms
        # wall per transition and ~0.5 ms CPU per job, against jobs that take seconds.
        self._synchronous = synchronous
        self._clock = clock
        self._busy_timeout_ms = int(busy_timeout * 1000)
        # Privacy by default: a finished job keeps its text's length, not the text.
        self._wipe = "sample_url = '', text = " + ("text" if keep_text else "''")
        self._db: GroupCommitter | None = None
        self._lock_fd: int | None = None
        self._writes = 0

    @property
    def writes(self) -> int:
        """Write transactions this instance committed (schema steps included)."""
        return self._writes

    # -- lifecycle ------------------------------------------------------------------

    async def open(self) -> None:
        """Lock the data directory, open and check the database, run migrations.

        Raises `StoreError` for anything an operator must fix; never recreates, repairs
        or deletes an existing database.
        """
        if self._db is not None:
            raise RuntimeError("job store is already open")
        lock_fd = await asyncio.to_thread(
            spool.claim, self.data_dir, self.lock_path, self.audio_dir, self.path
        )
        try:
            await self._prepare()
            self._db = await self._writer()
        except BaseException:
            await asyncio.to_thread(spool.release_lock, lock_fd)
            raise
        self._lock_fd = lock_fd

    async def _writer(self) -> GroupCommitter:
        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            # Large audio passes through the WAL: give the space back after checkpoints.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            return conn

        try:
            conn = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        return GroupCommitter(conn, asyncio.get_running_loop())

    async def _prepare(self) -> None:
        """Check the file and bring its schema up to date (then let go of it)."""
        try:
            db = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
            (mode,) = next(iter(await db.execute_fetchall("PRAGMA journal_mode = WAL")))
            if str(mode).lower() != "wal":
                raise StoreError(
                    self.path,
                    f"{self.path}: cannot use write-ahead logging (journal mode stays "
                    f"{mode!r}): put BOT_DATA_DIR on a local filesystem",
                )
            await db.execute(f"PRAGMA synchronous = {self._synchronous}")
            check = [str(row[0]) for row in await db.execute_fetchall("PRAGMA quick_check")]
            if check != ["ok"]:
                raise StoreError(
                    self.path,
                    f"{self.path} is not a valid database (corrupt: {check[0][:200]}): move "
                    "it aside to start fresh; jobs in it will be lost",
                )
            self._writes += await migrate(db, self.path)
        except sqlite3.Error as exc:
            await db.close()
            raise _explain(exc, self.path) from exc
        except BaseException:
            await db.close()
            raise
        await db.close()

    async def close(self) -> None:
        db, self._db = self._db, None
        lock_fd, self._lock_fd = self._lock_fd, None
        try:
            if db is not None:
                await db.close()
        finally:
            if lock_fd is not None:
                await asyncio.to_thread(spool.release_lock, lock_fd)

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

    # -- plumbing -------------------------------------------------------------------

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        if self._db is None:
            raise RuntimeError("job store is not open")
        try:
            return list(await self._db.execute(sql, params))
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job store refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc

    async def _transition(
        self,
        job_id: str,
        operation: str,
        sources: Sequence[JobState],
        assignments: str,
        values: Sequence[object],
        condition: str = "",
    ) -> JobRecord:
        """Apply `assignments` if the job is in one of `sources` (and `condition`)."""
        sql = (
            f"UPDATE jobs SET {assignments}, updated_at = ? WHERE id = ? "
            f"AND state IN ({_marks(len(sources))}){condition} RETURNING {_SELECT}"
        )
        rows = await self._query(sql, (*values, self._clock(), job_id, *_values(sources)))
        if not rows:
            raise await self._refusal(job_id, operation)
        self._writes += 1
        record = _record(rows[0])
        log.debug("job %s: %s -> %s", job_id, operation, record.state.name)
        return record

    async def _refusal(self, job_id: str, operation: str) -> InvalidTransition:
        rows = await self._query(
            "SELECT state, submit_started_at FROM jobs WHERE id = ?", (job_id,)
        )
        if not rows:
            return InvalidTransition(job_id, operation, None)
        state, started = JobState(rows[0][0]), rows[0][1]
        detail = ""
        if state is JobState.ACCEPTED and operation == "mark_submit_started":
            detail = " and its submit was already started (it may have reached Segmind)"
        elif state is JobState.ACCEPTED and operation == "mark_submitted" and started is None:
            detail = " and its submit was never started (call mark_submit_started first)"
        return InvalidTransition(job_id, operation, state, detail)

    def _audio_file(self, audio_path: str) -> Path:
        # Only ever the file name: a record can never make us touch a file elsewhere.
        return self.audio_dir / PurePath(audio_path).name

    async def _drop_audio(self, record: JobRecord) -> None:
        """Delete a finished job's audio file (written by schema version 1; newer audio
        lives in the row and is cleared with the state). The state is already committed,
        so a failure here is only logged: `purge` removes the file later."""
        if record.audio_path:
            try:
                await asyncio.to_thread(spool.remove, self._audio_file(record.audio_path))
            except OSError as exc:
                log.warning("job %s: could not delete its audio: %s", record.id, exc)

    # -- writes ---------------------------------------------------------------------

    async def add(self, record: JobRecord) -> JobRecord:
        """Record a newly accepted job; an id already present is refused."""
        if record.state is not JobState.ACCEPTED:
            raise InvalidTransition(record.id, "add", record.state, " (a new job is ACCEPTED)")
        values = [getattr(record, name) for name in COLUMNS]
        values[_STATE] = record.state.value
        values[_UPDATED_AT] = self._clock()
        values[_TEXT_CHARS] = len(record.text)
        values[_SAMPLE_HOST] = urlsplit(record.sample_url).hostname or ""
        rows = await self._query(
            f"INSERT INTO jobs ({_SELECT}) VALUES ({_marks(len(COLUMNS))}) "
            f"ON CONFLICT (id) DO NOTHING RETURNING {_SELECT}",
            values,
        )
        if not rows:
            raise await self._refusal(record.id, "add")
        self._writes += 1
        return _record(rows[0])

    async def mark_submit_started(self, job_id: str) -> JobRecord:
        """Call right before sending the submit. Succeeds once per job: the caller that
        gets the record back is the only one allowed to send it."""
        return await self._transition(
            job_id,
            "mark_submit_started",
            (JobState.ACCEPTED,),
            "submit_started_at = ?",
            (self._clock(),),
            " AND submit_started_at IS NULL",
        )

    async def mark_submitted(
        self, job_id: str, request_id: str, poll_url: str, at: float | None = None
    ) -> JobRecord:
        return await self._transition(
            job_id,
            "mark_submitted",
            (JobState.ACCEPTED,),
            "state = ?, request_id = ?, poll_url = ?, submitted_at = ?",
            (JobState.SUBMITTED.value, request_id, poll_url, self._clock() if at is None else at),
            " AND submit_started_at IS NOT NULL",
        )

    async def mark_completed(
        self, job_id: str, audio: bytes, content_type: str, extension: str, audio_url: str
    ) -> JobRecord:
        """Record the result with its audio, in one committed statement: a COMPLETED job
        always has its audio, even after a power loss."""
        return await self._transition(
            job_id,
            "mark_completed",
            (JobState.SUBMITTED,),
            "state = ?, audio = ?, audio_path = NULL, audio_content_type = ?, "
            "audio_extension = ?, audio_url = ?, audio_size = ?",
            (
                JobState.COMPLETED.value,
                audio,
                content_type,
                extension,
                audio_url,
                len(audio),
            ),
        )

    async def mark_delivering(self, job_id: str) -> JobRecord:
        """Call before each delivery attempt; counts it. After a crash, DELIVERING means
        an attempt may have reached Discord."""
        return await self._transition(
            job_id,
            "mark_delivering",
            (JobState.COMPLETED, JobState.DELIVERING),
            "state = ?, attempts = attempts + 1",
            (JobState.DELIVERING.value,),
        )

    async def mark_delivered(self, job_id: str, channel: str, message_id: int | None) -> JobRecord:
        if channel not in DELIVERY_CHANNELS:
            raise ValueError(f"delivery channel must be one of {DELIVERY_CHANNELS}")
        record = await self._transition(
            job_id,
            "mark_delivered",
            (JobState.DELIVERING,),
            "state = ?, delivered_at = ?, delivery_channel = ?, delivery_message_id = ?, "
            f"audio = NULL, {self._wipe}",
            (JobState.DELIVERED.value, self._clock(), channel, message_id),
        )
        await self._drop_audio(record)
        return record

    async def mark_failed(self, job_id: str, cause: str, message: str) -> JobRecord:
        """Record why the job failed and what the user will be told (once)."""
        return await self._transition(
            job_id,
            "mark_failed",
            _FAILABLE_STATES,
            "state = ?, failure_cause = ?, failure_message = ?",
            (JobState.FAILED.value, cause, message),
        )

    async def mark_explained(self, job_id: str) -> JobRecord:
        record = await self._transition(
            job_id,
            "mark_explained",
            (JobState.FAILED,),
            f"state = ?, audio = NULL, {self._wipe}",
            (JobState.EXPLAINED.value,),
        )
        await self._drop_audio(record)
        return record

    async def set_original_message_id(self, job_id: str, message_id: int) -> JobRecord:
        return await self._transition(
            job_id,
            "set_original_message_id",
            _OPEN_STATES,
            "original_message_id = ?",
            (message_id,),
        )

    # -- reads ----------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._query(f"SELECT {_SELECT} FROM jobs WHERE id = ?", (job_id,))
        return _record(rows[0]) if rows else None

    async def unfinished(self) -> list[JobRecord]:
        """Every job not DELIVERED or EXPLAINED, oldest first: what recovery resumes."""
        rows = await self._query(
            f"SELECT {_SELECT} FROM jobs WHERE state IN ({_marks(len(_OPEN_STATES))}) "
            "ORDER BY created_at, rowid",
            _values(_OPEN_STATES),
        )
        return [_record(row) for row in rows]

    async def recent_jobs(self, guild_id: int, limit: int) -> list[JobRecord]:
        """The guild's latest jobs, newest first: the audit log."""
        rows = await self._query(
            f"SELECT {_SELECT} FROM jobs WHERE guild_id = ? ORDER BY created_at DESC, rowid DESC "
            "LIMIT ?",
            (guild_id, limit),
        )
        return [_record(row) for row in rows]

    async def count_by_state(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._query("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts

    async def read_audio(self, record: JobRecord) -> AudioFile | None:
        """The job's finished audio, or None if it has none (or its file is gone)."""
        if record.audio_path:  # a file spooled by schema version 1
            path = self._audio_file(record.audio_path)
            try:
                data = await asyncio.to_thread(spool.read_file, path)
            except OSError as exc:
                raise StoreError(path, f"cannot read {path} ({exc.strerror})") from exc
        else:
            rows = await self._query("SELECT audio FROM jobs WHERE id = ?", (record.id,))
            data = bytes(rows[0][0]) if rows and rows[0][0] is not None else None
        if data is None:
            return None
        return AudioFile(
            data,
            record.audio_content_type or "application/octet-stream",
            record.audio_extension or "bin",
            record.audio_url or "",
        )

    # -- housekeeping ---------------------------------------------------------------

    async def purge(self, older_than_seconds: float) -> int:
        """Delete DELIVERED/EXPLAINED jobs last changed more than `older_than_seconds`
        ago, and audio files no unfinished job needs. Returns the rows deleted."""
        now = self._clock()
        terminal = _values(TERMINAL_STATES)
        rows = await self._query(
            f"DELETE FROM jobs WHERE state IN ({_marks(len(terminal))}) AND updated_at < ? "
            "RETURNING id",
            (*terminal, now - older_than_seconds),
        )
        if rows:
            self._writes += 1
        needed = await self._query(
            f"SELECT audio_path FROM jobs WHERE state IN ({_marks(len(_OPEN_STATES))}) "
            "AND audio_path IS NOT NULL",
            _values(_OPEN_STATES),
        )
        keep = {PurePath(str(row[0])).name for row in needed}
        try:
            files = await asyncio.to_thread(
                spool.remove_unlisted, self.audio_dir, keep, now - ORPHAN_GRACE_SECONDS
            )
        except OSError as exc:
            log.warning("could not sweep %s: %s", self.audio_dir, exc)
            files = 0
        if rows or files:
            log.info("purged %d finished jobs and %d audio files", len(rows), files)
        return len(rows)
