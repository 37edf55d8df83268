"""Saved voices: the store's half (kept bytes, names, limit, default, shares, opt-out
hiding) and the core decisions (names, the once-only re-upload)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from bot.segmind.errors import JobFailedError, JobTimeoutError
from bot.store import (
    InvalidTransition,
    JobState,
    MemberRecord,
    NextStep,
    VoiceLimitReached,
    VoiceNameTaken,
)
from bot.store.models import Store
from bot.voices import clean_name, sample_sha256, should_reupload, voice_name_problem
from tests.store_backends import MakeStore
from tests.test_store import make_job

OWNER, OTHER, GUILD = 11, 22, 500
CLIP = b"ID3 pretend audio"


@pytest.fixture
async def store(make_store: MakeStore) -> AsyncIterator[Store]:
    async with make_store() as opened:
        yield opened


async def save(store: Store, name: str, owner: int = OWNER, limit: int = 5) -> int:
    return await store.add_voice(
        owner,
        name,
        CLIP,
        sha256=sample_sha256(CLIP),
        content_type="audio/mpeg",
        filename="me.mp3",
        storage_url="https://example.invalid/a.mp3",
        limit=limit,
    )


async def test_voice_keeps_its_bytes_and_the_first_is_the_default(store: Store) -> None:
    first = await save(store, "Me")
    await save(store, "Other")
    voices = await store.own_voices(OWNER)
    assert [(v.name, v.is_default, v.size) for v in voices] == [
        ("Me", True, len(CLIP)),
        ("Other", False, len(CLIP)),
    ]
    assert await store.voice_sample(first) == CLIP
    assert (await store.get_voice(first)) == voices[0]


async def test_names_are_unique_per_owner_ignoring_case(store: Store) -> None:
    first = await save(store, "Me")
    with pytest.raises(VoiceNameTaken):
        await save(store, "ME")
    await save(store, "me", owner=OTHER)  # another owner's namespace
    second = await save(store, "Two")
    with pytest.raises(VoiceNameTaken):
        await store.rename_voice(OWNER, second, "mE")
    assert await store.rename_voice(OWNER, first, "New")
    assert not await store.rename_voice(OTHER, first, "Stolen")
    assert (await store.voice_named(OWNER, "new")) is not None


async def test_the_limit_is_kept(store: Store) -> None:
    await save(store, "a", limit=2)
    await save(store, "b", limit=2)
    with pytest.raises(VoiceLimitReached):
        await save(store, "c", limit=2)
    assert len(await store.own_voices(OWNER)) == 2


async def test_the_limit_and_names_hold_for_saves_racing(store: Store) -> None:
    """Saves at once (on PostgreSQL each on a connection of its own) never pass the
    limit, never keep two voices of one name, and make exactly one the default."""
    results = await asyncio.gather(
        *(save(store, f"v{i}", limit=3) for i in range(8)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in results) == ["VoiceLimitReached"] * 5 + ["int"] * 3
    voices = await store.own_voices(OWNER)
    assert len(voices) == 3
    assert sum(v.is_default for v in voices) == 1
    same = await asyncio.gather(
        *(save(store, "Same", owner=OTHER) for _ in range(4)), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in same) == ["VoiceNameTaken"] * 3 + ["int"]


async def test_delete_takes_bytes_record_and_shares(store: Store) -> None:
    voice = await save(store, "Me")
    assert await store.share_voice(OWNER, voice, GUILD, True)
    assert not await store.delete_voice(OTHER, voice)  # not theirs
    assert await store.delete_voice(OWNER, voice)
    assert await store.voice_sample(voice) is None
    assert await store.get_voice(voice) is None
    assert await store.usable_voices(GUILD, OTHER) == []


async def test_default_moves(store: Store) -> None:
    await save(store, "a")
    b = await save(store, "b")
    assert await store.set_default_voice(OWNER, b)
    assert [v.name for v in await store.own_voices(OWNER) if v.is_default] == ["b"]
    assert not await store.set_default_voice(OTHER, b)


async def test_shared_voices_are_usable_in_that_server_only(store: Store) -> None:
    voice = await save(store, "Me")
    assert await store.usable_voices(GUILD, OTHER) == []
    assert not await store.share_voice(OTHER, voice, GUILD, True)  # only the owner shares
    assert await store.share_voice(OWNER, voice, GUILD, True)
    (seen,) = await store.usable_voices(GUILD, OTHER)
    assert (seen.id, seen.shared) == (voice, True)
    assert await store.usable_voices(GUILD + 1, OTHER) == []
    assert await store.share_voice(OWNER, voice, GUILD, False)
    assert await store.usable_voices(GUILD, OTHER) == []


async def test_opt_out_hides_the_owners_voices_from_everyone(store: Store) -> None:
    voice = await save(store, "Me")
    await store.share_voice(OWNER, voice, GUILD, True)
    await store.save_member(MemberRecord(guild_id=GUILD, user_id=OWNER, opted_out_at=1.0))
    assert await store.usable_voices(GUILD, OTHER) == []
    assert await store.usable_voices(GUILD, OWNER) == []
    assert len(await store.usable_voices(GUILD + 1, OWNER)) == 1  # another server


async def test_new_storage_url_is_kept(store: Store) -> None:
    voice = await save(store, "Me")
    await store.set_voice_url(voice, "https://example.invalid/b.mp3")
    got = await store.get_voice(voice)
    assert got is not None
    assert got.storage_url == "https://example.invalid/b.mp3"


def test_names() -> None:
    assert clean_name("  My   voice ") == "My voice"
    assert voice_name_problem("My voice") is None
    assert voice_name_problem("   ")
    assert voice_name_problem("x" * 33)
    assert voice_name_problem("<@123>")


def test_reupload_once_only_for_a_saved_voice_whose_sample_could_not_be_fetched() -> None:
    dead = JobFailedError("Failed to download voice sample (HTTP 403)")
    assert should_reupload(7, dead, 0)
    assert not should_reupload(7, dead, 1)  # once per job
    assert not should_reupload(None, dead, 0)  # a one-off clip has no kept bytes
    assert not should_reupload(7, JobFailedError("text too long"), 0)
    assert not should_reupload(7, JobTimeoutError("Failed to download voice sample"), 0)


async def test_resubmit_is_allowed_once_and_only_after_a_submit(store: Store) -> None:
    job = await store.add(dataclasses.replace(make_job("r1"), voice_id=1))
    with pytest.raises(InvalidTransition):  # never sent: nothing to retry
        await store.mark_resubmit(job.id, "https://example.invalid/new.mp3")
    await store.mark_submit_started(job.id)
    await store.mark_submitted(job.id, "req-1", "https://api.segmind.com/workflows/request/1")
    again = await store.mark_resubmit(job.id, "https://example.invalid/new.mp3")
    assert (again.state, again.next_step, again.sample_retries) == (
        JobState.ACCEPTED,
        NextStep.SUBMIT,
        1,
    )
    assert (again.request_id, again.submit_started_at, again.sample_host) == (
        None,
        None,
        "example.invalid",
    )
    assert await store.get(job.id) == again
    await store.mark_submit_started(job.id)
    await store.mark_submitted(job.id, "req-2", "https://api.segmind.com/workflows/request/2")
    with pytest.raises(InvalidTransition):  # a third submit is refused by the store
        await store.mark_resubmit(job.id, "https://example.invalid/newer.mp3")
