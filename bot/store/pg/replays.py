"""What a result's Again and Edit text buttons replay, on the PostgreSQL store (the
`ReplayStore` half, as `bot/store/replays.py` on SQLite): kept at delivery, removed with
the result, on an /optout of the requester or of the voice's owner, and by the purge."""

from __future__ import annotations

from dataclasses import fields

from ..models import Replay
from .base import PgBase

_COLUMNS = tuple(f.name for f in fields(Replay))
_REPLACE = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS[1:])


class PgReplays(PgBase):
    """Mixed into `PostgresJobStore`. Writes go through `_fetch`: as on SQLite, `writes`
    counts the jobs' transitions (`mark_delivered` keeps its replay first), not these."""

    async def keep_replay(self, job_id: str) -> None:
        """Copy what a replay needs from the job's row, before its end wipes it."""
        await self._fetch(
            f"INSERT INTO replays ({', '.join(_COLUMNS)}) "
            "SELECT id, $1, guild_id, user_id, voice_owner_id, text, language, sample_url, "
            "voice_id, sample_sha256, send_as, play FROM jobs WHERE id = $2 AND text <> '' "
            "AND (sample_url <> '' OR voice_id IS NOT NULL) "
            # Delivered after an /optout of its requester or voice owner: keep nothing.
            "AND NOT EXISTS (SELECT 1 FROM members WHERE members.guild_id = jobs.guild_id "
            "AND members.user_id IN (jobs.user_id, jobs.voice_owner_id) "
            "AND members.opted_out_at IS NOT NULL) "
            f"ON CONFLICT (job_id) DO UPDATE SET {_REPLACE}",
            self._clock(),
            job_id,
        )

    async def replay(self, job_id: str) -> Replay | None:
        row = await self._fetchrow(
            f"SELECT {', '.join(_COLUMNS)} FROM replays WHERE job_id = $1", job_id
        )
        return None if row is None else Replay(**dict(zip(_COLUMNS, row, strict=True)))

    async def update_replay_url(self, job_id: str, sample_url: str) -> None:
        """A refreshed CDN URL for the clip (the old one expired)."""
        await self._fetch(
            "UPDATE replays SET sample_url = $1 WHERE job_id = $2", sample_url, job_id
        )

    async def drop_replay(self, job_id: str) -> None:
        await self._fetch("DELETE FROM replays WHERE job_id = $1", job_id)

    async def drop_replays_of(self, guild_id: int, user_id: int) -> int:
        """Forget the replays in a guild that the member asked for or whose voice is
        theirs (their /optout). Returns how many."""
        rows = await self._fetch(
            "DELETE FROM replays WHERE guild_id = $1 AND (user_id = $2 OR voice_owner_id = $2) "
            "RETURNING job_id",
            guild_id,
            user_id,
        )
        return len(rows)

    async def _purge_replays(self, before: float) -> int:
        rows = await self._fetch(
            "DELETE FROM replays WHERE created_at < $1 RETURNING job_id", before
        )
        return len(rows)
