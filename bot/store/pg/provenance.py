"""Provenance queries on the PostgreSQL store (as `bot/store/provenance.py` on SQLite):
which delivered jobs a file is, by the hash of the whole file or of its audio without
tags."""

from __future__ import annotations

from ..models import JobRecord
from ..provenance import MATCHES_SHOWN
from ..records import SELECT, from_row
from .base import PgBase
from .order import INSERTED


class PgProvenance(PgBase):
    """Mixed into `PostgresJobStore`."""

    async def delivered_matching(
        self, file_sha256: str, audio_sha256: str | None
    ) -> list[JobRecord]:
        """Jobs (of any server) whose delivered file had this hash, or whose audio without
        tags had `audio_sha256`, oldest first. Each condition has its partial index."""
        where = "result_sha256 = $1"
        params: tuple[object, ...] = (file_sha256,)
        if audio_sha256 is not None:
            where += " OR result_audio_sha256 = $2"
            params += (audio_sha256,)
        rows = await self._fetch(
            f"SELECT {SELECT} FROM jobs WHERE {where} ORDER BY created_at, {INSERTED} "
            f"LIMIT ${len(params) + 1}",
            *params,
            MATCHES_SHOWN,
        )
        return [from_row(row) for row in rows]
