"""The store's fair-use side: the audit fields of a job, billable usage, guild settings,
members and flags, all surviving a reopen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.store import MemberRecord
from bot.store.models import Store

from .store_backends import MakeStore
from .test_store import TOKEN, make_job


async def finish(store: Store, job_id: str, *, submitted: bool) -> None:
    if submitted:
        await store.mark_submit_started(job_id)
        await store.mark_submitted(job_id, f"r-{job_id}", "https://api.segmind.com/p")
    await store.mark_failed(job_id, "x", "failed")
    await store.mark_explained(job_id)


async def test_job_keeps_its_audit_fields_and_loses_text_and_clip_url_when_done(
    make_store: MakeStore, store_backend: str, tmp_path: Path
) -> None:
    async with make_store() as store:
        added = await store.add(make_job("1"))
        assert added.text_chars == len("Hello there")
        assert added.sample_host == "cdn.discordapp.com"
        assert added.text == "Hello there"  # needed until the job ends
        await finish(store, "1", submitted=True)
        done = await store.get("1")
    assert done is not None
    assert (done.text, done.sample_url) == ("", "")
    assert (done.text_chars, done.sample_host, done.request_id) == (11, "cdn.discordapp.com", "r-1")
    # The database file itself no longer holds the text.
    if store_backend == "sqlite":
        assert b"Hello there" not in b"".join(
            p.read_bytes() for p in tmp_path.glob("jobs.sqlite3*")
        )


async def test_operator_can_keep_the_text(make_store: MakeStore) -> None:
    async with make_store(keep_text=True) as store:
        await store.add(make_job("1"))
        await finish(store, "1", submitted=False)
        done = await store.get("1")
    assert done is not None
    assert (done.text, done.sample_url) == ("Hello there", "")


async def test_usage_counts_billable_jobs_per_member(make_store: MakeStore) -> None:
    now = 1_000_000.0
    async with make_store() as store:
        await store.add(make_job("old", created_at=now - 100))
        await store.add(make_job("a", created_at=now))
        await store.add(make_job("b", created_at=now + 1))
        await finish(store, "b", submitted=True)  # failed after submit: may be billed
        await store.add(make_job("c", created_at=now + 2))
        await finish(store, "c", submitted=False)  # never sent: free
        other = dataclasses.replace(make_job("d", created_at=now + 3), user_id=10, text="hi")
        await store.add(other)
        rows = sorted(await store.usage(now), key=lambda r: r.user_id)
        assert [(r.guild_id, r.user_id, r.jobs, r.chars, r.last_at) for r in rows] == [
            (8, 9, 2, 22, now + 1),
            (8, 10, 1, 2, now + 3),
        ]
        assert await store.usage(now, guild_id=99) == []
        assert len(await store.usage(now - 100, guild_id=8)) == 2


async def test_recent_jobs_newest_first_per_guild(make_store: MakeStore) -> None:
    async with make_store() as store:
        for i in range(5):
            await store.add(make_job(str(i), created_at=100.0 + i))
        await store.add(dataclasses.replace(make_job("x", created_at=200.0), guild_id=99))
        recent = await store.recent_jobs(8, 3)
    assert [r.id for r in recent] == ["4", "3", "2"]
    assert all(r.interaction_token == TOKEN for r in recent)


async def test_settings_members_and_flags_survive_a_reopen(make_store: MakeStore) -> None:
    async with make_store() as store:
        await store.save_guild_settings(5, {"enabled": False, "channels": [1, 2]}, by=77)
        await store.save_guild_settings(5, {"enabled": True}, by=78)  # replaces, not merges
        await store.save_member(MemberRecord(guild_id=5, user_id=6, consent_at=1.5))
        await store.save_member(
            MemberRecord(guild_id=5, user_id=6, consent_at=1.5, blocked_at=2.0, blocked_by=77)
        )
        await store.save_member(MemberRecord(guild_id=5, user_id=7, opted_out_at=3.0))
        await store.set_flag("enabled", "false")
        await store.set_flag("enabled", "true")
    async with make_store() as store:
        assert await store.guild_settings() == {5: {"enabled": True}}
        members = sorted(await store.members(), key=lambda m: m.user_id)
        assert members == [
            MemberRecord(guild_id=5, user_id=6, consent_at=1.5, blocked_at=2.0, blocked_by=77),
            MemberRecord(guild_id=5, user_id=7, opted_out_at=3.0),
        ]
        assert await store.flags() == {"enabled": "true"}


async def test_a_job_is_found_by_its_message_in_its_guild(make_store: MakeStore) -> None:
    async with make_store() as store:
        clip_of_another = dataclasses.replace(make_job("1"), voice_owner_id=55)
        await store.add(clip_of_another)
        await store.mark_submit_started("1", original_message_id=700)
        await store.mark_submitted("1", "r-1", "https://api.segmind.com/p")
        await store.mark_completed("1", b"ID3", "audio/mpeg", "mp3", "u", delivering=True)
        await store.mark_delivered("1", "channel", 701)
        await store.add(make_job("2"))
    async with make_store() as store:  # kept across a restart
        by_interaction = await store.job_for_message(8, 700)
        by_delivery = await store.job_for_message(8, 701)
        assert by_interaction is not None
        assert by_delivery is not None
        assert (by_delivery.id, by_delivery.voice_owner_id) == ("1", 55)
        assert await store.job_for_message(9, 701) is None  # another guild's message id
        assert await store.job_for_message(8, 702) is None
        assert (await store.get("2")) is not None
        assert (await store.get("2")).voice_owner_id is None  # type: ignore[union-attr]
