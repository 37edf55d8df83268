"""The durable job store: transitions, persistence across restarts and SIGKILL, spooled
audio, purge, migrations, and the operator-facing errors."""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import pytest

from bot.store import (
    SUBMIT_UNKNOWN,
    InvalidTransition,
    JobRecord,
    JobState,
    JobStore,
    NextStep,
    SqliteJobStore,
    StoreError,
)
from bot.store import migrations as migrations_module
from bot.store.migrations import MIGRATIONS
from tests.store_backends import MakeStore

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "aW50ZXJhY3Rpb246c2VjcmV0LXRva2Vu"
AUDIO = b"ID3\x04\x00\x00" + bytes(range(256)) * 8
NOBODY = 65534


def make_job(job_id: str = "1001", created_at: float | None = None) -> JobRecord:
    now = time.time() if created_at is None else created_at
    return JobRecord(
        id=job_id,
        created_at=now,
        sample_url="https://cdn.discordapp.com/attachments/1/2/voice.mp3",
        text="Hello there",
        language="en",
        application_id=42,
        interaction_token=TOKEN,
        token_expires_at=now + 900,
        channel_id=7,
        guild_id=8,
        user_id=9,
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def sqlite_store(data_dir: Path) -> AsyncIterator[SqliteJobStore]:
    """For what is SQLite's own: its files, its writer thread's batches."""
    async with SqliteJobStore(data_dir) as opened:
        yield opened


@pytest.fixture
async def store(
    store_backend: str, data_dir: Path, make_store: MakeStore
) -> AsyncIterator[SqliteJobStore]:
    """A store of each backend (tests/store_backends.py); SQLite's in `data_dir`, which a
    test of SQLite's own files looks into."""
    if store_backend == "sqlite":
        opened: Any = SqliteJobStore(data_dir)
    else:
        opened = make_store()
    async with opened:
        yield opened


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def audio_files(data_dir: Path) -> list[str]:
    return sorted(p.name for p in (data_dir / "audio").iterdir())


# -- lifecycle -------------------------------------------------------------------------


async def test_full_lifecycle(sqlite_store: SqliteJobStore, data_dir: Path) -> None:
    job_store: JobStore = sqlite_store  # the implementation satisfies the interface
    before = job_store.writes

    added = await sqlite_store.add(make_job())
    assert added.state is JobState.ACCEPTED
    assert added.next_step is NextStep.SUBMIT
    assert (await sqlite_store.set_original_message_id("1001", 555)).original_message_id == 555

    started = await sqlite_store.mark_submit_started("1001")
    assert started.state is JobState.ACCEPTED
    assert started.submit_started_at is not None
    assert started.next_step is NextStep.GIVE_UP

    submitted = await sqlite_store.mark_submitted(
        "1001", "req-1", "https://api.segmind.com/p/1", 123.0
    )
    assert (submitted.state, submitted.request_id, submitted.submitted_at) == (
        JobState.SUBMITTED,
        "req-1",
        123.0,
    )
    assert submitted.next_step is NextStep.POLL

    completed = await sqlite_store.mark_completed(
        "1001", AUDIO, "audio/mpeg", "mp3", "https://out.segmind.com/x.mp3"
    )
    assert completed.state is JobState.COMPLETED
    assert completed.audio_size == len(AUDIO)
    assert completed.audio_path is None  # the audio is kept in the row, not in a file
    assert audio_files(data_dir) == []
    audio = await sqlite_store.read_audio(completed)
    assert audio is not None
    assert (audio.data, audio.content_type, audio.extension, audio.source_url) == (
        AUDIO,
        "audio/mpeg",
        "mp3",
        "https://out.segmind.com/x.mp3",
    )
    assert completed.next_step is NextStep.DELIVER

    assert (await sqlite_store.mark_delivering("1001")).attempts == 1
    delivering = await sqlite_store.mark_delivering("1001")  # a retry after a failed attempt
    assert (delivering.state, delivering.attempts) == (JobState.DELIVERING, 2)

    delivered = await sqlite_store.mark_delivered("1001", "interaction", 777)
    assert delivered.state is JobState.DELIVERED
    assert (delivered.delivery_channel, delivered.delivery_message_id) == ("interaction", 777)
    assert delivered.delivered_at is not None
    assert delivered.next_step is NextStep.NOTHING
    assert await sqlite_store.read_audio(delivered) is None  # audio dropped once delivered

    assert await sqlite_store.get("1001") == delivered
    assert await sqlite_store.unfinished() == []
    counts = await sqlite_store.count_by_state()
    assert counts[JobState.DELIVERED] == 1
    assert sum(counts.values()) == 1
    assert sqlite_store.writes - before == 8


async def test_submit_started_carries_the_message_id(store: SqliteJobStore) -> None:
    await store.add(make_job())
    writes = store.writes
    started = await store.mark_submit_started("1001", 777)
    assert (started.original_message_id, store.writes - writes) == (777, 1)
    assert started == await store.get("1001")
    with pytest.raises(InvalidTransition, match="already started"):
        await store.mark_submit_started("1001", 778)
    stored = await store.get("1001")
    assert stored is not None
    assert stored.original_message_id == 777


async def test_completed_straight_to_delivering(store: SqliteJobStore) -> None:
    await store.add(make_job())
    await store.mark_submit_started("1001")
    await store.mark_submitted("1001", "r", "https://api.segmind.com/p/r")
    record = await store.mark_completed(
        "1001", AUDIO, "audio/mpeg", "mp3", "https://x/a.mp3", delivering=True
    )
    assert (record.state, record.attempts, record.next_step) == (
        JobState.DELIVERING,
        1,
        NextStep.DELIVER,
    )
    assert record == await store.get("1001")
    audio = await store.read_audio(record)
    assert audio is not None
    assert audio.data == AUDIO
    assert (await store.mark_delivered("1001", "interaction", 5)).state is JobState.DELIVERED


async def test_failure_is_recorded_then_explained(store: SqliteJobStore, data_dir: Path) -> None:
    await store.add(make_job("1"))
    await store.mark_submit_started("1")
    failed = await store.mark_failed("1", SUBMIT_UNKNOWN, "Your request was lost in a restart.")
    assert (failed.state, failed.failure_cause) == (JobState.FAILED, SUBMIT_UNKNOWN)
    assert failed.failure_message == "Your request was lost in a restart."
    assert failed.next_step is NextStep.EXPLAIN
    assert (await store.mark_explained("1")).state is JobState.EXPLAINED

    # A job that failed at delivery loses its audio once explained.
    await store.add(make_job("2"))
    await store.mark_submit_started("2")
    await store.mark_submitted("2", "req", "https://api.segmind.com/p/2")
    await store.mark_completed("2", AUDIO, "audio/mpeg", "mp3", "https://out/x.mp3")
    failed2 = await store.mark_failed("2", "DeliveryError", "Could not post the audio.")
    assert await store.read_audio(failed2) is not None
    explained = await store.mark_explained("2")
    assert await store.read_audio(explained) is None


async def test_unfinished_oldest_first_with_next_steps(store: SqliteJobStore) -> None:
    await store.add(make_job("new", created_at=300.0))
    await store.add(make_job("old", created_at=100.0))
    await store.add(make_job("mid", created_at=200.0))
    await store.add(make_job("done", created_at=50.0))
    await store.mark_submit_started("mid")
    await store.mark_submit_started("done")
    await store.mark_failed("done", "JobFailedError", "Segmind failed.")
    await store.mark_explained("done")

    jobs = await store.unfinished()
    assert [(j.id, j.next_step) for j in jobs] == [
        ("old", NextStep.SUBMIT),
        ("mid", NextStep.GIVE_UP),
        ("new", NextStep.SUBMIT),
    ]


# -- transitions -------------------------------------------------------------------------

# Where each test job is put before the operation is tried.
SETUPS = (
    "accepted",
    "submit_started",
    "submitted",
    "completed",
    "delivering",
    "delivered",
    "failed",
    "explained",
    "missing",
)
# Which (setup, operation) pairs the store must allow; everything else must be refused.
ALLOWED = {
    "mark_submit_started": {"accepted"},
    "mark_submitted": {"submit_started"},
    "mark_completed": {"submitted"},
    "mark_delivering": {"completed", "delivering"},
    "mark_delivered": {"delivering"},
    "mark_failed": {"accepted", "submit_started", "submitted", "completed", "delivering"},
    "mark_explained": {"failed"},
    "set_original_message_id": {
        "accepted",
        "submit_started",
        "submitted",
        "completed",
        "delivering",
        "failed",
    },
}


async def put_in(store: SqliteJobStore, job_id: str, setup: str) -> None:
    if setup == "missing":
        return
    await store.add(make_job(job_id))
    steps: list[Callable[[], Awaitable[JobRecord]]] = [
        lambda: store.mark_submit_started(job_id),
        lambda: store.mark_submitted(job_id, "req", "https://api.segmind.com/p"),
        lambda: store.mark_completed(job_id, AUDIO, "audio/mpeg", "mp3", "https://out/x.mp3"),
        lambda: store.mark_delivering(job_id),
        lambda: store.mark_delivered(job_id, "channel", 1),
    ]
    if setup in ("failed", "explained"):
        await store.mark_failed(job_id, "JobFailedError", "It failed.")
        if setup == "explained":
            await store.mark_explained(job_id)
        return
    for step in steps[: SETUPS.index(setup)]:
        await step()


def operation(store: SqliteJobStore, name: str, job_id: str) -> Awaitable[JobRecord]:
    calls: dict[str, Callable[[], Awaitable[JobRecord]]] = {
        "mark_submit_started": lambda: store.mark_submit_started(job_id),
        "mark_submitted": lambda: store.mark_submitted(job_id, "req-2", "https://api/p/2"),
        "mark_completed": lambda: store.mark_completed(
            job_id, AUDIO, "audio/mpeg", "mp3", "https://out/y.mp3"
        ),
        "mark_delivering": lambda: store.mark_delivering(job_id),
        "mark_delivered": lambda: store.mark_delivered(job_id, "dm", 2),
        "mark_failed": lambda: store.mark_failed(job_id, "Other", "Other."),
        "mark_explained": lambda: store.mark_explained(job_id),
        "set_original_message_id": lambda: store.set_original_message_id(job_id, 3),
    }
    return calls[name]()


async def test_every_transition_is_checked(sqlite_store: SqliteJobStore, data_dir: Path) -> None:
    for name, allowed in ALLOWED.items():
        for setup in SETUPS:
            job_id = f"{name}-{setup}"
            await put_in(sqlite_store, job_id, setup)
            before = await sqlite_store.get(job_id)
            writes = sqlite_store.writes
            files = audio_files(data_dir)
            if setup in allowed:
                await operation(sqlite_store, name, job_id)
                assert sqlite_store.writes == writes + 1
                continue
            with pytest.raises(InvalidTransition) as caught:
                await operation(sqlite_store, name, job_id)
            assert caught.value.job_id == job_id
            assert caught.value.operation == name
            assert caught.value.state is (None if before is None else before.state)
            # A refusal changes nothing: not the row, not the spooled files.
            assert await sqlite_store.get(job_id) == before, (name, setup)
            assert sqlite_store.writes == writes
            assert audio_files(data_dir) == files, (name, setup)


async def test_never_submitted_twice(store: SqliteJobStore) -> None:
    await store.add(make_job())
    await store.mark_submit_started("1001")
    with pytest.raises(InvalidTransition, match="already started"):
        await store.mark_submit_started("1001")
    await store.mark_submitted("1001", "req-1", "https://api/p/1")
    with pytest.raises(InvalidTransition, match="is SUBMITTED"):
        await store.mark_submitted("1001", "req-2", "https://api/p/2")
    assert (await store.get("1001")) is not None
    assert (await store.get("1001")).request_id == "req-1"  # type: ignore[union-attr]


async def test_submit_requires_submit_started(store: SqliteJobStore) -> None:
    await store.add(make_job())
    with pytest.raises(InvalidTransition, match="call mark_submit_started first"):
        await store.mark_submitted("1001", "req-1", "https://api/p/1")


async def test_submit_after_failure_is_refused(store: SqliteJobStore) -> None:
    await store.add(make_job())
    await store.mark_failed("1001", "ValidationError", "Bad clip.")
    with pytest.raises(InvalidTransition, match="is FAILED"):
        await store.mark_submit_started("1001")
    with pytest.raises(InvalidTransition, match="is FAILED"):
        await store.mark_submitted("1001", "req-1", "https://api/p/1")


async def test_add_twice_is_refused(store: SqliteJobStore) -> None:
    first = await store.add(make_job())
    with pytest.raises(InvalidTransition, match="is ACCEPTED"):
        await store.add(dataclasses.replace(make_job(), text="other"))
    assert await store.get("1001") == first
    with pytest.raises(InvalidTransition):
        await store.add(dataclasses.replace(make_job("2"), state=JobState.SUBMITTED))


async def test_concurrent_submit_starts_only_one_wins(store: SqliteJobStore) -> None:
    await store.add(make_job())
    results = await asyncio.gather(
        *(store.mark_submit_started("1001") for _ in range(10)), return_exceptions=True
    )
    assert sum(isinstance(r, JobRecord) for r in results) == 1
    assert sum(isinstance(r, InvalidTransition) for r in results) == 9


async def test_bad_delivery_channel(store: SqliteJobStore) -> None:
    with pytest.raises(ValueError, match="delivery channel"):
        await store.mark_delivered("1001", "pigeon", None)


# -- the records writes return ----------------------------------------------------------------


def same(a: JobRecord | None, b: JobRecord | None) -> bool:
    """Equal, and every field of the same type (1 == 1.0, but SQLite gives back a float)."""
    if a is None or b is None:
        return a is b
    pairs = [(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a)]
    return a == b and all(type(x) is type(y) for x, y in pairs)


@pytest.mark.parametrize("keep_text", [False, True])
async def test_every_write_returns_the_row_as_stored(data_dir: Path, keep_text: bool) -> None:
    """Records built from the previous one plus the values written (no read-back) are the
    rows as SQLite stored them, field by field and type by type."""
    async with SqliteJobStore(data_dir, keep_text=keep_text) as store:
        steps: list[Callable[[], Awaitable[JobRecord]]] = [
            lambda: store.add(make_job("a")),
            lambda: store.set_original_message_id("a", 555),
            lambda: store.mark_submit_started("a"),
            lambda: store.mark_submitted("a", "req", "https://api.segmind.com/p/a"),
            lambda: store.set_original_message_id("a", 556),
            lambda: store.mark_completed("a", AUDIO, "audio/mpeg", "mp3", "https://out/a.mp3"),
            lambda: store.mark_delivering("a"),
            lambda: store.mark_delivering("a"),
            lambda: store.mark_delivered("a", "channel", None),
            lambda: store.add(make_job("b")),
            lambda: store.mark_failed("b", "JobFailedError", "It failed."),
            lambda: store.mark_explained("b"),
        ]
        for step in steps:
            record = await step()
            assert same(record, await store.get(record.id)), record
        delivered = await store.get("a")
        assert delivered is not None
        assert delivered.attempts == 2
        assert delivered.text == ("Hello there" if keep_text else "")


async def test_values_sqlite_converts_are_read_back(data_dir: Path) -> None:
    """An int in a REAL column is read back a float, NaN is read back NULL: such writes
    return the row as read, not the values given."""
    clock = Clock(1000)  # an int: every timestamp it gives is converted
    async with SqliteJobStore(data_dir, clock=clock) as store:
        added = await store.add(dataclasses.replace(make_job(), created_at=5))
        assert added.created_at == 5.0
        assert same(added, await store.get("1001"))
        started = await store.mark_submit_started("1001")
        assert type(started.submit_started_at) is float
        assert same(started, await store.get("1001"))
        submitted = await store.mark_submitted("1001", "req", "https://api/p", float("nan"))
        assert submitted.submitted_at is None
        assert same(submitted, await store.get("1001"))
        message = await store.set_original_message_id("1001", True)  # a bool is an int
        assert type(message.original_message_id) is int
        assert same(message, await store.get("1001"))


async def test_cancelled_write_that_committed_does_not_confuse_the_next(
    sqlite_store: SqliteJobStore,
) -> None:
    await sqlite_store.add(make_job())
    started = asyncio.ensure_future(sqlite_store.mark_submit_started("1001"))
    await asyncio.sleep(0)  # queued
    started.cancel()
    submitted = await sqlite_store.mark_submitted("1001", "req-1", "https://api/p/1")
    assert submitted.submit_started_at is not None  # the cancelled write committed first
    assert same(submitted, await sqlite_store.get("1001"))


# -- many writes in one batch ------------------------------------------------------------


@asynccontextmanager
async def one_batch(store: SqliteJobStore) -> AsyncIterator[None]:
    """Everything queued inside the block is committed in one batch (the writer is held
    inside the previous one meanwhile)."""
    db = store._db
    assert db is not None
    gate, entered = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        entered.set()
        gate.wait(10)

    held = db.run(hold)
    await asyncio.to_thread(entered.wait, 10)
    try:
        yield
    finally:
        gate.set()
        await held


def queue(*calls: Coroutine[Any, Any, JobRecord]) -> list[asyncio.Future[JobRecord]]:
    return [asyncio.ensure_future(call) for call in calls]


async def settle(futures: list[asyncio.Future[JobRecord]]) -> list[JobRecord | BaseException]:
    await asyncio.sleep(0)  # each has queued its write
    return await asyncio.gather(*futures, return_exceptions=True)


@pytest.mark.parametrize("keep_text", [False, True])
async def test_writes_committed_together_return_their_rows(data_dir: Path, keep_text: bool) -> None:
    ids = [f"j{i}" for i in range(5)]
    async with SqliteJobStore(data_dir, keep_text=keep_text) as store:
        steps: list[Callable[[str], Coroutine[Any, Any, JobRecord]]] = [
            lambda i: store.add(make_job(i)),
            lambda i: store.mark_submit_started(i, 77),
            lambda i: store.mark_submitted(i, f"req-{i}", f"https://api/p/{i}"),
            lambda i: store.mark_completed(
                i, AUDIO, "audio/mpeg", "mp3", "https://out/x.mp3", delivering=True
            ),
            lambda i: store.mark_delivered(i, "interaction", 5),
        ]
        for step in steps:
            async with one_batch(store):
                futures = queue(*(step(i) for i in ids))
            records = await settle(futures)
            for record in records:
                assert isinstance(record, JobRecord), record
                assert same(record, await store.get(record.id)), record
        assert {r.state for r in await store.recent_jobs(8, 10)} == {JobState.DELIVERED}


async def test_refusals_in_one_batch_are_each_jobs_own(sqlite_store: SqliteJobStore) -> None:
    for i in ("a", "b", "c", "d"):
        await sqlite_store.add(make_job(i))
    for i in ("a", "b", "d"):
        await sqlite_store.mark_submit_started(i)
    await sqlite_store.mark_failed("d", "JobFailedError", "It failed.")
    async with one_batch(sqlite_store):
        futures = queue(
            *(
                sqlite_store.mark_submitted(i, "req", "https://api/p")
                for i in ("a", "b", "c", "d", "zz")
            )
        )
    a, b, c, d, zz = await settle(futures)
    assert isinstance(a, JobRecord)
    assert a.state is JobState.SUBMITTED
    assert isinstance(b, JobRecord)
    assert b.state is JobState.SUBMITTED
    assert same(a, await sqlite_store.get("a"))
    assert same(b, await sqlite_store.get("b"))
    assert isinstance(c, InvalidTransition)
    assert "never started (call mark_submit_started first)" in str(c)
    assert isinstance(d, InvalidTransition)
    assert d.state is JobState.FAILED
    assert isinstance(zz, InvalidTransition)
    assert zz.state is None


async def test_a_missing_job_in_a_batch_fails_alone(sqlite_store: SqliteJobStore) -> None:
    await sqlite_store.add(make_job("a"))
    async with one_batch(sqlite_store):
        futures = queue(
            sqlite_store.mark_submit_started("a"), sqlite_store.mark_submit_started("gone")
        )
    a, gone = await settle(futures)
    assert isinstance(a, JobRecord)
    assert same(a, await sqlite_store.get("a"))
    assert isinstance(gone, InvalidTransition)
    assert "does not exist" in str(gone)


async def test_adds_in_one_batch_are_refused_each_on_its_own(sqlite_store: SqliteJobStore) -> None:
    first = await sqlite_store.add(make_job("dup"))
    async with one_batch(sqlite_store):
        futures = queue(
            sqlite_store.add(make_job("a")),
            sqlite_store.add(make_job("dup")),
            sqlite_store.add(dataclasses.replace(make_job("bad"), channel_id=None)),  # type: ignore[arg-type]
            sqlite_store.add(make_job("b")),
        )
    a, dup, bad, b = await settle(futures)
    assert isinstance(a, JobRecord)
    assert same(a, await sqlite_store.get("a"))
    assert isinstance(b, JobRecord)
    assert same(b, await sqlite_store.get("b"))
    assert isinstance(dup, InvalidTransition)
    assert dup.state is JobState.ACCEPTED
    assert await sqlite_store.get("dup") == first
    assert isinstance(bad, ValueError)
    assert "NOT NULL" in str(bad)
    assert await sqlite_store.get("bad") is None


async def test_writes_to_one_job_in_one_batch_keep_their_order(
    sqlite_store: SqliteJobStore,
) -> None:
    for i in ("a", "b", "c"):
        await sqlite_store.add(make_job(i))
        await sqlite_store.mark_submit_started(i)
    async with one_batch(sqlite_store):
        futures = queue(
            sqlite_store.mark_failed("a", "JobFailedError", "It failed."),
            sqlite_store.mark_submitted("b", "req-b", "https://api/p/b"),
            sqlite_store.mark_submitted("a", "req-a", "https://api/p/a"),
            sqlite_store.mark_submitted("c", "req-c", "https://api/p/c"),
            sqlite_store.mark_failed("c", "JobFailedError", "It failed."),
            sqlite_store.mark_submit_started("b"),
        )
    failed_a, b, submitted_a, c, failed_c, started_b = await settle(futures)
    assert isinstance(failed_a, JobRecord)
    assert failed_a.state is JobState.FAILED
    assert isinstance(submitted_a, InvalidTransition)
    assert submitted_a.state is JobState.FAILED
    assert isinstance(b, JobRecord)
    assert same(b, await sqlite_store.get("b"))
    assert isinstance(started_b, InvalidTransition)
    assert started_b.state is JobState.SUBMITTED
    assert isinstance(c, JobRecord)
    assert c.state is JobState.SUBMITTED
    assert isinstance(failed_c, JobRecord)
    assert failed_c.request_id == "req-c"
    assert same(failed_c, await sqlite_store.get("c"))


async def test_jobs_written_before_a_restart_are_read_back(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job())
        await store.mark_submit_started("1001")
    async with SqliteJobStore(data_dir) as store:
        submitted = await store.mark_submitted("1001", "req-1", "https://api/p/1")
        assert submitted.submit_started_at is not None
        assert same(submitted, await store.get("1001"))
        message = await store.set_original_message_id("1001", 9)
        assert same(message, await store.get("1001"))


class FlakyCommit(sqlite3.Connection):
    """A connection whose next COMMITs fail, as on a full disk."""

    failures = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and FlakyCommit.failures:
            FlakyCommit.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().execute(sql, *args)


async def test_a_failed_commit_forgets_what_it_wrote(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose COMMIT failed changed nothing: records built afterwards must not
    start from the transitions it rolled back."""
    connect = sqlite3.connect

    def flaky(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        return connect(*args, **kwargs, factory=FlakyCommit)

    monkeypatch.setattr(sqlite3, "connect", flaky)
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job())
        await store.mark_submit_started("1001")
        FlakyCommit.failures = 1
        with pytest.raises(StoreError, match="disk I/O error"):
            await store.mark_submitted("1001", "req-1", "https://api/p/1")
        record = await store.set_original_message_id("1001", 7)
        assert record.state is JobState.ACCEPTED
        assert same(record, await store.get("1001"))


# -- persistence ---------------------------------------------------------------------------


async def test_survives_close_and_reopen(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job())
        await store.mark_submit_started("1001")
        await store.mark_submitted("1001", "req-1", "https://api/p/1")
        await store.mark_completed("1001", AUDIO, "audio/mpeg", "mp3", "https://out/x.mp3")
        saved = await store.get("1001")
    async with SqliteJobStore(data_dir) as store:
        record = await store.get("1001")
        assert record == saved
        assert record is not None
        assert record.interaction_token == TOKEN
        audio = await store.read_audio(record)
        assert audio is not None
        assert audio.data == AUDIO
        assert await store.unfinished() == [record]


async def test_write_survives_sigkill(data_dir: Path) -> None:
    code = textwrap.dedent(
        """
        import asyncio, os, sys, time
        from pathlib import Path
        from bot.store import JobRecord, SqliteJobStore

        async def main() -> None:
            store = SqliteJobStore(Path(sys.argv[1]))
            await store.open()
            now = time.time()
            await store.add(JobRecord(
                id="k1", created_at=now, sample_url="https://x/a.mp3", text="hi",
                language="en", application_id=1, interaction_token="t",
                token_expires_at=now + 900, channel_id=2, guild_id=None, user_id=3,
            ))
            await store.mark_submit_started("k1")
            os.kill(os.getpid(), 9)

        asyncio.run(main())
        """
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(data_dir), cwd=ROOT
    )
    assert await asyncio.wait_for(child.wait(), 30) == -9
    async with SqliteJobStore(data_dir) as store:  # the dead process's lock is gone too
        record = await store.get("k1")
    assert record is not None
    assert record.submit_started_at is not None
    assert record.next_step is NextStep.GIVE_UP


# -- purge ---------------------------------------------------------------------------------


async def test_purge_keeps_recent_and_unfinished_and_sweeps_orphans(data_dir: Path) -> None:
    clock = Clock(time.time())
    day = 86400.0
    async with SqliteJobStore(data_dir, clock=clock) as store:
        for job_id in ("old-delivered", "old-explained", "old-unfinished", "recent"):
            await put_in(store, job_id, "submitted")
        await store.mark_completed("old-unfinished", AUDIO, "audio/mpeg", "mp3", "https://o/1")
        delivered = await store.mark_completed(
            "old-delivered", AUDIO, "audio/mpeg", "mp3", "https://o/2"
        )
        await store.mark_delivering("old-delivered")
        await store.mark_delivered("old-delivered", "channel", 1)
        await store.mark_failed("old-explained", "JobFailedError", "It failed.")
        await store.mark_explained("old-explained")
        clock.now += 2 * day
        await store.mark_failed("recent", "JobFailedError", "It failed.")
        await store.mark_explained("recent")

        # Files left in audio/ (by schema version 1, or by hand): swept unless too young
        # to be sure nobody is writing them.
        audio = data_dir / "audio"
        (audio / "old-delivered-1234.mp3").write_bytes(AUDIO)
        (audio / "x-1234.mp3.tmp").write_bytes(b"partial")
        (audio / "stray.wav").write_bytes(b"RIFF")
        (audio / "fresh.mp3").write_bytes(AUDIO)
        os.utime(audio / "fresh.mp3", (clock.now, clock.now))
        assert delivered.audio_size == len(AUDIO)

        writes = store.writes
        assert await store.purge(older_than_seconds=day) == 2
        assert store.writes == writes + 1
        assert await store.get("old-delivered") is None
        assert await store.get("old-explained") is None
        assert await store.get("recent") is not None
        kept = await store.get("old-unfinished")
        assert kept is not None
        assert sorted(audio_files(data_dir)) == ["fresh.mp3"]

        assert await store.purge(older_than_seconds=day) == 0
        assert store.writes == writes + 1
        kept_audio = await store.read_audio(kept)
        assert kept_audio is not None
        assert kept_audio.data == AUDIO


# -- migrations ------------------------------------------------------------------------------


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


async def test_migrates_empty_file_and_reopens_idempotently(data_dir: Path) -> None:
    write_file(data_dir / "jobs.sqlite3", b"")
    async with SqliteJobStore(data_dir) as store:
        assert store.writes == len(MIGRATIONS)
        await store.add(make_job())
    assert user_version(data_dir / "jobs.sqlite3") == len(MIGRATIONS)
    async with SqliteJobStore(data_dir) as store:
        assert store.writes == 0  # nothing left to migrate
        assert await store.get("1001") is not None
    assert user_version(data_dir / "jobs.sqlite3") == len(MIGRATIONS)
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_migrations_apply_in_order_each_atomically(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job())
    base = len(MIGRATIONS)
    broken = (*MIGRATIONS, ("CREATE TABLE extra (x)", "SELECT * FROM no_such_table"))
    monkeypatch.setattr(migrations_module, "MIGRATIONS", broken)
    with pytest.raises(StoreError, match="no such table"):
        await SqliteJobStore(data_dir).open()
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:  # rolled back as a whole
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchall() == []
    assert user_version(data_dir / "jobs.sqlite3") == base

    two_more = (*MIGRATIONS, ("CREATE TABLE extra (x)",), ("INSERT INTO extra VALUES (1)",))
    monkeypatch.setattr(migrations_module, "MIGRATIONS", two_more)
    async with SqliteJobStore(data_dir) as store:
        assert store.writes == 2
        assert await store.get("1001") is not None
    assert user_version(data_dir / "jobs.sqlite3") == base + 2

    monkeypatch.setattr(migrations_module, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(StoreError, match="knows only up to") as caught:
        await SqliteJobStore(data_dir).open()
    assert str(data_dir / "jobs.sqlite3") in str(caught.value)


class Watched(sqlite3.Connection):
    """A connection that notes which threads use it."""

    threads: ClassVar[set[str]] = set()

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        Watched.threads.add(threading.current_thread().name)
        return super().execute(sql, *args)


async def test_one_connection_on_the_writer_thread_does_everything(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks and migrations at open, the writes and the reads: all said through one
    connection, on the writer thread."""
    connect = sqlite3.connect
    made: list[sqlite3.Connection] = []

    def watched(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        made.append(connect(*args, **kwargs, factory=Watched))
        return made[-1]

    monkeypatch.setattr(sqlite3, "connect", watched)
    Watched.threads = set()
    async with SqliteJobStore(data_dir) as store:  # a new file: every migration runs
        assert store.writes == len(MIGRATIONS)
        await store.add(make_job())
        assert await store.get("1001") is not None
        assert await store.unfinished() != []
    assert len(made) == 1
    assert Watched.threads == {"job-store"}
    assert user_version(data_dir / "jobs.sqlite3") == len(MIGRATIONS)


# -- operator errors ---------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [os.urandom(8192), b"hello, not a database\n"])
async def test_corrupt_file_is_refused_and_left_alone(data_dir: Path, garbage: bytes) -> None:
    path = data_dir / "jobs.sqlite3"
    write_file(path, garbage)
    with pytest.raises(StoreError) as caught:
        await SqliteJobStore(data_dir).open()
    message = str(caught.value)
    assert str(path) in message
    assert "not a valid database" in message
    assert "move it aside" in message
    assert path.read_bytes() == garbage  # never recreated or repaired
    # The failed open released its lock: the next attempt gets the same clear error.
    with pytest.raises(StoreError, match="not a valid database"):
        await SqliteJobStore(data_dir).open()


async def test_damaged_pages_are_refused(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as store:
        for n in range(50):
            await store.add(make_job(str(n)))
    path = data_dir / "jobs.sqlite3"
    raw = bytearray(path.read_bytes())
    page = int.from_bytes(raw[16:18], "big")
    raw[page : 3 * page] = os.urandom(2 * page)  # the table and index roots
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="not a valid database") as caught:
        await SqliteJobStore(data_dir).open()
    assert str(path) in str(caught.value)


async def test_second_instance_is_refused_by_the_lock(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as first:
        await first.add(make_job())
        with pytest.raises(StoreError) as caught:
            await SqliteJobStore(data_dir).open()
        message = str(caught.value)
        assert str(data_dir / "jobs.lock") in message
        assert f"another running bot (pid {os.getpid()})" in message
        assert (await first.get("1001")) is not None  # the first is unaffected
    async with SqliteJobStore(data_dir) as second:  # free again once closed
        assert (await second.get("1001")) is not None


async def test_database_locked_by_another_program(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir):
        pass
    other = sqlite3.connect(data_dir / "jobs.sqlite3", isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError, match="locked by another program") as caught:
            await SqliteJobStore(data_dir, busy_timeout=0.05).open()
        assert str(data_dir / "jobs.sqlite3") in str(caught.value)
    finally:
        other.close()


def data_dir_is_a_file(data_dir: Path) -> None:
    data_dir.write_bytes(b"")


def db_is_a_directory(data_dir: Path) -> None:
    (data_dir / "jobs.sqlite3").mkdir(parents=True)


def lock_is_a_directory(data_dir: Path) -> None:
    (data_dir / "jobs.lock").mkdir(parents=True)


def audio_dir_is_a_file(data_dir: Path) -> None:
    data_dir.mkdir()
    (data_dir / "audio").write_bytes(b"")


@pytest.mark.parametrize(
    ("make_unusable", "expected"),
    [
        (data_dir_is_a_file, "data is not a directory"),
        (db_is_a_directory, "cannot open .*jobs.sqlite3: it must be a regular file"),
        (lock_is_a_directory, "cannot open the lock file .*jobs.lock"),
        (audio_dir_is_a_file, "audio is not a directory"),
    ],
)
async def test_unusable_paths(
    data_dir: Path, make_unusable: Callable[[Path], None], expected: str
) -> None:
    make_unusable(data_dir)
    with pytest.raises(StoreError, match=expected) as caught:
        await SqliteJobStore(data_dir).open()
    assert str(data_dir) in str(caught.value)


OPEN_IN_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from bot.store import SqliteJobStore, StoreError

    async def main() -> None:
        try:
            await SqliteJobStore(Path(sys.argv[1])).open()
        except StoreError as exc:
            print(exc)
            sys.exit(3)

    asyncio.run(main())
    """
)
PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER = 1, 2, 3


def drop_root_powers() -> None:
    """Run in the child before exec: without these capabilities (dropped from the bounding
    set, so the exec'd process never gets them) root obeys permission bits like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER):
        if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


async def open_in_child(data_dir: Path) -> str:
    """Open the store in a process that permissions bind even when the tests run as root;
    return the StoreError message it printed."""
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            OPEN_IN_CHILD,
            str(data_dir),
            cwd=ROOT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=drop_root_powers if os.geteuid() == 0 else None,
        )
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot give up root's permission override here: {exc}")
    out, err = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 3, err.decode()
    return out.decode().strip()


def make_read_only(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)


async def test_read_only_directory(data_dir: Path) -> None:
    make_read_only(data_dir)
    try:
        message = await open_in_child(data_dir)
    finally:
        data_dir.chmod(0o755)
    assert str(data_dir / "jobs.lock") in message
    assert "Permission denied" in message
    assert f"make {data_dir} writable" in message


async def test_read_only_database_file(data_dir: Path) -> None:
    async with SqliteJobStore(data_dir) as store:
        await store.add(make_job())
    path = data_dir / "jobs.sqlite3"
    path.chmod(0o444)
    try:
        message = await open_in_child(data_dir)
    finally:
        path.chmod(0o644)
    assert message.startswith(f"{path} is read-only")
    async with SqliteJobStore(data_dir) as store:  # untouched
        assert await store.get("1001") is not None


# -- secrets -----------------------------------------------------------------------------------


async def test_token_is_never_shown(store: SqliteJobStore) -> None:
    record = await store.add(make_job())
    assert TOKEN not in repr(record)
    assert TOKEN not in str(record)
    assert "interaction_token" not in repr(record)
    assert record.interaction_token == TOKEN
    with pytest.raises(InvalidTransition) as caught:
        await store.add(record)
    assert TOKEN not in str(caught.value)


async def test_close_while_statements_are_in_flight_does_not_hang(data_dir: Path) -> None:
    """Regression: the writer waited forever when close() came while it held a batch."""
    for round_ in range(20):
        store = SqliteJobStore(data_dir)
        await store.open()
        adds = [asyncio.ensure_future(store.add(make_job(f"r{round_}-{i}"))) for i in range(50)]
        await asyncio.sleep(0)  # every add has queued its statement
        await asyncio.wait_for(store.close(), 5)
        results = await asyncio.gather(*adds)
        assert all(r.state is JobState.ACCEPTED for r in results)
    async with SqliteJobStore(data_dir) as reopened:
        assert (await reopened.count_by_state())[JobState.ACCEPTED] == 20 * 50


async def test_schema_1_database_is_migrated_and_its_audio_file_still_delivered(
    data_dir: Path,
) -> None:
    """A bot upgraded with a COMPLETED job whose audio was spooled to a file (schema 1)."""
    (data_dir / "audio").mkdir(parents=True)
    (data_dir / "audio" / "j1-abc.mp3").write_bytes(AUDIO)
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute("PRAGMA user_version = 1")
        job = make_job("j1")
        row = {f.name: getattr(job, f.name) for f in dataclasses.fields(job)}
        # Columns added after schema 1.
        for later in (
            "text_chars",
            "sample_host",
            "seen_running_s",
            "seen_done_s",
            "voice_owner_id",
            "origin",
            "voice_id",
            "sample_sha256",
            "owner_pending_until",
            "cached_from",
            "result_sha256",
            "result_audio_sha256",
            "sample_retries",
            "send_as",
            "play",
        ):
            del row[later]
        row.update(
            state="completed",
            updated_at=1.0,
            submit_started_at=1.0,
            request_id="r",
            poll_url="https://api.segmind.com/p/r",
            submitted_at=1.0,
            audio_path="audio/j1-abc.mp3",
            audio_content_type="audio/mpeg",
            audio_extension="mp3",
            audio_size=len(AUDIO),
        )
        names = ", ".join(row)
        db.execute(
            f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
    async with SqliteJobStore(data_dir) as store:
        record = await store.get("j1")
        assert record is not None
        audio = await store.read_audio(record)
        assert audio is not None
        assert audio.data == AUDIO
        await store.mark_delivering("j1")
        delivered = await store.mark_delivered("j1", "interaction", 5)
        # Migrated rows get the text's length; the text itself goes when the job ends.
        assert delivered.text_chars == len(job.text) > 0
        assert delivered.text == delivered.sample_url == ""
    assert audio_files(data_dir) == []
    with sqlite3.connect(data_dir / "jobs.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_finish_times_are_the_latest_jobs_polls_saw_end_oldest_first(
    store: SqliteJobStore,
) -> None:
    for index in range(5):
        job_id = f"t{index}"
        await store.add(make_job(job_id, created_at=1000.0 + index))
        await store.mark_submit_started(job_id)
        await store.mark_submitted(job_id, f"r{index}", "https://api.segmind.com/p/x")
        seen = (float(index), 10.0 + index) if index != 2 else None  # t2: resumed, unknown
        await store.mark_completed(
            job_id, AUDIO, "audio/mpeg", "mp3", "https://out/x.mp3", delivering=True, seen=seen
        )
    await store.add(make_job("running", created_at=2000.0))  # not finished: no times yet
    chars = len(make_job().text)
    assert await store.finish_times(3) == [
        (chars, 1.0, 11.0),
        (chars, 3.0, 13.0),
        (chars, 4.0, 14.0),
    ]
    assert len(await store.finish_times(100)) == 4
