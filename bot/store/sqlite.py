"""The job store on SQLite: opened and migrated through aiosqlite, then written through a
group-committing thread (`batch.py`).

Every operation is one statement: a transition is an
`UPDATE ... WHERE id = ? AND state IN (allowed)`, so the state check and the write are
atomic, and no second caller can slip in between; it returns once committed. If it
matches no row, a read tells the caller why (`InvalidTransition`).

The record a write returns is the row as committed. The writer thread keeps the last
record it wrote for each unfinished job: the next transition of that job builds its
record from that one and the values it just stored, instead of reading all 31 columns
back with `RETURNING` (that read and the dataclass built from it were ~40% of the
store's CPU per job). Only values SQLite stores unchanged take that path (a str in a TEXT
column, an int in an INTEGER one, a float that is not NaN in a REAL one); anything else,
or a job this writer has not written yet (after a restart, say), is read back. This
holds because this store is the database's only writer while open (`jobs.lock`).

A call cancelled while its statement is queued may still commit: after a cancellation,
re-read the job with `get()` rather than assume either way.

Audio over `INLINE_AUDIO_MAX` is not written through the writer: a 20 MiB blob commits
in ~70 ms with its fsync, and every write queued behind it (a new job's insert, which
Discord's 3 s to acknowledge /speak is waiting on) would wait that out. It is written to
a file of its own under `audio/` on separate threads, synced, and only then is the job's
row (naming the file) committed; a crash in between leaves an unnamed file that `purge`
sweeps. Smaller audio stays in the row, where it costs less than a file would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

import aiosqlite

from ..audio import AudioFile
from . import spool
from .batch import RETRY_FOR, GroupCommitter, WriterDied
from .migrations import migrate
from .models import (
    DELIVERY_CHANNELS,
    TERMINAL_STATES,
    InvalidTransition,
    JobRecord,
    JobState,
    StoreError,
    StoreUnavailable,
)
from .policy import PolicyQueries

log = logging.getLogger(__name__)

DB_NAME = "jobs.sqlite3"
LOCK_NAME = "jobs.lock"
AUDIO_DIR = "audio"
# An unreferenced audio file younger than this may be one being spooled right now.
ORPHAN_GRACE_SECONDS = 3600.0
# Audio up to this size is kept in the job's row; larger audio in a file of its own.
INLINE_AUDIO_MAX = 256 * 1024
AUDIO_THREADS = 2  # threads that write, read and delete audio files
# A write the writer has not answered after this long means the store stopped answering
# (a hung disk): well over RETRY_FOR, so a database merely locked by someone never counts.
STALL_TIMEOUT = 60.0
# How long SQLite's own busy handler waits per try; the writer retries up to RETRY_FOR.
WRITER_BUSY_TIMEOUT = 1.0
_FILE_PART = re.compile(r"[^A-Za-z0-9_-]")

Synchronous = Literal["FULL", "NORMAL"]
T = TypeVar("T")

COLUMNS = tuple(f.name for f in fields(JobRecord))
_SELECT = ", ".join(COLUMNS)
_INDEX = {name: index for index, name in enumerate(COLUMNS)}
_STATE, _UPDATED_AT, _TEXT_CHARS, _SAMPLE_HOST = (
    _INDEX[name] for name in ("state", "updated_at", "text_chars", "sample_host")
)
_OPEN_STATES = tuple(s for s in JobState if not s.terminal)
_FAILABLE_STATES = tuple(s for s in _OPEN_STATES if s is not JobState.FAILED)
_INSERT = (
    f"INSERT INTO jobs ({_SELECT}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT (id) DO NOTHING"
)
_SELECT_JOB = f"SELECT {_SELECT} FROM jobs WHERE id = ?"
# What Python type SQLite hands back unchanged from a column of each declared type.
_AFFINITY: dict[str, type] = {"TEXT": str, "INTEGER": int, "REAL": float, "BLOB": bytes}
# Records kept by the writer for their next transition: far more than the jobs a bot has
# open at once; past it the oldest is dropped (its next transition reads the row back).
KNOWN_RECORDS = 4096
_field_values = operator.attrgetter(*COLUMNS)
# Each field's slot setter: bypasses the frozen dataclass's __setattr__, as its own
# __init__ does.
_SETTERS = tuple(JobRecord.__dict__[name].__set__ for name in COLUMNS)


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _values(states: Iterable[JobState]) -> tuple[str, ...]:
    return tuple(s.value for s in states)


def _build(values: Sequence[Any]) -> JobRecord:
    """A `JobRecord` from its field values in `COLUMNS` order. Sets the slots directly:
    the dataclass's keyword `__init__` (31 arguments, each through `object.__setattr__`
    as the class is frozen) costs three times as much."""
    record: JobRecord = object.__new__(JobRecord)
    for set_field, value in zip(_SETTERS, values, strict=True):
        set_field(record, value)
    return record


def _record(row: Sequence[Any]) -> JobRecord:
    values = list(row)
    values[_STATE] = JobState(values[_STATE])
    return _build(values)


def _read_back(conn: sqlite3.Connection, job_id: str) -> JobRecord:
    """The job's row as a read gives it. Not `RETURNING`: that hands back an integral
    value written to a REAL column as an int, where every later read gives a float."""
    return _record(conn.execute(_SELECT_JOB, (job_id,)).fetchall()[0])


@dataclass(frozen=True, slots=True)
class _Change:
    """One kind of transition, its SQL written once: it moves a job from one of
    `sources` to `target` (None: same state), sets `columns` from its parameters
    (`updated_at` last), adds 1 to `increments`, and may set columns no record holds."""

    operation: str
    columns: tuple[str, ...]
    target: JobState | None
    increments: tuple[int, ...]
    fields: tuple[int, ...]  # each column's index in COLUMNS; -1 if no record holds it
    sql: str  # parameters: the columns' values, then the job id


def _change(
    operation: str,
    sources: Sequence[JobState],
    target: JobState | None,
    columns: Sequence[str] = (),
    *,
    increments: Sequence[str] = (),
    more: str = "",
    condition: str = "",
) -> _Change:
    names = (*columns, "updated_at")
    sets = [f"{name} = ?" for name in names] + [f"{name} = {name} + 1" for name in increments]
    if target is not None:
        sets.append(f"state = '{target.value}'")
    if more:
        sets.append(more)
    # The states are the enum's own constants: inlined, they need no binding per call. As
    # comparisons, not `state IN (...)`: SQLite builds a temporary index for an IN list of
    # three or more on every execution (+4 us per statement, measured).
    states = " OR ".join(f"state = '{state.value}'" for state in sources)
    sql = f"UPDATE jobs SET {', '.join(sets)} WHERE id = ? AND ({states}){condition}"
    return _Change(
        operation=operation,
        columns=names,
        target=target,
        increments=tuple(_INDEX[name] for name in increments),
        fields=tuple(_INDEX.get(name, -1) for name in names),
        sql=sql,
    )


_SET_MESSAGE_ID = _change("set_original_message_id", _OPEN_STATES, None, ("original_message_id",))
_SUBMIT_STARTED = _change(
    "mark_submit_started",
    (JobState.ACCEPTED,),
    None,
    ("submit_started_at",),
    condition=" AND submit_started_at IS NULL",
)
_SUBMIT_STARTED_WITH_MESSAGE = _change(
    "mark_submit_started",
    (JobState.ACCEPTED,),
    None,
    ("submit_started_at", "original_message_id"),
    condition=" AND submit_started_at IS NULL",
)
_SUBMITTED = _change(
    "mark_submitted",
    (JobState.ACCEPTED,),
    JobState.SUBMITTED,
    ("request_id", "poll_url", "submitted_at"),
    condition=" AND submit_started_at IS NOT NULL",
)
_RESULT_COLUMNS = (
    "audio",
    "audio_path",
    "audio_content_type",
    "audio_extension",
    "audio_url",
    "audio_size",
    "seen_running_s",
    "seen_done_s",
)
_COMPLETED = _change("mark_completed", (JobState.SUBMITTED,), JobState.COMPLETED, _RESULT_COLUMNS)
# Completed and about to be delivered, in one write: DELIVERING only claims an attempt
# may have reached Discord, which recovery checks before posting again.
_COMPLETED_DELIVERING = _change(
    "mark_completed",
    (JobState.SUBMITTED,),
    JobState.DELIVERING,
    _RESULT_COLUMNS,
    increments=("attempts",),
)
_DELIVERING = _change(
    "mark_delivering",
    (JobState.COMPLETED, JobState.DELIVERING),
    JobState.DELIVERING,
    increments=("attempts",),
)
_FAILED = _change(
    "mark_failed", _FAILABLE_STATES, JobState.FAILED, ("failure_cause", "failure_message")
)


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
        # Privacy by default: a finished job keeps its text's length, not the text; its
        # interaction token (a credential for 15 minutes) is wiped either way.
        wiped = ("sample_url", "interaction_token")
        self._wiped = wiped if keep_text else (*wiped, "text")
        self._wipe = ("",) * len(self._wiped)

        def delivered(sources: Sequence[JobState]) -> _Change:
            return _change(
                "mark_delivered",
                sources,
                JobState.DELIVERED,
                ("delivered_at", "delivery_channel", "delivery_message_id", *self._wiped),
                more="audio = NULL",
            )

        self._delivered = delivered((JobState.DELIVERING,))
        # A result delivered from memory when the store could not record it complete (or
        # even submitted): it ends from whatever open state the store has.
        self._delivered_from_memory = delivered(_FAILABLE_STATES)
        self._explained = _change(
            "mark_explained",
            (JobState.FAILED,),
            JobState.EXPLAINED,
            self._wiped,
            more="audio = NULL",
        )
        self._db: GroupCommitter | None = None
        self._audio_threads: ThreadPoolExecutor | None = None  # started when first needed
        self._lock_fd: int | None = None
        self._writes = 0
        # Column name -> the type SQLite returns as given (from the table's declared types).
        self._kinds: dict[str, type] = {}
        # Job id -> its record as last committed by this store; the writer thread's alone.
        self._known: dict[str, JobRecord] = {}

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
        def connect() -> tuple[sqlite3.Connection, dict[str, type]]:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            busy_ms = min(self._busy_timeout_ms, int(WRITER_BUSY_TIMEOUT * 1000))
            try:
                conn.execute(f"PRAGMA busy_timeout = {busy_ms:d}")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                # Large audio passes through the WAL: give the space back after checkpoints.
                conn.execute("PRAGMA journal_size_limit = 67108864")
                columns = conn.execute("PRAGMA table_info(jobs)").fetchall()
            except BaseException:
                conn.close()
                raise
            kinds = {str(c[1]): _AFFINITY[str(c[2])] for c in columns if c[2] in _AFFINITY}
            return conn, kinds

        try:
            conn, self._kinds = await asyncio.to_thread(connect)
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        self._known = {}
        return GroupCommitter(
            conn, asyncio.get_running_loop(), self._known.clear, retry_for=self._retry_for
        )

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
        threads, self._audio_threads = self._audio_threads, None
        try:
            if threads is not None:
                # A file write in progress finishes on its own; if its job's row was not
                # committed, the file is an orphan that `purge` sweeps.
                threads.shutdown(wait=False, cancel_futures=True)
            if db is not None:
                await db.close()
                self._known = {}
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
            return await self._db.execute(sql, params)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job store refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        except WriterDied as exc:
            raise StoreUnavailable(self.path, f"{self.path}: {exc}") from exc

    async def _write(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work(connection, *args)` on the writer thread, in its next commit."""
        if self._db is None:
            raise RuntimeError("job store is not open")
        try:
            return await self._db.run(work, *args)
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"job store refused the values: {exc}") from exc
        except sqlite3.Error as exc:
            raise _explain(exc, self.path) from exc
        except WriterDied as exc:
            raise StoreUnavailable(self.path, f"{self.path}: {exc}") from exc

    async def run_on_writer(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the writer's own connection, inside its next
        transaction. For tests and maintenance (a PRAGMA such as `query_only` or
        `max_page_count` applies to one connection); jobs never need it."""
        return await self._write(work)

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

    async def _in_audio_thread(self, work: Callable[..., T], *args: Any) -> T:
        """Blocking audio file work, on threads of its own: never the writer's, nor the
        loop's default executor, which other work may need meanwhile."""
        if self._audio_threads is None:
            self._audio_threads = ThreadPoolExecutor(
                AUDIO_THREADS, thread_name_prefix="job-store-audio"
            )
        return await asyncio.get_running_loop().run_in_executor(self._audio_threads, work, *args)

    def _exact(self, columns: Iterable[str], values: Iterable[object]) -> bool:
        """Whether SQLite will hand back each value as it is (so a record may hold it
        without reading it back)."""
        kinds = self._kinds
        for column, value in zip(columns, values, strict=True):
            if value is None:
                continue
            kind = type(value)
            if kind is not kinds.get(column) or (kind is float and value != value):
                return False
        return True

    def _remember(self, record: JobRecord) -> None:
        """Writer thread only: keep an unfinished job's committed record for its next
        transition (a finished job has none)."""
        known = self._known
        if record.state.terminal:
            known.pop(record.id, None)
            return
        known[record.id] = record
        if len(known) > KNOWN_RECORDS:
            del known[next(iter(known))]

    async def _transition(
        self, job_id: str, change: _Change, values: tuple[object, ...]
    ) -> JobRecord:
        """Apply `change` with `values` (for its columns but `updated_at`)."""
        values = (*values, self._clock())
        exact = self._exact(change.columns, values)
        record = await self._write(self._apply, change, job_id, values, exact)
        if record is None:
            raise await self._refusal(job_id, change.operation)
        self._writes += 1
        log.debug("job %s: %s -> %s", job_id, change.operation, record.state.name)
        return record

    def _apply(
        self,
        conn: sqlite3.Connection,
        change: _Change,
        job_id: str,
        values: tuple[object, ...],
        exact: bool,
    ) -> JobRecord | None:
        """Writer thread: one transition; its committed record, or None if refused."""
        if not conn.execute(change.sql, (*values, job_id)).rowcount:
            return None
        before = self._known.get(job_id) if exact else None
        if before is None:
            record = _read_back(conn, job_id)
        else:
            fields = list(_field_values(before))
            for index, value in zip(change.fields, values, strict=True):
                if index >= 0:
                    fields[index] = value
            for index in change.increments:
                fields[index] += 1
            if change.target is not None:
                fields[_STATE] = change.target
            record = _build(fields)
        self._remember(record)
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
        """Delete a finished job's audio file (large audio, or any written by schema
        version 1; smaller audio lives in the row and is cleared with the state). The
        state is already committed, so a failure here is only logged: `purge` removes
        the file later."""
        if record.audio_path:
            try:
                await self._in_audio_thread(spool.remove, self._audio_file(record.audio_path))
            except OSError as exc:
                log.warning("job %s: could not delete its audio: %s", record.id, exc)

    # -- writes ---------------------------------------------------------------------

    async def add(self, record: JobRecord, *, deadline: float | None = None) -> JobRecord:
        """Record a newly accepted job; an id already present is refused. `deadline`: a
        `time.monotonic()` by which the writer must have got to the insert; if it gets
        there later (the caller stopped waiting), nothing is inserted (TimeoutError)."""
        if record.state is not JobState.ACCEPTED:
            raise InvalidTransition(record.id, "add", record.state, " (a new job is ACCEPTED)")
        values = list(_field_values(record))
        values[_STATE] = record.state.value
        values[_UPDATED_AT] = self._clock()
        values[_TEXT_CHARS] = len(record.text)
        values[_SAMPLE_HOST] = urlsplit(record.sample_url).hostname or ""
        exact = self._exact(COLUMNS, values)
        added = await self._write(self._insert, values, exact, deadline)
        if added is None:
            raise await self._refusal(record.id, "add")
        if added == "late":
            raise TimeoutError(f"job {record.id}: not recorded: the store got to it too late")
        self._writes += 1
        return added

    def _insert(
        self, conn: sqlite3.Connection, values: list[object], exact: bool, deadline: float | None
    ) -> JobRecord | Literal["late"] | None:
        """Writer thread: insert a new job; its committed record, or None if present."""
        if deadline is not None and time.monotonic() > deadline:
            return "late"
        if not conn.execute(_INSERT, values).rowcount:
            return None
        if exact:
            values[_STATE] = JobState.ACCEPTED
            record = _build(values)
        else:
            record = _read_back(conn, str(values[_INDEX["id"]]))
        self._remember(record)
        return record

    async def mark_submit_started(
        self, job_id: str, original_message_id: int | None = None
    ) -> JobRecord:
        """Call right before sending the submit. Succeeds once per job: the caller that
        gets the record back is the only one allowed to send it. The interaction's message
        id can ride along (one write fewer per job than `set_original_message_id`)."""
        if original_message_id is None:
            return await self._transition(job_id, _SUBMIT_STARTED, (self._clock(),))
        return await self._transition(
            job_id, _SUBMIT_STARTED_WITH_MESSAGE, (self._clock(), original_message_id)
        )

    async def mark_submitted(
        self, job_id: str, request_id: str, poll_url: str, at: float | None = None
    ) -> JobRecord:
        return await self._transition(
            job_id, _SUBMITTED, (request_id, poll_url, self._clock() if at is None else at)
        )

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
        change = _COMPLETED_DELIVERING if delivering else _COMPLETED
        running, done = seen if seen is not None else (None, None)
        if len(audio) <= INLINE_AUDIO_MAX:
            return await self._transition(
                job_id,
                change,
                (audio, None, content_type, extension, audio_url, len(audio), running, done),
            )
        name = await self._spool(job_id, audio, extension)
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
                await self._in_audio_thread(spool.remove, self._audio_file(name))
            raise

    async def _spool(self, job_id: str, audio: bytes, extension: str) -> str:
        """Write a result's audio to a new file under `audio/`; return the file's name."""
        suffix = _FILE_PART.sub("", extension)[:10] or "bin"
        name = f"{_FILE_PART.sub('_', job_id)[:64]}-{secrets.token_hex(4)}.{suffix}"
        path = self._audio_file(name)
        try:
            await self._in_audio_thread(spool.write_file, path, audio)
        except OSError as exc:
            raise spool.explain(exc, path) from exc
        return name

    async def mark_delivering(self, job_id: str) -> JobRecord:
        """Call before each delivery attempt; counts it. After a crash, DELIVERING means
        an attempt may have reached Discord."""
        return await self._transition(job_id, _DELIVERING, ())

    async def mark_delivered(
        self, job_id: str, channel: str, message_id: int | None, *, from_memory: bool = False
    ) -> JobRecord:
        """The result reached the member. `from_memory`: it was delivered although the
        store could not record it complete (a failed write): the job ends from whatever
        open state it has, so a restart neither posts it again nor explains it away."""
        if channel not in DELIVERY_CHANNELS:
            raise ValueError(f"delivery channel must be one of {DELIVERY_CHANNELS}")
        change = self._delivered_from_memory if from_memory else self._delivered
        record = await self._transition(
            job_id, change, (self._clock(), channel, message_id, *self._wipe)
        )
        await self._drop_audio(record)
        return record

    async def mark_failed(self, job_id: str, cause: str, message: str) -> JobRecord:
        """Record why the job failed and what the user will be told (once)."""
        return await self._transition(job_id, _FAILED, (cause, message))

    async def mark_explained(self, job_id: str) -> JobRecord:
        record = await self._transition(job_id, self._explained, self._wipe)
        await self._drop_audio(record)
        return record

    async def set_original_message_id(self, job_id: str, message_id: int) -> JobRecord:
        return await self._transition(job_id, _SET_MESSAGE_ID, (message_id,))

    # -- reads ----------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord | None:
        rows = await self._query(_SELECT_JOB, (job_id,))
        return _record(rows[0]) if rows else None

    async def job_for_message(self, guild_id: int, message_id: int) -> JobRecord | None:
        """The guild's job whose message `message_id` is (the interaction's message, or
        where its result was delivered), while its record is kept."""
        rows = await self._query(
            f"SELECT {_SELECT} FROM jobs WHERE guild_id = ? "
            "AND (original_message_id = ? OR delivery_message_id = ?) "
            "ORDER BY created_at DESC LIMIT 1",
            (guild_id, message_id, message_id),
        )
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

    async def finish_times(self, limit: int) -> list[tuple[int, float, float]]:
        """(text characters, seen running, seen done) of the latest `limit` jobs whose
        end polls saw, oldest first: the duration model replays them at start-up."""
        rows = await self._query(
            "SELECT text_chars, seen_running_s, seen_done_s FROM ("
            "SELECT text_chars, seen_running_s, seen_done_s, created_at, rowid AS r FROM jobs "
            "WHERE seen_done_s IS NOT NULL ORDER BY created_at DESC, rowid DESC LIMIT ?"
            ") ORDER BY created_at, r",
            (limit,),
        )
        return [(int(chars), float(running), float(done)) for chars, running, done in rows]

    async def count_by_state(self) -> dict[JobState, int]:
        counts = dict.fromkeys(JobState, 0)
        for state, count in await self._query("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            counts[JobState(state)] = int(count)
        return counts

    async def read_audio(self, record: JobRecord) -> AudioFile | None:
        """The job's finished audio, or None if it has none (or its file is gone)."""
        if record.audio_path:  # large audio, or a file spooled by schema version 1
            path = self._audio_file(record.audio_path)
            try:
                data = await self._in_audio_thread(spool.read_file, path)
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
