"""Provenance queries on the SQLite store: which delivered jobs a file is (by the hash of
the whole file, or of its audio without tags)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .models import JobRecord
from .records import SELECT, from_row

MATCHES_SHOWN = 10


class ProvenanceQueries:
    """Mixed into `SqliteJobStore`, whose `_query` runs a statement in the writer's next
    commit."""

    async def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def delivered_matching(
        self, file_sha256: str, audio_sha256: str | None
    ) -> list[JobRecord]:
        """Jobs (of any server) whose delivered file had this hash, or whose audio without
        tags had `audio_sha256`, oldest first: a cached result delivered again shares its
        audio with the job that made it. Each condition is served by its partial index."""
        where = "result_sha256 = ?"
        params: tuple[object, ...] = (file_sha256,)
        if audio_sha256 is not None:
            where += " OR result_audio_sha256 = ?"
            params += (audio_sha256,)
        rows = await self._query(
            f"SELECT {SELECT} FROM jobs WHERE {where} ORDER BY created_at, rowid LIMIT ?",
            (*params, MATCHES_SHOWN),
        )
        return [from_row(row) for row in rows]
