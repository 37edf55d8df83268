"""Nothing lost: `kill -9` at every state, SIGTERM, and restarts, with the real bot process.

Each test counts what reached Discord (deliveries) and Segmind (submits): a job the bot
accepted ends delivered exactly once or explained exactly once, and is never submitted
twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord import FakeDiscord, FakeInteraction, RecordedRequest
from tests.fakes.segmind import FakeSegmind, Injection, JobScript, fake_mp3
from tests.proc import kill, start_bot, stop, until_state

Fakes = tuple[FakeDiscord, FakeSegmind]
SLOW = JobScript(statuses=("PROCESSING",) * 30 + ("COMPLETED",))  # ~1.5 s of polling


@pytest.fixture
async def fakes() -> AsyncIterator[Fakes]:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        yield discord, segmind


async def speak(discord: FakeDiscord, text: str) -> FakeInteraction:
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"voice"), "audio/mpeg")
    return await discord.slash("speak", {"voice": clip, "text": text})


def uploads_applied(discord: FakeDiscord, interaction: FakeInteraction) -> list[RecordedRequest]:
    """Applied requests that carried the job's audio: edits of its message, and posts."""
    return [
        r
        for r in discord.requests
        if r.status == 200
        and r.files
        and (interaction.token in r.path or r.route.endswith("/messages"))
    ]


def deliveries(discord: FakeDiscord, interaction: FakeInteraction) -> int:
    """Distinct places the audio appeared for this job."""
    original = interaction.original
    if original is None:
        return 0
    replies = [
        m
        for m in discord.channel_messages(discord.channel_id)
        if m.attachments
        and m.message_reference
        and m.message_reference.get("message_id") == str(original.id)
    ]
    return (1 if original.attachments else 0) + len(replies)


async def delivered(discord: FakeDiscord, interaction: FakeInteraction) -> None:
    await discord.wait_for(lambda: deliveries(discord, interaction) >= 1, 30)


async def restart_and_finish(
    fakes: Fakes, data_dir: Path, interaction: FakeInteraction, **settings: str
) -> str:
    discord, segmind = fakes
    proc = await start_bot(discord, segmind, data_dir, **settings)
    try:
        await delivered(discord, interaction)
        await until_state(data_dir, interaction.id, "delivered")
    finally:
        _, log = await stop(proc)
    assert deliveries(discord, interaction) == 1
    return log


async def test_kill_after_accept_before_submit(fakes: Fakes, tmp_path: Path) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(SLOW)
    proc = await start_bot(discord, segmind, data, SEGMIND_MAX_CONCURRENT="1")
    await discord.wait_for(lambda: discord.connected, 20)
    first = await speak(discord, "first")
    await segmind.wait_for(lambda: segmind.count("submit") == 1)
    second = await speak(discord, "second")  # waits for the only slot
    await discord.wait_for(lambda: second.acknowledged_at is not None)
    await until_state(data, second.id, "accepted")
    await kill(proc)
    assert segmind.count("submit") == 1

    proc = await start_bot(discord, segmind, data, SEGMIND_MAX_CONCURRENT="1")
    try:
        for interaction in (first, second):
            await delivered(discord, interaction)
            await until_state(data, interaction.id, "delivered")
    finally:
        await stop(proc)
    assert deliveries(discord, first) == deliveries(discord, second) == 1
    submitted = sorted(j.text for j in segmind.jobs.values())
    assert submitted == ["first", "second"]  # each exactly once


async def test_kill_after_submit_resumes_polling(fakes: Fakes, tmp_path: Path) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(SLOW)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    interaction = await speak(discord, "resume me")
    await segmind.wait_for(lambda: segmind.count("poll") >= 3)
    await until_state(data, interaction.id, "submitted")
    await kill(proc)

    log = await restart_and_finish(fakes, data, interaction)
    assert segmind.count("submit") == 1
    assert "resumed" in log


async def test_kill_after_completed_before_upload(fakes: Fakes, tmp_path: Path) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(SLOW)
    # Park a progress edit: the job finishes, spools its audio, then waits on that edit.
    hold = discord.hold("PATCH", r"^/webhooks/", when=lambda r: not r.files)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    interaction = await speak(discord, "completed then killed")
    await discord.wait_for(lambda: bool(hold.held))
    # Finished jobs go straight to DELIVERING (one write): nothing is posted yet.
    await until_state(data, interaction.id, "delivering")
    await kill(proc)
    hold.release()
    assert not uploads_applied(discord, interaction)

    await restart_and_finish(fakes, data, interaction)
    assert segmind.count("submit") == 1
    assert segmind.count("download") == 1  # the spooled audio was used, not fetched again


@pytest.mark.parametrize("applied", [False, True])
async def test_kill_during_upload(fakes: Fakes, tmp_path: Path, applied: bool) -> None:
    """Killed with the upload in transit (never applied) or applied but unacknowledged."""
    discord, segmind = fakes
    data = tmp_path / "data"
    hold = discord.hold("PATCH", r"^/webhooks/", when=lambda r: bool(r.files), after_apply=applied)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    interaction = await speak(discord, "upload interrupted")
    await discord.wait_for(lambda: bool(hold.held))
    await until_state(data, interaction.id, "delivering")
    await kill(proc)
    hold.release()

    await restart_and_finish(fakes, data, interaction)
    assert segmind.count("submit") == 1
    assert len(uploads_applied(discord, interaction)) == 1


async def test_kill_during_submit_is_explained_not_resubmitted(
    fakes: Fakes, tmp_path: Path
) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.inject("submit", Injection(status=200, delay=30, create_job=True))
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    interaction = await speak(discord, "lost in flight")
    await segmind.wait_for(lambda: segmind.count("submit") == 1)
    await kill(proc)

    proc = await start_bot(discord, segmind, data)
    try:
        await discord.wait_for(
            lambda: (
                interaction.original is not None
                and "restarted while sending" in interaction.original.content
            ),
            20,
        )
        await until_state(data, interaction.id, "explained")
    finally:
        await stop(proc)
    assert segmind.count("submit") == 1


async def test_sigterm_pauses_jobs_and_the_next_start_finishes_them(
    fakes: Fakes, tmp_path: Path
) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    segmind.script_jobs(SLOW, SLOW)
    proc = await start_bot(discord, segmind, data)
    await discord.wait_for(lambda: discord.connected, 20)
    jobs = [await speak(discord, f"graceful {i}") for i in range(2)]
    await segmind.wait_for(lambda: segmind.count("poll") >= 4)
    loop = asyncio.get_running_loop()
    started = loop.time()
    code, log = await stop(proc)
    assert code == 0
    assert loop.time() - started < 10
    assert "resumes at the next start" in log

    proc = await start_bot(discord, segmind, data)
    try:
        for interaction in jobs:
            await delivered(discord, interaction)
    finally:
        await stop(proc)
    assert [deliveries(discord, i) for i in jobs] == [1, 1]
    assert segmind.count("submit") == 2


@pytest.mark.parametrize(
    ("make_bad", "needle"),
    [
        (lambda p: p.write_bytes(b"this is not a database" * 100), "not a valid database"),
        (lambda p: p.mkdir(), "jobs.sqlite3"),
    ],
)
async def test_unusable_store_is_one_clear_line(
    fakes: Fakes, tmp_path: Path, make_bad: object, needle: str
) -> None:
    discord, segmind = fakes
    data = tmp_path / "data"
    data.mkdir()
    path = data / "jobs.sqlite3"
    make_bad(path)  # type: ignore[operator]
    before = path.read_bytes() if path.is_file() else None
    proc = await start_bot(discord, segmind, data)
    code, log = await stop(proc, 0)
    lines = [line for line in log.splitlines() if line.startswith("voiceclone:")]
    assert code == 2
    assert len(lines) == 1
    assert needle in lines[0]
    assert str(path) in lines[0]
    assert "Traceback" not in log
    if before is not None:
        assert path.read_bytes() == before  # never silently replaced
