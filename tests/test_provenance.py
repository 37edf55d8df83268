"""Provenance: the tags every delivered file carries, the hashes recorded with it, and
"Was this made by VoiceClone?" end to end through discord.py."""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path
from typing import Any

import mutagen
import pytest
from mutagen.id3 import ID3

from bot.audio import MIB, AudioFile
from bot.audio_payload import audio_sha256, skip_id3v2
from bot.provenance import JOB_ID, Stamp, read_claim, stamp_file
from cogs.provenance import MAX_CHECK_BYTES, MENU_NAME
from tests.audio_files import fake_opus, untagged
from tests.fakes.discord import FakeDiscord, FakeInteraction
from tests.fakes.segmind import FakeSegmind, fake_mp3
from tests.harness import World, bot_settings, running_bot, world
from tests.store_backends import MakeStore
from tests.test_admin_e2e import audit_embed, run
from tests.test_store import make_job

STAMP = Stamp("Bot", 42, "1234", 1764680000.5)

# -- the store's half ------------------------------------------------------------------


async def test_the_store_finds_delivered_jobs_by_either_hash_oldest_first(
    make_store: MakeStore,
) -> None:
    async with make_store() as store:
        for job_id, at, hashes in (
            ("made", 100.0, ("file-1", "audio-1")),
            ("again", 200.0, ("file-2", "audio-1")),  # a cached result, tagged anew
            ("other", 150.0, ("file-3", "audio-3")),
        ):
            await store.add(make_job(job_id, created_at=at))
            await store.mark_submit_started(job_id)
            await store.mark_submitted(job_id, f"r-{job_id}", "https://api.segmind.com/p")
            await store.mark_completed(job_id, b"ID3", "audio/mpeg", "mp3", "u", delivering=True)
            await store.mark_delivered(job_id, "channel", 1, hashes=hashes)
        assert [j.id for j in await store.delivered_matching("file-2", "audio-1")] == [
            "made",
            "again",
        ]
        assert [j.id for j in await store.delivered_matching("file-3", None)] == ["other"]
        assert [j.id for j in await store.delivered_matching("nothing", None)] == []
        (found,) = await store.delivered_matching("file-1", None)
        assert (found.result_sha256, found.result_audio_sha256) == ("file-1", "audio-1")


# -- tagging ---------------------------------------------------------------------------


def test_mp3_is_tagged_deterministically_and_its_audio_hash_survives_stripping() -> None:
    original = fake_mp3(b"job audio")
    stamped = stamp_file(AudioFile(original, "audio/mpeg", "mp3"), STAMP)
    assert stamped.tagged
    tags = ID3(io.BytesIO(stamped.audio.data))
    assert tags["TXXX:AI_GENERATED"].text == ["yes"]
    assert tags["TXXX:VOICECLONE_JOB_ID"].text == ["1234"]
    assert tags["TXXX:VOICECLONE_APPLICATION_ID"].text == ["42"]
    assert tags["TXXX:VOICECLONE_CREATED"].text == ["2025-12-02T12:53:20Z"]
    assert "AI-generated" in str(tags["COMM::eng"])
    assert tags["TENC"].text == ["Bot"]
    assert stamped.sha256 == hashlib.sha256(stamped.audio.data).hexdigest()
    # A retry stamps the same bytes; the audio hash ignores every tag, ours or not.
    again = stamp_file(AudioFile(original, "audio/mpeg", "mp3"), STAMP)
    assert again.audio.data == stamped.audio.data
    assert (
        audio_sha256(original) == stamped.audio_sha256 == audio_sha256(untagged(again.audio.data))
    )
    assert audio_sha256(fake_mp3(b"other job")) != stamped.audio_sha256


def test_ogg_opus_is_tagged_and_a_new_stamp_replaces_ours() -> None:
    original = fake_opus()
    stamped = stamp_file(AudioFile(original, "audio/ogg", "ogg"), STAMP)
    file: Any = mutagen.File(io.BytesIO(stamped.audio.data))
    assert file.tags["VOICECLONE_JOB_ID"] == ["1234"]
    assert file.tags["AI_GENERATED"] == ["yes"]
    # A cached result delivered for another job carries that job's tags only.
    restamped = stamp_file(stamped.audio, Stamp("Bot", 42, "5678", 1764690000.0))
    claim = read_claim(restamped.audio.data)
    assert claim is not None
    assert claim.job_id == "5678"
    assert claim.application_id == 42
    assert restamped.audio_sha256 == stamped.audio_sha256 == audio_sha256(original)
    assert audio_sha256(untagged(restamped.audio.data)) == stamped.audio_sha256


def test_a_file_that_cannot_carry_tags_is_delivered_as_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    webm = b"\x1a\x45\xdf\xa3" + bytes(60)
    with caplog.at_level(logging.WARNING):
        stamped = stamp_file(AudioFile(webm, "audio/webm", "webm"), STAMP)
    assert not stamped.tagged
    assert stamped.audio.data == webm
    assert stamped.sha256 == hashlib.sha256(webm).hexdigest()
    assert "cannot carry provenance tags" in caplog.text
    # Bytes mutagen refuses are delivered untagged too, never blocked.
    broken = b"OggS" + bytes(40)
    assert stamp_file(AudioFile(broken, "audio/ogg", "ogg"), STAMP).audio.data == broken


def test_an_mp3_tag_is_written_before_the_audio_without_moving_it() -> None:
    """MP3: our tag replaces the old ID3v2 tag and the audio after it is left as it was
    (even bytes that are not valid frames: the tag is not the place to judge them)."""
    audio = b"\xff\xfb\x90\x00" + bytes(5000)
    old = b"ID3\x04\x00\x00\x00\x00\x00\x00"  # an empty ID3v2.4 tag
    stamped = stamp_file(AudioFile(old + audio, "audio/mpeg", "mp3"), STAMP)
    assert stamped.tagged
    assert stamped.audio.data.startswith(b"ID3\x03")
    assert stamped.audio.data.endswith(audio)
    assert stamped.audio.data[skip_id3v2(stamped.audio.data) :] == audio
    assert ID3(io.BytesIO(stamped.audio.data)).getall(f"TXXX:{JOB_ID}")[0].text == [STAMP.job_id]


# -- end to end ------------------------------------------------------------------------


async def check(w: World, message_id: int, user: int | None = None) -> str:
    """Run the message command on a message; its ephemeral answer, which pings nobody."""
    interaction: FakeInteraction = await w.discord.context_menu(MENU_NAME, message_id, user_id=user)

    def answered() -> bool:
        msg = interaction.original
        return msg is not None and not msg.loading

    await w.discord.wait_for(answered)
    msg = interaction.original
    assert msg is not None
    assert msg.ephemeral
    assert msg.mentions == []
    return msg.content


async def test_a_delivered_result_carries_tags_its_hash_is_recorded_and_checkable(
    tmp_path: Path,
) -> None:
    async with FakeDiscord() as discord, FakeSegmind() as segmind:
        guild = discord.add_guild("Elsewhere")  # synced before the bot starts
        stranger = discord.add_user("stranger", guild_id=guild)
        with discord.patch_discord_py():
            config = bot_settings(
                tmp_path, segmind, discord, DISCORD_GUILD_IDS=f"{discord.guild_id},{guild}"
            )
            async with running_bot(discord, config) as bot:
                await delivered_and_checked(World(discord, segmind, bot, config), guild, stranger)


async def delivered_and_checked(w: World, guild: int, elsewhere: int) -> None:
    interaction = await w.speak("Hello there")
    result = await w.answered(interaction)
    await w.job_ended(interaction)
    data = result.attachments[0].data
    claim = read_claim(data)
    assert claim is not None
    assert claim.job_id == str(interaction.id)
    assert claim.application_id == w.bot.application_id
    assert w.bot.user is not None
    assert claim.values["VOICECLONE_BOT"] == w.bot.user.name
    record = await w.bot.store.get(str(interaction.id))
    assert record is not None
    assert record.result_sha256 == hashlib.sha256(data).hexdigest()
    assert record.result_audio_sha256 == audio_sha256(data)
    [line] = audit_embed(await run(w, "audit"))["description"].splitlines()
    assert f"file sha256 `{record.result_sha256[:12]}`" in line

    # The result itself: tags present and matching the store.
    answer = await check(w, result.id)
    assert "Yes: made by this bot" in answer
    assert str(interaction.id) in answer
    assert f"<@{w.discord.user_id}>" in answer
    assert "exactly as it was delivered" in answer

    # The same file with its tags stripped, re-posted by someone else.
    other = w.discord.add_user("someone")
    stripped = await w.discord.user_message(
        user_id=other, attachments=[w.clip("copy.mp3", untagged(data))]
    )
    answer = await check(w, stripped.id, other)
    assert str(interaction.id) in answer
    assert "tags were removed or changed" in answer

    # Our tags on edited audio: named job, but not what it delivered.
    edited = bytearray(data)
    edited[-10] ^= 0x01
    post = await w.discord.user_message(attachments=[w.clip("edit.mp3", bytes(edited))])
    assert "Edited or forged" in await check(w, post.id)

    # Tags forged onto another file, naming no job of ours.
    forged = stamp_file(
        AudioFile(fake_mp3(b"elsewhere"), "audio/mpeg", "mp3"),
        Stamp("VoiceClone", w.bot.application_id or 0, "999", 0.0),
    ).audio.data
    post = await w.discord.user_message(attachments=[w.clip("f.mp3", forged)])
    assert "claims to be from this bot" in await check(w, post.id)

    # A file that claims nothing and matches nothing.
    post = await w.discord.user_message(attachments=[w.clip("r.mp3", fake_mp3(b"real"))])
    assert "No record" in await check(w, post.id)

    # Another server: confirmed as ours, nothing more.
    channel = w.discord.guild(guild).channel_ids[0]
    clip = w.discord.add_attachment("x.mp3", data, "audio/mpeg", channel_id=channel)
    post = await w.discord.user_message(user_id=elsewhere, channel_id=channel, attachments=[clip])
    answer = await check(w, post.id, elsewhere)
    assert "made by this bot" in answer
    assert "not in this server" in answer
    assert str(interaction.id) not in answer
    assert str(w.discord.user_id) not in answer
    assert w.segmind.count("submit") == 1


async def test_messages_without_audio_and_oversized_files_get_a_clear_note(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        text_only = await w.discord.user_message("just words")
        assert "no audio file to check" in await check(w, text_only.id)
        big = w.clip("huge.mp3", fake_mp3() + bytes(MAX_CHECK_BYTES))
        post = await w.discord.user_message(attachments=[big])
        answer = await check(w, post.id)
        assert f"too large to check (over {MAX_CHECK_BYTES // MIB} MB)" in answer
        # Refused from the size Discord gave: nothing was downloaded.
        assert not [r for r in w.discord.requests if "huge.mp3" in r.path]


def test_job_id_key_is_what_the_readme_documents() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert JOB_ID in readme
