"""/voice and /say end to end: real discord.py against the fake Discord and the fake
Segmind (its storage upload, its stored assets, and jobs that fail on a dead sample URL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogs.plain_text import plain_words
from cogs.voices import SAY_MESSAGE_COMMAND
from tests.fakes.discord import FakeInteraction
from tests.fakes.segmind import Injection, fake_mp3
from tests.harness import World, world

VOICE = fake_mp3(b"my own voice")


@pytest.fixture
async def w(tmp_path: Path) -> AsyncIterator[World]:
    async with world(tmp_path) as running:
        yield running


async def reply(w: World, interaction: FakeInteraction) -> str:
    """The ephemeral answer's final text."""
    await w.discord.wait_for(
        lambda: interaction.original is not None and not interaction.original.loading
    )
    assert interaction.original is not None
    assert interaction.original.ephemeral
    assert interaction.original.mentions == []
    return interaction.original.content


async def voice(w: World, sub: str, user_id: int | None = None, **options: object) -> str:
    interaction = await w.discord.slash("voice", options, subcommand=sub, user_id=user_id)
    return await reply(w, interaction)


async def save(w: World, name: str = "Me", user_id: int | None = None) -> str:
    clip = w.clip(data=VOICE)
    return await voice(w, "save", user_id, name=name, clip=clip, consent="own")


async def say(w: World, text: str = "Hello there", **options: object) -> FakeInteraction:
    user_id = options.pop("user_id", None)
    return await w.discord.slash("say", {"text": text, **options}, user_id=user_id)  # type: ignore[arg-type]


async def test_save_keeps_the_bytes_uploads_them_and_say_speaks_with_them(w: World) -> None:
    assert "Saved “Me”" in await save(w)
    assert w.segmind.count("upload") == 1
    [(stored, _)] = w.segmind.assets.values()
    assert stored == VOICE
    msg = await w.answered(await say(w, "Hello there"))
    assert msg.attachments
    [job] = w.segmind.jobs.values()
    assert "/assets/" in job.voice_samples
    assert job.sample_bytes == VOICE
    [record] = await w.bot.store.recent_jobs(w.discord.guild_id, 5)
    assert (record.origin, record.voice_id is not None) == ("say", True)


async def test_say_without_a_voice_says_how_to_save_one(w: World) -> None:
    assert "/voice save" in await reply(w, await say(w))
    assert w.segmind.count("submit") == 0


async def test_list_rename_default_delete(w: World) -> None:
    await save(w, "Me")
    await save(w, "Radio")
    assert "already have a voice called" in await save(w, "ME")
    assert w.segmind.count("upload") == 2  # the taken name was refused before uploading
    listed = await voice(w, "list")
    assert "**Me** (default)" in listed
    assert "**Radio**" in listed
    assert "Renamed" in await voice(w, "rename", name="radio", new_name="Studio")
    assert "now uses “Studio”" in await voice(w, "default", name="studio")
    assert "**Studio** (default)" in await voice(w, "list")
    assert "Deleted" in await voice(w, "delete", name="Me")
    assert [v.name for v in await w.bot.store.own_voices(w.discord.user_id)] == ["Studio"]
    assert "no voice called" in await voice(w, "delete", name="Me")


async def test_the_limit_refuses_before_any_upload(tmp_path: Path) -> None:
    async with world(tmp_path, VOICES_PER_MEMBER="1") as w:
        await save(w, "one")
        assert "the most allowed" in await save(w, "two")
        assert w.segmind.count("upload") == 1  # refused before any download or upload
        assert len(await w.bot.store.own_voices(w.discord.user_id)) == 1


async def test_feature_off(tmp_path: Path) -> None:
    async with world(tmp_path, VOICES_PER_MEMBER="0") as w:
        assert "turned off" in await save(w)
        assert w.segmind.count("upload") == 0


async def test_shared_voices_others_unshared_refused_and_opt_out_hides(w: World) -> None:
    await save(w, "Me")
    other = w.discord.add_user("other")
    assert "no voice called" in await reply(w, await say(w, voice="Me", user_id=other))
    assert "can now use" in await voice(w, "share", name="Me")
    assert (await w.answered(await say(w, voice="Me", user_id=other))).attachments
    complete = await w.discord.autocomplete("say", "voice", "m", user_id=other)
    await w.discord.wait_for(lambda: complete.autocomplete_choices is not None)
    assert [c["name"] for c in complete.autocomplete_choices or []] == ["Me (shared)"]
    # The owner opts out here: nobody may use the voice, and it is not listed to others.
    await reply(w, await w.discord.slash("optout"))
    assert "no voice called" in await reply(w, await say(w, voice="Me", user_id=other))
    assert "Shared with this server" not in await voice(w, "list", user_id=other)
    assert "can no longer use" in await voice(w, "unshare", name="Me")


async def test_a_dead_storage_url_is_re_uploaded_once_and_the_job_succeeds(w: World) -> None:
    await save(w)
    [name] = w.segmind.assets
    w.segmind.expire_asset(name, 403)
    msg = await w.answered(await say(w))
    assert msg.attachments
    assert (w.segmind.count("upload"), w.segmind.count("submit")) == (2, 2)
    first, second = w.segmind.jobs.values()
    assert first.sample_error == "HTTP 403"
    assert second.sample_bytes == VOICE
    [kept] = await w.bot.store.own_voices(w.discord.user_id)
    assert kept.storage_url == second.voice_samples


async def test_a_second_dead_url_ends_the_job_without_a_third_submit(w: World) -> None:
    await save(w)
    [name] = w.segmind.assets
    w.segmind.expire_asset(name, 404)
    dead = f"{w.segmind.base_url}/assets/gone.bin"
    w.segmind.inject("upload", Injection(status=200, body={"file_urls": [dead]}))
    msg = await w.answered(await say(w))
    assert not msg.attachments
    assert msg.content.startswith("❌")
    assert (w.segmind.count("upload"), w.segmind.count("submit")) == (2, 2)
    [record] = await w.bot.store.recent_jobs(w.discord.guild_id, 5)
    assert record.sample_retries == 1


async def test_a_failed_upload_saves_nothing(w: World) -> None:
    w.segmind.inject("upload", Injection(status=400, times=1))
    assert "was not saved" in await save(w)
    assert await w.bot.store.own_voices(w.discord.user_id) == []


async def test_say_this_in_my_voice_speaks_a_message_as_plain_words(w: World) -> None:
    await save(w)
    author = w.discord.add_user("author")
    post = await w.discord.user_message(
        "**Hello** <:wave_hand:123> _there_ <@&999> ~~old~~", user_id=author
    )
    msg = await w.answered(await w.discord.context_menu(SAY_MESSAGE_COMMAND, post.id))
    assert msg.attachments
    [job] = w.segmind.jobs.values()
    assert job.text == "Hello wave hand there a role old"
    [record] = await w.bot.store.recent_jobs(w.discord.guild_id, 5)
    assert record.origin == "say_message"


async def test_say_this_in_my_voice_without_a_voice(w: World) -> None:
    post = await w.discord.user_message("hello", user_id=w.discord.add_user("author"))
    opened = await w.discord.context_menu(SAY_MESSAGE_COMMAND, post.id)
    assert "/voice save" in await reply(w, opened)
    assert w.segmind.count("submit") == 0


def test_plain_words() -> None:
    users, roles, channels = {1: "Ann"}, {2: "Mods"}, {3: "general"}
    text = "# Hi <@1> and <@!4>, <@&2> in <#3> at <t:0:R> @everyone `code` ||spoiler||"
    assert plain_words(text, users, roles, channels, 200) == (
        "Hi Ann and someone, Mods in general at a time everyone code spoiler"
    )
    assert plain_words("one two three", {}, {}, {}, 9) == "one two"
