"""Group commit: one thread owns the SQLite connection and runs every statement queued
since its last commit in one transaction.

With hundreds of jobs in flight, each written five times on its way, a commit (and,
under synchronous=FULL, an fsync) per statement costs more CPU than the jobs' own HTTP
work. Here a busy bot pays one commit per batch, and the event loop's share of each
statement is a list append and one future; an idle bot still commits each statement at
once. Each statement's own outcome is kept: one refused INSERT does not fail the others
(SQLite rolls back just that statement), but a failed COMMIT fails the whole batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

LINGER = 0.001  # slept on the writer thread, never on the event loop
BUSY_BATCH = 4  # statements in a batch that mean "under load"
RESOLVE_CHUNK = 16

T = TypeVar("T")
Rows = list[Any]
Work = Callable[..., Any]
_Item = tuple[Work, tuple[Any, ...], "asyncio.Future[Any]"]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _fetchall(conn: sqlite3.Connection, sql: str, params: Sequence[object]) -> Rows:
    return conn.execute(sql, params).fetchall()


def _nothing() -> None:
    pass


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
    ) -> None:
        self._conn = conn  # used only by the writer thread from now on
        self._loop = loop
        self._invalidate = invalidate
        self._pending: list[_Item] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
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
            if self._closing:
                raise RuntimeError("job store is closed")
            first = not self._pending
            self._pending.append((work, args, future))
        # The writer empties the list and clears the event together, under the lock: a
        # non-empty list means its first item's caller has set the event already.
        if first:
            self._wake.set()
        return future

    async def close(self) -> None:
        with self._lock:
            self._closing = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        busy = False
        try:
            while True:
                self._wake.wait()
                if busy:
                    # Under load, wait a moment so the next commit carries more statements:
                    # fewer fsyncs and fewer wake-ups of the event loop, for ~1 ms of latency.
                    time.sleep(LINGER)
                with self._lock:
                    batch, self._pending = self._pending, []
                    self._wake.clear()
                    closing = self._closing
                busy = len(batch) >= BUSY_BATCH
                if batch:
                    self._loop.call_soon_threadsafe(_resolve, self._commit(batch))
                if closing:
                    return  # nothing can be queued once closing is set: that was the last
        finally:
            self._conn.close()

    def _commit(self, batch: list[_Item]) -> list[_Outcome]:
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
            self.commits += 1
        except sqlite3.Error as exc:
            self._invalidate()
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return [(future, None, exc) for _, _, future in batch]
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
