"""The buttons on a result (Again, Edit text, Delete) end to end: real discord.py against
the fake Discord and the fake Segmind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.speak._replay import CLIP_GONE
from cogs.speak._results import MAY_NOT_DELETE, NOT_HERE, NOT_YOURS, REPLAY_GONE
from tests.fakes.discord import MANAGE_GUILD, FakeDiscord, FakeInteraction, FakeMessage
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import World, bot_settings, running_bot, world


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as running:
        yield running


def custom_ids(message: FakeMessage) -> list[str]:
    return [
        component["custom_id"]
        for row in message.components
        for component in row.get("components", [])
        if "custom_id" in component
    ]


async def ephemeral_text(w: World, interaction: FakeInteraction) -> str:
    await w.discord.wait_for(lambda: interaction.original is not None)
    assert interaction.original is not None
    assert interaction.original.ephemeral
    return interaction.original.content


async def a_result(w: World, text: str = "Hello there", **kwargs: object) -> FakeMessage:
    asked = await w.speak(text, "fr", **kwargs)
    msg = await w.answered(asked)
    assert msg.attachments
    await w.job_ended(asked)  # recorded delivered, with what its buttons replay
    return msg


async def test_a_result_carries_again_edit_and_delete(w: World) -> None:
    msg = await a_result(w)
    job = msg.interaction_id
    assert custom_ids(msg) == [f"vc:again:{job}", f"vc:edit:{job}", f"vc:delete:{job}"]


async def test_again_makes_a_new_job_with_the_same_voice_text_and_language(w: World) -> None:
    clip = w.clip(data=fake_mp3(b"my own voice"))
    msg = await a_result(w, clip=clip)
    again = await w.discord.click(msg.id, f"vc:again:{msg.interaction_id}")
    second = await w.answered(again)
    assert second.attachments
    assert second.id != msg.id
    first_job, second_job = w.segmind.jobs.values()
    assert (second_job.text, second_job.language) == ("Hello there", "fr")
    assert second_job.sample_bytes == fake_mp3(b"my own voice")
    assert first_job.request_id != second_job.request_id
    record = await w.bot.store.get(str(again.id))
    assert record is not None
    assert record.origin == "again"
    assert custom_ids(second)[0] == f"vc:again:{again.id}"  # the new result has its own


async def test_edit_text_opens_the_old_text_and_speaks_the_new(w: World) -> None:
    msg = await a_result(w, "the old words")
    edit = await w.discord.click(msg.id, f"vc:edit:{msg.interaction_id}")
    await w.discord.wait_for(lambda: edit.modal is not None)
    assert edit.modal is not None
    assert "the old words" in str(edit.modal["components"])
    submitted = await w.discord.submit_modal(edit, {"text": "the new words", "language": "de"})
    result = await w.answered(submitted)
    assert result.attachments
    job = list(w.segmind.jobs.values())[-1]
    assert (job.text, job.language) == ("the new words", "de")
    record = await w.bot.store.get(str(submitted.id))
    assert record is not None
    assert record.origin == "edit"


async def test_only_the_requester_may_play_again(w: World) -> None:
    msg = await a_result(w)
    other = w.discord.add_user("someone else")
    click = await w.discord.click(msg.id, f"vc:again:{msg.interaction_id}", user_id=other)
    assert await ephemeral_text(w, click) == NOT_YOURS
    assert w.segmind.count("submit") == 1


async def test_delete_by_the_requester_and_by_an_admin_not_by_others(w: World) -> None:
    first, second = await a_result(w, "one"), await a_result(w, "two")
    other = w.discord.add_user("bystander")
    refused = await w.discord.click(first.id, f"vc:delete:{first.interaction_id}", user_id=other)
    assert await ephemeral_text(w, refused) == MAY_NOT_DELETE
    assert not first.deleted
    await w.discord.click(first.id, f"vc:delete:{first.interaction_id}")
    await w.discord.wait_for(lambda: first.deleted)
    assert await w.bot.store.replay(str(first.interaction_id)) is None
    admin = w.discord.add_user("admin", permissions=MANAGE_GUILD)
    await w.discord.click(second.id, f"vc:delete:{second.interaction_id}", user_id=admin)
    await w.discord.wait_for(lambda: second.deleted)


async def test_buttons_on_a_channel_reply_and_a_dm(w: World) -> None:
    w.discord.inject_error(
        "PATCH", r"^/webhooks/.*/messages/", 404, 10015, "Unknown Webhook", times=50
    )
    await w.speak("to the channel")
    channel = w.discord.channel_id
    await w.discord.wait_for(
        lambda: any(m.attachments for m in w.discord.channel_messages(channel))
    )
    [reply] = [m for m in w.discord.channel_messages(channel) if m.attachments]
    job = custom_ids(reply)[0].rsplit(":", 1)[1]
    again = await w.discord.click(reply.id, f"vc:again:{job}")
    await w.discord.wait_for(lambda: w.segmind.count("submit") == 2)
    w.discord.inject_error("POST", rf"^/channels/{channel}/messages$", 403, 50013, "No", times=50)
    await w.discord.wait_for(
        lambda: any(m.attachments for m in w.discord.dm_messages(w.discord.user_id))
    )
    [dm] = [m for m in w.discord.dm_messages(w.discord.user_id) if m.attachments]
    assert custom_ids(dm) == [
        f"vc:again:{again.id}",
        f"vc:edit:{again.id}",
        f"vc:delete:{again.id}",
    ]
    in_dm = await w.discord.click(dm.id, f"vc:again:{again.id}")
    assert await ephemeral_text(w, in_dm) == NOT_HERE
    await w.discord.click(dm.id, f"vc:delete:{again.id}")
    await w.discord.wait_for(lambda: dm.deleted)


async def test_buttons_work_after_a_restart(tmp_path: Path) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        with discord.patch_discord_py():
            config = bot_settings(tmp_path, segmind, discord)
            async with running_bot(discord, config) as bot:
                before = World(discord, segmind, bot, config)
                first = await before.speak("before the restart")
                msg = await before.answered(first)
                await before.job_ended(first)
            async with running_bot(discord, config) as bot:
                w = World(discord, segmind, bot, config)
                again = await discord.click(msg.id, f"vc:again:{msg.interaction_id}")
                assert (await w.answered(again)).attachments
                job = list(segmind.jobs.values())[-1]
                assert job.text == "before the restart"
                await discord.click(msg.id, f"vc:delete:{msg.interaction_id}")
                await discord.wait_for(lambda: msg.deleted)


async def test_again_refreshes_an_expired_clip_url(w: World) -> None:
    clip = w.clip(data=fake_mp3(b"kept a while"))
    msg = await a_result(w, clip=clip)
    w.discord.expire_attachment(int(clip["id"]))
    again = await w.discord.click(msg.id, f"vc:again:{msg.interaction_id}")
    assert (await w.answered(again)).attachments
    # The refresh and the check fit in Discord's 3 s to answer the click.
    assert again.acknowledged_at is not None
    assert again.acknowledged_at - again.dispatched_at < 3
    job = list(w.segmind.jobs.values())[-1]
    assert job.voice_samples != clip["url"]
    assert job.sample_bytes == fake_mp3(b"kept a while")
    assert any(r.route == "/attachments/refresh-urls" for r in w.discord.requests)


async def test_again_on_a_deleted_clip_says_so_and_sends_nothing(w: World) -> None:
    clip = w.clip()
    msg = await a_result(w, clip=clip)
    w.discord.delete_attachment(int(clip["id"]))
    again = await w.discord.click(msg.id, f"vc:again:{msg.interaction_id}")
    assert await ephemeral_text(w, again) == CLIP_GONE
    assert w.segmind.count("submit") == 1


async def test_again_after_the_replay_was_purged_or_opted_out(w: World) -> None:
    purged, opted = await a_result(w, "one"), await a_result(w, "two")
    await w.bot.store.purge(-1.0)  # the daily purge, with everything past its retention
    click = await w.discord.click(purged.id, f"vc:again:{purged.interaction_id}")
    assert await ephemeral_text(w, click) == REPLAY_GONE
    await ephemeral_text(w, await w.discord.slash("optout"))
    click = await w.discord.click(opted.id, f"vc:edit:{opted.interaction_id}")
    assert await ephemeral_text(w, click) == REPLAY_GONE
    assert w.segmind.count("submit") == 2


async def test_limits_apply_to_again(tmp_path: Path) -> None:
    async with world(tmp_path, USER_COOLDOWN_SECONDS="600") as w:
        msg = await a_result(w)
        again = await w.discord.click(msg.id, f"vc:again:{msg.interaction_id}")
        assert "Slow down" in await ephemeral_text(w, again)
        assert w.segmind.count("submit") == 1


async def test_again_in_someone_elses_voice_keeps_them_as_its_owner(w: World) -> None:
    author = w.discord.add_user("author")
    clip = w.clip(data=fake_mp3(b"the author's voice"))
    post = await w.discord.user_message(user_id=author, attachments=[clip])
    opened = await w.discord.context_menu("Speak in this voice", post.id)
    await w.discord.wait_for(lambda: opened.modal is not None)
    submitted = await w.discord.submit_modal(opened, {"text": "Bonjour"})
    msg = await w.answered(submitted)
    await w.job_ended(submitted)
    again = await w.discord.click(msg.id, f"vc:again:{submitted.id}")
    assert (await w.answered(again)).attachments
    record = await w.bot.store.get(str(again.id))
    assert record is not None
    assert (record.voice_owner_id, record.user_id) == (author, w.discord.user_id)
    # The author's /optout forgets the replay: no Again in their voice after it.
    await ephemeral_text(w, await w.discord.slash("optout", user_id=author))
    refused = await w.discord.click(msg.id, f"vc:again:{submitted.id}")
    assert await ephemeral_text(w, refused) == REPLAY_GONE
    assert w.segmind.count("submit") == 2
