"""Paid work survives store trouble, and a broken store stops the bot: the real bot
(real discord.py) against the fakes, its job store on a real SQLite file that another
program locks, that fills up or turns read-only mid-job, or whose writer thread dies."""

from __future__ import annotations

import asyncio
import logging
import signal
import sqlite3
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot.bot import VoiceCloneBot
from bot.store import JobRecord, SqliteJobStore, StoreUnavailable
from tests.audio_files import untagged
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.segmind import FakeSegmind, JobScript, fake_mp3
from tests.harness import bot_settings, running_bot
from tests.proc import job_state, start_bot, stop, until_state
from tests.test_store_trouble import until, write_lock

Fakes = tuple[FakeDiscord, FakeSegmind]
NEVER_DONE = JobScript(statuses=("PROCESSING",))
EPHEMERAL_REFUSAL = "storage stopped working"


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            yield discord, segmind


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


class OtherProgram(SqliteJobStore):
    """The bot's store, with another program (a second sqlite3 connection) taking the
    database's write lock right as the bot makes one kind of write, `lock_at`. It lets
    go after that write has failed (`until_failed`), or when `release()` is called."""

    def __init__(self, data_dir: Path, lock_at: str, *, until_failed: bool = False) -> None:
        # SQLite's own wait runs out fast, and a write gives up after 0.3 s of retries.
        super().__init__(data_dir, busy_timeout=0.05, retry_for=0.3)
        self.lock_at = lock_at
        self.until_failed = until_failed
        self.other: sqlite3.Connection | None = None
        self.locked = asyncio.Event()

    def release(self) -> None:
        if self.other is not None:
            self.other.rollback()
            self.other.close()

    async def _locked(self, operation: str, write: Coroutine[Any, Any, JobRecord]) -> JobRecord:
        first = operation == self.lock_at and self.other is None
        if first:
            self.other = sqlite3.connect(self.path, isolation_level=None)
            self.other.execute("BEGIN IMMEDIATE")
            self.locked.set()
        try:
            return await write  # it starts only now, with the lock taken
        finally:
            if first and self.until_failed:
                self.release()

    async def mark_submitted(self, *args: Any) -> JobRecord:
        return await self._locked("mark_submitted", super().mark_submitted(*args))

    async def mark_delivered(self, *args: Any, **kwargs: Any) -> JobRecord:
        return await self._locked("mark_delivered", super().mark_delivered(*args, **kwargs))


@asynccontextmanager
async def bot_on(
    fakes: Fakes, data_dir: Path, store: SqliteJobStore | None = None, **settings: str
) -> AsyncIterator[VoiceCloneBot]:
    discord, segmind = fakes
    config = bot_settings(data_dir, segmind, discord, **settings)
    if store is not None:
        await store.open()
    try:
        async with running_bot(discord, config, store=store) as bot:
            yield bot
    finally:
        if store is not None:
            await store.close()


async def speak(discord: FakeDiscord, text: str) -> FakeInteraction:
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"voice"), "audio/mpeg")
    return await discord.slash("speak", {"voice": clip, "text": text})


def texts(message: FakeMessage | None) -> list[str]:
    """Everything the message ever said."""
    if message is None:
        return []
    return [h["content"] for h in message.history] + [message.content]


def job_tasks(bot: VoiceCloneBot) -> list[str]:
    return [t.get_name() for t in bot.owned_tasks if t.get_name().startswith("job-")]


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def only_job(segmind: FakeSegmind) -> str:
    [request_id] = segmind.jobs
    return request_id


async def delivered(discord: FakeDiscord, interaction: FakeInteraction) -> FakeMessage:
    await discord.wait_for(
        lambda: interaction.original is not None and bool(interaction.original.attachments), 15
    )
    assert interaction.original is not None
    return interaction.original


# -- point 2: paid work survives store trouble -------------------------------------------


async def test_a_delivered_result_is_not_edited_away_when_its_record_fails(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another program holds the lock while the delivery is recorded; the store works
    again right after. The message keeps its audio, and a restart does not post again."""
    discord, segmind = fakes
    store = OtherProgram(data_dir, "mark_delivered", until_failed=True)
    async with bot_on(fakes, data_dir, store) as bot:
        interaction = await speak(discord, "keep my audio")
        message = await delivered(discord, interaction)
        # The store works again right after: whatever the bot does next, it does now.
        await until(lambda: not job_tasks(bot))
        assert job_state(data_dir, interaction.id) == "delivering"
    assert message.attachments
    assert not any("Something went wrong" in text for text in texts(message))
    assert [e for e in errors(caplog) if "could not record" in e] == errors(caplog)
    uploads = [r for r in discord.requests if r.files and r.status == 200]

    async with bot_on(fakes, data_dir):  # the next start checks, and does not post again
        await until_state(data_dir, interaction.id, "delivered")
    assert [r for r in discord.requests if r.files and r.status == 200] == uploads
    assert segmind.count("submit") == 1


async def test_audio_is_delivered_when_the_disk_fills_up_mid_job(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discord, segmind = fakes
    audio = fake_mp3(bytes(100_000))  # needs new database pages: there are none left
    segmind.script_jobs(NEVER_DONE)
    async with bot_on(fakes, data_dir) as bot:
        store = bot.store
        assert isinstance(store, SqliteJobStore)
        interaction = await speak(discord, "a full disk")
        await until_state(data_dir, interaction.id, "submitted")

        def fill_up(conn: sqlite3.Connection) -> None:
            (pages,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {pages}")

        await store.run_on_writer(fill_up)
        segmind.jobs[only_job(segmind)].script = JobScript(statuses=("COMPLETED",), audio=audio)
        message = await delivered(discord, interaction)
        await until_state(data_dir, interaction.id, "delivered")
    [attachment] = message.attachments
    assert untagged(attachment.data) == untagged(audio)
    [error] = errors(caplog)
    assert "restart guarantee is lost" in error
    assert "disk is full" in error
    assert not any("Something went wrong" in text for text in texts(message))


async def test_audio_is_delivered_when_the_store_turns_read_only_mid_job(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discord, segmind = fakes
    segmind.script_jobs(NEVER_DONE)
    async with bot_on(fakes, data_dir) as bot:
        store = bot.store
        assert isinstance(store, SqliteJobStore)
        interaction = await speak(discord, "a read-only disk")
        await until_state(data_dir, interaction.id, "submitted")
        await store.run_on_writer(lambda conn: conn.execute("PRAGMA query_only = ON"))
        request_id = only_job(segmind)
        segmind.jobs[request_id].script = JobScript(statuses=("COMPLETED",))
        message = await delivered(discord, interaction)
        await until(lambda: len(errors(caplog)) == 2)
    assert untagged(message.attachments[0].data) == untagged(fake_mp3(request_id.encode()))
    lost, unrecorded = errors(caplog)
    assert "restart guarantee is lost" in lost
    assert "read-only" in lost
    assert "delivered via interaction, but the store could not record that" in unrecorded
    assert not any("Something went wrong" in text for text in texts(message))
    assert job_state(data_dir, interaction.id) == "submitted"  # as last recorded


async def test_an_accepted_submit_is_polled_while_its_record_is_retried(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store cannot record that Segmind took the job: the job is polled all the same,
    the record lands once the lock is gone, and the next start polls it again rather
    than give it up as "maybe sent"."""
    caplog.set_level(logging.INFO)
    discord, segmind = fakes
    segmind.script_jobs(NEVER_DONE)
    store = OtherProgram(data_dir, "mark_submitted")
    async with bot_on(fakes, data_dir, store):
        interaction = await speak(discord, "keep polling")
        await asyncio.wait_for(store.locked.wait(), 10)
        await until(lambda: "polling it from memory" in caplog.text)
        job = segmind.jobs[only_job(segmind)]
        polled = job.polls
        await segmind.wait_for(lambda: job.polls >= polled + 3)
        assert job_state(data_dir, interaction.id) == "accepted"  # still not on record
        store.release()
        # The log line, not the state: the commit is visible a moment before the retry
        # logs it, and leaving the block then would cancel the retry before its line.
        await until(lambda: "its submit is on record after all" in caplog.text)
        assert job_state(data_dir, interaction.id) == "submitted"
    assert interaction.original is not None
    assert not interaction.original.attachments

    async with bot_on(fakes, data_dir):
        job.script = JobScript(statuses=("COMPLETED",))
        await delivered(discord, interaction)
        await until_state(data_dir, interaction.id, "delivered")
    assert segmind.count("submit") == 1
    assert "resumed" in caplog.text
    assert not any("restarted while sending" in text for text in texts(interaction.original))
    assert errors(caplog) == []


# -- point 7: know when you are broken ----------------------------------------------------


def die(conn: sqlite3.Connection) -> None:
    raise SystemExit("the writer thread dies")


async def test_a_dead_store_writer_refuses_new_jobs_with_one_error(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discord, segmind = fakes
    segmind.script_jobs(NEVER_DONE)
    async with bot_on(fakes, data_dir) as bot:
        store = bot.store
        assert isinstance(store, SqliteJobStore)
        in_flight = await speak(discord, "in flight")
        await until_state(data_dir, in_flight.id, "submitted")
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.run_on_writer(die), 5)
        await asyncio.wait_for(bot.broken.wait(), 5)
        refused = await speak(discord, "after the break")
        await discord.wait_for(lambda: refused.original is not None)
        assert refused.original is not None
        assert refused.original.ephemeral
        assert EPHEMERAL_REFUSAL in refused.original.content
        assert segmind.count("submit") == 1
    [error] = errors(caplog)
    assert "job store stopped working" in error
    assert "writer thread died" in error
    assert not any("went wrong" in text for text in texts(in_flight.original))


async def test_a_store_that_stops_answering_refuses_new_jobs_with_one_error(
    fakes: Fakes, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    discord, segmind = fakes
    store = SqliteJobStore(data_dir, busy_timeout=0.05, stall_timeout=0.5)
    async with bot_on(fakes, data_dir, store) as bot:
        with write_lock(data_dir) as other:  # held longer than the store waits for answers
            first = await speak(discord, "while it hangs")
            await discord.wait_for(lambda: first.original is not None, 5)
            await asyncio.wait_for(bot.broken.wait(), 5)
            second = await speak(discord, "after it was noticed")
            await discord.wait_for(lambda: second.original is not None, 5)
            other.execute("ROLLBACK")
        await until(lambda: store.problem() is None)  # the queued insert got its answer
    for refused in (first, second):
        assert refused.original is not None
        assert refused.original.ephemeral
        assert "nothing was sent" in refused.original.content.lower()
    assert second.original is not None
    assert EPHEMERAL_REFUSAL in second.original.content
    [error] = errors(caplog)
    assert "has not been answered" in error
    assert job_state(data_dir, first.id) is None  # the insert came too late: not recorded
    assert segmind.count("submit") == 0


async def test_the_bot_exits_non_zero_when_its_store_writer_dies(
    fakes: Fakes, data_dir: Path
) -> None:
    """Through `python -m bot` and its runner: one ERROR line, the member told, exit 3."""
    discord, segmind = fakes
    proc = await start_bot(discord, segmind, data_dir)
    await discord.wait_for(lambda: discord.connected, 20)
    proc.send_signal(signal.SIGUSR1)  # tests.botproc: SystemExit in the writer thread
    refused = await speak(discord, "after the break")
    await discord.wait_for(lambda: refused.original is not None, 10)
    code, log = await stop(proc, 0)  # it exits on its own
    assert code == 3
    assert refused.original is not None
    assert EPHEMERAL_REFUSAL in refused.original.content
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert "job store stopped working" in errors[0]
    assert segmind.count("submit") == 0
