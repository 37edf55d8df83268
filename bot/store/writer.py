"""The writer thread: the one thread that talks to SQLite. It owns the store's connection
and runs every statement queued since its last commit in one transaction (group commit);
at open, the schema's checks and migrations run on it too, outside any batch
(`run_alone`).

With hundreds of jobs in flight, each written five times on its way, a commit (and,
under synchronous=FULL, an fsync) per statement costs more CPU than the jobs' own HTTP
work. Here a busy bot pays one commit per batch, and the event loop's share of each
statement is a list append and one future; an idle bot still commits each statement at
once. Each statement's own outcome is kept: one refused INSERT does not fail the others
(SQLite rolls back just that statement), but a failed COMMIT fails the whole batch.

Trouble. A batch that fails as a whole is rolled back; while the database is locked by
another program it is run again, as `errors.retry_while_locked` says. If the thread
itself dies, every write queued or running fails with `WriterDied` and every later one
is refused, rather than waiting forever; `unanswered_for` says how long the batch in
progress has run, so that whoever watches can tell a store that stopped answering (a
stuck disk) from a busy one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from .errors import RETRY_FOR, WriterDied, retry_while_locked

log = logging.getLogger(__name__)

LINGER = 0.001  # slept on the writer thread, never on the event loop
BUSY_BATCH = 4  # statements in a batch that mean "under load"
RESOLVE_CHUNK = 16
CLOSE_TIMEOUT = 5.0  # seconds close() waits for the thread before leaving it behind

T = TypeVar("T")
Rows = list[Any]
Work = Callable[..., Any]
_Item = tuple[Work, tuple[Any, ...], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> Rows:
    return conn.execute(sql, params).fetchall()


def _nothing() -> None:
    pass


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class GroupCommitter:
    """`invalidate` is called on the writer thread whenever work may have changed the
    database in a way that did not commit (a failed batch) or that its caller could not
    follow (work that raised something other than `sqlite3.Error`): whoever keeps state
    derived from the work's results must drop it."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        loop: asyncio.AbstractEventLoop,
        invalidate: Callable[[], None] = _nothing,
        *,
        retry_for: float = RETRY_FOR,
    ) -> None:
        self._conn = conn  # used only by the writer thread from now on
        self._loop = loop
        self._invalidate = invalidate
        self._retry_for = retry_for
        self._pending: list[_Item] = []
        self._alone: list[_Item] = []  # work to run outside any batch (`run_alone`)
        self._running: list[_Item] = []  # the work in progress: the writer's alone
        self._busy_since: float | None = None  # when it was taken (monotonic)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()  # set by close(): cuts a retry's pause short
        self._closing = False
        self._finished: asyncio.Future[None] = loop.create_future()
        self.failure: BaseException | None = None  # what killed the thread, if it died
        self.commits = 0
        self._thread = threading.Thread(target=self._run, name="job-store", daemon=True)
        self._thread.start()

    def execute(self, sql: str, params: Sequence[object] = ()) -> asyncio.Future[Rows]:
        """Queue a statement; the future gets its rows once the batch has committed."""
        return self.run(_fetchall, sql, params)

    def run(self, work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `work(connection, *args)`, to be called on the writer thread inside the
        next batch's transaction; the future gets its result once the batch committed."""
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._lock:
            self._refuse_if_closing()
            first = not self._pending
            self._pending.append((work, args, future))
        # The writer empties the lists and clears the event together, under the lock: a
        # non-empty list means its first item's caller has set the event already.
        if first:
            self._wake.set()
        return future

    def run_alone(self, work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue `work(connection, *args)`, to be called on the writer thread with no
        transaction open, before the next batch: it opens and ends its own, and is not
        retried. For what must not share a transaction (a journal mode change, the
        schema's migrations, each its own step); the future gets its result at once."""
        future: asyncio.Future[Any] = self._loop.create_future()
        with self._lock:
            self._refuse_if_closing()
            self._alone.append((work, args, future))
        self._wake.set()
        return future

    def _refuse_if_closing(self) -> None:
        if self._closing:
            if self.failure is not None:
                raise WriterDied(f"the job store's writer thread died ({self.failure!r})")
            raise RuntimeError("job store is closed")

    def unanswered_for(self) -> float:
        """Seconds the batch in progress has been running; 0 while the writer is idle."""
        since = self._busy_since
        return 0.0 if since is None else time.monotonic() - since

    async def close(self) -> None:
        """Run what is queued, then stop the thread. A thread stuck in a system call (a
        hung disk) is left behind after CLOSE_TIMEOUT seconds: it is a daemon."""
        timeout = CLOSE_TIMEOUT
        with self._lock:
            self._closing = True
        self._stopping.set()
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._finished), timeout)
        except TimeoutError:
            log.warning(
                "The job store's writer thread did not stop within %.0f s (a stuck disk?); "
                "leaving it behind",
                timeout,
            )

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # it must not vanish with writes queued
            self._died(exc)
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                self._loop.call_soon_threadsafe(_finish, self._finished)

    def _serve(self) -> None:
        busy = False
        while True:
            self._wake.wait()
            if busy:
                # Under load, wait a moment so the next commit carries more statements:
                # fewer fsyncs and fewer wake-ups of the event loop, for ~1 ms of latency.
                time.sleep(LINGER)
            with self._lock:
                alone = self._alone
                if alone:
                    self._alone = []
                batch = self._running = self._pending
                self._pending = []
                self._wake.clear()
                closing = self._closing
            busy = len(batch) >= BUSY_BATCH
            if alone:
                self._running = alone + batch
                # Idle again before the answers are handed over: a caller that has its
                # answer must not find the writer still "busy" (a false stall).
                self._busy_since = time.monotonic()
                outcomes = [self._outside(item) for item in alone]
                self._busy_since = None
                self._loop.call_soon_threadsafe(_resolve, outcomes)
            if batch:
                self._busy_since = time.monotonic()
                outcomes = self._commit(batch)
                self._busy_since = None
                self._loop.call_soon_threadsafe(_resolve, outcomes)
            self._running = []
            if closing:
                return  # nothing can be queued once closing is set: that was the last

    def _died(self, exc: BaseException) -> None:
        """The thread is ending on an error: fail every write it will never run."""
        with self._lock:
            self.failure = exc
            self._closing = True
            lost = self._running + self._alone + self._pending
            self._alone, self._pending = [], []
        self._running = []
        self._busy_since = None
        message = f"the job store's writer thread died ({exc!r})"
        outcomes: list[_Outcome] = [(future, None, WriterDied(message)) for *_, future in lost]
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
            self._loop.call_soon_threadsafe(_resolve, outcomes)

    def _outside(self, item: _Item) -> _Outcome:
        """Run one piece of `run_alone` work. Should it leave a transaction open, it is
        rolled back: the next batch begins its own."""
        work, args, future = item
        try:
            return future, work(self._conn, *args), None
        except Exception as exc:
            return future, None, exc
        finally:
            if self._conn.in_transaction:
                self._invalidate()
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")

    def _commit(self, batch: list[_Item]) -> list[_Outcome]:
        """Run the batch; while the database is locked, again, for up to `retry_for`."""
        try:
            return retry_while_locked(
                partial(self._attempt, batch),
                retry_for=self._retry_for,
                stopping=self._stopping,
                failed=self._invalidate,
            )
        except sqlite3.Error as exc:
            return [(future, None, exc) for _, _, future in batch]

    def _attempt(self, batch: list[_Item]) -> list[_Outcome]:
        """One transaction over the batch. Raises `sqlite3.Error` (rolled back) if the
        batch failed as a whole."""
        conn = self._conn
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for work, args, future in batch:
                try:
                    outcomes.append((future, work(conn, *args), None))
                except sqlite3.Error as exc:
                    if not conn.in_transaction:
                        # SQLite rolled the whole transaction back (disk full, I/O error):
                        # fail the batch rather than run the rest outside a transaction.
                        raise
                    outcomes.append((future, None, exc))
                except Exception as exc:
                    self._invalidate()
                    outcomes.append((future, None, exc))
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self.commits += 1
        return outcomes


def _resolve(outcomes: list[_Outcome], start: int = 0) -> None:
    """Wake the waiting jobs a few at a time: a batch of hundreds resolved at once would
    run all their next steps in one loop iteration and stall everyone else."""
    end = start + RESOLVE_CHUNK
    for future, result, exc in outcomes[start:end]:
        if future.done():  # its caller was cancelled; the statement ran all the same
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)
    if end < len(outcomes):
        asyncio.get_running_loop().call_soon(_resolve, outcomes, end)
