"""What a result's Again and Edit text buttons replay (the `ReplayStore` half): the text,
language and voice of a delivered job, kept in `replays` after the job row itself lost
them (see `Transitions.wiped`). Bounded: removed with the result, on an /optout of the
requester or of the voice's owner, and by the purge with the finished jobs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import fields

from .models import Replay

_COLUMNS = tuple(f.name for f in fields(Replay))


class ReplayQueries:
    """Mixed into `SqliteJobStore`, whose `_query` runs a statement in the writer's next
    commit."""

    _clock: Callable[[], float]

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def keep_replay(self, job_id: str) -> None:
        """Copy what a replay needs from the job's row, before its end wipes it."""
        await self._query(
            "INSERT OR REPLACE INTO replays (job_id, created_at, guild_id, user_id, "
            "voice_owner_id, text, language, sample_url, voice_id, sample_sha256, send_as, play) "
            "SELECT id, ?, guild_id, user_id, voice_owner_id, text, language, sample_url, "
            "voice_id, sample_sha256, send_as, play FROM jobs WHERE id = ? AND text != '' "
            "AND (sample_url != '' OR voice_id IS NOT NULL) "
            # Delivered after an /optout of its requester or voice owner: keep nothing.
            "AND NOT EXISTS (SELECT 1 FROM members WHERE members.guild_id = jobs.guild_id "
            "AND members.user_id IN (jobs.user_id, jobs.voice_owner_id) "
            "AND members.opted_out_at IS NOT NULL)",
            (self._clock(), job_id),
        )

    async def replay(self, job_id: str) -> Replay | None:
        rows = await self._query(
            f"SELECT {', '.join(_COLUMNS)} FROM replays WHERE job_id = ?", (job_id,)
        )
        return Replay(**dict(zip(_COLUMNS, rows[0], strict=True))) if rows else None

    async def update_replay_url(self, job_id: str, sample_url: str) -> None:
        """A refreshed CDN URL for the clip (the old one expired)."""
        await self._query(
            "UPDATE replays SET sample_url = ? WHERE job_id = ?", (sample_url, job_id)
        )

    async def drop_replay(self, job_id: str) -> None:
        await self._query("DELETE FROM replays WHERE job_id = ?", (job_id,))

    async def drop_replays_of(self, guild_id: int, user_id: int) -> int:
        """Forget the replays in a guild that the member asked for or whose voice is
        theirs (their /optout). Returns how many."""
        rows = await self._query(
            "DELETE FROM replays WHERE guild_id = ? AND (user_id = ? OR voice_owner_id = ?) "
            "RETURNING job_id",
            (guild_id, user_id, user_id),
        )
        return len(rows)

    async def _purge_replays(self, before: float) -> int:
        rows = await self._query(
            "DELETE FROM replays WHERE created_at < ? RETURNING job_id", (before,)
        )
        return len(rows)
