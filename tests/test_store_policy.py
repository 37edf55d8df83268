"""The store's fair-use side: the audit fields of a job, billable usage, guild settings,
members and flags, all surviving a reopen."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.store import MemberRecord, SqliteJobStore

from .test_store import TOKEN, make_job


async def finish(store: SqliteJobStore, job_id: str, *, submitted: bool) -> None:
    if submitted:
        await store.mark_submit_started(job_id)
        await store.mark_submitted(job_id, f"r-{job_id}", "https://api.segmind.com/p")
    await store.mark_failed(job_id, "x", "failed")
    await store.mark_explained(job_id)


async def test_job_keeps_its_audit_fields_and_loses_text_and_clip_url_when_done(
    tmp_path: Path,
) -> None:
    async with SqliteJobStore(tmp_path) as store:
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
    assert b"Hello there" not in b"".join(p.read_bytes() for p in tmp_path.glob("jobs.sqlite3*"))


async def test_operator_can_keep_the_text(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path, keep_text=True) as store:
        await store.add(make_job("1"))
        await finish(store, "1", submitted=False)
        done = await store.get("1")
    assert done is not None
    assert (done.text, done.sample_url) == ("Hello there", "")


async def test_usage_counts_billable_jobs_per_member(tmp_path: Path) -> None:
    now = 1_000_000.0
    async with SqliteJobStore(tmp_path) as store:
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


async def test_recent_jobs_newest_first_per_guild(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path) as store:
        for i in range(5):
            await store.add(make_job(str(i), created_at=100.0 + i))
        await store.add(dataclasses.replace(make_job("x", created_at=200.0), guild_id=99))
        recent = await store.recent_jobs(8, 3)
    assert [r.id for r in recent] == ["4", "3", "2"]
    assert all(r.interaction_token == TOKEN for r in recent)


async def test_settings_members_and_flags_survive_a_reopen(tmp_path: Path) -> None:
    async with SqliteJobStore(tmp_path) as store:
        await store.save_guild_settings(5, {"enabled": False, "channels": [1, 2]}, by=77)
        await store.save_guild_settings(5, {"enabled": True}, by=78)  # replaces, not merges
        await store.save_member(MemberRecord(guild_id=5, user_id=6, consent_at=1.5))
        await store.save_member(
            MemberRecord(guild_id=5, user_id=6, consent_at=1.5, blocked_at=2.0, blocked_by=77)
        )
        await store.save_member(MemberRecord(guild_id=5, user_id=7, opted_out_at=3.0))
        await store.set_flag("enabled", "false")
        await store.set_flag("enabled", "true")
    async with SqliteJobStore(tmp_path) as store:
        assert await store.guild_settings() == {5: {"enabled": True}}
        members = sorted(await store.members(), key=lambda m: m.user_id)
        assert members == [
            MemberRecord(guild_id=5, user_id=6, consent_at=1.5, blocked_at=2.0, blocked_by=77),
            MemberRecord(guild_id=5, user_id=7, opted_out_at=3.0),
        ]
        assert await store.flags() == {"enabled": "true"}
