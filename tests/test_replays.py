"""What a result's Again and Edit text buttons replay (`bot/store/replays.py`): kept at
delivery (the job row's text and clip URL are wiped then), removed on demand, on an
/optout of the requester or the voice's owner, and by the purge."""

from __future__ import annotations

import dataclasses
import time

from bot.store import MemberRecord
from bot.store.models import Store
from tests.store_backends import MakeStore
from tests.test_store import AUDIO, Clock, make_job


async def delivered(store: Store, job_id: str, **changes: object) -> None:
    await store.add(dataclasses.replace(make_job(job_id), **changes))  # type: ignore[arg-type]
    await store.mark_submit_started(job_id)
    await store.mark_submitted(job_id, f"r-{job_id}", "https://poll")
    await store.mark_completed(job_id, AUDIO, "audio/mpeg", "mp3", "https://o/1")
    await store.mark_delivering(job_id)
    await store.mark_delivered(job_id, "interaction", 1)


async def test_delivery_keeps_what_a_replay_needs_after_the_wipe(make_store: MakeStore) -> None:
    async with make_store() as store:
        await delivered(
            store,
            "1",
            voice_owner_id=77,
            sample_sha256="ab" * 32,
            send_as="voice_message",
            play=True,
        )
        record = await store.get("1")
        assert record is not None
        assert record.text == ""
        assert record.sample_url == ""
        replay = await store.replay("1")
        assert replay is not None
        assert (replay.text, replay.language, replay.user_id, replay.guild_id) == (
            "Hello there",
            "en",
            9,
            8,
        )
        assert replay.sample_url == make_job().sample_url
        assert (replay.voice_owner_id, replay.sample_sha256) == (77, "ab" * 32)
        assert (replay.send_as, bool(replay.play)) == ("voice_message", True)  # Again keeps them
        await store.update_replay_url("1", "https://new")
        assert (await store.replay("1") or replay).sample_url == "https://new"
        await store.drop_replay("1")
        assert await store.replay("1") is None


async def test_failed_jobs_keep_nothing(make_store: MakeStore) -> None:
    async with make_store() as store:
        await store.add(make_job("1"))
        await store.mark_failed("1", "JobFailedError", "It failed.")
        await store.mark_explained("1")
        assert await store.replay("1") is None


async def test_optout_of_requester_or_voice_owner_drops_theirs_in_that_guild(
    make_store: MakeStore,
) -> None:
    async with make_store() as store:
        await delivered(store, "asked")  # user 9, guild 8
        await delivered(store, "voice", user_id=5, voice_owner_id=9)
        await delivered(store, "other-guild", guild_id=3)
        await delivered(store, "someone-else", user_id=5, voice_owner_id=5)
        assert await store.drop_replays_of(8, 9) == 2
        assert [await store.replay(j) is None for j in ("asked", "voice")] == [True, True]
        assert await store.replay("other-guild") is not None
        assert await store.replay("someone-else") is not None


async def test_the_purge_drops_replays_past_the_retention(make_store: MakeStore) -> None:
    clock = Clock(time.time())
    async with make_store(clock=clock) as store:
        await delivered(store, "old")
        clock.now += 2 * 86400
        await delivered(store, "recent")
        await store.purge(86400)
        assert await store.replay("old") is None
        assert await store.replay("recent") is not None


async def test_a_job_delivered_after_an_optout_keeps_nothing(make_store: MakeStore) -> None:
    async with make_store() as store:
        await store.save_member(MemberRecord(guild_id=8, user_id=77, opted_out_at=1.0))
        await delivered(store, "owner-out", voice_owner_id=77)
        await delivered(store, "fine", voice_owner_id=78)
        assert await store.replay("owner-out") is None
        assert await store.replay("fine") is not None
