"""Past the 15-minute token: say so in time, then deliver in the channel, a DM, or log it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.discord import DEFAULT_BOT_PERMISSIONS, SEND_MESSAGES, FakeMessage
from tests.fakes.segmind import JobScript, fake_mp3
from tests.harness import World, world

LIFETIME = 2.0
OUTLASTS_TOKEN = JobScript(statuses=("PROCESSING",) * 150 + ("COMPLETED",))  # ~3 s


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path, {"token_lifetime": LIFETIME}) as running:
        running.segmind.script_jobs(OUTLASTS_TOKEN)
        yield running


def with_audio(messages: list[FakeMessage]) -> list[FakeMessage]:
    return [m for m in messages if m.attachments]


async def test_long_job_is_announced_then_posted_in_the_channel(w: World) -> None:
    interaction = await w.speak("a long one")
    channel = w.discord.channel_id
    await w.discord.wait_for(lambda: bool(with_audio(w.discord.channel_messages(channel))), 15)
    original = interaction.original
    assert original is not None
    notices = [h["content"] for h in original.history] + [original.content]
    assert any("taking long" in text for text in notices)
    assert not original.attachments  # the token was dead: the file went to the channel
    [posted] = with_audio(w.discord.channel_messages(channel))
    assert posted.message_reference is not None
    assert posted.message_reference["message_id"] == str(original.id)
    assert f"<@{w.discord.user_id}>" in posted.content
    assert "AI-generated" in posted.content
    assert posted.mentions == []  # named without a ping
    assert posted.attachments[0].data == fake_mp3(next(iter(w.segmind.jobs)).encode())
    # No webhook call was made with the dead token (Discord would answer 50027).
    assert all(r.status != 401 for r in w.discord.requests)


async def test_channel_impossible_falls_back_to_dm(w: World) -> None:
    locked = w.discord.add_channel(
        "read-only", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
    )
    await w.speak("to my DMs", channel_id=locked)
    user = w.discord.user_id
    await w.discord.wait_for(lambda: bool(with_audio(w.discord.dm_messages(user))), 15)
    assert not with_audio(w.discord.channel_messages(locked))
    [notice] = w.discord.channel_messages(locked)  # the interaction's own message
    assert "by DM" in notice.content


async def test_nowhere_to_deliver_is_logged(w: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    shy = w.discord.add_user("shy", blocks_dms=True)
    locked = w.discord.add_channel(
        "read-only", bot_permissions=DEFAULT_BOT_PERMISSIONS & ~SEND_MESSAGES
    )
    interaction = await w.speak("nowhere", channel_id=locked, user_id=shy)
    await w.discord.wait_for(
        lambda: bool(w.discord.requests_to("POST", r"^/channels/\d+/messages$")), 15
    )
    record = await _settled(w, str(interaction.id))
    assert record == "explained"
    assert any("undeliverable" in r.getMessage() for r in caplog.records)


async def _settled(w: World, job_id: str) -> str | None:
    for task in list(w.bot.owned_tasks):
        if task.get_name() == f"job-{job_id}":
            await asyncio.wait_for(task, 10)
    record = await w.bot.store.get(job_id)
    return None if record is None else record.state.value


async def test_new_jobs_refused_while_restarting(w: World) -> None:
    w.bot.accepting_jobs = False
    interaction = await w.speak()
    await w.discord.wait_for(lambda: interaction.original is not None)
    assert interaction.original is not None
    assert "restarting" in interaction.original.content
    assert interaction.original.ephemeral
    assert w.segmind.count("submit") == 0


async def test_a_command_too_late_to_acknowledge_never_runs(tmp_path: Path) -> None:
    async with world(tmp_path, {"callback_deadline": 0.0}) as w:
        done = asyncio.create_task(w.bot.wait_for("app_command_completion"))
        interaction = await w.speak("too late")
        await asyncio.wait_for(done, 5)
        assert interaction.acknowledged_at is None  # the member saw "did not respond"
        record = await w.bot.store.get(str(interaction.id))
        assert record is not None
        assert record.state.value == "explained"
        assert w.segmind.count("submit") == 0


async def test_nothing_new_starts_once_shutdown_began(w: World) -> None:
    ran = False

    async def job() -> None:
        nonlocal ran
        ran = True

    w.bot.accepting_jobs = False  # what close() sets first
    assert w.bot.spawn(job(), name="late") is None
    await asyncio.sleep(0)
    assert not ran
    w.bot.accepting_jobs = True
