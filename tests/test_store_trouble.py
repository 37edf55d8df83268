"""The job store when things go wrong: a database locked by another program, a disk that
fills up, a writer thread that dies or stops answering, and large audio kept apart so
that new jobs never wait behind it. Every test runs against a real SQLite file."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest

from bot.store import JobRecord, JobState, SqliteJobStore, StoreError, StoreUnavailable
from bot.store.sqlite import INLINE_AUDIO_MAX
from bot.store.writer import GroupCommitter
from tests.test_store import ROOT, make_job

MIB = 1024 * 1024


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@contextmanager
def write_lock(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """Another program (an sqlite shell, a backup) holding the database's write lock."""
    other = sqlite3.connect(data_dir / "jobs.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


async def until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for something only a log record or a thread shows: re-checked every 10 ms."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not true after {within} s")
        await asyncio.sleep(0.01)


def complete(store: SqliteJobStore, job_id: str = "1") -> Awaitable[JobRecord]:
    return store.mark_completed(job_id, b"ID3 audio", "audio/mpeg", "mp3", "https://out/x.mp3")


def retrying(caplog: pytest.LogCaptureFixture) -> bool:
    return any("retrying for up to" in r.getMessage() for r in caplog.records)


@asynccontextmanager
async def submitted(data_dir: Path, *ids: str, **options: float) -> AsyncIterator[SqliteJobStore]:
    """A store holding jobs `ids`, each submitted to Segmind."""
    async with SqliteJobStore(data_dir, **options) as store:  # type: ignore[arg-type]
        for job_id in ids:
            await store.add(make_job(job_id))
            await store.mark_submit_started(job_id)
            await store.mark_submitted(job_id, f"req-{job_id}", f"https://api/p/{job_id}")
        yield store


# -- a database locked by another program -----------------------------------------------


async def test_a_write_waits_out_a_lock_held_by_another_program(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite's own wait (busy_timeout) runs out long before the lock is let go: the
    write is tried again, with pauses, and succeeds once it is."""
    caplog.set_level(logging.INFO, logger="bot.store")
    async with submitted(data_dir, "1", busy_timeout=0.05) as store:
        with write_lock(data_dir) as other:
            write = asyncio.ensure_future(complete(store))
            await until(lambda: retrying(caplog))
            assert not write.done()  # still waiting: the lock is still held
            other.execute("COMMIT")
            record = await asyncio.wait_for(write, 10)
        assert record.state is JobState.COMPLETED
        assert await store.get("1") == record
    assert "writing again after" in caplog.text


async def test_a_lock_held_past_the_retry_budget_fails_the_write(data_dir: Path) -> None:
    async with submitted(data_dir, "1", busy_timeout=0.05, retry_for=0.4) as store:
        with write_lock(data_dir):
            started = time.monotonic()
            with pytest.raises(StoreError, match="locked by another program"):
                await asyncio.wait_for(complete(store), 10)
            assert 0.4 <= time.monotonic() - started < 5
        # Nothing was written, and the store works again once the lock is gone.
        record = await store.get("1")
        assert record is not None
        assert record.state is JobState.SUBMITTED
        assert (await complete(store)).state is JobState.COMPLETED


async def test_close_cuts_a_retry_short(data_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = SqliteJobStore(data_dir, busy_timeout=0.05)
    await store.open()
    await store.add(make_job("1"))
    with write_lock(data_dir):
        write = asyncio.ensure_future(store.mark_submit_started("1"))
        await until(lambda: retrying(caplog))
        started = time.monotonic()
        await asyncio.wait_for(store.close(), 5)
        assert time.monotonic() - started < 2  # not the 30 s the retry would take
        with pytest.raises(StoreError, match="locked"):
            await write


# -- large audio, apart from the writer -------------------------------------------------


async def test_large_audio_is_kept_in_a_synced_file_until_delivered(data_dir: Path) -> None:
    audio = os.urandom(INLINE_AUDIO_MAX + 1)
    async with submitted(data_dir, "1") as store:
        record = await store.mark_completed(
            "1", audio, "audio/mpeg", "mp3", "https://out/x.mp3", delivering=True
        )
        assert record.audio_path is not None
        assert record.audio_size == len(audio)
        path = data_dir / "audio" / record.audio_path
        assert path.read_bytes() == audio
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    async with SqliteJobStore(data_dir) as store:  # after a restart
        [again] = await store.unfinished()
        assert again == record
        found = await store.read_audio(again)
        assert found is not None
        assert (found.data, found.content_type, found.extension) == (audio, "audio/mpeg", "mp3")
        await store.mark_delivered("1", "interaction", 5)
    assert list((data_dir / "audio").iterdir()) == []


async def test_a_new_job_is_recorded_while_large_audio_is_being_written(data_dir: Path) -> None:
    """The insert that /speak waits on before acknowledging does not queue behind the
    commits of big results (each ~70 ms with its fsync when written into the database)."""
    ids = [str(i) for i in range(10)]
    audio = os.urandom(20 * MIB)
    async with submitted(data_dir, *ids) as store:
        completions = [
            asyncio.ensure_future(
                store.mark_completed(i, audio, "audio/mpeg", "mp3", "https://out/x.mp3")
            )
            for i in ids
        ]
        await asyncio.sleep(0)  # every completion has started
        await asyncio.wait_for(store.add(make_job("new")), 10)
        still_writing = sum(not c.done() for c in completions)
        results = await asyncio.wait_for(asyncio.gather(*completions), 60)
        assert still_writing > 0
        assert all(r.state is JobState.COMPLETED for r in results)
        record = await store.get("new")
        assert record is not None
        assert record.state is JobState.ACCEPTED


SPOOL_ON_A_FULL_DISK = textwrap.dedent(
    """
    import asyncio, resource, signal, sys
    from pathlib import Path
    from bot.store import SqliteJobStore, StoreError
    from tests.test_store import make_job

    async def main() -> None:
        async with SqliteJobStore(Path(sys.argv[1])) as store:
            await store.add(make_job("1"))
            await store.mark_submit_started("1")
            await store.mark_submitted("1", "req-1", "https://api/p/1")
            # The disk "fills up": no file of this process may grow past 256 KiB.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))
            try:
                await store.mark_completed("1", b"x" * (1 << 20), "audio/mpeg", "mp3", "u")
            except StoreError as exc:
                print(exc)
            record = await store.get("1")
            print(record.state.name, record.audio_path)

    asyncio.run(main())
    """
)


async def test_audio_that_cannot_be_written_fails_its_write_and_leaves_nothing(
    data_dir: Path,
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SPOOL_ON_A_FULL_DISK,
        str(data_dir),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, err.decode()
    error, state = out.decode().strip().splitlines()
    assert "the disk is full" in error
    assert str(data_dir / "audio") in error
    assert state == "SUBMITTED None"
    assert list((data_dir / "audio").iterdir()) == []


async def test_a_refused_completion_removes_its_audio_file(data_dir: Path) -> None:
    async with submitted(data_dir, "1") as store:
        await store.run_on_writer(lambda conn: conn.execute("PRAGMA query_only = ON"))
        with pytest.raises(StoreError, match="read-only"):
            await store.mark_completed("1", os.urandom(MIB), "audio/mpeg", "mp3", "u")
    assert list((data_dir / "audio").iterdir()) == []
    async with SqliteJobStore(data_dir) as store:
        record = await store.get("1")
        assert record is not None
        assert record.state is JobState.SUBMITTED


# -- a writer that dies or stops answering ----------------------------------------------


def die(conn: sqlite3.Connection) -> None:
    raise SystemExit("the writer thread dies")


async def test_a_dead_writer_fails_every_write_at_once(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job("1"))
        assert store.problem() is None
        queued: list[Awaitable[object]] = [
            asyncio.ensure_future(store.run_on_writer(die)),
            asyncio.ensure_future(store.mark_submit_started("1")),
        ]
        for write in queued:
            with pytest.raises(StoreUnavailable, match="writer thread died"):
                await asyncio.wait_for(write, 5)
        with pytest.raises(StoreUnavailable, match="writer thread died"):
            await asyncio.wait_for(store.get("1"), 5)
        problem = store.problem()
        assert problem is not None
        assert "writer thread died" in problem
        assert str(data_dir / "jobs.sqlite3") in problem
    async with SqliteJobStore(data_dir) as store:  # nothing half-written
        record = await store.get("1")
        assert record is not None
        assert record.submit_started_at is None


async def test_a_write_left_unanswered_is_a_problem(data_dir: Path) -> None:
    async with submitted(data_dir, "1", busy_timeout=0.05, stall_timeout=0.3) as store:
        with write_lock(data_dir) as other:
            write = asyncio.ensure_future(complete(store))
            await until(lambda: store.problem() is not None, 5)
            assert "has not been answered for" in str(store.problem())
            other.execute("COMMIT")
            assert (await asyncio.wait_for(write, 10)).state is JobState.COMPLETED
        assert store.problem() is None


def writer_threads() -> int:
    return sum(t.name == "job-store" for t in threading.enumerate())


async def test_close_does_not_wait_forever_for_a_stuck_writer(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.store.writer.CLOSE_TIMEOUT", 0.3)
    disk = threading.Event()

    def hang(conn: sqlite3.Connection) -> None:  # as an fsync on a dead disk would
        disk.wait(30)

    before = writer_threads()
    store = SqliteJobStore(data_dir)
    await store.open()
    write = asyncio.ensure_future(store.run_on_writer(hang))
    try:
        started = time.monotonic()
        await asyncio.wait_for(store.close(), 5)
        assert time.monotonic() - started < 2
        assert not write.done()
    finally:
        disk.set()  # the disk comes back: the thread finishes what it was doing
    await asyncio.wait_for(write, 5)
    await until(lambda: writer_threads() == before, 5)


async def test_a_failed_open_stops_its_writer(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir):
        pass
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        db.execute("PRAGMA user_version = 999")
    before = writer_threads()
    for _ in range(2):  # the lock was let go: the next try fails the same way
        with pytest.raises(StoreError, match="knows only up to"):
            await SqliteJobStore(data_dir).open()
    await until(lambda: writer_threads() == before, 5)


async def test_work_outside_a_batch_that_leaves_a_transaction_open_is_rolled_back(
    data_dir: Path,
) -> None:
    """`run_alone` work runs with no transaction open; should it fail in the middle of
    its own, that is rolled back, and the next batch runs as usual."""
    data_dir.mkdir()
    conn = sqlite3.connect(data_dir / "x.sqlite3", isolation_level=None, check_same_thread=False)
    forgotten: list[bool] = []
    db = GroupCommitter(conn, asyncio.get_running_loop(), lambda: forgotten.append(True))
    try:

        def half_done(conn: sqlite3.Connection) -> None:
            assert not conn.in_transaction
            conn.execute("CREATE TABLE t (x)")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (1)")
            raise ValueError("stopped halfway")

        with pytest.raises(ValueError, match="stopped halfway"):
            await db.run_alone(half_done)
        assert forgotten == [True]
        assert await db.execute("SELECT count(*) FROM t") == [(0,)]
        await db.execute("INSERT INTO t VALUES (2)")
        assert await db.run_alone(lambda conn: conn.in_transaction) is False
        assert await db.execute("SELECT x FROM t") == [(2,)]
    finally:
        await db.close()
