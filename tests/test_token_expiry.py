"""Past the 15-minute token: say so in time, then deliver in the channel, a DM, or log it;
and what a shutdown still accepts."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.audio_files import untagged
from tests.fakes.discord import (
    DEFAULT_BOT_PERMISSIONS,
    SEND_MESSAGES,
    FakeDiscord,
    FakeInteraction,
    FakeMessage,
)
from tests.fakes.segmind import FakeSegmind, Injection, JobScript, fake_mp3
from tests.harness import World, world
from tests.proc import job_state, log_until, start_bot, stop, until_state

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
    assert untagged(posted.attachments[0].data) == untagged(
        fake_mp3(next(iter(w.segmind.jobs)).encode())
    )
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


async def test_sigterm_refuses_new_jobs_and_starts_nothing_new(tmp_path: Path) -> None:
    """A real shutdown: SIGTERM to `python -m bot`. While it waits for a submit already on
    the wire, the bot is still connected: a new /speak is refused ("restarting"; nothing
    stored or sent), and a job accepted in that instant (a consent "Yes") is stored but not
    started. The next start runs it, once."""
    data = tmp_path / "data"
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        proc = await start_bot(discord, segmind, data, REQUIRE_CONSENT="true")
        try:
            await discord.wait_for(lambda: discord.connected, 20)
            # The first job's submit hangs: the shutdown waits for it (up to 5 s).
            segmind.inject("submit", Injection(status=200, delay=30, create_job=True))
            first = await _speak(discord, "on the wire")
            await _consented(discord, first)
            await segmind.wait_for(lambda: segmind.count("submit") == 1)
            # Another member's consent prompt is open when the signal comes.
            other = discord.add_user("other")
            asked = await _speak(discord, "asked before", user_id=other)
            await discord.wait_for(lambda: asked.original is not None)

            proc.send_signal(signal.SIGTERM)
            log = await log_until(proc, "Signal received")
            again = await _speak(discord, "too late")  # consent given: no prompt
            await discord.wait_for(lambda: again.original is not None)
            assert again.original is not None
            assert "restarting" in again.original.content
            assert again.original.ephemeral
            click = await _consented(discord, asked, user_id=other)
            await discord.wait_for(lambda: click.acknowledged_at is not None)
        finally:
            code, rest = await stop(proc)
        log += rest
        assert code == 0
        assert f"Not starting job-{asked.id}: shutting down" in log
        assert segmind.count("submit") == 1  # only the first job's
        assert job_state(data, asked.id) == "accepted"
        assert job_state(data, again.id) is None

        proc = await start_bot(discord, segmind, data, REQUIRE_CONSENT="true")
        try:
            await discord.wait_for(
                lambda: click.original is not None and bool(click.original.attachments), 20
            )
            await until_state(data, asked.id, "delivered")
            # The first one cannot know whether its submit landed: explained, never re-sent.
            await until_state(data, first.id, "explained")
        finally:
            await stop(proc)
        assert sorted(job.text for job in segmind.jobs.values()) == ["asked before", "on the wire"]
        assert "too late" not in [job.text for job in segmind.jobs.values()]


async def _speak(discord: FakeDiscord, text: str, user_id: int | None = None) -> FakeInteraction:
    clip = discord.add_attachment("voice.mp3", fake_mp3(b"voice"), "audio/mpeg")
    return await discord.slash("speak", {"voice": clip, "text": text}, user_id=user_id)


async def _consented(
    discord: FakeDiscord, asked: FakeInteraction, user_id: int | None = None
) -> FakeInteraction:
    """Click "Yes" on the consent prompt `asked` got; the click's message becomes the job's."""
    await discord.wait_for(lambda: asked.original is not None)
    assert asked.original is not None
    return await discord.click(asked.original.id, f"vc:consent:yes:{asked.id}", user_id=user_id)


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
