"""The result cache end to end: real discord.py against the fake Discord and the fake
Segmind. An identical request (the same clip bytes, text and language) is answered from
the stored result with no Segmind request, and says so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.store import JobState
from cogs.wording import CACHED_NOTE
from tests.audio_files import untagged
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import World, bot_settings, running_bot, world

DAYS = "7"  # RESULT_CACHE_DAYS: on (the harness turns it off)
VOICE = fake_mp3(b"a member's voice")


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path, RESULT_CACHE_DAYS=DAYS) as running:
        yield running


def clip(w: World, data: bytes = VOICE) -> dict[str, Any]:
    """A fresh upload (its own attachment id and URL) of these bytes."""
    return w.clip(data=data)


async def job_of(w: World, interaction: FakeInteraction) -> Any:
    record = await w.bot.store.get(str(interaction.id))
    assert record is not None
    return record


async def test_an_identical_request_is_answered_from_the_cache(w: World) -> None:
    made = await w.speak("Good morning", "en", clip=clip(w))
    first = await w.answered(made)
    assert CACHED_NOTE not in first.content
    # The same bytes uploaded again (another attachment, another URL): no new submit.
    again = await w.speak("Good  morning ", "en", clip=clip(w))
    second = await w.answered(again)
    await w.job_ended(again)  # recorded delivered, a moment after the post
    assert w.segmind.count("submit") == 1
    assert CACHED_NOTE in second.content
    assert "AI-generated" in second.content
    # The same audio, stamped for each job (provenance tags name the job).
    assert untagged(second.attachments[0].data) == untagged(first.attachments[0].data)
    record = await job_of(w, again)
    assert (record.state, record.cached_from) == (JobState.DELIVERED, str(made.id))
    assert record.submit_started_at is None
    # The interaction's message id (known in memory until then) is kept by both writes.
    assert record.original_message_id == second.id
    assert (await job_of(w, made)).original_message_id == first.id
    assert record.sample_sha256 == (await job_of(w, made)).sample_sha256 is not None


async def test_a_different_text_language_or_clip_is_a_new_job(w: World) -> None:
    await w.answered(await w.speak("Same words", "en", clip=clip(w)))
    await w.answered(await w.speak("Other words", "en", clip=clip(w)))
    await w.answered(await w.speak("Same words", "fr", clip=clip(w)))
    await w.answered(await w.speak("Same words", "en", clip=clip(w, fake_mp3(b"another voice"))))
    assert w.segmind.count("submit") == 4
    hit = await w.answered(await w.speak("Same words", "fr", clip=clip(w)))
    assert CACHED_NOTE in hit.content
    assert w.segmind.count("submit") == 4
    assert (await w.bot.store.cache_usage())[0] == 4


async def test_off_when_the_days_are_zero(tmp_path: Path) -> None:
    async with world(tmp_path, RESULT_CACHE_DAYS="0") as w:
        for _ in range(2):
            msg = await w.answered(await w.speak("twice", "en", clip=clip(w)))
            assert CACHED_NOTE not in msg.content
        assert w.segmind.count("submit") == 2
        assert await w.bot.store.cache_usage() == (0, 0)


async def test_optout_drops_the_members_cached_results(w: World) -> None:
    await w.answered(await w.speak("mine", "en", clip=clip(w)))
    assert (await w.bot.store.cache_usage())[0] == 1
    optout = await w.discord.slash("optout")
    await w.discord.wait_for(lambda: optout.original is not None)
    assert await w.bot.store.cache_usage() == (0, 0)


async def test_a_clip_the_bot_cannot_fetch_runs_as_usual(w: World) -> None:
    w.discord.cdn_outages = 1  # the cache's fetch fails; Segmind's, next, works
    interaction = await w.speak("unhashed", "en", clip=clip(w))
    msg = await w.answered(interaction)
    await w.job_ended(interaction)
    assert msg.attachments
    assert CACHED_NOTE not in msg.content
    [job] = w.segmind.jobs.values()
    assert job.sample_bytes == VOICE
    record = await job_of(w, interaction)
    assert (record.state, record.sample_sha256) == (JobState.DELIVERED, None)
    assert await w.bot.store.cache_usage() == (0, 0)


async def test_a_crash_between_the_hit_and_its_delivery(tmp_path: Path) -> None:
    """Killed while the cached answer's post is on its way (applied by Discord, not
    answered): the restart finds the post and records it; nothing is posted twice, and
    nothing is submitted for it."""
    data = tmp_path / "data"
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(data, segmind, discord, RESULT_CACHE_DAYS=DAYS)
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                made = await w.speak("once", "en", clip=clip(w))
                first = await w.answered(made)
                hold = discord.hold(
                    "PATCH", r"^/webhooks/", when=lambda r: bool(r.files), after_apply=True
                )
                cached = await w.speak("once", "en", clip=clip(w))
                await discord.wait_for(lambda: bool(hold.held))
                held = await job_of(w, cached)
                assert (held.state, held.cached_from) == (JobState.DELIVERING, str(made.id))
            hold.release()
            with logged("bot.jobs.driver", "delivered before the restart") as found:
                async with running_bot(discord, config) as bot:
                    await asyncio.wait_for(found.wait(), 10)
                    await World(discord, segmind, bot, config).job_ended(cached)
                    record = await bot.store.get(str(cached.id))
            assert record is not None
            assert record.state is JobState.DELIVERED
            assert cached.original is not None
            assert CACHED_NOTE in cached.original.content
            assert untagged(cached.original.attachments[0].data) == untagged(
                first.attachments[0].data
            )
            posts = [m for m in discord.channel_messages(discord.channel_id) if m.attachments]
            assert len(posts) == 2  # the first job's and the cached one's: once each
            assert segmind.count("submit") == 1


@contextlib.contextmanager
def logged(logger: str, needle: str) -> Iterator[asyncio.Event]:
    """An event set when `logger` logs a line containing `needle`."""
    found = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if needle in record.getMessage():
                found.set()

    watch = Watch(logging.INFO)
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.INFO)
    target.addHandler(watch)
    try:
        yield found
    finally:
        target.removeHandler(watch)
        target.setLevel(level)
