"""The job store on SQLite: the class that ties the parts together. It opens the data
directory (its lock, `spool`), starts the writer thread (`writer`) and prepares the
database on it (checks and `migrations`), then offers the public methods: the writes
(the state machine's transitions, `transitions`), the reads (`queries`, `fair_use`),
the audio (in the row, or in a file of its own: `audio_files`) and the purge. Errors
reach callers as `errors` translates them.

Every operation is one statement, run by the writer thread in its next commit: a
transition returns once committed. A call cancelled while its statement is queued may
still commit: after a cancellation, re-read the job with `get()` rather than assume
either way.

Audio up to `INLINE_AUDIO_MAX` stays in the job's row, where it costs less than a file
would; larger audio goes to a synced file first, so that it never holds up the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from ..audio import AudioFile
from . import spool
from .audio_files import AudioFiles
from .changes import JobChanges
from .errors import RETRY_FOR, WriterDied, explain, translate
from .fair_use import FairUseQueries
from .migrations import migrate
from .models import (
    TERMINAL_STATES,
    Admission,
    InvalidTransition,
    JobRecord,
    JobState,
    StoreError,
)
from .provenance import ProvenanceQueries
from .queries import JobQueries, marks, state_values
from .records import COLUMNS, column_kinds, exact, new_row
from .replays import ReplayQueries
from .result_cache import ResultCacheQueries
from .status import StatusQueries
from .transitions import (
    COMPLETED,
    COMPLETED_DELIVERING,
    OPEN_STATES,
    REFUSAL,
    Change,
    Transitions,
    refusal,
)
from .voices import VoiceQueries
from .writer import GroupCommitter

log = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite3"
LOCK_NAME = "jobs.lock"
AUDIO_DIR = "audio"
# An unreferenced audio file younger than this may be one being spooled right now.
ORPHAN_GRACE_SECONDS = 3600.0
# Audio up to this size is kept in the job's row; larger audio in a file of its own.
INLINE_AUDIO_MAX = 256 * 1024
# A write the writer has not answered after this long means the store stopped answering
# (a hung disk): well over RETRY_FOR, so a database merely locked by someone never counts.
STALL_TIMEOUT = 60.0
# How long SQLite's own busy handler waits per try; the writer retries up to RETRY_FOR.
WRITER_BUSY_TIMEOUT = 1.0

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")


class SqliteJobStore(
    JobChanges,
    JobQueries,
    FairUseQueries,
    ProvenanceQueries,
    ReplayQueries,
    ResultCacheQueries,
    StatusQueries,
    VoiceQueries,
):
    """Jobs in `data_dir/jobs.sqlite3`, their audio under `data_dir/audio/`, and an
    exclusive `data_dir/jobs.lock` held while open."""

    def __init__(
        self,
        data_dir: Path,
        *,
        synchronous: Synchronous = "FULL",
        clock: Callable[[], float] = time.time,
        busy_timeout: float = 5.0,
        retry_for: float = RETRY_FOR,
        stall_timeout: float = STALL_TIMEOUT,
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
        # Writes that find the database locked are tried again for `retry_for` seconds in
        # all; one not answered after `stall_timeout` makes `problem()` say so.
        self._retry_for = retry_for
        self._stall_timeout = stall_timeout
        self._machine = Transitions(keep_text=keep_text)
        self._audio = AudioFiles(self.audio_dir)
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
            self._db = await self._writer()
        except BaseException:
            await asyncio.to_thread(spool.release_lock, lock_fd)
            raise
        self._lock_fd = lock_fd

    async def _writer(self) -> GroupCommitter:
        """Start the writer on a new connection and prepare the database on it."""
        try:
            conn = await asyncio.to_thread(
                sqlite3.connect, self.path, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise explain(exc, self.path) from exc
        self._machine.forget()
        db = GroupCommitter(
            conn, asyncio.get_running_loop(), self._machine.forget, retry_for=self._retry_for
        )
        try:
            applied = await db.run_alone(self._prepare)
        except BaseException as exc:
            await db.close()
            if isinstance(exc, sqlite3.Error):
                raise explain(exc, self.path) from exc
            raise
        self._writes += applied
        return db

    def _prepare(self, conn: sqlite3.Connection) -> int:
        """Writer thread, no transaction open: check the file, bring its schema up to
        date, set the connection up for jobs. Returns the migrations applied."""
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms:d}")
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            raise StoreError(
                self.path,
                f"{self.path}: cannot use write-ahead logging (journal mode stays "
                f"{mode!r}): put BOT_DATA_DIR on a local filesystem",
            )
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        check = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
        if check != ["ok"]:
            raise StoreError(
                self.path,
                f"{self.path} is not a valid database (corrupt: {check[0][:200]}): move "
                "it aside to start fresh; jobs in it will be lost",
            )
        applied = migrate(conn, self.path)
        # From now on the writer retries a locked database itself, up to `retry_for`.
        busy_ms = min(self._busy_timeout_ms, int(WRITER_BUSY_TIMEOUT * 1000))
        conn.execute(f"PRAGMA busy_timeout = {busy_ms:d}")
        # Large audio passes through the WAL: give the space back after checkpoints.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        self._machine.kinds = column_kinds(conn)
        return applied

    async def close(self) -> None:
        db, self._db = self._db, None
        lock_fd, self._lock_fd = self._lock_fd, None
        try:
            self._audio.close()
            if db is not None:
                await db.close()
                self._machine.forget()
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

    def problem(self) -> str | None:
        """Why the store can no longer be used, or None: its writer thread died, or a write
        has gone unanswered for over `stall_timeout` seconds."""
        db = self._db
        if db is None:
            return None
        if db.failure is not None:
            return f"{self.path}: the writer thread died ({db.failure!r})"
        waited = db.unanswered_for()
        if waited > self._stall_timeout:
            return f"{self.path}: a write has not been answered for {waited:.0f} s"
        return None

    # -- the writer -----------------------------------------------------------------

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        if self._db is None:
            raise RuntimeError("job store is not open")
        try:
            return await self._db.execute(sql, params)
        except (sqlite3.Error, WriterDied) as exc:
            raise translate(exc, self.path) from exc

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(connection, *args)` on the writer thread, in its next commit."""
        if self._db is None:
            raise RuntimeError("job store is not open")
        try:
            return await self._db.run(work, *args)
        except (sqlite3.Error, WriterDied) as exc:
            raise translate(exc, self.path) from exc

    async def run_on_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the writer's own connection, inside its next
        transaction. For tests and maintenance (a PRAGMA such as `query_only` or
        `max_page_count` applies to one connection); jobs never need it."""
        return await self._write(work)

    # -- writes ---------------------------------------------------------------------

    async def _transition(
        self, job_id: str, change: Change, values: tuple[object, ...]
    ) -> JobRecord:
        """Apply `change` with `values` (for its columns but `updated_at`)."""
        values = (*values, self._clock())
        fast = exact(self._machine.kinds, change.columns, values)
        record = await self._write(self._machine.apply, change, job_id, values, fast)
        if record is None:
            raise await self._refusal(job_id, change.operation)
        self._writes += 1
        log.debug("job %s: %s -> %s", job_id, change.operation, record.state.name)
        return record

    async def _refusal(self, job_id: str, operation: str) -> InvalidTransition:
        return refusal(job_id, operation, await self._query(REFUSAL, (job_id,)))

    async def add(
        self,
        record: JobRecord,
        *,
        deadline: float | None = None,
        admit: Admission | None = None,
    ) -> JobRecord:
        """Record a newly accepted job; an id already present is refused. `deadline`: a
        `time.monotonic()` by which the writer must have got to the insert; if it gets
        there later (the caller stopped waiting), nothing is inserted (TimeoutError).
        `admit` is not asked: this is the only process (jobs.lock), whose policy counted
        every job itself."""
        if record.state is not JobState.ACCEPTED:
            raise InvalidTransition(record.id, "add", record.state, " (a new job is ACCEPTED)")
        values = new_row(record, self._clock())
        fast = exact(self._machine.kinds, COLUMNS, values)
        added = await self._write(self._machine.insert, values, fast, deadline)
        if added is None:
            raise await self._refusal(record.id, "add")
        if added == "late":
            raise TimeoutError(f"job {record.id}: not recorded: the store got to it too late")
        self._writes += 1
        return added

    async def mark_completed(
        self,
        job_id: str,
        audio: bytes,
        content_type: str,
        extension: str,
        audio_url: str,
        *,
        delivering: bool = False,
        seen: tuple[float, float] | None = None,
    ) -> JobRecord:
        """Record the result with its audio, committed before this returns: a COMPLETED
        job always has its audio, even after a power loss. `delivering`: the caller
        delivers it right away, so the job goes straight to DELIVERING (as
        `mark_delivering` would), one write fewer. Audio over `INLINE_AUDIO_MAX` goes to
        a synced file first, so that it never holds up the writer. `seen`: (last poll that
        found it running, first that found it done), seconds after the submit."""
        change = COMPLETED_DELIVERING if delivering else COMPLETED
        running, done = seen if seen is not None else (None, None)
        if len(audio) <= INLINE_AUDIO_MAX:
            return await self._transition(
                job_id,
                change,
                (audio, None, content_type, extension, audio_url, len(audio), running, done),
            )
        name = await self._audio.write(job_id, audio, extension)
        try:
            return await self._transition(
                job_id,
                change,
                (None, name, content_type, extension, audio_url, len(audio), running, done),
            )
        except (StoreError, InvalidTransition, ValueError):
            # Not committed: nothing names the file. (A cancelled write may still commit,
            # so that file is kept; `purge` sweeps it if its row never named it.)
            with contextlib.suppress(OSError):
                await self._audio.remove(name)
            raise

    async def _released(self, record: JobRecord) -> None:
        """The job has ended: its audio file, if it had one, is deleted."""
        await self._audio.drop(record)

    # -- audio and housekeeping -----------------------------------------------------

    async def read_audio(self, record: JobRecord) -> AudioFile | None:
        """The job's finished audio, or None if it has none (or its file is gone)."""
        if record.audio_path:  # large audio, or a file spooled by schema version 1
            data = await self._audio.read(record.audio_path)
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

    async def purge(self, older_than_seconds: float) -> int:
        """Delete DELIVERED/EXPLAINED jobs last changed more than `older_than_seconds`
        ago, and audio files no unfinished job needs. Returns the rows deleted."""
        now = self._clock()
        terminal = state_values(TERMINAL_STATES)
        rows = await self._query(
            f"DELETE FROM jobs WHERE state IN ({marks(len(terminal))}) AND updated_at < ? "
            "RETURNING id",
            (*terminal, now - older_than_seconds),
        )
        if rows:
            self._writes += 1
        await self._purge_replays(now - older_than_seconds)
        needed = await self._query(
            f"SELECT audio_path FROM jobs WHERE state IN ({marks(len(OPEN_STATES))}) "
            "AND audio_path IS NOT NULL",
            state_values(OPEN_STATES),
        )
        keep = {PurePath(str(row[0])).name for row in needed}
        files = await self._audio.sweep(keep, now - ORPHAN_GRACE_SECONDS)
        if rows or files:
            log.info("purged %d finished jobs and %d audio files", len(rows), files)
        return len(rows)
