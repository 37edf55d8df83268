"""The voice owner decides, end to end through discord.py: "Speak in this voice" on
another member's clip waits for that member's answer (DM, or the channel when their DMs
are closed), costs nothing until they allow it, and survives a restart."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bot.config import Settings
from bot.jobs import Ending
from cogs.speak._owner import OWNER_ANSWERED_TEXT, OWNER_NOT_YOURS_TEXT
from cogs.wording import ENDINGS
from tests.fakes.discord import FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import World, bot_settings, running_bot, world
from tests.test_fair_use_e2e import refusal, speak_from

ON = {"REQUIRE_OWNER_CONSENT": "true"}


async def clip_post(w: World, author: int) -> FakeMessage:
    return await w.discord.user_message(
        user_id=author, attachments=[w.clip(data=fake_mp3(b"the author's voice"))]
    )


async def waiting(w: World, interaction: FakeInteraction) -> FakeMessage:
    def shown() -> bool:
        msg = interaction.original
        return msg is not None and msg.content.startswith("⏳ Waiting for")

    await w.discord.wait_for(shown)
    assert interaction.original is not None
    return interaction.original


async def asked(w: World, owner: int, count: int = 1) -> FakeMessage:
    await w.discord.wait_for(lambda: len(w.discord.dm_messages(owner)) >= count)
    return w.discord.dm_messages(owner)[count - 1]


async def left_waiting(
    discord: FakeDiscord, segmind: FakeSegmind, config: Settings, text: str
) -> tuple[FakeInteraction, FakeMessage, int]:
    """A bot run that leaves a job waiting for its owner: the job, the owner's prompt, the
    owner. The bot has stopped when this returns."""
    async with running_bot(discord, config) as bot:
        w = World(discord, segmind, bot, config)
        author = discord.add_user("author")
        post = await clip_post(w, author)
        job = await speak_from(w, post.id, discord.user_id, text)
        await waiting(w, job)
        return job, await asked(w, author), author


async def test_the_owner_allows_once_and_the_job_runs(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_OWNER_CONSENT="true") as w:
        author = w.discord.add_user("author")
        post = await clip_post(w, author)
        job = await speak_from(w, post.id, w.discord.user_id, "In your voice")
        shown = await waiting(w, job)
        assert f"<@{author}>" in shown.content  # named, not pinged
        assert shown.mentions == []
        prompt = await asked(w, author)
        assert "In your voice" in prompt.content
        assert w.segmind.count("submit") == 0  # nothing is sent before the owner answers
        stranger = w.discord.add_user("stranger")
        refused = await w.discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=stranger)
        assert await refusal(w, refused) == OWNER_NOT_YOURS_TEXT
        await w.discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
        result = await w.answered(job)
        assert result.attachments
        assert w.segmind.count("submit") == 1
        assert w.discord.message(prompt.id).content == OWNER_ANSWERED_TEXT["once"]
        # Allowed once only: the next request asks again.
        again = await speak_from(w, post.id, w.discord.user_id, "Once more")
        await waiting(w, again)
        await asked(w, author, 2)


async def test_a_denial_costs_nothing(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_OWNER_CONSENT="true") as w:
        author = w.discord.add_user("author")
        post = await clip_post(w, author)
        job = await speak_from(w, post.id, w.discord.user_id, "No thanks")
        await waiting(w, job)
        prompt = await asked(w, author)
        await w.discord.click(prompt.id, f"vc:owner:deny:{job.id}", user_id=author)
        answer = await w.answered(job)
        assert answer.content == ENDINGS[Ending.OWNER_DENIED]
        await w.job_ended(job)
        assert w.segmind.count("submit") == 0
        assert w.bot.policy.in_flight(w.discord.guild_id) == 0  # the member's place is free


async def test_always_allow_holds_until_the_owner_opts_out(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_OWNER_CONSENT="true") as w:
        author, other = w.discord.add_user("author"), w.discord.add_user("other")
        post = await clip_post(w, author)
        first = await speak_from(w, post.id, w.discord.user_id, "First")
        await waiting(w, first)
        prompt = await asked(w, author)
        await w.discord.click(prompt.id, f"vc:owner:always:{first.id}", user_id=author)
        await w.answered(first)
        second = await speak_from(w, post.id, other, "Second")
        assert (await w.answered(second)).attachments  # not asked again
        assert len(w.discord.dm_messages(author)) == 1
        for command in ("optout", "optin"):  # one after the other
            await refusal(w, await w.discord.slash(command, {}, user_id=author))
        third = await speak_from(w, post.id, other, "Third")
        await waiting(w, third)  # the opt-out withdrew "Always allow"
        await asked(w, author, 2)


async def test_closed_dms_ask_in_the_channel_pinging_only_the_owner(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_OWNER_CONSENT="true") as w:
        author = w.discord.add_user("author", blocks_dms=True)
        post = await clip_post(w, author)
        job = await speak_from(w, post.id, w.discord.user_id, "Ask me here")
        await waiting(w, job)

        def channel_prompt() -> FakeMessage | None:
            found = [
                m
                for m in w.discord.channel_messages(w.discord.channel_id)
                if m.author_id == w.discord.bot_user_id
                and f"vc:owner:once:{job.id}" in str(m.components)
            ]
            return found[0] if found else None

        await w.discord.wait_for(lambda: channel_prompt() is not None)
        prompt = channel_prompt()
        assert prompt is not None
        assert prompt.mentions == [author]
        await w.discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
        assert (await w.answered(job)).attachments


async def test_the_requester_can_cancel_while_waiting(tmp_path: Path) -> None:
    async with world(tmp_path, REQUIRE_OWNER_CONSENT="true") as w:
        author = w.discord.add_user("author")
        post = await clip_post(w, author)
        job = await speak_from(w, post.id, w.discord.user_id, "Never mind")
        shown = await waiting(w, job)
        prompt = await asked(w, author)
        await w.discord.click(shown.id, f"vc:cancel:{job.id}")
        answer = await w.answered(job)
        assert answer.content == ENDINGS[Ending.CANCELLED]
        await w.discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
        await w.discord.wait_for(lambda: "already ended" in w.discord.message(prompt.id).content)
        assert w.segmind.count("submit") == 0


async def test_a_wait_survives_a_restart_and_the_click_after_it_counts(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(tmp_path / "data", segmind, discord, **ON)
            job, prompt, author = await left_waiting(discord, segmind, config, "After the restart")
            # The bot stopped with the job waiting; the next run resumes the wait.
            async with running_bot(discord, config) as bot:
                await discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
                restarted = World(discord, segmind, bot, config)
                assert (await restarted.answered(job)).attachments
                assert segmind.count("submit") == 1


async def test_a_wait_whose_time_ran_out_while_the_bot_was_down_ends_at_no_cost(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(tmp_path / "data", segmind, discord, **ON)
            job, prompt, author = await left_waiting(discord, segmind, config, "Too late")
            # The bot stays down past the stored deadline (as if for the whole timeout).
            with sqlite3.connect(tmp_path / "data" / "jobs.sqlite3") as db:
                db.execute(
                    "UPDATE jobs SET owner_pending_until = ? WHERE id = ?",
                    (time.time() - 1, str(job.id)),
                )
            async with running_bot(discord, config) as bot:
                restarted = World(discord, segmind, bot, config)
                answer = await restarted.answered(job)
                assert answer.content == ENDINGS[Ending.OWNER_TIMED_OUT]
                await restarted.job_ended(job)
                await discord.click(prompt.id, f"vc:owner:once:{job.id}", user_id=author)
                await discord.wait_for(
                    lambda: "already ended" in discord.message(prompt.id).content
                )
            assert segmind.count("submit") == 0
